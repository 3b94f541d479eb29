"""Weight-layout converters between the PyTorch layout and other frameworks.

The PyTorch layout of a transposed-convolution weight is ``(C_in, C_out //
groups, *kernel)``; every function of :mod:`convt_jax` takes that layout.
Converters are named ``from_X`` (X's layout -> PyTorch) and ``to_X``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from ._args import _int

__all__ = ["from_megengine", "to_megengine"]


def _rank_check(name: str, w, min_rank: int, rule: str) -> None:
    if w.ndim < min_rank:
        raise ValueError(f"{name} of shape {tuple(w.shape)} must have rank >= {min_rank}: {rule}")


def from_megengine(w: ArrayLike) -> jax.Array:
    """MegEngine's grouped weight ``(groups, C_in//g, C_out//g, *K)`` -> ``(C_in, C_out//g, *K)``.

    Args:
      w: MegEngine grouped ``ConvTranspose*d`` weight (``groups`` is its first axis).

    Returns:
      The PyTorch-layout weight; pass ``groups=w.shape[0]`` to the functions.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> ct.layouts.from_megengine(jnp.zeros((4, 2, 3, 5, 5))).shape
      (8, 3, 5, 5)
    """
    w = jnp.asarray(w)
    _rank_check("w", w, 4, "(groups, C_in // groups, C_out // groups, *kernel)")
    g, cig, cog, *kernel = w.shape
    return w.reshape(g * cig, cog, *kernel)


def to_megengine(w: ArrayLike, groups: int) -> jax.Array:
    """PyTorch ``(C_in, C_out//g, *K)`` -> MegEngine's grouped ``(groups, C_in//g, C_out//g, *K)``.

    Args:
      w: PyTorch-layout weight.
      groups: the number of groups (must divide ``w.shape[0]``).

    Returns:
      MegEngine's grouped weight layout.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> ct.layouts.to_megengine(jnp.zeros((8, 3, 5, 5)), groups=4).shape
      (4, 2, 3, 5, 5)
    """
    w = jnp.asarray(w)
    _rank_check("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _int("groups", groups)
    if g < 1 or w.shape[0] % g:
        raise ValueError(f"groups={groups!r} must be >= 1 and divide w.shape[0]={w.shape[0]}")
    return w.reshape(g, w.shape[0] // g, *w.shape[1:])
