"""The hand-written gradient rules against JAX's autodiff of the core lowering and PyTorch."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads
from reference import call_args, config_of, configs, make_arrays, torch_forward

import convt_jax as ct
from convt_jax import _gradients, _lowering

TOL = 1e-10


def _config(cfg, conv_mode="cross_correlation"):
    x_shape = (cfg["batch"], cfg["c_in"], *cfg["spatial"])
    if cfg["channels_last"]:
        x_shape = (x_shape[0], *x_shape[2:], x_shape[1])
    w_shape = (cfg["c_in"], cfg["c_out"] // cfg["groups"], *cfg["kernel"])
    return config_of(
        x_shape,
        w_shape,
        cfg["stride"],
        cfg["pads"],
        cfg["output_padding"],
        cfg["groups"],
        cfg["dilation"],
        cfg["channels_last"],
        conv_mode,
    )


def _layout(cfg, x):
    return jnp.moveaxis(x, 1, -1) if cfg["channels_last"] else jnp.asarray(x)


@pytest.mark.slow
@pytest.mark.long
@settings(max_examples=50)
@given(cfg=configs(), flip=st.booleans())
def test_rules_match_autodiff_of_dilated_lowering(cfg, flip):
    """dx, dw, db against jax.vjp of the lhs-dilated lowering (JAX's own transpose rules)."""
    x, w, b = make_arrays(cfg)
    config = _config(cfg, "convolution" if flip else "cross_correlation")
    xl = _layout(cfg, x)
    y_shape = jax.eval_shape(lambda x, w: _lowering.dilated(x, w, config), xl, w).shape
    g = jnp.asarray(np.random.default_rng(cfg["seed"] + 1).standard_normal(y_shape))
    c_ax = -1 if cfg["channels_last"] else 1
    shape = [1] * len(y_shape)
    shape[c_ax] = -1

    @jax.jit
    def both(x, w, g):
        y, vjp = jax.vjp(lambda x, w: _lowering.dilated(x, w, config), x, w)
        _, vjp_b = jax.vjp(lambda b: y + b.reshape(shape), jnp.zeros(y.shape[c_ax]))
        # db[co] = sum over batch and spatial axes of g: y depends on b via y[n, co, o] += b[co].
        db = g.sum(axis=tuple(a for a in range(g.ndim) if a != c_ax % g.ndim))
        ours = (_gradients.input_grad(g, w, config), _gradients.weight_grad(g, x, config), db)
        return ours, (*vjp(g), vjp_b(g)[0])

    ours, theirs = both(xl, jnp.asarray(w), g)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def _torch_grads(cfg, x, w, b, g):
    """PyTorch autograd through the channels-first batched reference."""
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    y = torch_forward(
        tx,
        tw,
        tb,
        cfg["stride"],
        cfg["pads"],
        cfg["output_padding"],
        cfg["groups"],
        cfg["dilation"],
    )
    y.backward(torch.from_numpy(g))
    return tx.grad.numpy(), tw.grad.numpy(), None if tb is None else tb.grad.numpy()


@settings(max_examples=100)
@given(cfg=configs())
def test_public_gradients_match_pytorch(cfg):
    x, w, b = make_arrays(cfg)
    xin, kwargs = call_args(cfg, x)
    args = (xin, w) if b is None else (xin, w, b)
    f = lambda *a: ct.conv_transpose(*a, **kwargs)  # noqa: E731
    g = np.random.default_rng(cfg["seed"] + 2).standard_normal(jax.eval_shape(f, *args).shape)
    grads = jax.jit(lambda g, *a: jax.vjp(f, *a)[1](g))(jnp.asarray(g), *args)
    # Bring the cotangent to the channels-first batched layout of the torch reference.
    g_ref = np.moveaxis(g, -1, 1 if cfg["batched"] else 0) if cfg["channels_last"] else g
    x_ref = x if cfg["batched"] else x[:1]
    want = _torch_grads(cfg, x_ref, w, b, g_ref if cfg["batched"] else g_ref[None])
    want_dx = want[0] if cfg["batched"] else want[0][0]
    if cfg["channels_last"]:
        want_dx = np.moveaxis(want_dx, 1 if cfg["batched"] else 0, -1)
    np.testing.assert_allclose(grads[0], want_dx, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(grads[1], want[1], rtol=TOL, atol=TOL)
    if b is not None:
        np.testing.assert_allclose(grads[2], want[2], rtol=TOL, atol=TOL)


CASES = [
    dict(stride=2, padding=1, output_padding=1, groups=1, dilation=1),
    dict(stride=(3, 1), padding=((2, 0), (1, 3)), output_padding=(2, 0), groups=2, dilation=(1, 2)),
    dict(stride=1, padding="same", groups=2, dilation=2, conv_mode="convolution"),
    dict(stride=2, padding=0, channels_last=True, groups=2),
]


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_check_grads_each_argument(kw, argnum):
    rng = np.random.default_rng(argnum)
    shape = (2, 3, 3, 4) if kw.get("channels_last") else (2, 4, 3, 3)
    args = [
        jnp.asarray(rng.standard_normal(shape)),
        jnp.asarray(rng.standard_normal((4, 2, 3, 2))),
        jnp.asarray(rng.standard_normal(2 * kw["groups"])),
    ]

    def f(a):
        new = list(args)
        new[argnum] = a
        return ct.conv_transpose2d(*new, **kw)

    check_grads(f, (args[argnum],), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.slow
@settings(max_examples=25)
@given(cfg=configs())
def test_adjoint_identity(cfg):
    """<conv_transpose(x, w), y> == <x, conv(y, w)> with the matching forward convolution."""
    x, w, _ = make_arrays(cfg)
    nd = len(cfg["spatial"])
    y_t = ct.conv_transpose(
        x,
        w,
        None,
        cfg["stride"],
        cfg["pads"],
        cfg["output_padding"],
        groups=cfg["groups"],
        dilation=cfg["dilation"],
    )
    y = np.random.default_rng(cfg["seed"] + 3).standard_normal(y_t.shape)
    # The forward convolution, written independently with XLA's own convolution: pad y by
    # (lo, hi - output_padding) and correlate with w read as (O=C_in, I=C_out/g, *K).
    spatial = "DHW"[3 - nd :]
    conv = jax.lax.conv_general_dilated(
        jnp.asarray(y),
        jnp.asarray(w),
        cfg["stride"],
        [(lo, hi - a) for (lo, hi), a in zip(cfg["pads"], cfg["output_padding"], strict=True)],
        rhs_dilation=cfg["dilation"],
        feature_group_count=cfg["groups"],
        dimension_numbers=("NC" + spatial, "OI" + spatial, "NC" + spatial),
    )
    assert conv.shape == x.shape
    lhs = float(jnp.vdot(y_t, y))
    rhs = float(jnp.vdot(x, conv))
    assert abs(lhs - rhs) <= 1e-9 * max(1.0, abs(lhs))
    # Where PyTorch's conv takes the padding (symmetric, output_padding < stride), it agrees.
    if all(lo == hi for lo, hi in cfg["pads"]) and all(
        a < s for a, s in zip(cfg["output_padding"], cfg["stride"], strict=True)
    ):
        tconv = {
            1: torch.nn.functional.conv1d,
            2: torch.nn.functional.conv2d,
            3: torch.nn.functional.conv3d,
        }[nd]
        want = tconv(
            torch.from_numpy(y),
            torch.from_numpy(w),
            None,
            cfg["stride"],
            tuple(lo for lo, _ in cfg["pads"]),
            cfg["dilation"],
            cfg["groups"],
        )
        np.testing.assert_allclose(np.asarray(conv), want.numpy(), rtol=TOL, atol=TOL)


def _conv_eqns(jaxpr):
    """All conv_general_dilated equations, recursing into sub-jaxprs."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            found.append(eqn)
        for param in eqn.params.values():
            inner = getattr(param, "jaxpr", None)
            if inner is not None and hasattr(inner, "eqns"):
                found += _conv_eqns(inner)
            elif hasattr(param, "eqns"):
                found += _conv_eqns(param)
    return found


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_reverse_mode_has_no_lhs_dilated_convolution(nd, channels_last):
    x = jnp.ones((2, 4, *(5,) * nd))
    if channels_last:
        x = jnp.moveaxis(x, 1, -1)
    w = jnp.ones((4, 3, *(4,) * nd))

    def loss(x, w):
        return jnp.sum(
            ct.conv_transpose(
                x, w, None, 2, 1, 1, groups=1, dilation=2, channels_last=channels_last
            )
            ** 2
        )

    # The gradient rules are primitives lowered where the program is lowered: read the
    # pullback's lowered program (the forward is not in it) for its convolutions.
    _, pull = jax.vjp(
        lambda x, w: ct.conv_transpose(
            x, w, None, 2, 1, 1, groups=1, dilation=2, channels_last=channels_last
        ),
        x,
        w,
    )
    g = jnp.ones(
        jax.eval_shape(
            lambda x, w: ct.conv_transpose(
                x, w, None, 2, 1, 1, groups=1, dilation=2, channels_last=channels_last
            ),
            x,
            w,
        ).shape
    )
    text = jax.jit(pull).lower(g).as_text()
    convs = [line for line in text.splitlines() if "stablehlo.convolution" in line]
    assert len(convs) >= 2, text  # the dx and dw rules
    for line in convs:
        assert "lhs_dilate" not in line or re.search(r"lhs_dilate = \[1(, 1)*\]", line), line
    jax.grad(loss, argnums=(0, 1))(x, w)
    # Whereas JAX's autodiff of the lhs-dilated lowering does use one (the slow path).
    config = config_of(x.shape, w.shape, 2, 1, 1, 1, 2, channels_last)
    auto = jax.make_jaxpr(
        jax.grad(lambda x, w: jnp.sum(_lowering.dilated(x, w, config) ** 2), argnums=(0, 1))
    )(x, w)
    assert any(any(v > 1 for v in e.params["lhs_dilation"]) for e in _conv_eqns(auto.jaxpr))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_gradients_with_preferred_element_type(dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 32, 5, 5))
    w = rng.standard_normal((32, 4, 4, 4)) / 8

    def loss(x, w, **kw):
        return jnp.sum(ct.conv_transpose2d(x, w, None, 2, 1, **kw).astype(jnp.float32) ** 2)

    gx, gw = jax.grad(loss, argnums=(0, 1))(
        jnp.asarray(x, dtype), jnp.asarray(w, dtype), preferred_element_type=jnp.float32
    )
    assert gx.dtype == dtype and gw.dtype == dtype
    ex, ew = jax.grad(loss, argnums=(0, 1))(x, w)
    rel = {jnp.float16: 2e-2, jnp.bfloat16: 8e-2}[dtype]
    for got, want in ((gx, ex), (gw, ew)):
        err = np.abs(np.asarray(got, np.float64) - np.asarray(want))
        assert err.max() <= rel * np.abs(np.asarray(want)).max()


def test_second_order_vmap_and_jit_compose():
    rng = np.random.default_rng(10)
    x = jnp.asarray(rng.standard_normal((3, 2, 2, 4)))
    w = jnp.asarray(rng.standard_normal((2, 2, 3)))

    def loss(w, x):
        return jnp.sum(jnp.tanh(ct.conv_transpose1d(x, w, None, 2, 1, 1)))

    per_example = jax.jit(jax.vmap(jax.grad(loss), (None, 0)))(w, x)
    want = jnp.stack([jax.grad(loss)(w, xi) for xi in x])
    np.testing.assert_allclose(per_example, want, rtol=TOL, atol=TOL)
    hvp = jax.jvp(jax.grad(loss), (w, x[0]), (jnp.ones_like(w), jnp.zeros_like(x[0])))[1]
    h = jax.hessian(loss)(w, x[0])
    np.testing.assert_allclose(
        hvp, jnp.tensordot(h, jnp.ones_like(w), w.ndim), rtol=1e-8, atol=1e-10
    )
