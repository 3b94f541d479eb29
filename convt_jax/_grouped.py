"""Grouped layers (``groups > 1``) with the group as a batch axis of one matrix multiply.

XLA:CPU runs a convolution with ``1 < feature_group_count < C_in`` (and the
``batch_group_count`` of the weight gradient) far slower than a dense one of
the same size.  The forms here compute the same sums as the lowerings of
:mod:`._lowering` and the rules of :mod:`._gradients`, group by group, as one
``lax.dot_general`` whose batch axis is the group: the channels are read as
``(groups, C / groups)`` (group-major, PyTorch's order) and the group axis is
moved to the front once, on the input side and once on the output side.

* :func:`forward`: GEMM + col2im, as :func:`._lowering.matmul`: every
  (input row, tap) product of a group once, ``x_g @ W_g`` of
  ``(N*L, C_in/g)`` by ``(C_in/g, M*s*C_out/g)``, then the fused shifted sum
  of the phase geometry (*) of :mod:`._geometry` and the interleave.  Needs
  the phase decomposition: no axis with both stride > 1 and dilation > 1
  (dilation on a stride-1 axis is a shift of ``d*m``).
* :func:`input_grad` / :func:`weight_grad`: im2col of the cotangent (the
  zero-free gather of :func:`._gradients._im2col`, with the group folded
  into its batch axis) times the weight / the input, per group.  Any stride,
  dilation, padding and output padding.

Every form takes and returns the configuration's layout (channels-first or
channels-last) and any number of spatial axes.
"""

from __future__ import annotations

import math

import jax
from jax import lax

from . import _geometry as geo
from ._geometry import Config, Phases
from ._gradients import _dot_per_group, _im2col, _input_spatial, _kernel_size, group_major
from ._lowering import _phase_major_kernel, _shift_sum, real_taps


def _from_group_major(a: jax.Array, config: Config) -> jax.Array:
    """``(g, N, *S, C/g)`` -> the configuration's layout with ``C = g * C/g`` channels."""
    nd = config.ndim
    groups, n, *spatial, c_g = a.shape
    if config.channels_last:
        a = a.transpose((1,) + tuple(range(2, 2 + nd)) + (0, 2 + nd))
        return a.reshape(n, *spatial, groups * c_g)
    a = a.transpose((1, 0, 2 + nd) + tuple(range(2, 2 + nd)))
    return a.reshape(n, groups * c_g, *spatial)


def _cotangent_cols(
    g: jax.Array, spatial: tuple[int, ...], kernel: tuple[int, ...], config: Config
) -> jax.Array:
    """``(groups, N*prod(L), prod(K)*C_out/g)``: im2col of the cotangent, group by group."""
    groups = config.groups
    gg = group_major(g, groups, config.channels_last)  # (g, N, *S_out, C_out/g)
    n, c_out_g = gg.shape[1], gg.shape[-1]
    gg = gg.reshape(groups * n, *gg.shape[2:])
    cols = _im2col(gg, spatial, kernel, config)  # (g*N, *L, *K, C_out/g)
    return cols.reshape(groups, n * math.prod(spatial), math.prod(kernel) * c_out_g)


def forward(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """The transposed convolution as one group-batched GEMM + col2im (needs phases)."""
    groups, nd = config.groups, config.ndim
    n = x.shape[0]
    spatial = geo.spatial_shape(config, x.shape)
    c_in = w.shape[0]
    ph = Phases.of(spatial, w.shape[2:], config)
    k = _phase_major_kernel(w, groups, config.flip, ph)  # (g, *s, C_out/g, C_in/g, *M)
    c_out_g = k.shape[1 + nd]
    # -> (g, C_in/g, *M, *s, C_out/g): one (C_in/g, M*s*C_out/g) matrix per group
    k = k.transpose(
        (0, 2 + nd) + tuple(range(3 + nd, 3 + 2 * nd)) + tuple(range(1, 1 + nd)) + (1 + nd,)
    )
    p = math.prod(ph.s)
    k = k.reshape(groups, c_in // groups, math.prod(ph.m) * p * c_out_g).astype(x.dtype)
    xg = group_major(x, groups, config.channels_last)
    xg = xg.reshape(groups, n * math.prod(spatial), c_in // groups)
    # Products and the shifted sum in float32 for 16-bit inputs (geo.accumulation_dtype).
    z = lax.dot_general(
        xg,
        k,
        (((2,), (1,)), ((0,), (0,))),
        precision=config.precision,
        preferred_element_type=geo.accumulation_dtype(config, x.dtype),
    )
    z = z.reshape(groups, n, *spatial, *ph.m, p * c_out_g)

    def term(m):
        zm = z[(slice(None),) * (2 + nd) + m]
        if ph.real_phases(m) == ph.s:
            return zm
        # Phases tap m does not reach multiplied the zero-padded kernel: zero them by
        # padding, so a NaN/Inf input gives the definition's output (as "matmul").
        zm = real_taps(zm.reshape(groups, n, *spatial, *ph.s, c_out_g), m, ph, 2 + nd)
        return zm.reshape(groups, n, *spatial, p * c_out_g)

    y = _shift_sum(term, ph, lead=2)  # (g, N, *J, prod(s)*C_out/g)
    y = y.astype(geo.output_dtype(config, x.dtype))
    rows = ph.rows
    y = y.reshape(groups, n, *rows, *ph.s, c_out_g)
    # Interleave the phases (row j, phase r -> position j*s + r) and put the group back
    # next to its channels, in one transpose.
    inter = tuple(v for a in range(nd) for v in (2 + a, 2 + nd + a))
    size = tuple(j * s for j, s in zip(rows, ph.s, strict=True))
    if config.channels_last:
        y = y.transpose((1,) + inter + (0, 2 + 2 * nd)).reshape(n, *size, groups * c_out_g)
        return y[(slice(None),) + ph.crop()]
    y = y.transpose((1, 0, 2 + 2 * nd) + inter).reshape(n, groups * c_out_g, *size)
    return y[(slice(None), slice(None)) + ph.crop()]


def input_grad(g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """``dx``: per group, the cotangent's im2col ``(N*L, K*C_out/g)`` @ ``(K*C_out/g, C_in/g)``."""
    if config.flip:
        w = geo.flip_spatial(w)
    w = w.astype(g.dtype)
    groups, nd = config.groups, config.ndim
    c_in, c_out_g, *kernel = w.shape
    n = g.shape[0]
    spatial = _input_spatial(geo.spatial_shape(config, g.shape), kernel, config)
    cols = _cotangent_cols(g, spatial, tuple(kernel), config)
    # (C_in, C_out/g, *K) -> (g, *K, C_out/g, C_in/g)
    wm = w.reshape(groups, c_in // groups, c_out_g, *kernel)
    wm = wm.transpose((0,) + tuple(range(3, 3 + nd)) + (2, 1))
    wm = wm.reshape(groups, math.prod(kernel) * c_out_g, c_in // groups)
    dx = _dot_per_group(cols, wm, (2, 1), config)  # (g, N*L, C_in/g)
    dx = dx.reshape(groups, n, *spatial, c_in // groups)
    return _from_group_major(dx, config).astype(g.dtype)


def weight_grad(g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """``dw``: per group, ``x_g^T`` ``(C_in/g, N*L)`` @ the cotangent's im2col."""
    groups, nd = config.groups, config.ndim
    x = x.astype(g.dtype)
    n = x.shape[0]
    spatial = geo.spatial_shape(config, x.shape)
    c_in = x.shape[geo.channel_axis(config)]
    c_out_g = g.shape[geo.channel_axis(config)] // groups
    kernel = _kernel_size(spatial, geo.spatial_shape(config, g.shape), config)
    cols = _cotangent_cols(g, spatial, kernel, config)
    xg = group_major(x, groups, config.channels_last)
    xg = xg.reshape(groups, n * math.prod(spatial), c_in // groups)
    dw = _dot_per_group(xg, cols, (1, 1), config)  # (g, C_in/g, K*C_out/g)
    dw = dw.reshape(groups, c_in // groups, *kernel, c_out_g)
    dw = dw.transpose((0, 1, 2 + nd) + tuple(range(2, 2 + nd)))
    dw = dw.reshape(c_in, c_out_g, *kernel).astype(g.dtype)
    return geo.flip_spatial(dw) if config.flip else dw
