"""Every lowering and backward form agrees with the core lhs-dilated lowering (float64)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import call_args, config_of, configs, make_arrays, reference

import convt_jax as ct
from convt_jax import _methods, _primitive

TOL = 1e-10
LOWERINGS = ("subpixel", "matmul", "depthwise")


def _depthwise(cfg):
    mult = cfg["c_out"] // cfg["groups"]
    return dict(cfg, groups=cfg["c_in"], c_out=cfg["c_in"] * mult)


def _reasons(cfg, xin, w):
    """Each method mapped to None (it applies) or why not, from the one registry."""
    xb = xin if cfg["batched"] else xin[None]
    config = config_of(
        xb.shape,
        w.shape,
        cfg["stride"],
        cfg["pads"],
        cfg["output_padding"],
        cfg["groups"],
        cfg["dilation"],
        cfg["channels_last"],
    )
    return _methods.reasons(config, xb.shape, w.shape)


@pytest.mark.slow
@settings(max_examples=50)
@given(
    cfg=configs(),
    method=st.sampled_from(("auto",) + LOWERINGS),
    dw=st.booleans(),
    flip=st.booleans(),
)
def test_forward_and_gradients_equal_dilated(cfg, method, dw, flip):
    if dw:
        cfg = _depthwise(cfg)
    x, w, b = make_arrays(cfg)
    xin, kwargs = call_args(cfg, x)
    kwargs["conv_mode"] = "convolution" if flip else "cross_correlation"
    reason = _reasons(cfg, xin, w)[method]
    if reason is not None:
        # An explicit method that cannot compute the configuration is an error, never a
        # silent switch to another method.
        with pytest.raises(
            ValueError,
            match=f"method='{method}' cannot compute this "
            f"configuration: .*the methods that can are",
        ):
            ct.conv_transpose(xin, w, b, **kwargs, method=method)
        return

    def run(m):
        f = lambda x, w: ct.conv_transpose(x, w, b, **kwargs, method=m)  # noqa: E731
        y = f(xin, w)
        g = jnp.asarray(np.random.default_rng(cfg["seed"]).standard_normal(y.shape))
        return (y, *jax.jit(lambda x, w, g: jax.vjp(f, x, w)[1](g))(xin, w, g))

    for got, want in zip(run(method), run("dilated"), strict=True):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    if not flip:
        np.testing.assert_allclose(run(method)[0], reference(cfg, x, w, b), rtol=TOL, atol=TOL)


@pytest.mark.slow
@settings(max_examples=30)
@given(
    cfg=configs(),
    dw=st.booleans(),
    forms=st.sampled_from(
        [
            ("conv", "matmul"),
            ("matmul", "conv"),
            ("matmul", "matmul"),
            ("conv", "phase"),
            ("phase", "phase"),
            ("phase", "matmul"),
        ]
    ),
)
def test_backward_forms_equal_conv_rules(cfg, dw, forms):
    if dw:
        cfg = _depthwise(cfg)
    x, w, _ = make_arrays(cfg)
    xin, kwargs = call_args(cfg, x)
    xb = xin if cfg["batched"] else xin[None]
    config = config_of(
        xb.shape,
        w.shape,
        kwargs["stride"],
        kwargs["padding"],
        kwargs["output_padding"],
        kwargs["groups"],
        kwargs["dilation"],
        kwargs["channels_last"],
    )

    def grads(method):
        f = lambda x, w: _primitive.conv_transpose_batched(x, w, config, method)  # noqa: E731
        y = jax.eval_shape(f, xb, w)
        g = jnp.asarray(np.random.default_rng(cfg["seed"]).standard_normal(y.shape))
        return jax.jit(lambda x, w, g: jax.vjp(f, x, w)[1](g))(xb, w, g)

    for got, want in zip(
        grads(("subpixel",) + forms), grads(("dilated", "conv", "conv")), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


# Fast, fixed cases of the forms above for grouped layers (the hypothesis test is slow):
# (input shape, weight shape, stride, padding, output_padding, groups, dilation, channels_last).
GROUPED_CASES = [
    ((2, 8, 5, 6), (8, 3, 4, 4), 2, 1, 0, 4, 1, False),  # 1 < groups < C_in, k4 s2
    ((2, 6, 7, 4), (4, 2, 3, 3), 2, 1, 1, 2, 1, True),  # k3 s2 op1, channels-last
    ((1, 6, 9), (6, 2, 5), 3, 2, 2, 3, 1, False),  # 1-d, K not a multiple of s
    ((1, 4, 3, 4, 5), (4, 1, 2, 3, 2), (2, 1, 2), 0, 0, 2, 1, False),  # 3-d
    ((2, 6, 8), (6, 2, 3), 1, 1, 0, 2, 2, False),  # stride 1 with dilation
    ((2, 4, 6, 6), (4, 3, 4, 4), 2, 1, 0, 4, 1, False),  # depthwise, multiplier 3
]


@pytest.mark.parametrize("case", GROUPED_CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_grouped_backward_forms_equal_conv_rules(case, flip):
    x_shape, w_shape, stride, padding, op, groups, dilation, cl = case
    rng = np.random.default_rng(len(x_shape) + groups)
    x = jnp.asarray(rng.standard_normal(x_shape))
    w = jnp.asarray(rng.standard_normal(w_shape))
    config = config_of(
        x_shape,
        w_shape,
        stride,
        padding,
        op,
        groups,
        dilation,
        cl,
        "convolution" if flip else "cross_correlation",
    )
    y = _methods.forward("dilated", x, w, config)
    g = jnp.asarray(rng.standard_normal(y.shape))
    want = (_methods.input_grad("conv", g, w, config), _methods.weight_grad("conv", g, x, config))
    for form in ("phase", "grouped", "matmul"):
        got = (_methods.input_grad(form, g, w, config), _methods.weight_grad(form, g, x, config))
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("groups", [1, 4, 8])
@pytest.mark.parametrize("channels_last", [False, True])
def test_backward_forms_with_an_empty_batch(groups, channels_last):
    # N == 0: every form gives a zero weight gradient and an empty input gradient (reshapes
    # with -1 cannot infer a size next to a zero, so the forms spell their sizes out).
    x_shape = (0, 5, 5, 8) if channels_last else (0, 8, 5, 5)
    w_shape = (8, 2, 4, 4)
    config = config_of(x_shape, w_shape, 2, 1, 0, groups, 1, channels_last)
    x, w = jnp.zeros(x_shape), jnp.ones(w_shape)
    g = jnp.zeros(_methods.forward("dilated", x, w, config).shape)
    for form in _methods.INPUT_GRADS:
        assert _methods.input_grad(form, g, w, config).shape == x_shape
        dw = _methods.weight_grad(form, g, x, config)
        assert dw.shape == w_shape and not np.any(dw)


@pytest.mark.parametrize("method", LOWERINGS)
def test_methods_under_vmap_and_second_order(method):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 2, 4, 5, 5)))
    w = jnp.asarray(rng.standard_normal((4, 1, 3, 4)))
    # "matmul" computes groups == 1 only (an explicit method never falls back).
    kw = dict(
        stride=(2, 3),
        padding=((1, 0), (2, 1)),
        output_padding=(1, 0),
        groups=1 if method == "matmul" else 4,
        method=method,
    )
    f = lambda x, w: jnp.sum(ct.conv_transpose2d(x, w, None, **kw) ** 2)  # noqa: E731
    want = jnp.stack([jax.grad(f, 1)(xi, w) for xi in x])
    np.testing.assert_allclose(jax.vmap(jax.grad(f, 1), (0, None))(x, w), want, rtol=TOL)
    h = jax.hessian(lambda w: f(x[0], w))(w)
    h_ref = jax.hessian(
        lambda w: jnp.sum(ct.conv_transpose2d(x[0], w, None, **dict(kw, method="dilated")) ** 2)
    )(w)
    np.testing.assert_allclose(h, h_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.usefixtures("xla_forms")
def test_auto_picks_from_the_shape():
    def pick(x_shape, w_shape, **kw):
        config = config_of(
            x_shape,
            w_shape,
            kw.get("stride", 2),
            kw.get("padding", 1),
            0,
            kw.get("groups", 1),
            kw.get("dilation", 1),
        )
        return _methods.resolve("auto", config, x_shape, w_shape, np.float32)

    assert pick((8, 128, 32, 32), (128, 1, 4, 4), groups=128)[0] == "depthwise"
    assert pick((2, 8, 5, 5), (8, 4, 3, 3), dilation=2) == ("dilated", "conv", "conv")
    assert pick((64, 512, 4, 4), (512, 256, 4, 4))[0] == "matmul"
    # Strided 3-D: both gradients in the phases.
    assert pick((2, 32, 16, 16, 16), (32, 16, 4, 4, 4)) == ("subpixel", "phase", "phase")
    assert pick((2, 64, 8, 8, 8), (64, 32, 2, 2, 2), padding=0) == ("subpixel", "phase", "phase")
    # ... but an output layer to few channels (C_in > s^d * C_out) keeps dx on the strided
    # convolution (phase dx would stack M^d shifted copies of the cotangent's phases).
    assert pick((2, 32, 16, 16, 16), (32, 2, 4, 4, 4)) == ("subpixel", "conv", "phase")
    # Strided 2-D: the phases when the kernel is a multiple of the stride and the phase
    # grid adds at most 1/16 of the rows (L >= 16 (M - 1)), else im2col + matmul (k3 s2;
    # 8x8 and smaller inputs); 1-D and stride 1: the convolutions (no K^d-times buffer).
    assert pick((64, 128, 16, 16), (128, 64, 4, 4))[1:] == ("phase", "phase")
    assert pick((64, 256, 8, 8), (256, 128, 4, 4))[1:] == ("matmul", "matmul")
    assert pick((64, 256, 16, 15), (256, 128, 4, 4))[1:] == ("matmul", "matmul")
    assert pick((64, 512, 4, 4), (512, 256, 4, 4))[1:] == ("matmul", "matmul")
    assert pick((64, 64, 32, 32), (64, 3, 4, 4))[1:] == ("matmul", "matmul")  # RGB output
    assert pick((8, 256, 3, 3), (256, 128, 2, 2), padding=0)[1:] == ("phase", "phase")
    assert pick((16, 64, 32, 32), (64, 64, 3, 3), stride=1)[1:] == ("conv", "conv")
    assert pick((8, 128, 32, 32), (128, 64, 3, 3)) == ("subpixel", "matmul", "matmul")
    assert pick((16, 256, 1024), (256, 128, 4)) == ("subpixel", "conv", "conv")
    # 1 < groups < C_in: the phase forms batched over the group; with dilation, im2col.
    assert pick((8, 256, 16, 16), (256, 32, 4, 4), groups=8) == ("subpixel", "phase", "phase")
    assert pick((8, 256, 16, 16), (256, 32, 3, 3), groups=8, stride=1, dilation=2) == (
        "subpixel",
        "grouped",
        "grouped",
    )


def test_unknown_method_is_rejected():
    x, w = jnp.ones((1, 2, 3)), jnp.ones((2, 1, 2))
    with pytest.raises(ValueError, match=r"method='fast' must be one of"):
        ct.conv_transpose1d(x, w, method="fast")
    with pytest.raises(TypeError, match=r"method=3 must be one of"):
        ct.conv_transpose1d(x, w, method=3)


@pytest.mark.usefixtures("xla_forms")
@pytest.mark.parametrize(
    "method, kw, reason, able",
    [
        (
            "matmul",
            dict(groups=2),
            "it needs groups == 1 (got groups=2)",
            "'auto', 'dilated', 'subpixel', 'grouped'",
        ),
        (
            "matmul",
            dict(dilation=2, stride=1),
            "it needs dilation == 1 on every axis",
            "'auto', 'dilated', 'subpixel'",
        ),
        (
            "depthwise",
            dict(),
            "it needs groups == C_in > 1 (got groups=1, C_in=4)",
            "'auto', 'dilated', 'subpixel', 'matmul'",
        ),
        (
            "subpixel",
            dict(dilation=2),
            "an axis has both stride > 1 and dilation > 1",
            "'auto', 'dilated'",
        ),
        (
            "depthwise",
            dict(groups=4, dilation=2),
            "an axis has both stride > 1 and dilation > 1",
            "'auto', 'dilated'",
        ),
    ],
)
def test_explicit_method_that_cannot_apply_is_an_error(method, kw, reason, able):
    x, w = jnp.ones((1, 4, 5)), jnp.ones((4, 2 if kw.get("groups", 1) == 1 else 1, 3))
    kw = dict(dict(stride=2), **kw)
    with pytest.raises(ValueError) as info:
        ct.conv_transpose1d(x, w, method=method, **kw)
    message = str(info.value)
    assert message.startswith(f"method={method!r} cannot compute this configuration: ")
    assert reason in message and message.endswith(f"the methods that can are {able}")
    # "auto" and "dilated" compute every configuration.
    want = ct.conv_transpose1d(x, w, method="dilated", **kw)
    np.testing.assert_allclose(ct.conv_transpose1d(x, w, **kw), want, rtol=1e-12)


@pytest.mark.parametrize("block", [(2,), (2, 3), (1, 2, 2)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_depth_to_space_contract(block, channels_last):
    """The phase interleave the zero-free lowerings share, against its stated contract:
    position ``J*b + r`` of the output is phase ``r`` (channel-major ``(*block, C)``) of row J."""
    from convt_jax import _geometry

    n, c = len(block), 3
    rows = (4, 3, 2)[:n]
    rng = np.random.default_rng(n)
    depth = rng.standard_normal((2, *rows, int(np.prod(block)) * c))  # channels last
    want = np.zeros((2, *(j * b for j, b in zip(rows, block, strict=True)), c))
    for j in np.ndindex(*rows):
        for r_flat, r in enumerate(np.ndindex(*block)):
            pos = tuple(jj * b + rr for jj, b, rr in zip(j, block, r, strict=True))
            want[(slice(None), *pos)] = depth[(slice(None), *j)][:, r_flat * c : (r_flat + 1) * c]
    x = depth if channels_last else np.moveaxis(depth, -1, 1)
    got = _geometry.depth_to_space(jnp.asarray(x), block, channels_last=channels_last)
    np.testing.assert_array_equal(got if channels_last else np.moveaxis(got, 1, -1), want)
    back = _geometry.space_to_depth(got, block, channels_last=channels_last)
    np.testing.assert_array_equal(back, x)
