"""Robustness: zero-size inputs, extreme values and settings, setting spellings and the jit
cache, traced settings, determinism, and the memory of the largest benchmark layer.

The argument-space fuzz against PyTorch is tests/test_fuzz.py; the table of
bad arguments (one row per rule) is tests/test_errors.py.  This
module pins down the deterministic edge cases the issue lists.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference import FUNCTIONS, TORCH_FUNCTIONS, config_of

import convt_jax as ct
from convt_jax import _methods, _op

TORCH_FN, NAMED_FN = TORCH_FUNCTIONS, FUNCTIONS
METHODS = ("auto", "dilated", "subpixel", "matmul", "depthwise")
ZERO_FREE = ("subpixel", "matmul", "depthwise")
TOL = 1e-10


def _inapplicable(method, x, w, **kw) -> bool:
    """Whether an explicit ``method`` cannot compute this call; if so, check that it says so.

    An explicit method never falls back to another: the call raises a ValueError naming
    the method and the reason (the registry's), and the caller's test has nothing else to do.
    """
    x_shape = tuple(np.shape(x))
    config = config_of(x_shape, np.shape(w), **kw)
    reason = _methods.reasons(config, x_shape, np.shape(w))[method]
    if reason is None:
        return False
    with pytest.raises(
        ValueError,
        match=re.escape(f"method={method!r} cannot compute this configuration: {reason}"),
    ):
        NAMED_FN[len(x_shape) - 2](x, w, method=method, **kw)
    return True


def _torch(x, w, b=None, **kw):
    """PyTorch's result (float64 in, numpy out)."""
    nd = np.ndim(w) - 2
    t = lambda a: None if a is None else torch.from_numpy(np.array(a))  # noqa: E731
    return TORCH_FN[nd](t(x), t(w), t(b), **kw).numpy()


def _torch_vjp(x, w, b, ct_y, **kw):
    nd = np.ndim(w) - 2
    tx, tw = (torch.tensor(np.asarray(a), requires_grad=True) for a in (x, w))
    tb = None if b is None else torch.tensor(np.asarray(b), requires_grad=True)
    y = TORCH_FN[nd](tx, tw, tb, **kw)
    y.backward(torch.from_numpy(np.asarray(ct_y)))
    return (
        y.detach().numpy(),
        tx.grad.numpy(),
        tw.grad.numpy(),
        (None if tb is None else tb.grad.numpy()),
    )


def _ours_vjp(x, w, b, ct_y, method, **kw):
    """Forward and the three gradients, as one compiled program."""
    nd = np.ndim(w) - 2

    @jax.jit
    def fwd_bwd(x, w, b, ct_y):
        f = lambda x, w, b: NAMED_FN[nd](x, w, b, method=method, **kw)  # noqa: E731
        y, vjp = jax.vjp(f, x, w, b)
        return (y, *vjp(ct_y))

    return fwd_bwd(x, w, b, ct_y)


# ------------------------------------------------------------------------- zero-size inputs


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "nd,kw",
    [
        (1, dict(stride=2, padding=1, output_padding=1)),
        (2, dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
        (3, dict(stride=2, padding=1)),
    ],
)
def test_empty_batch_forward_and_gradients(nd, kw, method):
    """N = 0: an empty result of PyTorch's shape, and empty / zero gradients, eager and jit."""
    groups = 2 if method == "depthwise" else 1
    x = np.ones((0, 2) + (3,) * nd)
    w = np.ones((2, 3 if groups == 1 else 1) + (3,) * nd)
    b = np.ones(3 if groups == 1 else 2)
    if _inapplicable(method, x, w, groups=groups, **kw):
        return
    want = _torch(x, w, b, groups=groups, **kw)
    fn = NAMED_FN[nd]
    f = lambda x, w, b: fn(x, w, b, groups=groups, method=method, **kw)  # noqa: E731
    for g in (f, jax.jit(f)):
        y = g(x, w, b)
        assert y.shape == want.shape and y.dtype == jnp.float64
    y, vjp = jax.vjp(f, x, w, b)
    dx, dw, db = vjp(jnp.zeros(y.shape))
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))  # a sum over no samples
    np.testing.assert_array_equal(db, np.zeros_like(b))


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_empty_batch_with_padding_modes(mode):
    x, w, b = np.ones((0, 2, 4, 4)), np.ones((2, 3, 3, 3)), np.ones(3)
    f = lambda x, w, b: ct.conv_transpose2d(x, w, b, 2, 1, padding_mode=mode)  # noqa: E731
    y, vjp = jax.vjp(f, x, w, b)
    assert y.shape == (0, 3, 7, 7)
    assert [g.shape for g in vjp(jnp.zeros(y.shape))] == [x.shape, w.shape, b.shape]


@pytest.mark.parametrize("method", ["matmul", "subpixel", "auto"])
def test_gradient_of_vmap_over_an_empty_axis(method):
    """vmap folds a size-0 axis into the batch inside the primitive: the gradient forms
    must handle N == 0 (explicit reshape sizes)."""
    w = np.ones((2, 3, 3, 3))
    f = lambda w: jax.vmap(lambda x: ct.conv_transpose2d(x, w, stride=2, method=method))(  # noqa: E731
        np.ones((0, 1, 2, 4, 4))
    ).sum()
    np.testing.assert_array_equal(jax.grad(f)(w), np.zeros_like(w))


def test_empty_batch_unbatched_and_channels_last():
    w = np.ones((2, 3, 2, 2))
    assert ct.conv_transpose2d(np.ones((0, 4, 4, 2)), w, stride=2, channels_last=True).shape == (
        0,
        8,
        8,
        3,
    )
    assert ct.conv_transpose_output_shape((0, 2, 4, 4), w.shape, 2) == (0, 3, 8, 8)


@pytest.mark.parametrize(
    "shape,kw,match",
    [
        # an empty output (PyTorch's N >= 2 oneDNN path returns it; its N = 1 path raises):
        ((2, 1, 1, 1), dict(padding=(0, 1)), "output spatial size (1, 0) must be >= 1"),
        ((1, 1, 1, 1), dict(padding=(0, 1)), "output spatial size (1, 0) must be >= 1"),
        # an empty spatial axis (PyTorch accepts it only when N == 0):
        ((0, 1, 0, 3), {}, "must have every spatial size >= 1"),
        ((1, 1, 0, 3), {}, "must have every spatial size >= 1"),
        # zero channels (PyTorch rejects the empty weight)
        ((1, 0, 3, 3), dict(weight=(0, 1, 1, 2)), "weight.shape[0] = C_in >= 1"),
    ],
)
def test_zero_size_spatial_or_channels_is_a_value_error(shape, kw, match):
    kw = dict(kw)
    w = np.ones(kw.pop("weight", (1, 1, 1, 2)))
    with pytest.raises(ValueError, match=re.escape(match)):
        ct.conv_transpose2d(np.ones(shape), w, **kw)


# ----------------------------------------------------------------- extreme settings, vs PyTorch

EXTREME = [
    # (nd, input shape, weight shape for groups=1, settings)
    pytest.param(1, (1, 2, 3), (2, 2, 3), dict(stride=1000), id="stride 1000"),
    pytest.param(
        2, (1, 2, 3, 2), (2, 1, 2, 3), dict(dilation=(500, 1), padding=(3, 1)), id="dilation 500"
    ),
    pytest.param(
        3,
        (1, 2, 2, 1, 2),
        (2, 3, 4, 3, 3),
        dict(stride=(1, 3, 2), padding=1),
        id="kernel larger than input",
    ),
    pytest.param(
        2, (2, 2, 3, 3), (2, 3, 1, 1), dict(stride=3, output_padding=2), id="1x1 kernel stride 3"
    ),
    pytest.param(
        1,
        (1, 2, 4),
        (2, 2, 2),
        dict(stride=(5,), padding=1, output_padding=4, dilation=2),
        id="stride > dilated kernel",
    ),
    pytest.param(3, (1, 2, 2, 2, 2), (2, 1, 1, 1, 1), dict(stride=64), id="1x1x1 stride 64"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("nd,xs,ws,kw", EXTREME)
def test_extreme_settings_match_pytorch(nd, xs, ws, kw, method):
    """Values and all three gradients against PyTorch autograd, for every method
    (``depthwise`` with groups == C_in, where it applies)."""
    rng = np.random.default_rng(sum(xs) + sum(ws))
    if method == "depthwise":
        kw = dict(kw, groups=xs[1])
        ws = (ws[0], 2) + ws[2:]
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    if _inapplicable(method, x, w, **kw):
        return
    b = rng.standard_normal(ws[1] * kw.get("groups", 1))
    y_t = _torch(x, w, b, **kw)
    ct_y = rng.standard_normal(y_t.shape)
    want = _torch_vjp(x, w, b, ct_y, **kw)
    got = _ours_vjp(x, w, b, ct_y, method, **kw)
    for g, t in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g), t, rtol=TOL, atol=TOL)


# -------------------------------------------------------------------------- extreme values


def _nonfinite_case():
    """K = 3, stride 2 (the common 'upsample by 2' layer), NaN and Inf in the input."""
    x = np.ones((1, 2, 5))
    x[0, 0, 1], x[0, 1, 3] = np.nan, np.inf
    w = np.arange(1.0, 13.0).reshape(2, 2, 3) / 4
    w[1, 0, 0] = -np.inf  # and a -inf weight
    return x, w, np.array([0.5, -1.0])


def _assert_same_nonfinite(got, want):
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="nan positions")
    inf = np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf], err_msg="inf values")
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=TOL, atol=TOL)


def test_nonfinite_values_propagate_as_in_pytorch():
    """NaN and ±Inf land exactly where PyTorch puts them (the core lowering)."""
    x, w, b = _nonfinite_case()
    for kw in (
        dict(stride=2, padding=1, output_padding=1),
        dict(stride=1, dilation=2),
        dict(stride=2),
        dict(stride=4, padding=2),
    ):
        want = _torch(x, w, b, **kw)
        assert np.isnan(want).any() and np.isinf(want).any()
        _assert_same_nonfinite(ct.conv_transpose1d(x, w, b, method="dilated", **kw), want)
        _assert_same_nonfinite(
            jax.jit(lambda x, w, b, kw=kw: ct.conv_transpose1d(x, w, b, method="dilated", **kw))(
                x, w, b
            ),
            want,
        )


@pytest.mark.parametrize("method", ZERO_FREE + ("auto",))
def test_nonfinite_values_zero_free_lowerings_where_kernel_divides_stride(method):
    """With K a multiple of the stride every phase has all its taps: exact as well."""
    x, w, b = _nonfinite_case()
    w = np.concatenate([w, w[..., :1]], axis=-1)  # K = 4, stride 2
    groups = 2 if method == "depthwise" else 1
    w = w[:, :1] if groups == 2 else w
    kw = dict(stride=2, padding=1, groups=groups)
    _assert_same_nonfinite(ct.conv_transpose1d(x, w, b, method=method, **kw), _torch(x, w, b, **kw))


@pytest.mark.parametrize("method", ZERO_FREE + ("auto",))
def test_nonfinite_input_zero_free_lowerings(method):
    """K = 3, stride 2: the phases have 2 and 1 real taps; no phase multiplies a padded zero
    tap (NaN * 0 would make a neighbouring output NaN that PyTorch leaves finite)."""
    x, w, b = _nonfinite_case()
    groups = 2 if method == "depthwise" else 1
    w = w[:, :1] if groups == 2 else w
    kw = dict(stride=2, padding=1, output_padding=1, groups=groups)
    _assert_same_nonfinite(ct.conv_transpose1d(x, w, b, method=method, **kw), _torch(x, w, b, **kw))


def _depthwise_nonfinite_case():
    x = np.ones((1, 3, 4))
    x[0, 0, 1] = np.nan
    x[0, 1, 2] = -np.inf
    return x, np.arange(1.0, 13.0).reshape(3, 2, 2), None


def test_nonfinite_depthwise_auto_keeps_groups_apart():
    """groups == C_in: auto's elementwise lowering on CPU keeps each group's NaN/Inf in it."""
    x, w, _ = _depthwise_nonfinite_case()
    for kw in (dict(stride=2, padding=1), dict(stride=1)):
        want = _torch(x, w, groups=3, **kw)
        assert np.isfinite(want[0, 4:]).all()  # group 2 has finite input
        _assert_same_nonfinite(ct.conv_transpose1d(x, w, groups=3, **kw), want)
        _assert_same_nonfinite(ct.conv_transpose1d(x, w, groups=3, method="depthwise", **kw), want)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's grouped convolution")
@pytest.mark.parametrize("method", ["dilated", "subpixel"])  # matmul needs groups == 1
@pytest.mark.xfail(
    strict=True,
    reason=(
        "KNOWN (upstream XLA:CPU, reported): lax.conv_general_dilated with feature_group_count "
        "== C_in (one input channel per group) multiplies the other groups' inputs by zeros, so "
        "a NaN/Inf in one group's input makes every group's output NaN there; "
        "lax.conv_general_dilated(x, ones((2, 1, 1)), (1,), 'VALID', feature_group_count=2) with "
        "x[0, 0, 0] = inf gives NaN in output channel 1.  method='auto' (and 'depthwise') use the "
        "elementwise lowering for groups == C_in on CPU and are exact"
    ),
)
def test_nonfinite_depthwise_through_xla_grouped_convolution(method):
    x, w, _ = _depthwise_nonfinite_case()
    _assert_same_nonfinite(
        ct.conv_transpose1d(x, w, groups=3, stride=2, padding=1, method=method),
        _torch(x, w, groups=3, stride=2, padding=1),
    )


@pytest.mark.parametrize("method", METHODS)
def test_float16_overflow_matches_pytorch_cpu(method):
    """float16 overflow, documented: like PyTorch on CPU.

    * a result beyond ±65504 is ±inf (one product 300 * 300 = 9e4);
    * partial sums are accumulated in float32 on XLA:CPU (as PyTorch's CPU kernels do), so
      40000 + 40000 - 40000 is 40000, not inf.  On GPU/TPU pass
      ``preferred_element_type=jnp.float32`` to get the same guarantee.
    """
    kw = dict(method=method, groups=3 if method == "depthwise" else 1)
    x = np.array([[[300.0], [1.0], [1.0]]], np.float16)
    w = np.array([[[300.0]], [[1.0]], [[1.0]]], np.float16)
    if method != "depthwise":
        w = np.broadcast_to(w, (3, 1, 1))
    y = np.asarray(ct.conv_transpose1d(x, w, **kw))
    t = _torch(x, w, groups=kw["groups"])
    assert y.dtype == np.float16 and np.isposinf(y[0, 0, 0]) and np.isposinf(t[0, 0, 0])
    if method == "depthwise":
        return
    x = np.array([[[40000.0], [40000.0], [-40000.0]]], np.float16)
    w = np.ones((3, 1, 1), np.float16)
    for pet in (None, jnp.float32):
        y = np.asarray(ct.conv_transpose1d(x, w, preferred_element_type=pet, **kw))
        assert y[0, 0, 0] == 40000 == _torch(x, w)[0, 0, 0]


# ---------------------------------------------------- setting spellings share one cache entry

# Each group: equivalent spellings of one configuration (x (3, 4, 4, 5), w (4, 3, 4, 4)).
SPELLINGS = {
    "stride 2, padding 1, output_padding 0": [
        # (stride, padding, output_padding, groups, dilation, extra)
        (2, 1, 0, 2, 1, {}),
        ((2, 2), (1, 1), (0, 0), 2, (1, 1), {}),
        ([2, 2], [1, 1], [0, 0], 2, [1, 1], {}),
        (np.int64(2), np.int32(1), np.int64(0), np.int64(2), np.int16(1), {}),
        ((np.int64(2), 2), (1, np.int8(1)), [np.int32(0), 0], np.int32(2), (1, np.int64(1)), {}),
        (2, ((1, 1), (1, 1)), 0, 2, 1, {}),
        (2, [[1, 1], [np.int64(1), 1]], 0, 2, 1, dict(channels_last=np.False_)),
        (2, "same", 0, 2, 1, {}),  # k=4, s=2: 'same' crops 1 and 1
        (2, "SAME", 0, 2, 1, {}),
        (2, 1, 0, 2, 1, dict(output_size=(8, 10))),  # output_size picks output_padding 0
        (2, 1, 0, 2, 1, dict(output_size=[np.int64(8), 10])),
        (2, 1, 0, 2, 1, dict(output_size=(3, 6, 8, 10))),  # a full output shape
    ],
    "stride (2, 3), padding (0, 1), output_padding (1, 2)": [
        ((2, 3), (0, 1), (1, 2), 1, 1, {}),
        ([2, 3], ((0, 0), (1, 1)), [1, 2], 1, (1, 1), {}),
        ((np.int32(2), 3), [0, np.int64(1)], (np.int8(1), 2), np.int64(1), [1, 1], {}),
        ((2, 3), (0, 1), 0, 1, 1, dict(output_size=(11, 16))),
        ((2, 3), (0, 1), (0, 0), 1, 1, dict(output_size=(3, 3, 11, 16))),
    ],
}


@pytest.mark.parametrize("group", list(SPELLINGS))
def test_equivalent_spellings_hit_one_jit_cache_entry(group):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 4, 4, 5)))
    w = jnp.asarray(rng.standard_normal((4, 3, 4, 4)))
    first = None
    for stride, padding, opad, groups, dilation, extra in SPELLINGS[group]:
        c_out = 3 * groups
        b = jnp.arange(c_out, dtype=x.dtype)
        y = ct.conv_transpose2d(
            x, w, b, stride, padding, opad, groups=groups, dilation=dilation, **extra
        )
        if first is None:
            first, size = np.asarray(y), _op._forward._cache_size()
            kw = dict(stride=stride, padding=padding, output_padding=opad, groups=groups)
        np.testing.assert_array_equal(np.asarray(y), first)
        assert _op._forward._cache_size() == size, (stride, padding, opad, groups, extra)
    want = _torch(np.asarray(x), np.asarray(w), np.arange(c_out, dtype=np.float64), **kw)
    np.testing.assert_allclose(first, want, rtol=TOL, atol=TOL)
    ct.conv_transpose2d(x, w, b, 3, 0, 0, groups=groups)  # a different setting compiles
    assert _op._forward._cache_size() == size + 1


@pytest.mark.parametrize(
    "name,value",
    [
        ("stride", 2),
        ("padding", 1),
        ("output_padding", 0),
        ("dilation", 1),
        ("groups", 1),
        ("output_size", 8),
    ],
)
@pytest.mark.parametrize("how", ["argument", "made inside jit"])
def test_traced_setting_is_a_clear_type_error(name, value, how):
    """stride=jnp.array(2) inside jit: 'settings must be static Python ints'."""
    x, w = jnp.ones((1, 2, 4, 4)), jnp.ones((2, 3, 2, 2))
    kw = dict(stride=2) if name == "output_size" else {}

    if how == "argument":
        f = jax.jit(lambda x, w, s: ct.conv_transpose2d(x, w, **{**kw, name: s}))
        call = lambda: f(x, w, jnp.array(value))  # noqa: E731
    else:
        f = jax.jit(lambda x, w: ct.conv_transpose2d(x, w, **{**kw, name: jnp.array(value)}))
        call = lambda: f(x, w)  # noqa: E731
    with pytest.raises(
        TypeError,
        match=rf"^{name}=a traced array of shape \(\) must be a "
        r"static Python int: settings are compile-time",
    ):
        call()
    # the fix the message suggests works
    g = jax.jit(lambda x, w, s: ct.conv_transpose2d(x, w, **{**kw, name: s}), static_argnums=2)
    assert g(x, w, value).shape == ct.conv_transpose2d(x, w, **{**kw, name: value}).shape


# -------------------------------------------------------------------------------- determinism


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the promise is for CPU")
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "nd,groups,kw",
    [
        (2, 1, dict(stride=2, padding=1, output_padding=1)),
        (2, 4, dict(stride=(2, 3), padding=((1, 0), (2, 1)), dilation=(1, 2))),
        (3, 1, dict(stride=2, padding=1)),
    ],
)
def test_bit_identical_across_calls_and_between_jit_and_eager(nd, groups, kw, method):
    """float32 forward (and backward, 1-2-D), on CPU: the same bits every call, jitted or not."""
    rng = np.random.default_rng(nd + groups)
    x = jnp.asarray(rng.standard_normal((2, 4) + (5, 4, 3)[:nd]), jnp.float32)
    w = jnp.asarray(
        rng.standard_normal((4, 6 // groups if groups > 1 else 3) + (4, 3, 2)[:nd]), jnp.float32
    )
    fn = NAMED_FN[nd]
    if _inapplicable(method, x, w, groups=groups, **kw):
        return

    def fwd_bwd(x, w):
        f = lambda x, w: fn(x, w, groups=groups, method=method, **kw)  # noqa: E731
        if nd == 3:  # the eager backward runs op by op: forward only in 3-D (time)
            return (f(x, w),)
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(jnp.cos(y)))

    runs = [fwd_bwd(x, w), fwd_bwd(x, w), jax.jit(fwd_bwd)(x, w), jax.jit(fwd_bwd)(x, w)]
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# -------------------------------------------------------------------------------------- memory


def _hlo_arrays(text: str):
    """Every array shape in an HLO module's text, as tuples."""
    return {
        tuple(int(d) for d in m.group(1).split(",") if d)
        for m in re.finditer(r"\b(?:f16|bf16|f32|f64)\[([0-9,]*)\]", text)
    }


@pytest.mark.skipif(
    jax.default_backend() != "cpu",
    reason="off CPU, auto deliberately keeps the core (lhs-dilated) lowering",
)
def test_largest_benchmark_layer_allocates_no_zero_dilated_input():
    """Forward + backward of N=2, 32@32^3 -> 16, k4 s2 p1 (float32, method='auto').

    The zero-dilated input would be (2, 32, 63, 63, 63) = 16,003,008 floats (61 MiB).
    The compiled program has no convolution with ``lhs_dilate`` and no array of that
    size or with a spatial axis of 63.  Its temporary memory is bounded by what the
    zero-free algorithm needs by construction: the dw patch matrix (2*33^3 rows x
    C_in*(K/s)^3 = 256 columns, 70 MiB; dx's tap blocks have the same size and are not
    live at the same time) and four arrays the size of the phase-split, padded
    cotangent (2*16*66^3 floats, 35 MiB each; y's own copies are a little smaller):
    211 MiB.  Measured on XLA:CPU (jax 0.10.2): 175.6 MiB (172.5 with dx by the strided
    convolution), so one more zero-dilated copy of x (61 MiB) would break the bound.  The
    same HLO check does find the lhs-dilated convolution in method='dilated' (whose XLA:CPU
    temp is 80 MiB: the runtime dilates inside the convolution kernel, outside buffer assignment).
    """
    x = jax.ShapeDtypeStruct((2, 32, 32, 32, 32), jnp.float32)
    w = jax.ShapeDtypeStruct((32, 16, 4, 4, 4), jnp.float32)

    def program(method):
        def fwd_bwd(x, w):
            y, vjp = jax.vjp(
                lambda x, w: ct.conv_transpose3d(x, w, stride=2, padding=1, method=method), x, w
            )
            return (y, *vjp(y))

        return jax.jit(fwd_bwd).lower(x, w).compile()

    compiled = program("auto")
    text = compiled.as_text()
    dilated_elems = 2 * 32 * 63**3
    assert "lhs_dilate" not in text
    shapes = _hlo_arrays(text)
    assert (2, 16, 64, 64, 64) in shapes  # sanity: the parser sees y
    assert not [s for s in shapes if math.prod(s) == dilated_elems], "a zero-dilated buffer"
    assert not [s for s in shapes if 63 in s], "an array with a zero-dilated axis"
    temp = compiled.memory_analysis().temp_size_in_bytes
    im2col = 2 * 33**3 * 256 * 4
    phase = 2 * 16 * 66**3 * 4
    assert temp <= im2col + 4 * phase, f"temp {temp / 2**20:.1f} MiB"

    # the checks are not vacuous: the core lowering does use the lhs-dilated convolution
    assert "lhs_dilate" in program("dilated").as_text()


# ----------------------------------------------------------------------------- host arrays
#
# JAX may read a host (NumPy) array after the call that received it has returned, or share
# its buffer (jax-ml/jax#37830), so an in-place change to the caller's array right after the
# call could reach the result or a layer's weights.  Before convt_jax copied host arrays on
# the way in, this happened to 84 / 2000 state dicts of 108 floats and 271 / 2000 of 4096
# (tensors changed in place right after loading), and to 49 / 2000 functional calls: once
# in CI, as a layer with conv_mode="convolution" that computed with an unflipped kernel.
# A race, so each test tries 400 times with JAX kept busy (the copy then runs late): on
# the old code they found 169, 153 and 139 changed results of 400.

_BUSY = jax.jit(lambda a: a @ a)


def _keep_jax_busy():
    """Queue a few milliseconds of work: the copy of a host array then runs late."""
    return _BUSY(jnp.ones((256, 256)))


def test_layer_weights_do_not_follow_the_source_tensor():
    changed = 0
    for _ in range(400):
        _keep_jax_busy()
        layer = ct.nn.ConvTranspose1d(
            4096, 1, 1, bias=False, dtype=jnp.float64, key=jax.random.key(0)
        )
        t = torch.randn(4096, 1, 1, dtype=torch.float64)
        want = t.numpy().copy()
        loaded = layer.load_state_dict({"weight": t})
        with torch.no_grad():
            t.mul_(-1.0)
        changed += not np.array_equal(np.asarray(loaded.weight), want)
    assert changed == 0, f"{changed} / 400 loaded layers hold the tensor's later values"


def test_converted_weights_do_not_follow_the_source_array():
    changed = 0
    for _ in range(400):
        w = np.random.default_rng(0).standard_normal((3, 3, 32, 32))  # Flax (*K, C_in, C_out)
        want = np.asarray(ct.layouts.from_flax(w.copy())[0])
        _keep_jax_busy()
        got = ct.layouts.from_flax(w)[0]
        w *= -1.0
        changed += not np.array_equal(np.asarray(got), want)
    assert changed == 0, f"{changed} / 400 converted weights hold the array's later values"


def test_result_does_not_follow_an_input_changed_after_the_call():
    rng = np.random.default_rng(0)
    changed = 0
    for _ in range(400):
        x, w = rng.standard_normal((1, 64, 64)), rng.standard_normal((64, 2, 3))
        want = np.asarray(ct.conv_transpose1d(x.copy(), w.copy()))
        _keep_jax_busy()
        y = ct.conv_transpose1d(x, w)
        x *= -1.0
        w *= -1.0
        changed += not np.allclose(np.asarray(y), want, rtol=0, atol=0)
    assert changed == 0, f"{changed} / 400 results computed from the inputs' later values"
