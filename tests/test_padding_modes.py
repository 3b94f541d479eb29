"""``padding_mode``: each mode is the exact adjoint of PyTorch's ``Conv*d(padding_mode=...)``.

For ``conv(u) = conv_nd(F.pad(u, padding, mode), w)`` (PyTorch's padded forward
convolution with the *same* weight), ``<conv_transpose(x), y> == <x, conv(y)>``
for every ``y``; and elementwise, ``conv_transpose(x)`` is PyTorch's own
``autograd`` vector-Jacobian product of ``conv`` at cotangent ``x``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

import convt_jax as ct

MODES = ["circular", "reflect", "replicate"]
TOL = dict(rtol=1e-10, atol=1e-10)

# (input spatial, C_in, C_out, kernel, stride, padding pairs, output_padding, dilation, groups)
CONFIGS = [
    ((6,), 2, 3, (3,), (2,), ((1, 1),), (1,), (1,), 1),
    ((5,), 4, 2, (4,), (1,), ((2, 3),), (0,), (2,), 2),  # asymmetric, dilated
    ((4,), 1, 1, (3,), (3,), ((2, 2),), (2,), (1,), 1),
    ((4, 5), 2, 4, (3, 4), (2, 1), ((1, 1), (2, 1)), (1, 0), (1, 1), 2),
    ((3, 4), 3, 2, (2, 3), (1, 2), ((1, 0), (0, 2)), (0, 1), (3, 1), 1),  # op 0 < max(s, d)
    ((5, 3), 2, 2, (3, 3), (1, 1), ((0, 0), (1, 1)), (2, 0), (3, 1), 1),  # op >= stride (dilation)
    ((2, 3, 4), 2, 4, (3, 2, 3), (2, 2, 1), ((1, 1), (1, 0), (2, 1)), (1, 1, 0), (1, 1, 1), 2),
]
IDS = [f"{len(c[0])}d-{i}" for i, c in enumerate(CONFIGS)]


def _torch_conv(u, w, stride, pads, dilation, groups, mode, out_len):
    """PyTorch's forward convolution with ``padding_mode=mode`` (cropped to the input length)."""
    n = w.ndim - 2
    flat = [p for lo, hi in reversed(pads) for p in (lo, hi)]
    y = getattr(F, f"conv{n}d")(
        F.pad(u, flat, mode=mode),
        torch.as_tensor(w),
        stride=stride,
        dilation=dilation,
        groups=groups,
    )
    # With output_padding >= stride (allowed by dilation) the forward convolution
    # sees a longer input and gives extra outputs; the adjoint is with those dropped.
    return y[(Ellipsis, *[slice(0, L) for L in out_len])]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_adjoint_of_torch_padded_conv(rng, cfg, mode):
    spatial, c_in, c_out, kernel, stride, pads, opad, dilation, groups = cfg
    x = rng.standard_normal((2, c_in, *spatial))
    w = rng.standard_normal((c_in, c_out // groups, *kernel))
    y = np.asarray(
        ct.conv_transpose(
            x, w, None, stride, pads, opad, groups=groups, dilation=dilation, padding_mode=mode
        )
    )
    assert y.shape == ct.conv_transpose_output_shape(
        x.shape, w.shape, stride, pads, opad, groups=groups, dilation=dilation
    )

    # <conv_transpose(x), r> == <x, conv(r)>
    r = rng.standard_normal(y.shape)
    conv_r = _torch_conv(torch.as_tensor(r), w, stride, pads, dilation, groups, mode, spatial)
    lhs, rhs = np.vdot(y, r), np.vdot(x, conv_r.numpy())
    np.testing.assert_allclose(lhs, rhs, rtol=1e-11, atol=1e-10)

    # Elementwise: PyTorch's autograd transpose of its padded convolution.
    u = torch.zeros(y.shape, dtype=torch.float64, requires_grad=True)
    _torch_conv(u, w, stride, pads, dilation, groups, mode, spatial).backward(torch.as_tensor(x))
    np.testing.assert_allclose(y, u.grad.numpy(), **TOL)


@pytest.mark.parametrize("mode", MODES)
def test_layouts_bias_output_size_and_conv_mode(rng, mode):
    """channels_last, unbatched, bias, output_size and conv_mode agree with the plain call."""
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal((2,))
    kw = dict(stride=2, padding=1, padding_mode=mode)
    base = ct.conv_transpose2d(x, w, b, output_padding=(1, 0), **kw)
    cl = ct.conv_transpose2d(
        np.moveaxis(x, 1, -1), w, b, output_padding=(1, 0), channels_last=True, **kw
    )
    np.testing.assert_allclose(np.moveaxis(np.asarray(cl), -1, 1), base, **TOL)
    np.testing.assert_allclose(
        ct.conv_transpose2d(x[1], w, b, output_padding=(1, 0), **kw), base[1], **TOL
    )
    np.testing.assert_allclose(ct.conv_transpose2d(x, w, b, output_size=(10, 7), **kw), base, **TOL)
    # conv_mode="convolution" is cross-correlation with the flipped kernel.
    flipped = ct.conv_transpose2d(
        x, w[:, :, ::-1, ::-1], b, output_padding=(1, 0), conv_mode="convolution", **kw
    )
    np.testing.assert_allclose(flipped, base, **TOL)


@pytest.mark.parametrize("mode", MODES)
def test_bias_added_once_per_output_position(rng, mode):
    """The adjoint is linear; the bias is added once per output position, as for zeros."""
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal((2,))
    kw = dict(stride=2, padding=1, output_padding=(1, 0), padding_mode=mode)
    with_bias = ct.conv_transpose2d(x, w, b, **kw)
    without = ct.conv_transpose2d(x, w, None, **kw)
    np.testing.assert_allclose(
        with_bias - without, np.broadcast_to(b[:, None, None], with_bias.shape), **TOL
    )


_NUMPY_MODE = {"circular": "wrap", "reflect": "reflect", "replicate": "edge"}


@pytest.mark.parametrize("mode", MODES)
def test_same_padding_crops_where_negative(rng, mode):
    """``padding="same"`` with kernel < stride has a negative end padding: a crop in the forward."""
    x = rng.standard_normal((1, 2, 4))
    w = rng.standard_normal((2, 3, 2))
    stride = 3
    y = ct.conv_transpose1d(x, w, None, stride, "same", padding_mode=mode)
    assert y.shape == (1, 3, 12)
    # "same" for K=2, s=3 is the crop (0, -1) (jax.lax.conv_transpose's split): the
    # forward convolution drops its input's last position instead of padding.
    lo, hi = 0, -1

    def conv(u):  # pad the start with the mode, crop -hi at the end, convolve
        padded = jnp.pad(u, ((0, 0), (0, 0), (lo, 0)), mode=_NUMPY_MODE[mode])
        u = padded[..., : u.shape[-1] + lo + hi]
        return jax.lax.conv_general_dilated(u, jnp.asarray(w), (stride,), "VALID")

    _, vjp = jax.vjp(conv, jnp.zeros(y.shape))
    np.testing.assert_allclose(y, vjp(jnp.asarray(x))[0], **TOL)


@pytest.mark.parametrize("mode", MODES)
def test_transformations(rng, mode):
    x = jnp.asarray(rng.standard_normal((2, 2, 3, 3)))
    w = jnp.asarray(rng.standard_normal((2, 2, 3, 2)))

    def f(x, w):
        return ct.conv_transpose2d(x, w, None, (2, 1), 1, (1, 0), padding_mode=mode)

    eager = f(x, w)
    np.testing.assert_allclose(jax.jit(f)(x, w), eager, **TOL)
    np.testing.assert_allclose(jax.vmap(f, in_axes=(0, None))(x[:, None], w)[:, 0], eager, **TOL)
    check_grads(f, (x, w), order=1, modes=("fwd", "rev"))
    # Linear in x: the JVP in x is the function of the tangent.
    _, tangent = jax.jvp(lambda x: f(x, w), (x,), (x * 0.5,))
    np.testing.assert_allclose(tangent, 0.5 * eager, **TOL)


def test_zeros_is_the_default(rng):
    x, w = rng.standard_normal((1, 2, 5)), rng.standard_normal((2, 2, 3))
    np.testing.assert_array_equal(
        ct.conv_transpose1d(x, w, None, 2, 1, padding_mode="zeros"),
        ct.conv_transpose1d(x, w, None, 2, 1),
    )


def test_padding_mode_is_keyword_only():
    x, w = np.ones((1, 1, 3)), np.ones((1, 1, 2))
    with pytest.raises(TypeError):
        ct.conv_transpose1d(
            x, w, None, 1, 0, 0, 1, 1, None, False, "cross_correlation", None, None, "reflect"
        )


@pytest.mark.parametrize(
    "bad,exc,match",
    [
        (
            1,
            TypeError,
            r"padding_mode=1 must be a string, one of \('zeros', 'circular', "
            r"'reflect', 'replicate'\)",
        ),
        (None, TypeError, "padding_mode=None must be a string"),
        ("Reflect", ValueError, r"padding_mode='Reflect' must be one of \('zeros'"),
        ("symmetric", ValueError, r"padding_mode='symmetric' must be one of"),
    ],
)
def test_bad_padding_mode(bad, exc, match):
    with pytest.raises(exc, match=match):
        ct.conv_transpose1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), padding=1, padding_mode=bad)
    with pytest.raises(exc, match=match):
        ct.nn.ConvTranspose1d(1, 1, 2, padding_mode=bad, key=jax.random.key(0))


def test_padding_too_large_for_mode():
    x, w = np.ones((1, 1, 2)), np.ones((1, 1, 4))  # output size 5 - 2*lo
    # reflect: lo, hi < output size (PyTorch's F.pad rule)
    ct.conv_transpose1d(x, w, padding=1, padding_mode="reflect")  # 3 > 1
    with pytest.raises(
        ValueError,
        match=r"padding=\(\(2, 2\),\) must be smaller than the output "
        r"size \(1,\) on every axis for padding_mode='reflect'",
    ):
        ct.conv_transpose1d(x, w, padding=2, padding_mode="reflect")
    # circular: lo, hi <= output size
    ct.conv_transpose1d(x, w, padding=((2, 1),), padding_mode="circular")  # 2 <= 2
    with pytest.raises(
        ValueError,
        match=r"padding=\(\(2, 2\),\) must be at most the output "
        r"size \(1,\) on every axis for padding_mode='circular'",
    ):
        ct.conv_transpose1d(x, w, padding=2, padding_mode="circular")
    # replicate: any padding that leaves an output
    ct.conv_transpose1d(x, w, padding=2, padding_mode="replicate")
    # The same rules as PyTorch's F.pad, which the forward convolution uses.
    for mode, size, pad, ok in [
        ("reflect", 3, 2, True),
        ("reflect", 3, 3, False),
        ("circular", 3, 3, True),
        ("circular", 3, 4, False),
    ]:
        u = torch.zeros(1, 1, size)
        if ok:
            F.pad(u, (pad, pad), mode=mode)
        else:
            with pytest.raises(RuntimeError):
                F.pad(u, (pad, pad), mode=mode)


def test_error_raised_at_trace_time():
    @jax.jit
    def f(x):
        return ct.conv_transpose1d(x, jnp.ones((1, 1, 4)), padding=2, padding_mode="reflect")

    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        f(jnp.ones((1, 1, 2)))
