"""Sharded transposed convolutions on 8 simulated CPU devices (run by tests/test_sharding.py).

Not collected by a plain ``pytest`` run (no ``test_`` prefix): JAX fixes its
device count when it initialises, so ``tests/test_sharding.py`` runs this
module in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``.  To run it directly:

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m pytest tests/sharded_cases.py

Every check compares the sharded computation (forward ``y`` and the
gradients ``dx``, ``dw`` from one ``jax.vjp``, compiled once) with the same
computation on one device, in float64, and reads the compiled HLO for the
collectives the partitioner chose:

* data parallel: batch over a mesh axis, weight replicated; ``dw`` is
  all-reduced and ``y`` stays batch-sharded;
* channel (model) parallel: weight over its output channels (its input
  channels, whole groups, with ``groups``), on a 2 x 4 (data x model) mesh;
  the ``dilated`` and ``depthwise`` lowerings never gather;
* spatial parallel: the first spatial axis over the devices; every lowering
  exchanges halos (collective-permute) and never all-gathers;
* in every split each device runs the one-device program's forms (oneDNN's
  kernels for ``"auto"`` on this CPU, convolutions for ``"dilated"``), on Auto
  and on Explicit axes, for the transposed and the regular convolution; the
  programs exported for ``cuda`` and ``tpu`` (docs/scaling.md, "Per device");
* the regular convolution with groups and each padding mode under a batch, row or
  weight split on 4 of the devices, Auto and Explicit axes;
* an XLA bug kept as an expected failure: a spatial split with an unused
  mesh axis all-reduces the weight gradient over the whole mesh;
* explicit mesh axes (``jax.make_mesh``'s default: shardings in the types),
  a full optax training step of ``ct.nn`` layers, and
  examples/shard_map_example.py.

On a JAX older than 0.7 the explicit-axes cases check the clear
``NotImplementedError`` instead (and are skipped where the JAX has no
Explicit axes at all, before 0.5); the shard_map example needs ``jax.shard_map``
(0.6).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import convt_jax as ct
from convt_jax._compat import HAS_EXPLICIT_AXES, AxisType

pytestmark = pytest.mark.skipif(
    jax.device_count() < 8,
    reason="needs 8 devices: XLA_FLAGS=--xla_force_host_platform_device_count=8 "
    "(tests/test_sharding.py sets it)",
)

TOL = 1e-10
METHODS = ("auto", "dilated", "subpixel", "matmul", "depthwise")
DIMS = (1, 2, 3)
# (kernel, stride, padding, output_padding) per number of spatial axes: output = 2 x input
# (the DCGAN / U-Net up-sampling layers), so every shard of the input owns a shard of the
# output, and neighbours need a halo of input rows.  3-D uses the smaller kernel to keep
# compile times low.
GEOMETRY = {1: (4, 2, 1, 0), 2: (4, 2, 1, 0), 3: (3, 2, 1, 1)}
LENGTH = {1: 6, 2: 4, 3: 2}  # per spatial axis (spatial tests: 16, 16, 8)
ROOT = pathlib.Path(__file__).resolve().parents[1]


# Which JAX this is: Explicit mesh axes exist from jax 0.5 (AxisType), convt_jax runs on
# them from 0.7 (jax.sharding.auto_axes) and raises a clear error in between.
needs_axis_types = pytest.mark.skipif(
    AxisType is None, reason="this JAX has no Explicit mesh axes (jax.sharding.AxisType)"
)


def mesh(shape, names, explicit=False):
    if AxisType is None:  # every axis is Auto
        return jax.make_mesh(shape, names)
    kind = AxisType.Explicit if explicit else AxisType.Auto
    return jax.make_mesh(shape, names, axis_types=(kind,) * len(shape))


def explicit_axes_unsupported():
    """On a JAX that has Explicit axes but not what convt_jax needs for them: the clear
    error, asserted by the caller's ``with``."""
    return pytest.raises(NotImplementedError, match=r"Explicit mesh axes .* needs jax >= 0\.7")


# Where the oneDNN backend is in use, "auto" runs its kernels on this CPU (float32).
ONEDNN = ct.backend_info().backend == "onednn"
# The calls that mark a program's forms: oneDNN's kernels, XLA's convolutions.
MARKERS = ("convt_jax_onednn_", "convolution(")


def one_device_hlo(f, args) -> str:
    """The compiled program of ``f`` on one device."""
    dev = jax.devices()[0]
    return jax.jit(f).lower(*jax.device_put(args, dev)).compile().as_text()


def assert_one_device_forms(hlo: str, one_device: str) -> None:
    """Each device runs the one-device program's forms (docs/scaling.md): as many oneDNN
    calls and XLA convolutions as the program for one device, not the partitioner's
    convolution-free stand-ins."""
    for marker in MARKERS:
        assert hlo.count(marker) >= one_device.count(marker), (
            marker,
            hlo.count(marker),
            one_device.count(marker),
        )


def collectives(hlo: str) -> dict[str, list[str]]:
    """Result types of every collective in a compiled HLO text, by kind."""
    found: dict[str, list[str]] = {}
    pat = re.compile(
        r"= (\S+) (all-reduce|all-gather|collective-permute|all-to-all|"
        r"reduce-scatter)(?:-start)?\("
    )
    for line in hlo.splitlines():
        m = pat.search(line)
        if m:
            found.setdefault(m.group(2), []).append(m.group(1))
    return found


def shape_of(hlo_type: str) -> tuple[int, ...]:
    """``f64[4,3,4]{2,1,0}`` -> ``(4, 3, 4)``; tuple results (async pairs) give their last."""
    dims = re.findall(r"\[([\d,]*)\]", hlo_type)[-1]
    return tuple(int(d) for d in dims.split(",") if d)


def reduced_sizes(hlo: str) -> list[int]:
    return [int(np.prod(shape_of(t))) for t in collectives(hlo).get("all-reduce", [])]


def conv(nd, method, groups):
    k, s, p, op = GEOMETRY[nd]
    return lambda x, w: ct.conv_transpose(x, w, None, s, p, op, groups=groups, method=method)


def fwd_bwd(nd, method, groups):
    """``(x, w, gy) -> (y, dx, dw)``: the forward and both cotangents, one program."""
    f = conv(nd, method, groups)

    def run(x, w, gy):
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(gy))

    return run


def problem(nd, n, c_in, c_out, groups, length=None, seed=0):
    """float64 arrays ``x, w, gy`` for one case."""
    k, s, p, op = GEOMETRY[nd]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in) + (length or LENGTH[nd],) * nd)
    w = rng.standard_normal((c_in, c_out // groups) + (k,) * nd)
    out = ct.conv_transpose_output_shape(x.shape, w.shape, s, p, op, groups=groups)
    assert out[2:] == tuple(2 * v for v in x.shape[2:])
    return x, w, rng.standard_normal(out)


def run_sharded(f, args, shardings):
    """Compile ``f`` for sharded ``args``; return (results, compiled HLO text, compiled)."""
    placed = [jax.device_put(a, s) for a, s in zip(args, shardings, strict=True)]
    compiled = jax.jit(f).lower(*placed).compile()
    return compiled(*placed), compiled.as_text(), compiled


_REFERENCE: dict = {}


def reference(nd, groups, args):
    """The same ``(y, dx, dw)`` on one device, unsharded, by the core lowering.

    (Every lowering equals it to round-off: tests/test_methods.py.)
    """
    key = (nd, groups, tuple(a.shape for a in args), tuple(float(a.flat[0]) for a in args))
    if key not in _REFERENCE:
        dev = jax.devices()[0]
        _REFERENCE[key] = jax.jit(fwd_bwd(nd, "dilated", groups))(
            *[jax.device_put(a, dev) for a in args]
        )
    return _REFERENCE[key]


def assert_close(got, want, tol=TOL):
    for g, w_ in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w_), rtol=tol, atol=tol)


def assert_close_relative(got, want, tol=1e-5):
    """float32: each result within ``tol`` of the largest value of one device's."""
    for g, w_ in zip(got, want, strict=True):
        g, w_ = np.asarray(g), np.asarray(w_)
        assert np.abs(g - w_).max() <= tol * np.abs(w_).max(), np.abs(g - w_).max()


def groups_for(method, c_in):
    return c_in if method == "depthwise" else 1


# --- data parallel ----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nd", DIMS)
def test_data_parallel(nd, method):
    """Batch over 8 devices, weight replicated."""
    m = mesh((8,), ("data",))
    groups = groups_for(method, 4)
    args = problem(nd, n=8, c_in=4, c_out=8, groups=groups)
    batch, rep = NamedSharding(m, P("data")), NamedSharding(m, P())
    (y, dx, dw), hlo, compiled = run_sharded(fwd_bwd(nd, method, groups), args, (batch, rep, batch))
    assert_close((y, dx, dw), reference(nd, groups, args))
    # dw sums over the batch: every device's partial weight gradient is all-reduced
    # (in whatever shape the backward form computes it: the phase form's is padded).
    assert max(reduced_sizes(hlo), default=0) >= args[1].size, collectives(hlo)
    assert "all-gather" not in collectives(hlo), collectives(hlo)
    assert_one_device_forms(hlo, one_device_hlo(fwd_bwd(nd, method, groups), args))
    # y and dx stay batch-sharded; dw is replicated.
    y_s, dx_s, dw_s = compiled.output_shardings
    assert y_s.is_equivalent_to(batch, y.ndim), y_s
    assert dx_s.is_equivalent_to(batch, dx.ndim), dx_s
    assert dw_s.is_fully_replicated, dw_s
    assert y.sharding.is_equivalent_to(batch, y.ndim)


# --- channel (model) parallel -----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nd", DIMS)
def test_channel_parallel(nd, method):
    """2 x 4 mesh: batch over "data"; the weight's output channels over "model" (for
    depthwise, ``groups == C_in``, its input channels: each device owns whole groups)."""
    m = mesh((2, 4), ("data", "model"))
    groups = groups_for(method, 4)
    args = problem(nd, n=2, c_in=4, c_out=8, groups=groups)
    s = lambda *spec: NamedSharding(m, P(*spec))  # noqa: E731
    w_s = s(None, "model") if groups == 1 else s("model")
    (y, dx, dw), hlo, compiled = run_sharded(
        fwd_bwd(nd, method, groups), args, (s("data"), w_s, s("data", "model"))
    )
    assert_close((y, dx, dw), reference(nd, groups, args))


@pytest.mark.parametrize("nd, per_group", [(1, 2), (2, 1), (2, 2), (3, 1)])
def test_channel_parallel_grouped(nd, per_group):
    """groups = C_in / per_group, input channels (whole groups) over "model", x's too."""
    m = mesh((2, 4), ("data", "model"))
    groups = 8 // per_group
    args = problem(nd, n=2, c_in=8, c_out=8, groups=groups)
    s = lambda *spec: NamedSharding(m, P(*spec))  # noqa: E731
    (y, dx, dw), hlo, compiled = run_sharded(
        fwd_bwd(nd, "dilated", groups), args, (s("data", "model"), s("model"), s("data", "model"))
    )
    assert_close((y, dx, dw), reference(nd, groups, args))


# --- spatial parallel -------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nd", DIMS)
def test_spatial_parallel(nd, method):
    """The first spatial axis over 8 devices, weight replicated."""
    m = mesh((8,), ("space",))
    groups = groups_for(method, 4)
    args = problem(nd, n=2, c_in=4, c_out=4, groups=groups, length=(16, 16, 8)[nd - 1])
    sp = NamedSharding(m, P(None, None, "space"))
    (y, dx, dw), hlo, compiled = run_sharded(
        fwd_bwd(nd, method, groups), args, (sp, NamedSharding(m, P()), sp)
    )
    assert_close((y, dx, dw), reference(nd, groups, args))
    # Each device computes its own rows from a halo of its neighbours' (the partitioning
    # rule, docs/scaling.md): collective-permutes, nothing gathered, the one-device forms.
    found = collectives(hlo)
    assert "collective-permute" in found and "all-gather" not in found, found
    assert_one_device_forms(hlo, one_device_hlo(fwd_bwd(nd, method, groups), args))


@pytest.mark.parametrize("method", ["dilated", "auto"])
def test_spatial_and_batch_parallel_2d_mesh(method):
    """Batch over "data" and rows over "model" of a 2 x 4 mesh."""
    m = mesh((2, 4), ("data", "model"))
    args = problem(2, n=2, c_in=4, c_out=4, groups=1, length=8)
    s = NamedSharding(m, P("data", None, "model"))
    out, hlo, _ = run_sharded(fwd_bwd(2, method, 1), args, (s, NamedSharding(m, P()), s))
    assert_close(out, reference(2, 1, args))


def test_spatial_parallel_with_an_unused_mesh_axis():
    """Upstream bug 1 below multiplies a convolution's dw by the unused axis's size;
    convt_jax hands the partitioner no convolution, so every method is right."""
    m = mesh((2, 4), ("data", "model"))
    args = problem(2, n=2, c_in=4, c_out=4, groups=1, length=8)
    s = NamedSharding(m, P(None, None, "model"))
    for method in ("dilated", "auto"):
        out, _, _ = run_sharded(fwd_bwd(2, method, 1), args, (s, NamedSharding(m, P()), s))
        assert_close(out, reference(2, 1, args))


# --- the upstream bugs (docs/scaling.md, "Known, upstream"), in plain JAX ------------------
#
# Strict expected failures: each asserts the right result, fails while XLA has the bug,
# and turns into a reported failure (XPASS, strict) the day a jaxlib fixes it.

_UPSTREAM = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
jax.config.update("jax_enable_x64", True)
mesh = jax.make_mesh((4, 2), ("a", "b"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
rng = np.random.default_rng(0)
"""


def _upstream_dw(conv, x_shape, k_shape, spec):
    """A plain convolution's weight gradient: (sharded over ``spec`` on a 4 x 2 mesh,
    one device)."""
    m = mesh((4, 2), ("a", "b"))
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal(x_shape), rng.standard_normal(k_shape)
    gy = rng.standard_normal(conv(x, k).shape)
    dk = lambda x, k, gy: jax.vjp(conv, x, k)[1](gy)[1]  # noqa: E731
    s = NamedSharding(m, spec)
    return jax.jit(dk)(jax.device_put(x, s), k, jax.device_put(gy, s)), dk(x, k, gy)


@pytest.mark.xfail(
    strict=True,
    reason="XLA bug: a spatial split with an unused mesh axis "
    "all-reduces a convolution's weight gradient over the whole mesh",
)
def test_upstream_1_unused_axis_multiplies_dw():
    conv = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (1,), ((1, 1),), dimension_numbers=("NWC", "WIO", "NWC")
    )
    got, want = _upstream_dw(conv, (8, 8, 4), (3, 4, 4), P(None, "a"))
    np.testing.assert_allclose(np.asarray(got / want), 1.0, rtol=1e-9)


@pytest.mark.xfail(
    strict=True,
    reason="XLA bug: the batch-grouped convolution of a grouped "
    "convolution's weight gradient is mis-partitioned under a batch split",
)
def test_upstream_2_grouped_dw_under_batch_split():
    conv = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
        x, k, (1, 1), ((1, 1), (1, 1)), feature_group_count=4
    )
    got, want = _upstream_dw(conv, (8, 8, 6, 6), (8, 2, 3, 3), P("a"))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-9, atol=1e-9)


@pytest.mark.xfail(
    strict=True,
    reason="XLA bug: the partitioner aborts the process on an "
    "lhs- and rhs-dilated convolution split along its spatial axis",
)
def test_upstream_3_dilated_spatial_split_aborts():
    code = (
        _UPSTREAM
        + """
conv = lambda x, k: jax.lax.conv_general_dilated(
    x, k, (1,), ((2, 2),), lhs_dilation=(2,), rhs_dilation=(2,))
x, k = rng.standard_normal((8, 8, 4)), rng.standard_normal((8, 8, 4))
got = jax.jit(conv)(jax.device_put(x, NamedSharding(mesh, P(None, None, "a"))), k)
np.testing.assert_allclose(np.asarray(got), np.asarray(conv(x, k)), rtol=1e-9, atol=1e-9)
"""
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_spatial_parallel_channels_last_dilated():
    m = mesh((8,), ("space",))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16, 16, 4))
    w = rng.standard_normal((4, 3, 3, 3))
    f = lambda x, w: ct.conv_transpose2d(  # noqa: E731
        x, w, None, 2, 1, 1, channels_last=True, method="dilated"
    )
    gy = rng.standard_normal(f(x, w).shape)

    def run(x, w, gy):
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(gy))

    sp = NamedSharding(m, P(None, "space"))
    out, hlo, _ = run_sharded(run, (x, w, gy), (sp, NamedSharding(m, P()), sp))
    assert_close(out, jax.jit(run)(x, w, gy))
    assert "all-gather" not in collectives(hlo), collectives(hlo)
    assert_one_device_forms(hlo, one_device_hlo(run, (x, w, gy)))


# --- explicit mesh axes (sharding in types) ---------------------------------------------


@needs_axis_types
@pytest.mark.parametrize("method", METHODS)
def test_explicit_axes_data_parallel(method):
    """``jax.make_mesh``'s default Explicit axes: the output's type is batch-sharded."""
    m = mesh((8,), ("data",), explicit=True)
    groups = groups_for(method, 4)
    args = problem(2, n=8, c_in=4, c_out=8, groups=groups)
    batch = NamedSharding(m, P("data"))
    if not HAS_EXPLICIT_AXES:
        with explicit_axes_unsupported():
            run_sharded(fwd_bwd(2, method, groups), args, (batch, NamedSharding(m, P()), batch))
        return
    (y, dx, dw), hlo, _ = run_sharded(
        fwd_bwd(2, method, groups), args, (batch, NamedSharding(m, P()), batch)
    )
    assert_close((y, dx, dw), reference(2, groups, args))
    assert jax.typeof(y).sharding.spec[0] == "data"
    assert jax.typeof(dx).sharding.spec[0] == "data"
    assert all(e is None for e in jax.typeof(dw).sharding.spec)
    assert max(reduced_sizes(hlo), default=0) >= args[1].size, collectives(hlo)


@needs_axis_types
def test_explicit_axes_channel_and_spatial():
    m = mesh((2, 4), ("data", "model"), explicit=True)
    args = problem(2, n=2, c_in=4, c_out=8, groups=1, length=8)
    f = fwd_bwd(2, "dilated", 1)
    s = lambda *spec: NamedSharding(m, P(*spec))  # noqa: E731
    if not HAS_EXPLICIT_AXES:
        with explicit_axes_unsupported():
            run_sharded(f, args, (s("data"), s(None, "model"), s("data", "model")))
        return
    (y, dx, dw), _, _ = run_sharded(f, args, (s("data"), s(None, "model"), s("data", "model")))
    assert_close((y, dx, dw), reference(2, 1, args))
    assert jax.typeof(y).sharding.spec[:2] == ("data", "model")
    assert jax.typeof(dw).sharding.spec[1] == "model"
    # Batch and rows: the split axes stay split in the output's type.
    (y, dx, dw), _, _ = run_sharded(
        f, args, (s("data", None, "model"), s(), s("data", None, "model"))
    )
    assert_close((y, dx, dw), reference(2, 1, args))
    assert jax.typeof(y).sharding.spec[:3] == ("data", None, "model")


# --- per device: every split, on Auto and on Explicit axes ------------------------------
#
# On a 2 x 4 ("data", "model") mesh, a 2-D k4 s2 p1 layer: (groups, x spec, w spec, gy spec).
SPLITS = {
    "batch (8 ways)": (1, P(("data", "model")), P(), P(("data", "model"))),
    "batch + output channels": (1, P("data"), P(None, "model"), P("data", "model")),
    "batch + rows": (1, P("data", None, "model"), P(), P("data", None, "model")),
    "whole groups": (4, P("data", "model"), P("model"), P("data", "model")),
    "input channels": (1, P(None, "model"), P("model"), P()),
}


@pytest.mark.parametrize("method", ["auto", "dilated"])
@pytest.mark.parametrize("explicit", [False, pytest.param(True, marks=needs_axis_types)])
@pytest.mark.parametrize("split", list(SPLITS))
def test_every_split_runs_the_one_device_forms(split, explicit, method):
    """y, dx, dw of a split layer equal one device's, each device runs the one-device
    forms, and nothing is gathered: the split runs where it is."""
    if explicit and not HAS_EXPLICIT_AXES:
        pytest.skip("convt_jax on Explicit axes needs jax >= 0.7")
    groups, xs, ws, gs = SPLITS[split]
    m = mesh((2, 4), ("data", "model"), explicit=explicit)
    # float32: the dtype oneDNN's kernels take.
    args = [a.astype(np.float32) for a in problem(2, n=8, c_in=8, c_out=8, groups=groups, length=8)]
    f = fwd_bwd(2, method, groups)
    specs = tuple(NamedSharding(m, s) for s in (xs, ws, gs))
    out, hlo, _ = run_sharded(f, args, specs)
    dev = jax.devices()[0]
    assert_close_relative(out, jax.jit(f)(*jax.device_put(args, dev)))
    one_device = one_device_hlo(f, args)
    assert_one_device_forms(hlo, one_device)
    if method == "auto" and ONEDNN:
        assert one_device.count("convt_jax_onednn_") == 3  # so the check above means it
    assert "all-gather" not in collectives(hlo), collectives(hlo)


@pytest.mark.parametrize("split", ["batch (8 ways)", "batch + rows", "input channels"])
def test_gspmd_partitioner_takes_the_rule_too(split):
    """With JAX's older partitioner (GSPMD, ``jax_use_shardy_partitioner=False``) the
    rule's sharding inference and partition callback run the same per-device program."""
    if not hasattr(jax.config, "jax_use_shardy_partitioner"):
        pytest.skip("this JAX has no jax_use_shardy_partitioner switch")
    groups, xs, ws, gs = SPLITS[split]
    m = mesh((2, 4), ("data", "model"))
    args = [a.astype(np.float32) for a in problem(2, n=8, c_in=8, c_out=8, groups=groups, length=8)]
    f = fwd_bwd(2, "auto", groups)
    before = jax.config.jax_use_shardy_partitioner
    jax.config.update("jax_use_shardy_partitioner", False)
    try:
        out, hlo, _ = run_sharded(f, args, tuple(NamedSharding(m, s) for s in (xs, ws, gs)))
    finally:
        jax.config.update("jax_use_shardy_partitioner", before)
    assert_close_relative(out, jax.jit(f)(*jax.device_put(args, jax.devices()[0])))
    assert_one_device_forms(hlo, one_device_hlo(f, args))
    assert "all-gather" not in collectives(hlo), collectives(hlo)


def _conv_fwd_bwd(method):
    def run(x, w, gy):
        y, vjp = jax.vjp(lambda x, w: ct.conv2d(x, w, None, 2, 1, method=method), x, w)
        return (y, *vjp(gy))

    return run


@pytest.mark.parametrize("method", ["auto", "dilated"])
@pytest.mark.parametrize("explicit", [False, pytest.param(True, marks=needs_axis_types)])
@pytest.mark.parametrize("split", ["batch", "output channels"])
def test_regular_convolution_splits_run_the_one_device_forms(split, explicit, method):
    """The regular convolution (the transposed one's input-gradient map) likewise."""
    if explicit and not HAS_EXPLICIT_AXES:
        pytest.skip("convt_jax on Explicit axes needs jax >= 0.7")
    m = mesh((2, 4), ("data", "model"), explicit=explicit)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 8, 16, 16), dtype=np.float32)
    w = rng.standard_normal((8, 8, 4, 4), dtype=np.float32)
    gy = rng.standard_normal((8, 8, 8, 8), dtype=np.float32)
    if split == "batch":
        specs = (P(("data", "model")), P(), P(("data", "model")))
    else:  # the convolution's output channels: the weight's axis 0
        specs = (P("data"), P("model"), P("data", "model"))
    f = _conv_fwd_bwd(method)
    out, hlo, _ = run_sharded(f, (x, w, gy), tuple(NamedSharding(m, s) for s in specs))
    want = jax.jit(f)(*jax.device_put((x, w, gy), jax.devices()[0]))
    assert_close_relative(out, want)
    one_device = one_device_hlo(f, (x, w, gy))
    assert_one_device_forms(hlo, one_device)
    if method == "auto" and ONEDNN:
        assert one_device.count("convt_jax_onednn_") == 3
    assert "all-gather" not in collectives(hlo), collectives(hlo)


# The regular convolution with a padding mode (its own padding before the convolution) under
# a batch, a row or a weight split, on Auto and Explicit axes of 4 devices: forward and
# gradients as on one device.  (Moved here from tests/test_conv.py, which ran it in a
# 4-device child of its own.)
REGULAR_PADDING_MODES = [
    dict(stride=2, padding=1, groups=2),
    dict(stride=1, padding=1, groups=2, padding_mode="reflect"),
    dict(stride=2, padding=(2, 1), groups=2, padding_mode="circular"),
]


@pytest.mark.parametrize("explicit", [False, pytest.param(True, marks=needs_axis_types)])
@pytest.mark.parametrize(
    "kw", REGULAR_PADDING_MODES, ids=lambda kw: kw.get("padding_mode", "zeros")
)
def test_regular_convolution_padding_modes_split_like_one_device(kw, explicit):
    """Batch, row and weight splits of ct.conv2d with groups and a padding mode, on 4 of the
    devices: forward and gradients as on one device."""
    if not hasattr(jax, "set_mesh"):
        pytest.skip("this JAX has no jax.set_mesh")
    if explicit and not HAS_EXPLICIT_AXES:
        pytest.skip("convt_jax on Explicit axes needs jax >= 0.7")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 4, 8, 8))
    w = rng.standard_normal((8, 2, 3, 3))

    def loss(x, w):
        return jnp.sum(jnp.sin(ct.conv2d(x, w, **kw)))

    want, gwant = ct.conv2d(x, w, **kw), jax.grad(loss, argnums=(0, 1))(x, w)  # one device
    kind = AxisType.Explicit if explicit else AxisType.Auto
    m = jax.make_mesh((4,), ("b",), axis_types=(kind,), devices=jax.devices()[:4])
    for xspec, wspec in [(P("b"), P()), (P(None, None, "b"), P()), (P(), P("b"))]:
        xs = jax.device_put(x, NamedSharding(m, xspec))
        ws = jax.device_put(w, NamedSharding(m, wspec))
        with jax.set_mesh(m):
            y = jax.jit(lambda x, w: ct.conv2d(x, w, **kw))(xs, ws)
            g = jax.jit(jax.grad(loss, argnums=(0, 1)))(xs, ws)
        case = (xspec, wspec)
        np.testing.assert_allclose(np.asarray(y), np.asarray(want), 1e-12, 1e-12, err_msg=str(case))
        for a, b in zip(g, gwant, strict=True):
            np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), 1e-12, 1e-12, err_msg=str(case)
            )


def test_higher_order_derivatives_and_vmap_keep_the_split():
    """grad of grad, jvp and vmap over a batch split (Auto axes) equal one device's."""
    m = mesh((8,), ("data",))
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((8, 4, 6, 6)), rng.standard_normal((3, 4, 4, 4, 4))
    f = lambda x, w: ct.conv_transpose2d(x, w, None, 2, 1)  # noqa: E731

    def checks(x, w):
        loss = lambda w0: jnp.sum(jnp.tanh(f(x, w0)) ** 2)  # noqa: E731
        hvp = jax.jvp(jax.grad(loss), (w[0],), (w[1],))[1]
        ys = jax.vmap(lambda wi: f(x, wi))(w)
        tangent = jax.jvp(lambda x: f(x, w[2]), (x,), (x[::-1],))[1]
        return hvp, ys, tangent

    batch = NamedSharding(m, P("data"))
    got = jax.jit(checks)(jax.device_put(x, batch), jax.device_put(w, NamedSharding(m, P())))
    want = jax.jit(checks)(*jax.device_put((x, w), jax.devices()[0]))
    assert_close(got, want)


@pytest.mark.parametrize("explicit", [False, pytest.param(True, marks=needs_axis_types)])
def test_sharded_exports_for_accelerators(explicit):
    """``jax.export`` of a data-parallel step for ``cuda`` and ``tpu`` works; on Explicit
    axes (``shard_map`` per device) it keeps XLA's convolutions; on Auto axes (no
    partitioning callback can be serialized) it has the convolution-free forms."""
    from jax import export

    if explicit and not HAS_EXPLICIT_AXES:
        pytest.skip("convt_jax on Explicit axes needs jax >= 0.7")
    m = mesh((8,), ("data",), explicit=explicit)
    x, w, gy = problem(2, n=8, c_in=4, c_out=8, groups=1)
    f = fwd_bwd(2, "auto", 1)
    placed = (
        jax.device_put(x, NamedSharding(m, P("data"))),
        jax.device_put(w, NamedSharding(m, P())),
        jax.device_put(gy, NamedSharding(m, P("data"))),
    )
    for platform in ("cuda", "tpu"):
        text = export.export(jax.jit(f), platforms=[platform])(*placed).mlir_module()
        assert "CustomSPMDPartitioning" not in text and "convt_jax_onednn" not in text
        convolutions = text.count("stablehlo.convolution")
        assert convolutions >= 3 if explicit else convolutions == 0, (platform, convolutions)


# --- training step ----------------------------------------------------------------------


def _model(key):
    k1, k2 = jax.random.split(key)
    return {
        "up1": ct.nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1, dtype=jnp.float64, key=k1),
        "up2": ct.nn.ConvTranspose2d(8, 2, 3, stride=1, padding=1, dtype=jnp.float64, key=k2),
    }


def _train_step(optimizer, optax):
    def loss_fn(params, x, target):
        h = jax.nn.gelu(params["up1"](x))
        return jnp.mean((params["up2"](h) - target) ** 2)

    def step(params, opt_state, x, target):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, target)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _train(step, state, steps=2):
    params, opt_state, x, target = state
    compiled = jax.jit(step)
    losses = []
    for _ in range(steps):
        params, opt_state, loss = compiled(params, opt_state, x, target)
        losses.append(float(loss))
    return params, losses


_SINGLE_DEVICE: dict = {}


@pytest.mark.parametrize(
    "layout", ["data", "data+model", pytest.param("explicit", marks=needs_axis_types)]
)
def test_training_step(layout):
    """Two SGD-with-momentum steps of a two-layer ``ct.nn`` decoder under ``jax.jit``:
    batch split over "data" (weights replicated; on the 2 x 4 mesh the first layer's
    output channels also split over "model"; "explicit": Explicit mesh axes) equals
    the same steps on one device.  (SGD, not Adam: Adam's update hardly depends on the
    gradient's scale, so it would hide a wrongly reduced gradient.)"""
    optax = pytest.importorskip("optax")
    params = _model(jax.random.key(0))
    optimizer = optax.sgd(0.05, momentum=0.9)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 8, 4, 4))
    target = rng.standard_normal((8, 2, 8, 8))
    step = _train_step(optimizer, optax)
    if "want" not in _SINGLE_DEVICE:
        _SINGLE_DEVICE["want"] = _train(
            step, jax.device_put((params, opt_state, x, target), jax.devices()[0])
        )
    want_params, want_losses = _SINGLE_DEVICE["want"]

    if layout == "data+model":
        m = mesh((2, 4), ("data", "model"))
    else:
        m = mesh((8,), ("data",), explicit=layout == "explicit")

    def place(path, leaf):
        if layout == "data+model" and leaf.ndim == 4 and "up1" in jax.tree_util.keystr(path):
            return jax.device_put(leaf, NamedSharding(m, P(None, "model")))
        return jax.device_put(leaf, NamedSharding(m, P()))

    state = (
        jax.tree_util.tree_map_with_path(place, params),
        jax.tree_util.tree_map_with_path(place, opt_state),
        jax.device_put(x, NamedSharding(m, P("data"))),
        jax.device_put(target, NamedSharding(m, P("data"))),
    )
    if layout == "explicit" and not HAS_EXPLICIT_AXES:
        with explicit_axes_unsupported():
            _train(step, state)
        return
    got_params, got_losses = _train(step, state)
    np.testing.assert_allclose(got_losses, want_losses, rtol=TOL)
    assert got_losses[1] < got_losses[0]
    for a, b in zip(jax.tree.leaves(got_params), jax.tree.leaves(want_params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL)
    assert type(got_params["up1"]) is ct.nn.ConvTranspose2d
    if layout == "data+model":
        assert got_params["up1"].weight.sharding.spec == P(None, "model")


# --- the shard_map example --------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(jax, "shard_map"), reason="this JAX has no jax.shard_map (public from jax 0.6)"
)
def test_shard_map_example():
    path = ROOT / "examples" / "shard_map_example.py"
    spec = importlib.util.spec_from_file_location("shard_map_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    errors = module.main(verbose=False)
    assert errors and all(err < TOL for err in errors.values()), errors
