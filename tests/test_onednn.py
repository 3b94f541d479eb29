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


_HALF = [jnp.bfloat16, jnp.float16]
_EPS = {jnp.bfloat16: 2.0**-8, jnp.float16: 2.0**-11}  # half an ulp: one rounding's error


def _rounded(a, dtype) -> np.ndarray:
    return np.asarray(jnp.asarray(a, dtype).astype(jnp.float32))


def _within_one_rounding(got, want, dtype, what):
    """``got`` (half precision) is ``want`` (float32 on the same rounded operands) rounded
    once: within half an ulp of the half-precision dtype, plus the float32 accumulation's
    own error (relative to the largest value)."""
    got = np.asarray(jnp.asarray(got).astype(jnp.float32), np.float64)
    want = np.asarray(want, np.float64)
    bound = _EPS[dtype] * np.abs(want) * 1.01 + 1e-5 * max(1.0, float(np.abs(want).max()))
    err = np.abs(got - want)
    assert (err <= bound).all(), (
        f"{what}: {int((err > bound).sum())} of {err.size} beyond one rounding "
        f"(worst {float((err - bound).max()):.3g} over the bound)"
    )


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("dtype", _HALF, ids=["bfloat16", "float16"])
def test_half_precision_results_are_the_float32_result_rounded_once(dtype, seed):
    """y, dx and dw of random layers (both layouts, groups, 1-3 d) in bfloat16 / float16:
    the float32 result on the same operands, rounded once, whichever kernels ran (oneDNN's
    native half-precision ones where this CPU has them, else the float32 ones)."""
    case = _case(200 + seed)
    x, w, g = (_rounded(a, dtype) for a in _arrays(case, 200 + seed))
    want = _torch(case, x, w, g)  # float32 on the same rounded values
    cl = case["channels_last"]
    kw = {k: case[k] for k in ("stride", "padding", "output_padding", "groups", "dilation")}

    def f(x, w):
        return ct.conv_transpose(x, w, channels_last=cl, **kw)

    move = (lambda a: np.moveaxis(a, 1, -1)) if cl else (lambda a: a)
    back = (lambda a: np.moveaxis(np.asarray(a), -1, 1)) if cl else np.asarray
    y, vjp = jax.vjp(jax.jit(f), jnp.asarray(move(x), dtype), jnp.asarray(w, dtype))
    dx, dw = vjp(jnp.asarray(move(g), dtype))
    for name, a, b in zip(("y", "dx", "dw"), (back(y), back(dx), dw), want, strict=True):
        assert a.dtype == dtype, name
        _within_one_rounding(a, b, dtype, name)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", _HALF, ids=["bfloat16", "float16"])
def test_half_precision_matches_pytorchs_half_precision(dtype, channels_last):
    """Against PyTorch's own bfloat16 / float16 results, for a DCGAN-like and a grouped
    layer: ours is the exact result rounded once, and at least as close to it as PyTorch's.

    Not "within one rounding of PyTorch's": PyTorch's float16 rounds more than once on a
    CPU without AVX512-FP16 (an AMD EPYC with AVX-512 and AVX512-BF16: worst error 0.0074
    against one rounding's 0.0037 on the first layer), while on CPUs with native kernels
    both are one rounding of the float32 sum."""
    tdtype = {jnp.bfloat16: torch.bfloat16, jnp.float16: torch.float16}[dtype]
    r = np.random.default_rng(11)
    for x_shape, w_shape, stride, padding, groups in (
        ((4, 32, 8, 8), (32, 16, 4, 4), 2, 1, 1),
        ((2, 12, 6, 5), (12, 4, 3, 3), 2, 1, 3),
    ):
        x = _rounded(r.standard_normal(x_shape), dtype)
        w = _rounded(r.standard_normal(w_shape) * 0.2, dtype)
        tx, tw = torch.tensor(x, dtype=tdtype), torch.tensor(w, dtype=tdtype)
        if channels_last:
            tx = tx.to(memory_format=torch.channels_last)
        try:
            theirs = torch.nn.functional.conv_transpose2d(tx, tw, None, stride, padding, 0, groups)
        except RuntimeError as e:  # a PyTorch build without this half-precision kernel
            pytest.skip(f"PyTorch has no {tdtype} conv_transpose2d here: {e}")
        theirs = theirs.float().numpy()
        exact = torch.nn.functional.conv_transpose2d(
            torch.tensor(x, dtype=torch.float64),
            torch.tensor(w, dtype=torch.float64),
            None,
            stride,
            padding,
            0,
            groups,
        ).numpy()
        xj = np.moveaxis(x, 1, -1) if channels_last else x
        ours = jax.jit(
            lambda x, w, s=stride, p=padding, g=groups: ct.conv_transpose2d(
                x, w, stride=s, padding=p, groups=g, channels_last=channels_last
            )
        )(jnp.asarray(xj, dtype), jnp.asarray(w, dtype))
        assert ours.dtype == dtype
        ours = np.asarray(ours.astype(jnp.float32))
        if channels_last:
            ours = np.moveaxis(ours, -1, 1)
        _within_one_rounding(ours, exact, dtype, "y")
        # (slack: the float32 sums' own error, which may tip a rounding either way)
        ours_err = float(np.abs(ours - exact).max())
        theirs_err = float(np.abs(theirs - exact).max())
        assert ours_err <= theirs_err + 1e-5 * float(np.abs(exact).max()), (
            f"worst error {ours_err:.3g}, PyTorch's {theirs_err:.3g}"
        )


def test_half_precision_weight_gradient_sums_the_batch_in_float32():
    """1,024 products of ones summed into one weight: in bfloat16 (8 significant bits) a
    running sum would stop at 256; float32 accumulation gives 1,024 exactly."""
    x = jnp.ones((64, 1, 4, 4), jnp.bfloat16)
    w = jnp.ones((1, 1, 1, 1), jnp.bfloat16)

    def loss(w):
        return jnp.sum(ct.conv_transpose2d(x, w).astype(jnp.float32))

    dw = jax.jit(jax.grad(loss))(w)
    assert dw.dtype == jnp.bfloat16 and float(dw.reshape(())) == 1024.0
    y = jax.jit(ct.conv_transpose2d)(
        jnp.ones((1, 1024, 1, 1), jnp.bfloat16), jnp.ones((1024, 1, 1, 1), jnp.bfloat16)
    )
    assert float(y.reshape(())) == 1024.0


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# oneDNN's names for the ISAs with native half-precision instructions, as they appear in
# its implementation names (e.g. "brgconv:avx512_core_amx").
_NATIVE_ISAS = ("avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx", "avx2_vnni_2")

_HALF_CHILD = """
    import json, re
    import jax, jax.numpy as jnp, numpy as np
    import convt_jax as ct
    from convt_jax import _onednn
    dtype = jnp.DTYPE
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 32, 8, 8)), dtype)
    w = jnp.asarray(np.random.default_rng(1).standard_normal((32, 16, 4, 4)), dtype)
    def loss(x, w):
        y = ct.conv_transpose2d(x, w, stride=2, padding=1)
        return jnp.sum(y.astype(jnp.float32) ** 2)
    g = jax.jit(jax.grad(loss, (0, 1)))
    text = g.lower(x, w).as_text()
    calls = [l for l in text.splitlines() if "custom_call @convt_jax_onednn_" in l]
    jax.block_until_ready(g(x, w))
    print(json.dumps(dict(native=_onednn.native_half(dtype), calls=calls,
                          impls=_onednn.implementations())))
"""


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("max_isa", [None, "AVX512_CORE"], ids=["this-cpu", "avx512-core"])
def test_native_half_precision_kernels_run_where_the_cpu_has_them(dtype, max_isa):
    """Where the CPU has native instructions for the dtype (read from /proc/cpuinfo, not
    from oneDNN), the FFI calls take half-precision operands and oneDNN's kernels for a
    native ISA run (float16's weight gradient may stay in float32: oneDNN 3.2 has only its
    reference kernel for it); elsewhere (or with ONEDNN_MAX_CPU_ISA=AVX512_CORE, as an
    AVX-512 CPU without them) the operands are float32 (converted around the float32
    kernels)."""
    flags = _cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags to read")
    if max_isa is not None and "avx512f" not in flags:
        pytest.skip("ONEDNN_MAX_CPU_ISA=AVX512_CORE emulates an AVX-512 CPU: this one is not")
    wanted = {"bfloat16": {"avx512_bf16", "amx_bf16"}, "float16": {"avx512_fp16", "amx_fp16"}}
    native = bool(flags & (wanted[dtype] | {"avx_ne_convert"})) and max_isa is None
    env = {"ONEDNN_MAX_CPU_ISA": max_isa} if max_isa else {}
    got = _child(env, _HALF_CHILD.replace("DTYPE", dtype))
    assert got["native"] == native, got
    assert len(got["calls"]) == 3, got["calls"]
    short = {"bfloat16": "bf16", "float16": "f16"}[dtype]
    for call in got["calls"]:
        operands = call.rsplit(":", 1)[1].split("->")[0]
        half = f"x{short}>" in operands
        assert half != ("xf32>" in operands), call  # both operands in one dtype
        if dtype == "float16" and "weight_grad" in call and native:
            continue  # oneDNN 3.2 has only its reference kernel for it: float32 is right
        assert half == native, call
    ran_native = [i for i in got["impls"] if any(isa in i for isa in _NATIVE_ISAS)]
    if native:
        assert ran_native, got["impls"]
    else:
        assert not ran_native, got["impls"]


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
    """The JSON the child prints last, with its standard error under ``"stderr"``."""
    full = {**os.environ, **env}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "stderr": proc.stderr}


_CHILD = """
    import json, warnings
    warnings.simplefilter("always")
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
    "env, reason, warns",
    [
        ({"CONVT_JAX_ONEDNN": "0"}, "switched off by CONVT_JAX_ONEDNN=0", False),
        ({"CXX": "/nonexistent/c++", "PATH": "/nonexistent"}, "no C++ compiler", True),
        ({"CONVT_JAX_ONEDNN_ROOT": "/nonexistent"}, "no include/oneapi/dnnl/dnnl.hpp", True),
    ],
    ids=["switch", "no-compiler", "no-onednn"],
)
def test_without_the_backend_the_package_runs_on_xla_and_says_why(env, reason, warns, tmp_path):
    """The extra is installed here: where it cannot be used, one BackendWarning says why
    and how to fix or silence it; switched off on purpose, nothing is said."""
    env = {**env, "CONVT_JAX_CACHE_DIR": str(tmp_path)}  # nothing cached: a build is needed
    got = _child(env, _CHILD)
    assert got["backend"] == "xla" and reason in got["reason"], got
    assert not got["ffi"]
    assert got["stderr"].count("BackendWarning") == int(warns), got["stderr"]
    if warns:
        assert reason in got["stderr"] and "CONVT_JAX_ONEDNN=0" in got["stderr"]
    want = _child({}, _CHILD)
    assert want["backend"] == "onednn" and want["ffi"]
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-6)


def test_no_warning_where_the_extra_is_not_installed(tmp_path):
    """Without the onednn extra (here: its packages reported absent) the XLA forms are
    what the user asked for: no warning, only backend_info's reason."""
    code = """
        import json, warnings
        import convt_jax as ct
        from convt_jax import _onednn
        _onednn._extra_installed = lambda: False
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            info = ct.backend_info()
        print(json.dumps(dict(backend=info.backend, reason=info.reason,
                              warned=[str(w.category.__name__) for w in caught])))
    """
    env = {"CXX": "/nonexistent/c++", "PATH": "/nonexistent", "CONVT_JAX_CACHE_DIR": str(tmp_path)}
    got = _child(env, code)
    assert got["backend"] == "xla" and "no C++ compiler" in got["reason"]
    assert got["warned"] == []


def test_the_warning_is_a_category_users_can_filter(tmp_path):
    code = """
        import json, warnings
        import convt_jax as ct
        warnings.filterwarnings("error")  # any warning would fail the child...
        warnings.filterwarnings("ignore", category=ct.BackendWarning)  # ...but this one
        info = ct.backend_info()
        print(json.dumps(dict(backend=info.backend,
                              sub=issubclass(ct.BackendWarning, RuntimeWarning))))
    """
    env = {"CXX": "/nonexistent/c++", "PATH": "/nonexistent", "CONVT_JAX_CACHE_DIR": str(tmp_path)}
    got = _child(env, code)
    assert got["backend"] == "xla" and got["sub"]
    assert "BackendWarning" not in got["stderr"]


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


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_half_precision_sums_over_few_channels_run_on_the_float32_kernels(dtype):
    """A primitive that sums over fewer than HALF_MIN_CHANNELS channels per group (the
    input gradient of a layer with 3 output channels) runs converted around the float32
    kernel; the forward of the same layer, summing over 64, natively where the CPU can."""
    config = Config(
        stride=(2, 2),
        dilation=(1, 1),
        crops=((1, 1), (1, 1)),
        groups=1,
        channels_last=False,
        flip=False,
        precision=None,
        preferred_element_type=None,
    )
    x_shape, w_shape = (2, 64, 8, 8), (64, 3, 4, 4)
    assert _onednn.compute_dtype(config, x_shape, w_shape, dtype, "input_grad") == np.float32
    if _onednn.native_half(dtype):
        assert _onednn.compute_dtype(config, x_shape, w_shape, dtype, "forward") == dtype
    x = jnp.asarray(np.random.default_rng(0).standard_normal(x_shape), dtype)
    w = jnp.asarray(np.random.default_rng(1).standard_normal(w_shape), dtype)

    def loss(x, w):
        y = ct.conv_transpose2d(x, w, stride=2, padding=1)
        return jnp.sum(y.astype(jnp.float32) ** 2)

    text = jax.jit(jax.grad(loss, (0, 1))).lower(x, w).as_text()
    calls = text.splitlines()
    (dx_call,) = [c for c in calls if "custom_call @convt_jax_onednn_input_grad" in c]
    assert "xf32>" in dx_call.rsplit(":", 1)[1], dx_call
