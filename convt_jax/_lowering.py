"""Lowerings of the transposed convolution to XLA operations.

Every lowering takes a batched input ``x`` (``(N, C_in, *S)``, or
``(N, *S, C_in)`` when ``config.channels_last``), a PyTorch-layout weight
``w`` of shape ``(C_in, C_out // groups, *K)`` and a :class:`Config`, and
returns the output in the same layout, in the dtype of the convolution
(``config.preferred_element_type`` if set, else the common dtype).  Which
configurations each one can compute is stated (and checked) in
:mod:`._methods`; the zero-free ones use the phase geometry (*) of
:mod:`._geometry`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _geometry as geo
from ._geometry import Config, Phases


def dilated(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """The core lowering: one lhs-dilated ``lax.conv_general_dilated``.

    Inserting ``s - 1`` zeros between input elements, padding by
    ``d*(K-1) - crop`` and correlating with the flipped kernel puts ``x[i] *
    w[k]`` at output ``s*i + d*k - lo``, the definition of the operation.
    """
    kernel = w.shape[2:]
    padding = [geo.lax_padding(k, d, c) for k, d, c in zip(kernel, config.dilation, config.crops)]
    return lax.conv_general_dilated(
        x,
        geo.forward_kernel(w, config.groups, config.flip),
        window_strides=(1,) * config.ndim,
        padding=padding,
        lhs_dilation=config.stride,
        rhs_dilation=config.dilation,
        dimension_numbers=geo.dimension_numbers(config.ndim, config.channels_last),
        feature_group_count=config.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )


# --- zero-free lowerings: the phases (*) of _geometry ---------------------------------------

def _phase_major_kernel(w: jax.Array, groups: int, flip: bool, ph: Phases) -> jax.Array:
    """``(C_in, C_out/g, *K)`` -> ``(g, *s, C_out/g, C_in/g, *M)`` with taps ``w[s*m + r]``."""
    if flip:
        w = geo.flip_spatial(w)
    c_in, c_out_g, *kernel = w.shape
    nd = len(kernel)
    w = geo.pad_to_phases(w, ph.s)
    w = w.reshape(groups, c_in // groups, c_out_g, *[v for m, s in zip(ph.m, ph.s)
                                                      for v in (m, s)])
    m_axes = tuple(3 + 2 * a for a in range(nd))
    r_axes = tuple(4 + 2 * a for a in range(nd))
    return w.transpose((0,) + r_axes + (2, 1) + m_axes)


def _interleave(y: jax.Array, ph: Phases, channels_last: bool) -> jax.Array:
    """Phase rows ``(N, *J, prod(s)*C)`` (channels ``(*s, C)``) -> the cropped output."""
    y = geo.depth_to_space(y, ph.s, channels_last=channels_last)
    lead = (slice(None),) if channels_last else (slice(None), slice(None))
    return y[lead + ph.crop()]


def subpixel(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Sub-pixel (phase) lowering: all ``prod(s)`` phases of (*) as one stride-1 convolution.

    The phases are stacked along the output channels (group-major, so
    ``feature_group_count`` still applies), then interleaved and cropped.
    """
    g = config.groups
    nd = config.ndim
    ph = Phases.of(geo.spatial_shape(config, x.shape), w.shape[2:], config)
    k = _phase_major_kernel(w, g, config.flip, ph)
    c_out_g, c_in_g = k.shape[1 + nd], k.shape[2 + nd]
    # Correlation with the sub-kernel reversed along m (x[j - m] read left to right).
    k = lax.rev(k.reshape(-1, c_in_g, *ph.m), tuple(range(2, 2 + nd)))
    y = lax.conv_general_dilated(
        x, k, (1,) * nd, ph.conv_padding(), rhs_dilation=ph.d,
        dimension_numbers=geo.dimension_numbers(nd, config.channels_last),
        feature_group_count=g, precision=config.precision,
        preferred_element_type=config.preferred_element_type)
    # Output channels (g, *s, C_out/g) -> phase-major (*s, g, C_out/g) for depth-to-space.
    # (Explicit sizes throughout: -1 cannot be inferred for an empty batch.)
    n, rows, p = y.shape[0], ph.rows, math.prod(ph.s)
    if config.channels_last:
        if g > 1:
            y = jnp.moveaxis(y.reshape(n, *rows, g, p, c_out_g), 1 + nd, 2 + nd)
        y = y.reshape(n, *rows, p * g * c_out_g)
    else:
        if g > 1:
            y = jnp.swapaxes(y.reshape(n, g, p, c_out_g, *rows), 1, 2)
        y = y.reshape(n, p * g * c_out_g, *rows)
    return _interleave(y, ph, config.channels_last)


def _shift_sum(term: Callable[[tuple[int, ...]], jax.Array], ph: Phases, lead: int) -> jax.Array:
    """``y_r[j] = sum_m term(m)[j - m]`` for rows ``j0 <= j < j1``.

    ``term(m)`` has axes ``(lead..., *L, rest...)``; returns ``(lead..., *J, rest...)``.
    """
    nd = len(ph.m)
    out = None
    for m in np.ndindex(*ph.m):
        zm = term(m)
        pads = [(0, 0, 0)] * lead + [
            (mm * d - j0, j1 - n - mm * d, 0)
            for mm, d, j0, j1, n in zip(m, ph.d, ph.j0, ph.j1, ph.length)
        ] + [(0, 0, 0)] * (zm.ndim - lead - nd)
        zm = lax.pad(zm, jnp.zeros((), zm.dtype), pads)
        out = zm if out is None else out + zm
    return out


def matmul(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """GEMM + col2im: one 2-D matrix multiply, then a fused shifted sum of (*).

    ``x`` as ``(N*L, C_in)`` times the weight as ``(C_in, M*s*C_out)`` gives
    every (input row, tap) product once; row ``j`` of phase ``r`` sums the
    ``M`` blocks ``z[j - m, m, r]``.  With ``K == s`` there is nothing to sum:
    the transposed convolution is a matmul and a reshape.  ``groups == 1``
    and no dilation (a grouped GEMM would need a batched dot).
    """
    cl = config.channels_last
    xl = x if cl else geo.to_channels_last(x)
    nd = config.ndim
    n, *spatial, c_in = xl.shape
    ph = Phases.of(spatial, w.shape[2:], config)
    k = _phase_major_kernel(w, 1, config.flip, ph)[0]          # (*s, C_out, C_in, *M)
    c_out = k.shape[nd]
    # -> (C_in, *M, *s, C_out) as a 2-D matrix
    k = k.transpose((nd + 1,) + tuple(range(nd + 2, 2 * nd + 2)) + tuple(range(nd)) + (nd,))
    z = jnp.dot(xl.reshape(-1, c_in), k.reshape(c_in, -1).astype(xl.dtype),
                precision=config.precision,
                preferred_element_type=config.preferred_element_type)
    z = z.reshape(n, *spatial, *ph.m, math.prod(ph.s) * c_out)  # (N, *L, *M, prod(s)*C_out)
    y = _shift_sum(lambda m: z[(slice(None),) * (1 + nd) + m], ph, lead=1)
    y = _interleave(y, ph, channels_last=True)
    return y if cl else geo.to_channels_first(y)


def depthwise(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Depthwise (``groups == C_in``) as ``sum_m`` of broadcast multiplies, per phase of (*).

    XLA expands a convolution with ``feature_group_count == C_in`` into a
    dense one; the elementwise form does ``K`` multiplies per output element.
    """
    c_in = w.shape[0]
    cl = config.channels_last
    xl = x if cl else geo.to_channels_last(x)
    nd = config.ndim
    ph = Phases.of(xl.shape[1:-1], w.shape[2:], config)
    k = _phase_major_kernel(w, c_in, config.flip, ph)
    k = k[(slice(None),) * (2 + nd) + (0,)]                         # (C_in, *s, mult, *M)
    # term(m)[n, *L, *s, C_in, mult] = x[n, *L, C_in] * k[C_in, *s, mult, m]
    kk = k.transpose(tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(1, 1 + nd)) + (0, 1 + nd))
    acc = config.preferred_element_type or xl.dtype
    xe = xl.astype(acc)[(slice(None),) * (1 + nd) + (None,) * nd + (slice(None), None)]
    y = _shift_sum(lambda m: xe * kk[m].astype(acc), ph, lead=1)  # (N, *J, *s, C_in, mult)
    y = _interleave(y.reshape(*y.shape[:1 + nd], math.prod(y.shape[1 + nd:])), ph,
                    channels_last=True)
    return y if cl else geo.to_channels_first(y)
