"""Initialisers for transposed-convolution weights (PyTorch layout ``(C_in, C_out // groups, *K)``).

Every initialiser takes ``(key, shape, dtype)`` first, like
``jax.nn.initializers``, and returns a ``jax.Array``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from .._args import (
    at_least,
    check_bilinear_shape,
    check_dtype,
    check_icnr_kernel,
    floating_dtype,
    int_tuple,
    positive,
)
from .._args import weight_shape as _shape
from ..typing import Stride

__all__ = ["bilinear", "fan_in", "icnr", "pytorch_default", "pytorch_uniform"]


def fan_in(weight_shape: Sequence[int]) -> int:
    """PyTorch's fan-in of a transposed-convolution weight: ``(C_out // groups) * prod(kernel)``.

    PyTorch computes it from ``weight.size(1)`` and the kernel, so for the
    layout ``(C_in, C_out // groups, *K)`` it counts output channels; for a
    regular convolution's ``(C_out, C_in // groups, *K)`` (``ct.nn.Conv*``)
    the same formula counts input channels, as PyTorch's does.

    Args:
      weight_shape: ``(C_in, C_out // groups, *kernel)``.

    Returns:
      ``weight_shape[1] * prod(weight_shape[2:])``.

    Examples:
      >>> import convt_jax as ct
      >>> ct.nn.init.fan_in((16, 8, 4, 4))
      128
    """
    shape = _shape("weight_shape", weight_shape, 3)
    return shape[1] * math.prod(shape[2:])


_weight_fan_in = fan_in  # ``pytorch_uniform`` has a keyword of the same name


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: Any, bound: float) -> jax.Array:
    dt = jnp.dtype(dtype)
    if jnp.issubdtype(dt, jnp.complexfloating):
        kr, ki = jax.random.split(key)
        real = jnp.finfo(dt).dtype
        return (
            jax.random.uniform(kr, shape, real, -bound, bound)
            + 1j * jax.random.uniform(ki, shape, real, -bound, bound)
        ).astype(dt)
    return jax.random.uniform(key, shape, dt, -bound, bound)


def pytorch_uniform(
    key: jax.Array,
    shape: Sequence[int],
    dtype: DTypeLike = jnp.float32,
    *,
    fan_in: int | None = None,
) -> jax.Array:
    """Uniform in ``±1/sqrt(fan_in)``: PyTorch's default for convolution weights and biases.

    ``torch.nn.ConvTranspose*d.reset_parameters`` draws the weight with
    ``kaiming_uniform_(a=sqrt(5))`` (bound ``1/sqrt(fan_in)``) and the bias
    uniform in the same bound. Complex dtypes draw the real and imaginary
    parts independently in that bound.

    Args:
      key: a ``jax.random`` key.
      shape: the array shape; without ``fan_in`` it must be a weight shape
        ``(C_in, C_out // groups, *kernel)`` and ``fan_in`` is computed from it.
      dtype: a floating or complex dtype.
      fan_in: keyword-only; the fan-in to use (pass the weight's for a bias).

    Returns:
      An array of ``shape`` and ``dtype``.

    Examples:
      >>> import jax, convt_jax as ct
      >>> w = ct.nn.init.pytorch_uniform(jax.random.key(0), (16, 8, 4, 4))
      >>> bool(abs(w).max() <= 1 / 128 ** 0.5)
      True
    """
    check_dtype("dtype", dtype)
    if fan_in is None:
        shape = _shape("shape", shape, 3)
        fan = _weight_fan_in(shape)
    else:
        shape = _shape("shape", shape, 0)
        fan = positive("fan_in", fan_in)
    return _uniform(key, shape, dtype, 1.0 / math.sqrt(fan))


def pytorch_default(
    key: jax.Array,
    weight_shape: Sequence[int],
    dtype: DTypeLike = jnp.float32,
    *,
    groups: int = 1,
    bias: bool = True,
) -> tuple[jax.Array, jax.Array | None]:
    """The weight and bias ``torch.nn.ConvTranspose*d`` starts with (in distribution).

    Args:
      key: a ``jax.random`` key (split into one for the weight, one for the bias).
      weight_shape: ``(C_in, C_out // groups, *kernel)``.
      dtype: a floating or complex dtype.
      groups: keyword-only; the layer's groups (the bias has
        ``C_out = weight_shape[1] * groups`` entries).
      bias: keyword-only; also draw the bias.

    Returns:
      ``(weight, bias)``, both uniform in ``±1/sqrt(fan_in(weight_shape))``,
      the bias of shape ``(C_out,)`` (``None`` when ``bias=False``).

    Examples:
      >>> import jax, convt_jax as ct
      >>> w, b = ct.nn.init.pytorch_default(jax.random.key(0), (4, 3, 2, 2), groups=2)
      >>> w.shape, b.shape
      ((4, 3, 2, 2), (6,))
    """
    shape = _shape("weight_shape", weight_shape, 3)
    g = positive("groups", groups)
    return _pytorch_weights(key, shape, dtype, shape[1] * g, bias)


def _pytorch_weights(
    key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike, out_channels: int, bias: bool
) -> tuple[jax.Array, jax.Array | None]:
    """:func:`pytorch_default` for any layout whose ``shape[1] * prod(shape[2:])`` is the
    fan-in (a transposed convolution's, and a convolution's ``(C_out, C_in // groups,
    *K)``), with a bias of ``out_channels``."""
    kw, kb = jax.random.split(key)
    w = pytorch_uniform(kw, shape, dtype)
    b = pytorch_uniform(kb, (out_channels,), dtype, fan_in=fan_in(shape)) if bias else None
    return w, b


def icnr(
    key: jax.Array,
    shape: Sequence[int],
    stride: Stride,
    dtype: DTypeLike = jnp.float32,
    *,
    initializer: Callable[..., jax.Array] = pytorch_uniform,
) -> jax.Array:
    """ICNR (Aitken et al. 2017): a checkerboard-free start for a stride-``s`` layer.

    Draws a smaller kernel ``v`` of shape ``(C_in, C_out // groups, *(K - s + 1))``
    with ``initializer`` and returns ``w = box_s * v``, the full convolution
    of ``v`` with an all-ones box of ``s`` taps on every axis. Since the
    transposed convolution with the box kernel and stride ``s`` is exactly
    nearest-neighbour upsampling, the layer starts as *nearest-neighbour
    upsampling followed by a convolution with* ``v``: every one of the
    ``prod(s)`` output phases sums all of ``v``'s taps, so there is no
    checkerboard (a constant input gives a constant output away from the
    border). Assumes ``dilation=1``; works with groups and either ``conv_mode``.

    Args:
      key: a ``jax.random`` key.
      shape: ``(C_in, C_out // groups, *kernel)``, each kernel size ``>= stride``.
      stride: the layer's stride: an int or one int per spatial axis.
      dtype: a floating or complex dtype.
      initializer: keyword-only; ``(key, shape, dtype) -> array`` for ``v``
        (default :func:`pytorch_uniform`, with ``v``'s own fan-in).

    Returns:
      The weight, of ``shape`` and ``dtype``.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> w = ct.nn.init.icnr(jax.random.key(0), (1, 1, 4, 4), stride=2)
      >>> y = ct.conv_transpose2d(jnp.ones((1, 1, 4, 4)), w, stride=2, padding=1)
      >>> bool(jnp.allclose(y[..., 2:-2, 2:-2], y[0, 0, 2, 2]))   # no checkerboard
      True
    """
    shape = _shape("shape", shape, 3)
    n = len(shape) - 2
    strides = int_tuple("stride", stride, n)
    kernel = shape[2:]
    at_least("stride", stride, strides, 1)
    check_icnr_kernel(kernel, strides)
    small = shape[:2] + tuple(k - s + 1 for k, s in zip(kernel, strides, strict=True))
    w = initializer(key, small, dtype)
    for axis, s in enumerate(strides, start=2):
        widths = [(0, 0)] * w.ndim
        copies = []
        for b in range(s):
            widths[axis] = (b, s - 1 - b)
            copies.append(jnp.pad(w, widths))
        w = sum(copies[1:], copies[0])
    return w.astype(dtype)


def _filter_1d(size: int) -> np.ndarray:
    """FCN's ``upsample_filt`` on one axis: a triangle of half-width ``ceil(size / 2)``."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


def bilinear(
    key: jax.Array | None, shape: Sequence[int], dtype: DTypeLike = jnp.float32
) -> jax.Array:
    """The bilinear-upsampling kernel of FCN (Long et al. 2015) for a transposed convolution.

    On every spatial axis of kernel size ``K`` the filter is FCN's
    ``upsample_filt``: ``1 - |k - c| / f`` with ``f = ceil(K / 2)`` and
    ``c = f - 1`` (odd ``K``) or ``f - 0.5`` (even ``K``); the N-d filter is
    the product of the per-axis ones. With ``K = 2*s - s % 2``, ``stride=s``
    and ``padding=ceil((s - 1) / 2)`` (e.g. ``K=4, s=2, padding=1``;
    ``K=8, s=4, padding=2``) the layer is bilinear interpolation by ``s``
    with half-pixel centres (``jax.image.resize(..., "linear")``) away from
    the border.

    Channels are upsampled independently, as FCN's ``get_upsampling_weight``:

    - ``shape = (C, C, *K)`` (``groups=1``): ``weight[c, c]`` is the filter,
      every off-diagonal ``weight[c, d]`` is zero;
    - ``shape = (C, 1, *K)`` (depthwise, ``groups=C``): every ``weight[c, 0]``
      is the filter.

    Args:
      key: unused (the kernel is deterministic); accepted, and may be ``None``,
        so the function has an initialiser's ``(key, shape, dtype)`` signature.
      shape: ``(C_in, C_out // groups, *kernel)`` with ``C_out // groups`` equal
        to ``C_in`` or to 1.
      dtype: a floating or complex dtype.

    Returns:
      The weight, of ``shape`` and ``dtype``.

    Raises:
      ValueError: a shape with rank < 3, a size < 1, or neither
        ``(C, C, *K)`` nor ``(C, 1, *K)``.
      TypeError: a shape that is not a tuple of ints, or a dtype that is
        not floating or complex.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w = ct.nn.init.bilinear(None, (1, 1, 4))
      >>> w[0, 0]
      Array([0.25, 0.75, 0.75, 0.25], dtype=float32)
      >>> x = jnp.array([[[0.0, 1.0, 2.0, 3.0]]])
      >>> ct.conv_transpose1d(x, w, stride=2, padding=1)[0, 0, 1:-1]    # interior
      Array([0.25, 0.75, 1.25, 1.75, 2.25, 2.75], dtype=float32)
    """
    del key
    dims = _shape("shape", shape, 3)
    check_bilinear_shape(dims)
    dt = floating_dtype("dtype", dtype)
    c_in, c_out = dims[:2]
    filt = np.ones((), np.float64)
    for k in dims[2:]:
        filt = np.multiply.outer(filt, _filter_1d(k))
    weight = np.zeros(dims, np.float64)
    if c_out == 1:
        weight[:, 0] = filt
    else:
        weight[np.arange(c_in), np.arange(c_in)] = filt
    return jnp.asarray(weight, dtype=dt)
