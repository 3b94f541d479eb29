"""The fixed bilinear-upsampling kernel of FCN-style decoders (``ct.nn.init.bilinear``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .. import _args

__all__ = ["bilinear"]


def _filter_1d(size: int) -> np.ndarray:
    """FCN's ``upsample_filt`` on one axis: a triangle of half-width ``ceil(size / 2)``."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1.0 - np.abs(np.arange(size) - center) / factor


def bilinear(key: jax.Array | None, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
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

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w = ct.nn.init.bilinear(None, (1, 1, 4))
      >>> w[0, 0]
      Array([0.25, 0.75, 0.75, 0.25], dtype=float32)
      >>> x = jnp.array([[[0.0, 1.0, 2.0, 3.0]]])
      >>> ct.conv_transpose1d(x, w, stride=2, padding=1)[0, 0, 1:-1]    # interior
      Array([0.25, 0.75, 1.25, 1.75, 2.25, 2.75], dtype=float32)
    """
    del key
    dims = _args.weight_shape("shape", shape, 3)
    _args.check_bilinear_shape(dims)
    dt = _args.floating_dtype("dtype", dtype)
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
