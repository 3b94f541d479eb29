"""Non-zero padding modes as exact adjoints of the padded forward convolution.

The forward convolution with ``padding_mode=m`` first pads its input ``u``
(length ``n`` on an axis) with ``torch.nn.functional.pad(u, (lo, hi), mode=m)``
and then convolves without padding.  Its adjoint is therefore the unpadded
transposed convolution (length ``n + lo + hi``, output padding kept) followed
by the adjoint of that pad, which *folds* the border back: the value at a
border position is added onto the interior position the pad copied it from.

Per axis, with interior positions ``0 .. n-1`` and border offsets ``u < 0``
(left, ``u = -lo .. -1``) or ``u >= n`` (right, ``u = n .. n+hi-1``):

* ``"circular"`` (wrap):     ``u -> u mod n``               (needs ``lo, hi <= n``)
* ``"reflect"`` (mirror, edge not repeated): ``u -> -u`` / ``2(n-1) - u``
  (needs ``lo, hi < n``)
* ``"replicate"`` (edge):    ``u -> 0`` / ``n - 1``

These are exactly the rules ``torch.nn.functional.pad`` enforces (checked in
:mod:`._args`), so an accepted padding is one PyTorch's
``Conv*d(padding_mode=...)`` accepts.
A negative ``hi`` (``padding="same"`` with a kernel shorter than the
stride) is a crop in the forward convolution, whose adjoint appends zeros.
Every operation is a slice, a flip, a pad with zeros or an add, so the fold
is linear and differentiable in both modes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def _fold_axis(y: jax.Array, axis: int, lo: int, hi: int, mode: str) -> jax.Array:
    """Fold ``lo`` leading and ``hi`` trailing positions of ``axis`` onto the interior."""
    if hi < 0:
        # A crop in the forward convolution: its adjoint appends zeros.
        widths = [(0, 0, 0)] * y.ndim
        widths[axis] = (0, -hi, 0)
        y = lax.pad(y, jnp.zeros((), y.dtype), widths)
        hi = 0
    if lo == 0 and hi == 0:
        return y
    size = y.shape[axis] - lo - hi
    mid = lax.slice_in_dim(y, lo, lo + size, axis=axis)
    left = lax.slice_in_dim(y, 0, lo, axis=axis)
    right = lax.slice_in_dim(y, lo + size, lo + size + hi, axis=axis)

    def place(part: jax.Array, start: int) -> jax.Array:
        """``part`` zero-extended to ``size`` positions, starting at ``start``."""
        widths = [(0, 0, 0)] * y.ndim
        widths[axis] = (start, size - start - part.shape[axis], 0)
        return lax.pad(part, jnp.zeros((), y.dtype), widths)

    if mode == "replicate":
        if lo:
            mid = mid + place(jnp.sum(left, axis=axis, keepdims=True), 0)
        if hi:
            mid = mid + place(jnp.sum(right, axis=axis, keepdims=True), size - 1)
    elif mode == "reflect":
        # left offset u = j - lo (j = 0..lo-1) came from -u: positions lo..1.
        if lo:
            mid = mid + place(lax.rev(left, (axis,)), 1)
        # right offset u = size + t came from size - 2 - t: positions size-2..size-1-hi.
        if hi:
            mid = mid + place(lax.rev(right, (axis,)), size - 1 - hi)
    elif mode == "circular":
        # left offset u = j - lo came from u + size: positions size-lo..size-1.
        if lo:
            mid = mid + place(left, size - lo)
        # right offset size + t came from t: positions 0..hi-1.
        if hi:
            mid = mid + place(right, 0)
    return mid


def fold(
    y: jax.Array, pads: tuple[tuple[int, int], ...], padding_mode: str, *, channels_last: bool
) -> jax.Array:
    """Fold the padded border of the unpadded transposed convolution ``y`` back.

    Args:
      y: the transposed convolution without padding (output padding kept),
        batched or unbatched, channels-first (spatial axes last) or
        channels-last (spatial axes ``-n-1 .. -2``); spatial length
        ``out + lo + hi`` per axis.
      pads: ``(lo, hi)`` per spatial axis (validated by ``_args.padding_mode_pads``).
      padding_mode: ``"circular"``, ``"reflect"`` or ``"replicate"``.
      channels_last: where the spatial axes are.

    Returns:
      ``y`` with spatial length ``out`` per axis: the adjoint of
      ``torch.nn.functional.pad(u, pads, mode=padding_mode)`` applied to ``y``.
    """
    n = len(pads)
    first = y.ndim - n - 1 if channels_last else y.ndim - n
    for i, (lo, hi) in enumerate(pads):
        y = _fold_axis(y, first + i, lo, hi, padding_mode)
    return y
