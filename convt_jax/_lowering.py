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
import numpy as np
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


# --- zero-free lowerings ------------------------------------------------------------------
#
# Full position f = s*i + d*k of input i and tap k.  With d = 1 write k = s*m + r
# (r in [0, s), m in [0, M), M = ceil(K / s), the kernel zero-padded to M*s taps):
# then f = s*(i + m) + r, so output *phase* r of row j = i + m is
#
#     y_r[j] = sum_m x[j - m] * w[s*m + r]                                   (*)
#
# a stride-1 correlation of the un-dilated input with the sub-kernel of taps
# s*m + r.  Phase rows j0 <= j < j1 cover the cropped output; interleaving
# them (depth-to-space) and cropping gives y.  Nothing multiplies an inserted
# zero.  On an axis with s = 1, (*) is the ordinary correlation with kernel
# dilation d, so the lowerings accept d > 1 there.  An axis with both s > 1
# and d > 1 splits its taps into phases unevenly (gcd(s, d) matters); that
# rare case is not worth the index algebra and uses the core lowering.


def subpixel_supported(config: Config) -> bool:
    return all(s == 1 or d == 1 for s, d in zip(config.stride, config.dilation))


class _Phases:
    """Per-axis phase geometry of (*) for one configuration and input shape."""

    def __init__(self, spatial, kernel, config: Config):
        self.s = config.stride
        self.d = tuple(d if s == 1 else 1 for s, d in zip(config.stride, config.dilation))
        self.m = tuple(-(-k // s) for k, s in zip(kernel, self.s))
        self.length = tuple(spatial)
        self.out = tuple(
            _shapes.output_length(n, k, s, d, c)
            for n, k, s, d, c in zip(spatial, kernel, config.stride, config.dilation, config.crops))
        self.lo = tuple(c[0] for c in config.crops)
        self.j0 = tuple(lo // s for lo, s in zip(self.lo, self.s))
        self.j1 = tuple(-(-(lo + o) // s) for lo, o, s in zip(self.lo, self.out, self.s))

    def conv_padding(self):
        # Rows j0..j1-1 of y_r as a correlation over x padded on the left by d*(M-1).
        return [(d * (m - 1) - j0, j1 - n)
                for d, m, j0, j1, n in zip(self.d, self.m, self.j0, self.j1, self.length)]


def _crop(ph: _Phases) -> tuple[slice, ...]:
    """Per-axis slice of the interleaved phase rows ``j0*s ...`` that is the output."""
    return tuple(slice(lo - j0 * s, lo - j0 * s + o)
                 for lo, j0, s, o in zip(ph.lo, ph.j0, ph.s, ph.out))


def _interleave_last(y: jax.Array, ph: _Phases) -> jax.Array:
    """``(N, *J, *s, *C)`` -> channels-last output ``(N, *out, prod(C))``: depth-to-space, crop."""
    nd = len(ph.s)
    n, rows, channels = y.shape[0], y.shape[1:1 + nd], y.shape[1 + 2 * nd:]
    perm = (0,) + tuple(v for a in range(nd) for v in (1 + a, 1 + nd + a)) + tuple(
        range(1 + 2 * nd, y.ndim))
    y = y.transpose(perm).reshape(n, *(j * s for j, s in zip(rows, ph.s)), int(np.prod(channels)))
    return y[(slice(None),) + _crop(ph)]


def _phase_major_kernel(w: jax.Array, groups: int, flip: bool, ph: _Phases) -> jax.Array:
    """``(C_in, C_out/g, *K)`` -> ``(g, *s, C_out/g, C_in/g, *M)`` with taps ``w[s*m + r]``."""
    if flip:
        w = flip_spatial(w)
    c_in, c_out_g, *kernel = w.shape
    nd = len(kernel)
    w = jnp.pad(w, [(0, 0), (0, 0)] + [(0, m * s - k) for m, s, k in zip(ph.m, ph.s, kernel)])
    w = w.reshape(groups, c_in // groups, c_out_g, *[v for m, s in zip(ph.m, ph.s)
                                                      for v in (m, s)])
    m_axes = tuple(3 + 2 * a for a in range(nd))
    r_axes = tuple(4 + 2 * a for a in range(nd))
    return w.transpose((0,) + r_axes + (2, 1) + m_axes)


def _interleave(y: jax.Array, ph: _Phases, groups: int, c_out_g: int,
                channels_last: bool) -> jax.Array:
    """Phase-major channels ``(g, *s, C_out/g)`` + rows ``J`` -> rows ``J*s``, cropped."""
    nd = len(ph.s)
    n = y.shape[0]
    rows = tuple(j1 - j0 for j0, j1 in zip(ph.j0, ph.j1))
    if channels_last:
        y = y.reshape(n, *rows, groups, *ph.s, c_out_g)
        perm = (0,) + tuple(v for a in range(nd) for v in (1 + a, 2 + nd + a)) + (
            1 + nd, 2 + 2 * nd)
        y = y.transpose(perm).reshape(n, *(j * s for j, s in zip(rows, ph.s)), groups * c_out_g)
        return y[(slice(None),) + _crop(ph)]
    y = y.reshape(n, groups, *ph.s, c_out_g, *rows)
    perm = (0, 1, 2 + nd) + tuple(v for a in range(nd) for v in (3 + nd + a, 2 + a))
    y = y.transpose(perm).reshape(n, groups * c_out_g, *(j * s for j, s in zip(rows, ph.s)))
    return y[(slice(None), slice(None)) + _crop(ph)]


def _spatial(x: jax.Array, channels_last: bool) -> tuple[int, ...]:
    return tuple(x.shape[1:-1]) if channels_last else tuple(x.shape[2:])


def subpixel(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Sub-pixel (phase) lowering: all ``prod(s)`` phases of (*) as one stride-1 convolution.

    The phases are stacked along the output channels (group-major, so
    ``feature_group_count`` still applies), then interleaved and cropped.
    """
    if not subpixel_supported(config):
        return dilated(x, w, config)
    g = config.groups
    ph = _Phases(_spatial(x, config.channels_last), w.shape[2:], config)
    k = _phase_major_kernel(w, g, config.flip, ph)
    c_out_g, c_in_g = k.shape[1 + config.ndim], k.shape[2 + config.ndim]
    # Correlation with the sub-kernel reversed along m (x[j - m] read left to right).
    k = lax.rev(k.reshape(-1, c_in_g, *ph.m), tuple(range(2, 2 + config.ndim)))
    y = lax.conv_general_dilated(
        x, k, (1,) * config.ndim, ph.conv_padding(), rhs_dilation=ph.d,
        dimension_numbers=dimension_numbers(config.ndim, config.channels_last),
        feature_group_count=g, precision=config.precision,
        preferred_element_type=config.preferred_element_type)
    return _interleave(y, ph, g, c_out_g, config.channels_last)


def to_channels_last(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, 1, -1)


def to_channels_first(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, -1, 1)


def _shift_sum(z: jax.Array, ph: _Phases, lead: int) -> jax.Array:
    """``y_r[j] = sum_m z[j - m, m, r]`` for rows ``j0 <= j < j1``.

    ``z`` has axes ``(lead..., *L, *M, rest...)``; returns ``(lead..., *J, rest...)``.
    """
    nd = len(ph.m)
    out = None
    for m in np.ndindex(*ph.m):
        zm = z[(slice(None),) * (lead + nd) + tuple(m)]
        dilated_m = [mm * d for mm, d in zip(m, ph.d)]
        pads = [(0, 0, 0)] * lead + [
            (mm - j0, j1 - n - mm, 0)
            for mm, j0, j1, n in zip(dilated_m, ph.j0, ph.j1, ph.length)
        ] + [(0, 0, 0)] * (zm.ndim - lead - nd)
        zm = lax.pad(zm, jnp.zeros((), zm.dtype), pads)
        out = zm if out is None else out + zm
    return out


def matmul(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """GEMM + col2im: one 2-D matrix multiply, then a fused shifted sum of (*).

    ``x`` as ``(N*L, C_in)`` times the weight as ``(C_in, M*s*C_out)`` gives
    every (input row, tap) product once; row ``j`` of phase ``r`` sums the
    ``M`` blocks ``z[j - m, m, r]``.  With ``K == s`` there is nothing to sum:
    the transposed convolution is a matmul and a reshape.  Groups use the
    phase convolution (a grouped GEMM would need a batched dot).
    """
    if config.groups != 1 or not subpixel_supported(config) or any(
            d > 1 for d in config.dilation):
        # Groups, and kernel dilation on stride-1 axes, use the phase convolution.
        return subpixel(x, w, config)
    cl = config.channels_last
    xl = x if cl else to_channels_last(x)
    nd = config.ndim
    n, *spatial, c_in = xl.shape
    ph = _Phases(spatial, w.shape[2:], config)
    k = _phase_major_kernel(w, 1, config.flip, ph)[0]          # (*s, C_out, C_in, *M)
    c_out = k.shape[nd]
    # -> (C_in, *M, *s, C_out) as a 2-D matrix
    k = k.transpose((nd + 1,) + tuple(range(nd + 2, 2 * nd + 2)) + tuple(range(nd)) + (nd,))
    z = jnp.dot(xl.reshape(-1, c_in), k.reshape(c_in, -1).astype(xl.dtype),
                precision=config.precision,
                preferred_element_type=config.preferred_element_type)
    z = z.reshape(n, *spatial, *ph.m, *ph.s, c_out)
    y = _interleave_last(_shift_sum(z, ph, lead=1), ph)         # from (N, *J, *s, C_out)
    return y if cl else to_channels_first(y)


def depthwise_supported(config: Config, c_in: int) -> bool:
    return config.groups == c_in and config.groups > 1 and subpixel_supported(config)


def depthwise(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Depthwise (``groups == C_in``) as ``sum_m`` of broadcast multiplies, per phase of (*).

    XLA expands a convolution with ``feature_group_count == C_in`` into a
    dense one; the elementwise form does ``K`` multiplies per output element.
    """
    c_in = w.shape[0]
    if not depthwise_supported(config, c_in):
        return subpixel(x, w, config)
    cl = config.channels_last
    xl = x if cl else to_channels_last(x)
    nd = config.ndim
    n, *spatial, _ = xl.shape
    ph = _Phases(spatial, w.shape[2:], config)
    k = _phase_major_kernel(w, c_in, config.flip, ph)
    k = k[(slice(None),) * (2 + nd) + (0,)]                         # (C_in, *s, mult, *M)
    # z[n, *L, *M, *s, C_in, mult] = x[n, *L, C_in] * k[C_in, *s, mult, *M]
    kk = k.transpose(tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(1, 1 + nd)) + (0, 1 + nd))
    acc = config.preferred_element_type or xl.dtype
    out = None
    for m in np.ndindex(*ph.m):
        prod = xl.astype(acc)[(slice(None),) * (1 + nd) + (None,) * nd + (slice(None), None)] * \
            kk[tuple(m)].astype(acc)
        pads = [(0, 0, 0)] + [
            (mm * d - j0, j1 - ln - mm * d, 0)
            for mm, d, j0, j1, ln in zip(m, ph.d, ph.j0, ph.j1, ph.length)
        ] + [(0, 0, 0)] * (nd + 2)
        prod = lax.pad(prod, jnp.zeros((), prod.dtype), pads)
        out = prod if out is None else out + prod
    y = _interleave_last(out, ph)                                # from (N, *J, *s, C_in, mult)
    return y if cl else to_channels_first(y)
