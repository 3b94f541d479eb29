"""oneDNN's CPU backend (convt_jax/_onednn.py): exact where it is used, never in the way.

Values against PyTorch (and against the XLA forms) for the forward, dx and dw over random
configurations; the 16-bit floats; bit-identical repeats; the transforms (vmap, jvp,
grad of grad, hessian) with the FFI call below the primitive's rules; the choice: "auto"
uses it where it applies, float64 and partitioned or exported programs stay on XLA's ops;
and the fallbacks: the environment switch, no compiler, no oneDNN package, each leaving
a working package that says why in ``convt_jax.backend_info()`` (in child processes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import convt_jax as ct
from convt_jax import _methods, _onednn
from convt_jax._geometry import Config, crop_from_padding

pytestmark = pytest.mark.skipif(
    not _onednn.available(), reason=f"oneDNN backend not in use: {ct.backend_info().reason}"
)

TORCH = {
    1: torch.nn.functional.conv_transpose1d,
    2: torch.nn.functional.conv_transpose2d,
    3: torch.nn.functional.conv_transpose3d,
}


def _case(seed: int) -> dict:
    """A random layer that PyTorch accepts (drawn again until its output is not empty): 1-3
    d, groups, stride, dilation, padding, output_padding, either layout."""
    r = np.random.default_rng(seed)
    while True:
        nd = int(r.integers(1, 4))
        groups = int(r.choice([1, 1, 2, 3]))
        c_in = groups * int(r.integers(1, 4))
        c_out = groups * int(r.integers(1, 4))
        if r.random() < 0.2:  # depthwise
            groups, c_in = c_in, c_in
            c_out = c_in * int(r.integers(1, 3))
        k = tuple(int(v) for v in r.integers(1, 5, nd))
        s = tuple(int(v) for v in r.integers(1, 4, nd))
        d = tuple(int(v) for v in r.choice([1, 1, 2], nd))
        p = tuple(int(r.integers(0, dd * (kk - 1) + 1)) for kk, dd in zip(k, d, strict=True))
        op = tuple(int(r.integers(0, max(ss, dd))) for ss, dd in zip(s, d, strict=True))
        spatial = tuple(int(v) for v in r.integers(1, 7, nd))
        case = dict(
            nd=nd,
            x_shape=(2, c_in, *spatial),
            w_shape=(c_in, c_out // groups, *k),
            stride=s,
            padding=p,
            output_padding=op,
            groups=groups,
            dilation=d,
            channels_last=bool(r.random() < 0.5),
        )
        try:
            _output_shape(case)
        except ValueError:
            continue
        return case


def _output_shape(case) -> tuple[int, ...]:
    return ct.conv_transpose_output_shape(
        case["x_shape"],
        case["w_shape"],
        case["stride"],
        case["padding"],
        case["output_padding"],
        groups=case["groups"],
        dilation=case["dilation"],
    )


def _torch(case, x, w, g):
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    y = TORCH[case["nd"]](
        tx,
        tw,
        None,
        case["stride"],
        case["padding"],
        case["output_padding"],
        case["groups"],
        case["dilation"],
    )
    dx, dw = torch.autograd.grad(y, (tx, tw), torch.tensor(g))
    return y.detach().numpy(), dx.numpy(), dw.numpy()


def _ours(case, x, w, g, method="auto"):
    cl = case["channels_last"]
    kw = {k: case[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}

    def f(x, w):
        return ct.conv_transpose(x, w, channels_last=cl, method=method, **kw)

    xj = np.moveaxis(x, 1, -1) if cl else x
    gj = np.moveaxis(g, 1, -1) if cl else g
    y, vjp = jax.vjp(jax.jit(f), jnp.asarray(xj), jnp.asarray(w))
    dx, dw = vjp(jnp.asarray(gj))
    back = (lambda a: np.moveaxis(np.asarray(a), -1, 1)) if cl else np.asarray
    return back(y), back(dx), np.asarray(dw)


def _arrays(case, seed, dtype=np.float32):
    r = np.random.default_rng(seed + 1000)
    x = r.standard_normal(case["x_shape"]).astype(dtype)
    w = r.standard_normal(case["w_shape"]).astype(dtype)
    g = r.standard_normal(_output_shape(case)).astype(dtype)
    return x, w, g


def _lowered(case, method="auto", dtype=jnp.float32) -> str:
    cl = case["channels_last"]
    kw = {k: case[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}
    x_shape = case["x_shape"]
    if cl:
        x_shape = (x_shape[0], *x_shape[2:], x_shape[1])

    def loss(x, w):
        y = ct.conv_transpose(x, w, channels_last=cl, method=method, **kw)
        return jnp.sum(jnp.abs(y) ** 2)

    spec = (jax.ShapeDtypeStruct(x_shape, dtype), jax.ShapeDtypeStruct(case["w_shape"], dtype))
    return jax.jit(jax.grad(loss, (0, 1))).lower(*spec).as_text()


@pytest.mark.parametrize("seed", range(40))
def test_values_equal_pytorch_forward_dx_dw(seed):
    case = _case(seed)
    x, w, g = _arrays(case, seed)
    # oneDNN computes every layer it can (all three parts), the rest stays on XLA's forms.
    assert _lowered(case).count("convt_jax_onednn_") in (0, 3)
    want = _torch(case, x, w, g)
    got = _ours(case, x, w, g)
    for a, b, name in zip(got, want, ("y", "dx", "dw"), strict=True):
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * scale, err_msg=f"{name} {case}")


@pytest.mark.parametrize("channels_last", [False, True])
def test_values_where_the_first_layouts_give_onednns_gemm_fallback(channels_last):
    """HiFi-GAN's second upsampler (1-D, batch 1, k16 s8): with the layouts oneDNN picks
    first, its input gradient is oneDNN's GEMM-based kernel on some CPUs (an AVX2 EPYC),
    and the handler then takes a direct kernel on the other family of layouts, with
    reorders around it; the values are PyTorch's either way."""
    case = dict(
        nd=1,
        x_shape=(1, 256, 24),
        w_shape=(256, 128, 16),
        stride=(8,),
        padding=(4,),
        output_padding=(0,),
        groups=1,
        dilation=(1,),
        channels_last=channels_last,
    )
    x, w, g = _arrays(case, 7)
    assert _lowered(case).count("convt_jax_onednn_") == 3
    want = _torch(case, x, w, g)
    got = _ours(case, x, w, g)
    for a, b, name in zip(got, want, ("y", "dx", "dw"), strict=True):
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * scale, err_msg=name)


def test_most_random_layers_run_on_onednn():
    used = sum(_lowered(_case(seed)).count("convt_jax_onednn_") == 3 for seed in range(40))
    assert used >= 30, used


@pytest.mark.parametrize("dtype, tol", [(jnp.bfloat16, 2e-2), (jnp.float16, 2e-3)])
def test_half_precision_accumulates_in_float32(dtype, tol):
    case = dict(_case(3), channels_last=False)
    x, w, g = _arrays(case, 3)
    x, w, g = (np.asarray(jnp.asarray(a, dtype).astype(jnp.float32)) for a in (x, w, g))
    want = _torch(case, x, w, g)  # float32 on the same rounded values
    assert _lowered(case, dtype=dtype).count("convt_jax_onednn_") == 3
    kw = {k: case[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}

    def f(x, w):
        return ct.conv_transpose(x, w, **kw)

    y, vjp = jax.vjp(jax.jit(f), jnp.asarray(x, dtype), jnp.asarray(w, dtype))
    dx, dw = vjp(jnp.asarray(g, dtype))
    for a, b in zip((y, dx, dw), want, strict=True):
        assert a.dtype == dtype
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=0, atol=tol * scale)


def test_float64_and_complex_stay_on_the_xla_forms():
    case = dict(_case(5), channels_last=False)
    for dtype in (jnp.float64, jnp.complex64):
        assert "convt_jax_onednn" not in _lowered(case, dtype=dtype)
        # a pinned method="onednn" too: those dtypes have no oneDNN kernel
        assert "convt_jax_onednn" not in _lowered(case, method="onednn", dtype=dtype)
    x, w, g = _arrays(case, 5, np.float64)
    want = _torch(case, x, w, g)
    got = _ours(case, x, w, g, method="onednn")
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def test_results_are_bit_identical_call_to_call():
    case = dict(_case(7), channels_last=True)
    x, w, g = _arrays(case, 7)
    first = _ours(case, x, w, g)
    for _ in range(3):
        for a, b in zip(_ours(case, x, w, g), first, strict=True):
            np.testing.assert_array_equal(a, b)


def test_transforms_work_through_the_ffi_call():
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 2, 4, 5, 5)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3, 3, 3)), jnp.float32)

    def f(x, w, method):
        return ct.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1, method=method)

    def loss(x, w, method):
        return jnp.sum(jnp.sin(f(x, w, method)))

    for transform in (
        lambda m: jax.vmap(lambda x: f(x, w, m))(x),
        lambda m: jax.vmap(lambda w_: f(x[0], w_, m))(jnp.stack([w, 2 * w])),
        lambda m: jax.jvp(lambda x: f(x, w, m), (x[0],), (jnp.ones_like(x[0]),))[1],
        lambda m: jax.grad(lambda w: jnp.sum(jax.grad(loss)(x[0], w, m) ** 2))(w),
        lambda m: jax.hessian(lambda w: loss(x[0, :1, :, :2, :2], w, m))(w[:, :1, :2, :2]),
    ):
        got = jax.jit(lambda t=transform: t("onednn"))()
        with _onednn.switched_off():
            want = jax.jit(lambda t=transform: t("dilated"))()
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    text = jax.jit(jax.grad(lambda w: loss(x[0], w, "auto"))).lower(w).as_text()
    assert "convt_jax_onednn_" in text


def test_partitioned_programs_use_xla_ops_and_shard_map_calls_per_device():
    # A partitioned program (jit over several devices) gets XLA's convolution-free forms
    # (an FFI call is opaque to the SPMD partitioner); tests/test_sharding_fuzz.py checks
    # those programs' values.  Inside shard_map each device runs its own call.
    forms = _methods.partitioned(("onednn", "onednn", "onednn"), *_config_and_shapes())
    assert "onednn" not in forms
    shard_map = getattr(jax, "shard_map", None)
    if shard_map is None:
        pytest.skip("jax.shard_map needs a newer JAX")
    P = jax.sharding.PartitionSpec
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("d",))  # Auto axes
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 5, 5)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).standard_normal((4, 3, 3, 3)), jnp.float32)
    f = shard_map(
        lambda x, w: ct.conv_transpose2d(x, w, stride=2),
        mesh=mesh,
        in_specs=(P("d"), P()),
        out_specs=P("d"),
    )
    assert "convt_jax_onednn_forward" in jax.jit(f).lower(x, w).as_text()
    np.testing.assert_allclose(
        jax.jit(f)(x, w), ct.conv_transpose2d(x, w, stride=2), rtol=1e-5, atol=1e-5
    )


def _config_and_shapes():
    from convt_jax._geometry import Config

    config = Config((2, 2), (1, 1), ((1, 1), (1, 1)), 1, False, False, None, None)
    return config, (2, 4, 5, 5), (4, 3, 4, 4)


def test_pinned_onednn_where_it_cannot_apply_is_a_clear_error():
    x = jnp.ones((1, 2, 4), jnp.float32)
    w = jnp.ones((2, 3, 3), jnp.float32)
    with _onednn.switched_off(), pytest.raises(ValueError, match="onednn.*switched off"):
        ct.conv_transpose1d(x, w, stride=2, method="onednn")


def _child(env: dict, code: str) -> dict:
    full = {**os.environ, **env}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


_CHILD = """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import convt_jax as ct
    x = jnp.asarray(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    w = jnp.asarray(np.arange(3 * 2 * 3, dtype=np.float32).reshape(3, 2, 3))
    f = lambda x, w: ct.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1)
    text = jax.jit(f).lower(x, w).as_text()
    info = ct.backend_info()
    print(json.dumps(dict(backend=info.backend, reason=info.reason,
                          ffi="convt_jax_onednn" in text,
                          y=np.asarray(jax.jit(f)(x, w)).tolist())))
"""


@pytest.mark.parametrize(
    "env, reason",
    [
        ({"CONVT_JAX_ONEDNN": "0"}, "switched off by CONVT_JAX_ONEDNN=0"),
        ({"CXX": "/nonexistent/c++", "PATH": "/nonexistent"}, "no C++ compiler"),
        ({"CONVT_JAX_ONEDNN_ROOT": "/nonexistent"}, "no include/oneapi/dnnl/dnnl.hpp"),
    ],
    ids=["switch", "no-compiler", "no-onednn"],
)
def test_without_the_backend_the_package_runs_on_xla_and_says_why(env, reason, tmp_path):
    env = {**env, "CONVT_JAX_CACHE_DIR": str(tmp_path)}  # nothing cached: a build is needed
    got = _child(env, _CHILD)
    assert got["backend"] == "xla" and reason in got["reason"], got
    assert not got["ffi"]
    want = _child({}, _CHILD)
    assert want["backend"] == "onednn" and want["ffi"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-6)


def test_a_build_failure_leaves_the_package_on_xla(tmp_path):
    # A compiler that runs but fails: the reason carries the compiler's message.
    fake = tmp_path / "c++"
    fake.write_text("#!/bin/sh\necho 'fake compiler: no' >&2\nexit 1\n")
    fake.chmod(0o755)
    got = _child({"CXX": str(fake), "CONVT_JAX_CACHE_DIR": str(tmp_path / "cache")}, _CHILD)
    assert got["backend"] == "xla" and "compiling the oneDNN handler failed" in got["reason"]
    assert not got["ffi"]


def test_backend_info_names_the_library_and_version():
    info = ct.backend_info()
    assert info.backend == "onednn"
    assert info.onednn_version and info.onednn_version.count(".") == 2
    assert info.library and os.path.exists(info.library)
    # the kernels that ran so far are oneDNN's optimized ones, never its reference kernel
    assert _onednn.implementations()
    assert not any(_is_reference(name) for name in _onednn.implementations())


def _is_reference(name: str) -> bool:
    return "ref" in name.replace("+", ":").split(":")


# Tiny channels-last layers for which some CPUs' oneDNN has only its reference kernel
# (seen on an AVX-512 AMD EPYC): (x shape, w shape, stride, (lo, hi) padding per axis).
_TINY = [
    ((2, 1, 1), (1, 2, 2), (2,), ((1, 1),)),
    ((2, 1, 3, 2), (2, 2, 3, 1), (1, 1), ((1, 1), (0, 1))),
    ((1, 1, 4, 1), (1, 1, 3, 3), (1, 1), ((1, 1), (1, 1))),
]


@pytest.mark.parametrize("x_shape, w_shape, stride, pads", _TINY)
def test_probing_alone_runs_nothing_and_a_rejected_primitive_is_not_kept(
    x_shape, w_shape, stride, pads
):
    """unsupported() builds the primitives to ask oneDNN which kernel it would use: that is
    no kernel that ran, and a problem left on the XLA forms does not stay cached."""
    before = set(_onednn.implementations())
    config = Config(
        stride=stride,
        dilation=(1,) * len(stride),
        crops=tuple(crop_from_padding(p, 0) for p in pads),
        groups=1,
        channels_last=True,
        flip=False,
        precision=None,
        preferred_element_type=None,
    )
    size = _onednn._library.convt_jax_onednn_cache_size()
    reason = _onednn._probe(config, x_shape, w_shape)
    grown = _onednn._library.convt_jax_onednn_cache_size() - size
    if reason is None:
        assert grown == 3  # forward, dx, dw: kept for their first call
    else:
        assert "reference kernel" in reason or "cannot compute" in reason, reason
        assert grown < 3, reason  # the primitive that would not be used is dropped
    assert set(_onednn.implementations()) == before
