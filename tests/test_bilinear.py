"""ct.nn.init.bilinear: FCN's fixed bilinear-upsampling kernel is bilinear interpolation."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import convt_jax as ct


def _layer_settings(factor):
    return 2 * factor - factor % 2, factor, math.ceil((factor - 1) / 2)


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("n", [1, 2])
def test_interior_is_bilinear_interpolation(rng, factor, n):
    k, s, p = _layer_settings(factor)
    c = 3
    spatial = (7, 6)[:n]
    x = rng.standard_normal((2, c, *spatial))
    w = ct.nn.init.bilinear(None, (c, c) + (k,) * n, jnp.float64)
    y = ct.conv_transpose(x, w, stride=s, padding=p)
    out = tuple(d * s for d in spatial)
    assert y.shape == (2, c) + out
    want = jax.image.resize(x, (2, c) + out, "linear")  # half-pixel centres
    inner = (Ellipsis,) + (slice(factor, -factor),) * n  # away from the border
    np.testing.assert_allclose(y[inner], want[inner], rtol=1e-12, atol=1e-12)
    # the depthwise form (groups=C) gives the same layer
    wd = ct.nn.init.bilinear(None, (c, 1) + (k,) * n, jnp.float64)
    yd = ct.conv_transpose(x, wd, stride=s, padding=p, groups=c)
    np.testing.assert_allclose(yd, y, rtol=1e-12, atol=1e-12)


def test_explicit_formula_and_structure():
    w = np.asarray(ct.nn.init.bilinear(jax.random.key(0), (4, 4, 4, 3), jnp.float64))
    # per axis: 1 - |k - c| / f with f = ceil(K / 2), c = f - 1 (odd K) or f - 0.5 (even K)
    f4, f3 = 2, 2
    a = 1 - np.abs(np.arange(4) - (f4 - 0.5)) / f4
    b = 1 - np.abs(np.arange(3) - (f3 - 1)) / f3
    for i in range(4):
        for j in range(4):
            np.testing.assert_array_equal(w[i, j], np.outer(a, b) if i == j else 0.0)
    # interpolation weights of each output phase sum to 1 (a constant stays constant)
    x = jnp.ones((1, 1, 6))
    y = ct.conv_transpose1d(x, ct.nn.init.bilinear(None, (1, 1, 4)), stride=2, padding=1)
    np.testing.assert_allclose(y[..., 1:-1], 1.0, rtol=1e-6)


def test_dtype_and_as_a_layer_weight():
    layer = ct.nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False, key=jax.random.key(0))
    layer = layer.replace(weight=ct.nn.init.bilinear(None, layer.weight.shape))
    assert layer.weight.dtype == jnp.float32
    assert ct.nn.init.bilinear(None, (1, 1, 4), jnp.bfloat16).dtype == jnp.bfloat16
    x = jnp.arange(16.0).reshape(1, 1, 4, 4).repeat(3, axis=1)
    y = layer(x)
    want = jax.image.resize(x, (1, 3, 8, 8), "linear")
    np.testing.assert_allclose(y[..., 2:-2, 2:-2], want[..., 2:-2, 2:-2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape, exc, match",
    [
        ((3, 2, 4), ValueError, r"C_out // groups must equal C_in=3 .* or 1"),
        ((3, 3), ValueError, "rank >= 3"),
        ((3, 3, 0), ValueError, "every size >= 1"),
        ("3x3", TypeError, "must be a tuple of ints"),
    ],
)
def test_bad_shapes(shape, exc, match):
    with pytest.raises(exc, match=match):
        ct.nn.init.bilinear(None, shape)


def test_bad_dtype():
    with pytest.raises(TypeError, match="dtype=.*int32.* floating or complex"):
        ct.nn.init.bilinear(None, (1, 1, 4), jnp.int32)
