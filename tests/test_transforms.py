"""Transforms: jit, vmap, grad, jvp, hessian, checkpoint; no retrace for a repeated
configuration."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads

import convt_jax as ct
from convt_jax import _op

TOL = 1e-10
KW = dict(stride=(2, 1), padding=((1, 0), (0, 2)), output_padding=(1, 0), groups=2, dilation=(1, 2))


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 4, 5, 4)))
    w = jnp.asarray(rng.standard_normal((4, 3, 3, 2)))
    b = jnp.asarray(rng.standard_normal(6))
    return x, w, b


def f(x, w, b):
    return ct.conv_transpose2d(x, w, b, **KW)


def test_jit_equals_eager(arrays):
    eager = f(*arrays)
    jitted = jax.jit(f)(*arrays)
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jitted))


def test_no_retrace_for_repeated_configuration(arrays):
    x, w, b = arrays
    kw = dict(stride=3, padding=((2, 1), (0, 1)), output_padding=(1, 2), groups=2, dilation=1)
    y1 = ct.conv_transpose2d(x, w, b, **kw)
    n = _op._forward._cache_size()
    assert n >= 1
    y2 = ct.conv_transpose2d(x + 1, w, b, **kw)
    # Equivalent spellings of the same settings hit the same cache entry.
    ct.conv_transpose2d(
        x,
        w,
        b,
        stride=[3, 3],
        padding=[(2, 1), [0, 1]],
        output_padding=(np.int64(1), 2),
        groups=np.int32(2),
        dilation=(1, 1),
    )
    assert _op._forward._cache_size() == n
    ct.conv_transpose2d(x, w, b, **dict(kw, stride=4))  # a new configuration does compile
    assert _op._forward._cache_size() == n + 1
    assert not np.allclose(np.asarray(y1), np.asarray(y2))
    user_traces = []

    @jax.jit
    def g(x):
        user_traces.append(1)
        return ct.conv_transpose2d(x, w, b, **kw)

    g(x)
    g(x * 2)
    assert len(user_traces) == 1


def test_vmap_over_input_weight_and_both(arrays):
    x, w, b = arrays
    xs = jnp.stack([x, 2 * x, -x])
    ws = jnp.stack([w, w * 0.5, w + 1])
    want_x = jnp.stack([f(xi, w, b) for xi in xs])
    want_w = jnp.stack([f(x, wi, b) for wi in ws])
    want_xw = jnp.stack([f(xi, wi, b) for xi, wi in zip(xs, ws, strict=True)])
    np.testing.assert_allclose(jax.vmap(f, (0, None, None))(xs, w, b), want_x, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(jax.vmap(f, (None, 0, None))(x, ws, b), want_w, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(jax.vmap(f, (0, 0, None))(xs, ws, b), want_xw, rtol=TOL, atol=TOL)
    # vmap over a non-leading axis, and nested vmap for unbatched inputs
    np.testing.assert_allclose(
        jax.vmap(f, (1, None, None), 2)(jnp.moveaxis(xs, 0, 1), w, b),
        jnp.moveaxis(want_x, 0, 2),
        rtol=TOL,
        atol=TOL,
    )
    unbatched = jax.vmap(lambda xi: ct.conv_transpose2d(xi, w, b, **KW))(x)
    np.testing.assert_allclose(unbatched, f(x, w, b), rtol=TOL, atol=TOL)


def _torch_grads(x, w, b, ct_y):
    tx, tw, tb = (torch.tensor(np.asarray(a), requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.conv_transpose2d(tx, tw, tb, (2, 1), (1, 0), (1, 0), 2, (1, 2))
    y.backward(torch.from_numpy(np.array(ct_y)))
    return tx.grad.numpy(), tw.grad.numpy(), tb.grad.numpy()


def test_grad_matches_pytorch(arrays):
    x, w, b = arrays
    kw = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))
    y, vjp = jax.vjp(lambda x, w, b: ct.conv_transpose2d(x, w, b, **kw), x, w, b)
    cot = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape))
    for got, want in zip(vjp(cot), _torch_grads(x, w, b, cot), strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_check_grads_order2(arrays, argnum):
    args = list(arrays)

    def g(a):
        new = list(args)
        new[argnum] = a
        return f(*new)

    check_grads(g, (args[argnum],), order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_jvp_linearize_jacobians_hessian(arrays):
    x, w, b = arrays
    x, w = x[:1, :, :3, :2], w[:, :, :2, :2]
    dx = jnp.ones_like(x)
    y, ty = jax.jvp(lambda x: f(x, w, b), (x,), (dx,))
    np.testing.assert_allclose(ty, f(dx, w, jnp.zeros_like(b)), rtol=TOL, atol=TOL)
    _, lin = jax.linearize(lambda w: f(x, w, b), w)
    np.testing.assert_allclose(lin(w), f(x, w, jnp.zeros_like(b)), rtol=TOL, atol=TOL)
    jf = jax.jacfwd(lambda w: f(x, w, b))(w)
    jr = jax.jacrev(lambda w: f(x, w, b))(w)
    np.testing.assert_allclose(jf, jr, rtol=TOL, atol=TOL)

    def loss(x, w):
        return jnp.sum(f(x, w, b) ** 2)

    h = jax.hessian(loss, argnums=(0, 1))(x, w)
    # d2/dx dw of sum(y^2): compare one block with a finite difference of the gradient.
    eps = 1e-6
    e = jnp.zeros_like(w).at[0, 0, 0, 0].set(1.0)
    fd = (jax.grad(loss)(x, w + eps * e) - jax.grad(loss)(x, w - eps * e)) / (2 * eps)
    np.testing.assert_allclose(h[0][1][..., 0, 0, 0, 0], fd, rtol=1e-5, atol=1e-6)


def test_checkpoint_and_grad_under_jit(arrays):
    x, w, b = arrays

    def loss(x, w, b):
        return jnp.sum(jnp.sin(f(x, w, b)))

    g1 = jax.grad(loss, argnums=(0, 1, 2))(x, w, b)
    g2 = jax.jit(jax.grad(jax.checkpoint(loss), argnums=(0, 1, 2)))(x, w, b)
    for a, c in zip(g1, g2, strict=True):
        np.testing.assert_allclose(a, c, rtol=TOL, atol=TOL)


def test_vmap_of_grad(arrays):
    x, w, b = arrays
    xs = jnp.stack([x, -2 * x])

    def loss(x, w):
        return jnp.sum(f(x, w, b) ** 2)

    got = jax.vmap(jax.grad(loss, argnums=1), (0, None))(xs, w)
    want = jnp.stack([jax.grad(loss, argnums=1)(xi, w) for xi in xs])
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
