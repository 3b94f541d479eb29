"""The group-batched forms (convt_jax/_grouped.py): exact against "dilated" and PyTorch."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from reference import config_of, torch_forward

import convt_jax as ct
from convt_jax import _methods, _primitive

TOL = 1e-10

# (input shape channels-first, weight shape, settings); groups > 1 and < C_in unless named.
CASES = {
    "1d_g2_s1": ((2, 6, 7), (6, 2, 3), dict(stride=1, padding=1, groups=2)),
    "1d_g4_s2_dil_on_s1": ((3, 8, 7), (8, 3, 3), dict(stride=1, dilation=2, padding=2, groups=4)),
    "1d_g3_s3_op2": ((2, 6, 5), (6, 2, 5), dict(stride=3, padding=2, output_padding=2, groups=3)),
    "2d_g4_k4s2p1": ((2, 8, 5, 6), (8, 3, 4, 4), dict(stride=2, padding=1, groups=4)),
    "2d_g2_mixed": (
        (2, 8, 5, 6),
        (8, 3, 3, 4),
        dict(stride=(2, 3), padding=((1, 0), (2, 1)), output_padding=(1, 2), groups=2),
    ),
    "2d_g8_k5s3": ((2, 16, 4, 4), (16, 2, 5, 5), dict(stride=3, padding=(4, 2), groups=8)),
    "2d_g2_k3s2op1": (
        (1, 4, 6, 5),
        (4, 5, 3, 3),
        dict(stride=2, padding=1, output_padding=1, groups=2),
    ),
    "2d_depthwise": ((2, 4, 5, 5), (4, 2, 3, 3), dict(stride=2, padding=1, groups=4)),
    "3d_g2": (
        (1, 4, 3, 4, 3),
        (4, 3, 3, 2, 3),
        dict(stride=2, padding=1, output_padding=1, groups=2),
    ),
    "3d_g2_dil_on_s1": (
        (1, 4, 3, 4, 3),
        (4, 3, 2, 3, 2),
        dict(stride=(1, 2, 1), dilation=(2, 1, 3), groups=2),
    ),
}


def _arrays(x_shape, w_shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(x_shape), rng.standard_normal(w_shape)


def _torch(x, w, kw):
    """PyTorch's output and input/weight gradients for the cotangent ``g`` (channels-first)."""
    nd = w.ndim - 2
    per = lambda v: tuple(v) if isinstance(v, tuple) else (v,) * nd  # noqa: E731
    pad = kw.get("padding", 0)
    pads = tuple(p if isinstance(p, tuple) else (p, p) for p in per(pad))
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    y = torch_forward(
        tx,
        tw,
        None,
        per(kw.get("stride", 1)),
        pads,
        per(kw.get("output_padding", 0)),
        kw.get("groups", 1),
        per(kw.get("dilation", 1)),
    )
    g = np.random.default_rng(1).standard_normal(tuple(y.shape))
    y.backward(torch.tensor(g))
    return y.detach().numpy(), g, tx.grad.numpy(), tw.grad.numpy()


def _ours(x, w, g, kw, method, channels_last=False, flip=False):
    """Output and vjp gradients, channels-first, under ``jax.jit``."""
    to_cl = lambda a: np.moveaxis(a, 1, -1) if channels_last else a  # noqa: E731
    from_cl = lambda a: np.moveaxis(np.asarray(a), -1, 1) if channels_last else a  # noqa: E731
    kwargs = dict(
        kw,
        channels_last=channels_last,
        method=method,
        conv_mode="convolution" if flip else "cross_correlation",
    )
    f = lambda x, w: ct.conv_transpose(x, w, **kwargs)  # noqa: E731
    y, vjp = jax.vjp(f, jnp.asarray(to_cl(x)), jnp.asarray(w))
    dx, dw = jax.jit(lambda g: vjp(g))(jnp.asarray(to_cl(g)))
    return from_cl(y), from_cl(dx), np.asarray(dw)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_grouped_equals_pytorch_and_dilated(case, channels_last):
    x_shape, w_shape, kw = CASES[case]
    x, w = _arrays(x_shape, w_shape)
    y_t, g, dx_t, dw_t = _torch(x, w, kw)
    got = _ours(x, w, g, kw, "grouped", channels_last)
    for a, b in zip(got, (y_t, dx_t, dw_t), strict=True):
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)
    for a, b in zip(got, _ours(x, w, g, kw, "dilated", channels_last), strict=True):
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("case", ["1d_g3_s3_op2", "2d_g2_mixed", "3d_g2"])
def test_grouped_convolution_mode(case):
    # conv_mode="convolution" is the cross-correlation with every kernel axis reversed.
    x_shape, w_shape, kw = CASES[case]
    x, w = _arrays(x_shape, w_shape, seed=2)
    g = np.random.default_rng(3).standard_normal(
        ct.conv_transpose_output_shape(x_shape, w_shape, **kw)
    )
    for a, b in zip(
        _ours(x, w, g, kw, "grouped", flip=True),
        _ours(x, w, g, kw, "dilated", flip=True),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("stride, dilation", [((2, 3), (2, 2)), ((2, 1), (3, 2))])
def test_grouped_backward_forms_where_the_forward_has_no_phases(stride, dilation, channels_last):
    # An axis with stride > 1 and dilation > 1: no "grouped" forward, but its dx / dw forms
    # (im2col of the cotangent) compute any stride and dilation.
    x = np.random.default_rng(4).standard_normal((2, 6, 4, 5))
    w = np.random.default_rng(5).standard_normal((6, 2, 3, 2))
    if channels_last:
        x = np.moveaxis(x, 1, -1)
    config = config_of(x.shape, w.shape, stride, ((1, 2), (0, 1)), 1, 3, dilation, channels_last)
    assert _methods.FORWARD["grouped"].unsupported(config, x.shape, w.shape) is not None

    def grads(method):
        f = lambda x, w: _primitive.conv_transpose_batched(x, w, config, method)  # noqa: E731
        y, vjp = jax.vjp(f, jnp.asarray(x), jnp.asarray(w))
        g = jnp.asarray(np.random.default_rng(6).standard_normal(y.shape))
        return jax.jit(vjp)(g)

    for a, b in zip(
        grads(("dilated", "grouped", "grouped")), grads(("dilated", "conv", "conv")), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


def test_grouped_float32_and_preferred_element_type():
    x, w = _arrays((2, 8, 6, 6), (8, 4, 4, 4), seed=7)
    x32, w32 = jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)
    kw = dict(stride=2, padding=1, groups=4)
    y = ct.conv_transpose2d(x32, w32, **kw, method="grouped")
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(
        y, ct.conv_transpose2d(x32, w32, **kw, method="dilated"), rtol=1e-5, atol=1e-5
    )
    y64 = ct.conv_transpose2d(x32, w32, **kw, method="grouped", preferred_element_type=jnp.float64)
    np.testing.assert_allclose(
        y64, ct.conv_transpose2d(x, w, **kw, method="dilated"), rtol=1e-6, atol=1e-6
    )


def test_grouped_under_vmap_and_second_order():
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.standard_normal((3, 2, 6, 5, 5)))
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 4)))
    kw = dict(stride=(2, 3), padding=((1, 0), (2, 1)), output_padding=(1, 0), groups=3)

    def f(x, w, method):
        return jnp.sum(ct.conv_transpose2d(x, w, **kw, method=method) ** 2)

    got = jax.vmap(jax.grad(f, 1), (0, None, None))(x, w, "grouped")
    want = jnp.stack([jax.grad(f, 1)(xi, w, "dilated") for xi in x])
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    h = jax.hessian(lambda w: f(x[0], w, "grouped"))(w)
    np.testing.assert_allclose(
        h, jax.hessian(lambda w: f(x[0], w, "dilated"))(w), rtol=1e-9, atol=1e-9
    )


def test_vmap_over_input_and_weight_of_a_dense_layer_uses_the_grouped_forms():
    # vmap over both the input and the weight binds B side-by-side problems as groups == B;
    # "matmul" (groups == 1) falls back to the group-batched forms: the same numbers.
    rng = np.random.default_rng(9)
    xs = jnp.asarray(rng.standard_normal((3, 2, 4, 5, 5)))
    ws = jnp.asarray(rng.standard_normal((3, 4, 2, 4, 4)))
    config = config_of((2, 12, 5, 5), (12, 2, 4, 4), 2, 1, 0, 3)
    for table in (_methods.FORWARD, _methods.INPUT_GRADS, _methods.WEIGHT_GRADS):
        assert _methods.usable(table, "matmul", config, (2, 12, 5, 5), (12, 2, 4, 4)) == ("grouped")

    def loss(x, w, method):
        return jnp.sum(jnp.sin(ct.conv_transpose2d(x, w, stride=2, padding=1, method=method)))

    step = jax.value_and_grad(loss, (0, 1))
    want = jax.vmap(step, (0, 0, None))(xs, ws, "dilated")
    for method in ("matmul", "auto"):
        got = jax.vmap(step, (0, 0, None))(xs, ws, method)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


@pytest.mark.usefixtures("xla_forms")
def test_auto_uses_the_group_batched_gradients_for_grouped_layers_on_cpu():
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU rule")
    # The phase forms batched over the group; with dilation the im2col forms of _grouped.
    for x_shape, w_shape, groups in [
        ((8, 256, 16, 16), (256, 64, 4, 4), 4),
        ((8, 256, 16, 16), (256, 8, 4, 4), 32),
        ((2, 64, 8, 8, 8), (64, 16, 2, 2, 2), 4),
    ]:
        config = config_of(x_shape, w_shape, 2, 1 if len(w_shape) == 4 else 0, 0, groups)
        assert _methods.resolve("auto", config, x_shape, w_shape, np.float32) == (
            "subpixel",
            "phase",
            "phase",
        )
    config = config_of((2, 16, 9), (16, 4, 3), 1, 2, 0, 4, 2)
    assert _methods.resolve("auto", config, (2, 16, 9), (16, 4, 3), np.float32) == (
        "subpixel",
        "grouped",
        "grouped",
    )
    # Depthwise keeps its elementwise forms; dense layers never see a group-batched form.
    config = config_of((8, 64, 16, 16), (64, 1, 4, 4), 2, 1, 0, 64)
    assert _methods.resolve("auto", config, (8, 64, 16, 16), (64, 1, 4, 4), np.float32)[0] == (
        "depthwise"
    )
    config = config_of((8, 64, 16, 16), (64, 32, 4, 4), 2, 1, 0, 1)
    assert "grouped" not in _methods.resolve(
        "auto", config, (8, 64, 16, 16), (64, 32, 4, 4), np.float32
    )


@pytest.mark.parametrize(
    "kw, reason",
    [
        (dict(groups=1), "it needs groups > 1 (got groups=1)"),
        (dict(groups=2, dilation=2), "an axis has both stride > 1 and dilation > 1"),
    ],
)
def test_explicit_grouped_that_cannot_apply_is_an_error(kw, reason):
    x, w = jnp.ones((1, 4, 5)), jnp.ones((4, 2, 3))
    with pytest.raises(ValueError) as info:
        ct.conv_transpose1d(x, w, stride=2, method="grouped", **kw)
    message = str(info.value)
    assert message.startswith("method='grouped' cannot compute this configuration: ")
    assert reason in message


@pytest.mark.usefixtures("xla_forms")
def test_auto_rule_for_kernels_that_are_not_a_multiple_of_the_stride():
    # k3 s2 output_padding=1: the phase convolution forward (never "matmul", whose zero
    # taps cost 1.8x the products); im2col + matmul for both gradients, as every 2-D layer.
    if jax.default_backend() != "cpu":
        pytest.skip("the CPU rule")

    def pick(x_shape, w_shape, channels_last=False):
        config = config_of(x_shape, w_shape, 2, 1, 1, 1, 1, channels_last)
        return _methods.resolve("auto", config, x_shape, w_shape, np.float32)

    assert pick((8, 512, 16, 16), (512, 256, 3, 3)) == ("subpixel", "matmul", "matmul")
    assert pick((8, 16, 16, 512), (512, 256, 3, 3), True) == ("subpixel", "matmul", "matmul")
    assert pick((8, 32, 32, 128), (128, 64, 3, 3), True) == ("subpixel", "matmul", "matmul")
    assert pick((8, 128, 32, 32), (128, 64, 3, 3)) == ("subpixel", "matmul", "matmul")
    # A kernel that is a multiple of the stride keeps "matmul" for wide layers.
    config = config_of((64, 512, 4, 4), (512, 256, 4, 4), 2, 1, 0, 1)
    assert (
        _methods.resolve("auto", config, (64, 512, 4, 4), (512, 256, 4, 4), np.float32)[0]
        == "matmul"
    )


@pytest.mark.parametrize("case", ["2d_g2_k3s2op1", "1d_g3_s3_op2", "3d_g2"])
def test_grouped_non_finite_input_as_the_definition(case):
    # A kernel that is not a multiple of the stride pads the phases with zero taps; an
    # Inf/NaN input must not meet them (Inf * 0 = NaN where the definition has none).
    x_shape, w_shape, kw = CASES[case]
    x, w = _arrays(x_shape, w_shape, seed=10)
    x.flat[3], x.flat[x.size // 2] = np.inf, np.nan
    got = ct.conv_transpose(jnp.asarray(x), jnp.asarray(w), **kw, method="grouped")
    want = ct.conv_transpose(jnp.asarray(x), jnp.asarray(w), **kw, method="dilated")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(
        np.asarray(got)[finite], np.asarray(want)[finite], rtol=TOL, atol=TOL
    )
