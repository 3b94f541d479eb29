"""Hand-written cotangent rules of ``y = conv_transpose(x, w) + b``.

Notation (one spatial axis; every axis is independent, so N-d is the
product): input ``x[n, ci, i]`` of length ``L``, PyTorch weight
``w[ci, cl, k]`` (``cl`` the output channel inside the group), stride ``s``,
dilation ``d``, crop ``(lo, hi)`` (``hi`` holds ``-output_padding``; either
may be negative: zero extension) and output ``y[n, co, o]`` of length
``L_out = (L - 1)*s + d*(K - 1) + 1 - lo - hi``.  Group ``j`` joins input
channels ``ci`` of group ``j`` with output channels ``co = j*C_out/g + cl``.
The forward operation is

    y[n, co, o] = sum_{ci in grp(co), i, k : s*i + d*k = o + lo} x[n, ci, i] * w[ci, cl, k]

With ``conv_mode="convolution"`` the forward uses the spatially reversed
weight, so ``dx`` uses the reversed weight and ``dw`` is reversed at the end.
None of the rules multiplies by inserted zeros: the cotangent is never
dilated, only padded by ``lo`` / ``hi`` (negative padding crops).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import _geometry as geo
from ._geometry import (
    Config,
    channel_axis,
    dimension_numbers,
    flip_spatial,
    to_channels_first,
    to_channels_last,
)


def _pads(config: Config) -> list[tuple[int, int]]:
    # The cotangent padded by (lo, hi) has the uncropped length
    # (L - 1)*s + d*(K - 1) + 1; position o + lo of it is output position o.
    return [(lo, hi) for lo, hi in config.crops]


# dx: differentiate y with respect to x[n, ci, i]:
#
#   dx[n, ci, i] = sum_{co in grp(ci), k} g[n, co, s*i + d*k - lo] * w[ci, cl, k]
#
# With gp = g padded by (lo, hi), gp[p] = g[p - lo], this is
#
#   dx[n, ci, i] = sum_{cl, k} gp[n, j*C_out/g + cl, s*i + d*k] * w[ci, cl, k]
#
# i.e. a plain *strided* cross-correlation of gp (window stride s, kernel
# dilation d) with the weight read as a forward-conv kernel (O, I, *K) =
# (C_in, C_out/g, *K), grouped by ``feature_group_count = g`` (rows of w of
# group j read the channels of group j).  Its length is
# ((L_out + lo + hi) - d*(K - 1) - 1) // s + 1 = L exactly.
def input_grad(g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Cotangent of ``x`` for a batched cotangent ``g`` in the config's layout."""
    if config.flip:
        w = flip_spatial(w)
    # JAX's transpose of this strided convolution (a second-order derivative, e.g. the
    # gradient of a vjp with respect to the cotangent) is an lhs-dilated convolution; where
    # its padding is the pattern XLA:CPU aborts on (geo.xla_swap_abort_axes), pad g
    # explicitly (lax.pad: its transpose is a slice) and give the convolution no padding
    # there, which makes the transposed convolution's padding (d*(K-1), ...) instead.
    pads = _pads(config)
    kernel = w.shape[2:]
    transposed = [
        geo.transposed_strided_padding(n, k, s, d, p)
        for n, k, s, d, p in zip(
            geo.spatial_shape(config, g.shape),
            kernel,
            config.stride,
            config.dilation,
            pads,
            strict=True,
        )
    ]
    explicit = geo.xla_swap_abort_axes(kernel, config.stride, config.dilation, transposed)
    if any(explicit):
        widths = [(0, 0, 0)] * g.ndim
        for a, e, (lo, hi) in zip(geo.spatial_axes(config, g.ndim), explicit, pads, strict=True):
            if e:
                widths[a] = (lo, hi, 0)
        g = lax.pad(g, jnp.zeros((), g.dtype), widths)
        pads = [(0, 0) if e else p for e, p in zip(explicit, pads, strict=True)]
    out = lax.conv_general_dilated(
        g,
        w.astype(g.dtype),
        window_strides=config.stride,
        padding=pads,
        rhs_dilation=config.dilation,
        dimension_numbers=dimension_numbers(config.ndim, config.channels_last),
        feature_group_count=config.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )
    return out.astype(g.dtype)


# dw: differentiate y with respect to w[ci, cl, k]:
#
#   dw[ci, cl, k] = sum_{n, i} x[n, ci, i] * gp[n, j*C_out/g + cl, d*k + s*i]
#
# Read k as the output position and i as the window position: a correlation
# of gp (lhs, window stride d) with x as the kernel (kernel dilation s),
# contracting over the batch n (lhs feature = n, rhs input feature = n).
# The output channels co are the lhs "batch" and ci the kernel's output
# features; ``batch_group_count = g`` pairs channel group j of gp with
# channel group j of x, leaving C_out/g as the output batch.  Length:
# ((L_out + lo + hi) - s*(L - 1) - 1) // d + 1 = K.  Neither operand is
# dilated in memory: the stride s becomes a dilation of the *window*.
def weight_grad(g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """Cotangent of the PyTorch-layout weight ``(C_in, C_out/g, *K)``."""
    nd = config.ndim
    # (batch := channel, feature := n, *spatial)
    act = (geo.channel_axis(config), 0) + geo.spatial_axes(config)
    dn = lax.ConvDimensionNumbers(
        lhs_spec=act, rhs_spec=act, out_spec=(1, 0) + tuple(range(2, nd + 2))
    )
    out = lax.conv_general_dilated(
        g,
        x.astype(g.dtype),
        window_strides=config.dilation,
        padding=_pads(config),
        rhs_dilation=config.stride,
        dimension_numbers=dn,
        batch_group_count=config.groups,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    ).astype(g.dtype)
    return flip_spatial(out) if config.flip else out


# --- matrix-multiply forms of dx and dw ------------------------------------------------------
#
# Both rules above read the padded cotangent gp only at positions s*i + d*k.
# Gathering those once, cols[n, i, k, co] = gp[n, s*i + d*k, co] (prod(K)
# strided slices of gp: no zeros, no dilation), turns them into plain matrix
# multiplies, the fast primitive of XLA:CPU (its weight-gradient convolution
# can fall back to a naive loop):
#
#   dx[(n, i), ci]   = sum_{(k, co)} cols[(n, i), (k, co)] * w[ci, co, k]     (cols @ W)
#   dw[ci, (k, co)]  = sum_{(n, i)} x[(n, i), ci] * cols[(n, i), (k, co)]     (x^T @ cols)
#
# For depthwise weights (C_in/g = 1, C_out = C_in * mult) the sums over co
# reduce to elementwise products with the channel's own taps.


def _tap_slices(
    g: jax.Array,
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    config: Config,
    channels_last: bool = True,
) -> list[jax.Array]:
    """``gp[n, s*i + d*k]`` for every tap ``k`` (row-major), each of ``g``'s layout.

    ``gp`` is the cotangent ``g`` (channels-last, or channels-first when
    ``channels_last`` is false) padded by the crops; each tap is one strided
    slice of it (no zeros, no dilation) with spatial shape ``spatial``.
    """
    nd = config.ndim
    first = 1 if channels_last else 2
    axes = range(first, first + nd)
    widths = [(0, 0, 0)] * g.ndim
    for a, (lo, hi) in zip(axes, config.crops, strict=True):
        widths[a] = (lo, hi, 0)
    gp = lax.pad(g, jnp.zeros((), g.dtype), widths)
    slices = []
    for k in np.ndindex(*kernel):
        start, limit, step = [0] * g.ndim, list(gp.shape), [1] * g.ndim
        for a, d, kk, s, n in zip(axes, config.dilation, k, config.stride, spatial, strict=True):
            start[a], limit[a], step[a] = d * kk, d * kk + s * (n - 1) + 1, s
        slices.append(lax.slice(gp, start, limit, step))
    return slices


def _im2col(
    g: jax.Array, spatial: tuple[int, ...], kernel: tuple[int, ...], config: Config
) -> jax.Array:
    """``(N, *L, *K, C_out)`` with ``cols[n, i, k] = gp[n, s*i + d*k]``; ``g`` channels-last."""
    nd = config.ndim
    cols = jnp.stack(_tap_slices(g, spatial, kernel, config), axis=1 + nd)
    return cols.reshape(g.shape[0], *spatial, *kernel, g.shape[-1])


def _cl(a: jax.Array, config: Config) -> jax.Array:
    return a if config.channels_last else to_channels_last(a)


def _from_cl(a: jax.Array, config: Config) -> jax.Array:
    return a if config.channels_last else to_channels_first(a)


def input_grad_matmul(g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """``dx = cols @ W`` (groups == 1), or the elementwise depthwise form."""
    if config.flip:
        w = flip_spatial(w)
    w = w.astype(g.dtype)
    nd = config.ndim
    c_in, c_out_g, *kernel = w.shape
    spatial = _input_spatial(geo.spatial_shape(config, g.shape), kernel, config)
    if config.groups != 1:
        return _depthwise_input_grad(g, w, spatial, config)
    gl = _cl(g, config)
    cols = _im2col(gl, spatial, tuple(kernel), config)
    wm = w.transpose(tuple(range(2, 2 + nd)) + (1, 0)).reshape(-1, c_in)
    dx = jnp.dot(
        cols.reshape(-1, wm.shape[0]),
        wm,
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )
    return _from_cl(dx.reshape(gl.shape[0], *spatial, c_in).astype(g.dtype), config)


def weight_grad_matmul(g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """``dw = x^T @ cols`` (groups == 1), or the elementwise depthwise form."""
    nd = config.ndim
    spatial = geo.spatial_shape(config, x.shape)
    kernel = _kernel_size(spatial, geo.spatial_shape(config, g.shape), config)
    if config.groups != 1:
        return _depthwise_weight_grad(g, x, spatial, kernel, config)
    gl = _cl(g, config)
    xl = _cl(x, config).astype(g.dtype)
    n, c_in, c_out = xl.shape[0], xl.shape[-1], gl.shape[-1]
    cols = _im2col(gl, spatial, kernel, config)
    rows = n * int(np.prod(spatial))  # explicit sizes: -1 cannot be inferred when N == 0
    dw = lax.dot_general(
        xl.reshape(rows, c_in),
        cols.reshape(rows, int(np.prod(kernel)) * c_out),
        (((0,), (0,)), ((), ())),
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )
    dw = dw.reshape(c_in, *kernel, c_out).transpose((0, 1 + nd) + tuple(range(1, 1 + nd)))
    dw = dw.astype(g.dtype)
    return flip_spatial(dw) if config.flip else dw


# Depthwise (groups == C_in, C_out = C_in * mult): every sum over the output channels of a
# group is over the multiplier only.  dx is a sum of prod(K) elementwise products of the
# cotangent's taps, in the configuration's layout (no transposes) and never stacked (XLA
# fuses the sum into one pass; stacking first held prod(K) copies in memory).  dw is one
# small matrix multiply per (sample, channel) in the stride phases (with dilation: one
# multiply-and-reduce per tap).


def _channels_mult(a: jax.Array, c_in: int, config: Config) -> jax.Array:
    """An activation with ``C_in * mult`` channels, the channel axis split into ``(C_in, mult)``."""
    ax = channel_axis(config)
    return a.reshape(*a.shape[:ax], c_in, a.shape[ax] // c_in, *a.shape[ax + 1 :])


def _depthwise_input_grad(
    g: jax.Array, w: jax.Array, spatial: tuple[int, ...], config: Config
) -> jax.Array:
    """Depthwise ``dx``: ``sum_k tap_k(g) * w[:, :, k]``, summed over the multiplier.

    In the configuration's layout (no transposes); ``w`` already flipped if
    ``conv_mode`` says so.
    """
    nd = config.ndim
    c_in = w.shape[0]
    dt = geo.accumulation_dtype(config, g.dtype)
    ax = channel_axis(config)
    # w[ci, j, k] broadcast against (N, C_in, mult, *L) or (N, *L, C_in, mult)
    wk = w.astype(dt).reshape(c_in, w.shape[1], -1)
    dx = None
    for i, tap in enumerate(
        _tap_slices(g, spatial, tuple(w.shape[2:]), config, config.channels_last)
    ):
        wi = wk[:, :, i]
        wi = wi if config.channels_last else wi.reshape(c_in, -1, *(1,) * nd)
        term = (_channels_mult(tap, c_in, config).astype(dt) * wi).sum(axis=ax + 1)
        dx = term if dx is None else dx + term
    assert dx is not None  # the kernel has at least one tap
    return dx.astype(g.dtype)


def _depthwise_weight_grad(
    g: jax.Array, x: jax.Array, spatial: tuple[int, ...], kernel: tuple[int, ...], config: Config
) -> jax.Array:
    """Depthwise ``dw[ci, j, k] = sum_{n, i} x[n, ci, i] * tap_k(g)[n, (ci, j), i]``."""
    if all(d == 1 for d in config.dilation):
        return _depthwise_weight_grad_phase(g, x, spatial, kernel, config)
    nd = config.ndim
    c_in = x.shape[channel_axis(config)]
    dt = geo.accumulation_dtype(config, g.dtype)
    ax = channel_axis(config)
    xe = jnp.expand_dims(x.astype(dt), ax + 1)  # a multiplier axis of size 1
    reduce = tuple(a for a in range(nd + 3) if a not in (ax, ax + 1))
    taps = [
        (xe * _channels_mult(tap, c_in, config).astype(dt)).sum(axis=reduce)
        for tap in _tap_slices(g, spatial, kernel, config, config.channels_last)
    ]
    dw = jnp.stack(taps, axis=-1).reshape(c_in, -1, *kernel).astype(g.dtype)
    return flip_spatial(dw) if config.flip else dw


def _depthwise_weight_grad_phase(
    g: jax.Array, x: jax.Array, spatial: tuple[int, ...], kernel: tuple[int, ...], config: Config
) -> jax.Array:
    """Depthwise ``dw`` in the phases of :func:`weight_grad_phase`, channel by channel.

    ``dw[ci, j, s*m + r] = sum_{n, t} P[n, ci, m, t] * gph[n, (ci, j), r, t]`` with
    ``P[.., m, t] = x[.., t - m]`` (``M^d`` shifted copies of ``x``) and ``gph`` the
    zero-extended cotangent read as phases: one small matrix multiply per (sample,
    channel), batched, so each channel's taps are summed while its data is in cache
    (a multiply-and-reduce per tap read the cotangent ``prod(K)`` times: 2x slower).
    Channels-first inside (the batch axes lead); no dilation.
    """
    nd = config.ndim
    xf = x if not config.channels_last else to_channels_first(x)
    gf = g if not config.channels_last else to_channels_first(g)
    n, c_in = xf.shape[:2]
    c_out = gf.shape[1]
    s = config.stride
    m = geo.phase_counts(kernel, s)
    rows = tuple(ln + mm - 1 for ln, mm in zip(spatial, m, strict=True))
    pads = [
        (lo, r * st - (o + lo), 0)
        for (lo, _), r, st, o in zip(config.crops, rows, s, gf.shape[2:], strict=True)
    ]
    gp = lax.pad(gf, jnp.zeros((), gf.dtype), [(0, 0, 0)] * 2 + pads)
    gp = gp.reshape(
        n, c_in, c_out // c_in, *[v for r, st in zip(rows, s, strict=True) for v in (r, st)]
    )
    gp = gp.transpose(
        (0, 1, 2) + tuple(4 + 2 * a for a in range(nd)) + tuple(3 + 2 * a for a in range(nd))
    )
    gph = gp.reshape(
        n,
        c_in,
        c_out // c_in * math.prod(s),  # (N, C_in, mult*prod(s), prod(J))
        math.prod(rows),
    )  # explicit sizes: -1 cannot be inferred when N == 0
    xp = xf.astype(gf.dtype)
    patches = jnp.stack(
        [
            lax.pad(
                xp,
                jnp.zeros((), xp.dtype),
                [(0, 0, 0)] * 2 + [(mm, mt - 1 - mm, 0) for mm, mt in zip(mi, m, strict=True)],
            )
            for mi in np.ndindex(*m)
        ],
        axis=2,
    ).reshape(n, c_in, math.prod(m), math.prod(rows))
    dw = lax.dot_general(
        patches,
        gph,
        (((3,), (3,)), ((0, 1), (0, 1))),
        precision=config.precision,
        preferred_element_type=config.preferred_element_type,
    )
    dw = dw.sum(axis=0)  # (C_in, prod(M), mult*prod(s))
    # (C_in, *M, mult, *s) -> (C_in, mult, *(M*s)) -> crop to K
    dw = dw.reshape(c_in, *m, c_out // c_in, *s)
    dw = dw.transpose((0, 1 + nd) + tuple(v for a in range(nd) for v in (1 + a, 2 + nd + a)))
    dw = dw.reshape(c_in, c_out // c_in, *[mm * st for mm, st in zip(m, s, strict=True)])
    dw = dw[(slice(None), slice(None)) + tuple(slice(0, k) for k in kernel)].astype(g.dtype)
    return flip_spatial(dw) if config.flip else dw


def _input_spatial(out_spatial, kernel, config: Config) -> tuple[int, ...]:
    # Invert L_out = (L - 1)*s + d*(K - 1) + 1 - lo - hi for L.
    return tuple(
        (o + lo + hi - d * (k - 1) - 1) // s + 1
        for o, k, s, d, (lo, hi) in zip(
            out_spatial, kernel, config.stride, config.dilation, config.crops, strict=True
        )
    )


def _kernel_size(spatial, out_spatial, config: Config) -> tuple[int, ...]:
    # Invert the same formula for K.
    return tuple(
        (o + lo + hi - s * (n - 1) - 1) // d + 1
        for n, o, s, d, (lo, hi) in zip(
            spatial, out_spatial, config.stride, config.dilation, config.crops, strict=True
        )
    )


# --- phase form of dw -------------------------------------------------------------------------
#
# With d = 1 write k = s*m + r as in the sub-pixel lowering.  Extend gp with
# zeros to J*s positions per axis (J = L + M - 1) and read it as phases,
# gph[n, j, r, co] = gp[n, s*j + r, co] (a reshape, no copy).  Then
#
#   dw[ci, co, s*m + r] = sum_{n, i} x[n, i, ci] * gp[n, s*(i + m) + r, co]
#                       = sum_{n, j} P[n, j, m, ci] * gph[n, j, r, co],   P[n, j, m] = x[n, j - m]
#
# one matrix multiply P^T @ gph of (N*J, M*C_in) by (N*J, s*C_out): the
# patches P are M^d shifted copies of x, smaller than the prod(K) slices of
# the cotangent that im2col gathers whenever C_in < prod(s) * C_out (3-D
# decoders).  With K == s (M = 1) P is x itself: a single matmul, no copy.


def _cotangent_phases(gl: jax.Array, spatial, kernel, config: Config):
    """gp zero-extended to ``J*s`` per axis, as phases ``(N, *J, *s, C_out)``; also ``M``, ``J``."""
    n, c_out = gl.shape[0], gl.shape[-1]
    s = config.stride
    m = geo.phase_counts(kernel, s)
    rows = tuple(ln + mm - 1 for ln, mm in zip(spatial, m, strict=True))
    pads = [
        (lo, r * st - (o + lo), 0)
        for (lo, _), r, st, o in zip(config.crops, rows, s, gl.shape[1:-1], strict=True)
    ]
    gp = lax.pad(gl, jnp.zeros((), gl.dtype), [(0, 0, 0)] + pads + [(0, 0, 0)])
    gp = geo.space_to_depth(gp, s).reshape(n, *rows, *s, c_out)
    return gp, m, rows


def group_major(a: jax.Array, groups: int, channels_last: bool) -> jax.Array:
    """An activation ``(N, C, *S)`` / ``(N, *S, C)`` -> ``(g, N, *S, C/g)``."""
    nd = a.ndim - 2
    if channels_last:
        n, *spatial, c = a.shape
        a = a.reshape(n, *spatial, groups, c // groups)
        return a.transpose((1 + nd, 0) + tuple(range(1, 1 + nd)) + (2 + nd,))
    n, c, *spatial = a.shape
    a = a.reshape(n, groups, c // groups, *spatial)
    return a.transpose((1, 0) + tuple(range(3, 3 + nd)) + (2,))


def _groups_first(a: jax.Array, groups: int) -> jax.Array:
    """Channels-last ``(N, *S, C)`` -> ``(g*N, *S, C/g)``, channels read group-major."""
    if groups == 1:
        return a
    n, *spatial, c = a.shape
    return group_major(a, groups, True).reshape(groups * n, *spatial, c // groups)


def _dot_per_group(
    a: jax.Array, b: jax.Array, contract: tuple[int, int], config: Config, preferred: Any = None
) -> jax.Array:
    """``lax.dot_general`` of ``(g, ...)`` operands batched over the group axis 0, in
    ``preferred`` (default: the configuration's ``preferred_element_type``)."""
    return lax.dot_general(
        a,
        b,
        (((contract[0],), (contract[1],)), ((0,), (0,))),
        precision=config.precision,
        preferred_element_type=preferred or config.preferred_element_type,
    )


# dx in the same phases: dx[n, i, ci] = sum_{m, r, co} gph[n, i + m, r, co] * w[ci, co, s*m + r].
# Two ways to do the sum over the M^d taps m with one matrix multiply, by the channels:
#
# * output side (C_in <= s^d * C_out per group, every decoder layer but the last): multiply
#   the phases themselves (every row j of J = L + M - 1; no copies) by the weight as
#   (r, co) x (m, ci), Y[n, j, m, ci] = sum_{r, co} gph[n, j, r, co] * w[ci, co, s*m + r],
#   then dx[n, i] = sum_m Y[n, i + m, m], a shifted sum XLA fuses into one pass over Y
#   (M^d * C_in channels per row);
# * input side (few output channels, e.g. an RGB output layer): Q @ Wq with
#   Q[n, i, m, (r, co)] = gph[n, i + m, r, co], the M^d shifted windows of the phases
#   stacked (M^d * s^d * C_out channels per row, the smaller side then).
#
# Both zero-pad the weight to M*s taps.  With groups > 1 the group is the batch axis of
# the matrix multiply: the channels are read group-major and the group moved in front
# of the batch once, before the phases.
def phase_dx_sums_on_output_side(c_in_g: int, c_out_g: int, stride) -> bool:
    """Which of the two ways :func:`input_grad_phase` takes: the output side when
    ``C_in/g <= prod(s) * C_out/g`` (the smaller of the two matrices it would build)."""
    return c_in_g <= math.prod(stride) * c_out_g


def input_grad_phase(g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """``dx`` as one matrix multiply (per group) in the cotangent's phases."""
    if config.flip:
        w = flip_spatial(w)
    nd = config.ndim
    groups = config.groups
    c_in, c_out_g, *kernel = w.shape
    gl = _cl(g, config)
    n = gl.shape[0]
    spatial = _input_spatial(gl.shape[1:-1], kernel, config)
    gph, m, rows = _cotangent_phases(_groups_first(gl, groups), spatial, kernel, config)
    s = config.stride
    ci = c_in // groups
    wq = geo.pad_to_phases(w.astype(g.dtype), s)
    wq = wq.reshape(
        groups, ci, c_out_g, *[v for mm, st in zip(m, s, strict=True) for v in (mm, st)]
    )
    taps = int(np.prod(m))  # explicit sizes: N may be 0
    phase_ch = int(np.prod(s)) * c_out_g
    acc = geo.accumulation_dtype(config, g.dtype)  # the tap sum rounds once
    if phase_dx_sums_on_output_side(ci, c_out_g, s):
        # (g, C_in/g, C_out/g, M_1, s_1, M_2, s_2, ...) -> (g, *s, C_out/g, *M, C_in/g)
        wq = wq.transpose(
            (0,)
            + tuple(4 + 2 * a for a in range(nd))
            + (2,)
            + tuple(3 + 2 * a for a in range(nd))
            + (1,)
        )
        y = _dot_per_group(
            gph.reshape(groups, n * int(np.prod(rows)), phase_ch),
            wq.reshape(groups, phase_ch, taps * ci),
            (2, 1),
            config,
            acc,
        )
        y = y.reshape(groups, n, *rows, *m, ci)
        dx = None
        for mi in np.ndindex(*m):
            block = y[
                (slice(None), slice(None))
                + tuple(slice(mm, mm + ln) for mm, ln in zip(mi, spatial, strict=True))
                + mi
            ]
            dx = block if dx is None else dx + block  # (g, N, *L, C_in/g)
    else:
        q = jnp.stack(
            [
                gph[
                    (slice(None),)
                    + tuple(slice(mm, mm + ln) for mm, ln in zip(mi, spatial, strict=True))
                ]
                for mi in np.ndindex(*m)
            ],
            axis=1 + nd,
        )  # (g*N, *L, M^d, *s, C_out/g)
        # -> (g, *M, *s, C_out/g, C_in/g)
        wq = wq.transpose(
            (0,)
            + tuple(3 + 2 * a for a in range(nd))
            + tuple(4 + 2 * a for a in range(nd))
            + (2, 1)
        )
        dx = _dot_per_group(
            q.reshape(groups, n * int(np.prod(spatial)), taps * phase_ch),
            wq.reshape(groups, taps * phase_ch, ci),
            (2, 1),
            config,
            acc,
        )
        dx = dx.reshape(groups, n, *spatial, ci)
    assert dx is not None  # at least one phase
    dx = jnp.moveaxis(dx, 0, -2).reshape(n, *spatial, c_in)
    return _from_cl(dx.astype(g.dtype), config)


# dw in the same phases (with groups > 1, per group as for dx):
#   dw[ci, co, s*m + r] = sum_{n, j} P[n, j, m, ci] * gph[n, j, r, co],  P[n, j, m] = x[n, j - m]
def weight_grad_phase(g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """``dw`` as one matrix multiply (per group) of phase patches of ``x`` with cotangent phases."""
    nd = config.ndim
    groups = config.groups
    gl = _cl(g, config)
    xl = _cl(x, config).astype(g.dtype)
    n, *spatial, c_in = xl.shape
    c_out = gl.shape[-1]
    kernel = _kernel_size(tuple(spatial), gl.shape[1:-1], config)
    s = config.stride
    gp, m, rows = _cotangent_phases(_groups_first(gl, groups), tuple(spatial), kernel, config)
    xg = _groups_first(xl, groups)
    patches = jnp.stack(
        [
            lax.pad(
                xg,
                jnp.zeros((), xg.dtype),
                [(0, 0, 0)]
                + [(mm, mt - 1 - mm, 0) for mm, mt in zip(mi, m, strict=True)]
                + [(0, 0, 0)],
            )
            for mi in np.ndindex(*m)
        ],
        axis=1 + nd,
    )  # (g*N, *J, M^d, C_in/g)
    rows_total = n * int(np.prod(rows))
    ci, co = c_in // groups, c_out // groups  # explicit sizes: N may be 0
    dw = _dot_per_group(
        patches.reshape(groups, rows_total, int(np.prod(m)) * ci),
        gp.reshape(groups, rows_total, int(np.prod(s)) * co),
        (1, 1),
        config,
    )
    # (g, *M, C_in/g, *s, C_out/g) -> (C_in, *M, *s*C_out/g) -> (C_in, C_out/g, *(M*s)) -> crop
    dw = dw.reshape(groups, *m, ci, -1)
    dw = jnp.moveaxis(dw, 1 + nd, 1).reshape(c_in, *m, dw.shape[-1])
    dw = geo.depth_to_space(dw, s, channels_last=True)
    dw = jnp.moveaxis(dw, -1, 1)
    dw = dw[(slice(None), slice(None)) + tuple(slice(0, k) for k in kernel)].astype(g.dtype)
    return flip_spatial(dw) if config.flip else dw
