"""Lowerings of the transposed convolution to XLA operations.

Every lowering takes a batched input ``x`` (``(N, C_in, *S)``, or
``(N, *S, C_in)`` when ``config.channels_last``), a PyTorch-layout weight
``w`` of shape ``(C_in, C_out // groups, *K)`` and a :class:`Config`, and
returns the output in the same layout, in the dtype of the convolution
(``config.preferred_element_type`` if set, else the common dtype).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from . import _shapes
from ._args import Config


def dimension_numbers(ndim: int, channels_last: bool) -> lax.ConvDimensionNumbers:
    """``(lhs, rhs, out)`` specs for an activation layout and an ``(O, I, *K)`` kernel."""
    spatial = tuple(range(2, ndim + 2))
    if channels_last:
        act = (0, ndim + 1) + tuple(range(1, ndim + 1))
    else:
        act = (0, 1) + spatial
    return lax.ConvDimensionNumbers(lhs_spec=act, rhs_spec=(0, 1) + spatial, out_spec=act)


def flip_spatial(w: jax.Array) -> jax.Array:
    """Reverse every spatial (kernel) axis of an ``(A, B, *K)`` weight."""
    return lax.rev(w, tuple(range(2, w.ndim)))


def forward_kernel(w: jax.Array, groups: int, flip: bool) -> jax.Array:
    """PyTorch ``(C_in, C_out/g, *K)`` -> lax ``(C_out, C_in/g, *K)``, flipped spatially.

    Group ``j`` of the transposed convolution maps input channels
    ``j*C_in/g ...`` to output channels ``j*C_out/g ...``; the equivalent
    stride-1 convolution of the dilated input needs, per group, the
    ``(C_out/g, C_in/g)`` transpose of that block and the kernel reversed
    (a scatter becomes a gather).  ``flip`` (``conv_mode="convolution"``)
    cancels the reversal.
    """
    c_in, c_out_g, *kernel = w.shape
    w = w.reshape(groups, c_in // groups, c_out_g, *kernel)
    w = jnp.swapaxes(w, 1, 2).reshape(groups * c_out_g, c_in // groups, *kernel)
    return w if flip else flip_spatial(w)


def dilated(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """The core lowering: one lhs-dilated ``lax.conv_general_dilated``.

    Inserting ``s - 1`` zeros between input elements, padding by
    ``d*(K-1) - crop`` and correlating with the flipped kernel puts ``x[i] *
    w[k]`` at output ``s*i + d*k - lo`` exactly as SPEC §1 defines.
    """
    kernel = w.shape[2:]
    padding = [_shapes.lax_padding(k, d, c) for k, d, c in zip(kernel, config.dilation, config.crops)]
    return lax.conv_general_dilated(
        x,
        forward_kernel(w, config.groups, config.flip),
        window_strides=(1,) * config.ndim,
        padding=padding,
        lhs_dilation=config.stride,
        rhs_dilation=config.dilation,
        dimension_numbers=dimension_numbers(config.ndim, config.channels_last),
        feature_group_count=config.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )
