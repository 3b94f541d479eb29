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
    padding = [
        geo.lax_padding(k, d, c)
        for k, d, c in zip(kernel, config.dilation, config.crops, strict=True)
    ]
    # XLA:CPU aborts on some (0, 0)-padded axes (geo.xla_swap_abort_axes): one more row of
    # high padding there, cropped off below, is exact (that row sees only padding).
    extra = geo.xla_swap_abort_axes(kernel, config.stride, config.dilation, padding)
    padding = [(lo, hi + e) for (lo, hi), e in zip(padding, extra, strict=True)]
    y = lax.conv_general_dilated(
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
    if not any(extra):
        return y
    axes = geo.spatial_axes(config, y.ndim)
    index = [slice(None)] * y.ndim
    for a, e in zip(axes, extra, strict=True):
        if e:
            index[a] = slice(0, y.shape[a] - 1)
    return y[tuple(index)]


# --- zero-free lowerings: the phases (*) of _geometry ---------------------------------------


def _phase_major_kernel(w: jax.Array, groups: int, flip: bool, ph: Phases) -> jax.Array:
    """``(C_in, C_out/g, *K)`` -> ``(g, *s, C_out/g, C_in/g, *M)`` with taps ``w[s*m + r]``."""
    if flip:
        w = geo.flip_spatial(w)
    c_in, c_out_g, *kernel = w.shape
    nd = len(kernel)
    w = geo.pad_to_phases(w, ph.s)
    w = w.reshape(
        groups,
        c_in // groups,
        c_out_g,
        *[v for m, s in zip(ph.m, ph.s, strict=True) for v in (m, s)],
    )
    m_axes = tuple(3 + 2 * a for a in range(nd))
    r_axes = tuple(4 + 2 * a for a in range(nd))
    return w.transpose((0,) + r_axes + (2, 1) + m_axes)


def _interleave(y: jax.Array, ph: Phases, channels_last: bool) -> jax.Array:
    """Phase rows ``(N, *J, prod(s)*C)`` (channels ``(*s, C)``) -> the cropped output."""
    y = geo.depth_to_space(y, ph.s, channels_last=channels_last)
    lead = (slice(None),) if channels_last else (slice(None), slice(None))
    return y[lead + ph.crop()]


def subpixel(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Sub-pixel (phase) lowering: the ``prod(s)`` phases of (*) as stride-1 convolutions.

    The phases are stacked along the output channels (group-major, so
    ``feature_group_count`` still applies), then interleaved and cropped.  The
    phases of an axis have ``M`` or ``M - 1`` real taps (:meth:`Phases.tap_groups`);
    padding the short ones with a zero tap would multiply the input by it, and a
    NaN/Inf input would turn an output NaN that the definition leaves alone.  So
    each group of phases with equal real tap counts (one when ``K`` is a multiple
    of ``s``, at most ``2**ndim``) is one convolution, concatenated in phase order;
    phases no tap reaches (``K < s``) are zeros.
    """
    g = config.groups
    nd = config.ndim
    cl = config.channels_last
    ph = Phases.of(geo.spatial_shape(config, x.shape), w.shape[2:], config)
    kfull = _phase_major_kernel(w, g, config.flip, ph)  # (g, *s, C_out/g, C_in/g, *M)
    c_out_g, c_in_g = kfull.shape[1 + nd], kfull.shape[2 + nd]
    n, rows, p = x.shape[0], ph.rows, math.prod(ph.s)
    groups = ph.tap_groups()
    dn = geo.dimension_numbers(nd, cl)
    # Blocks (n, *rows, g, *s_b, C_out/g) channels-last, (n, g, *s_b, C_out/g, *rows) else;
    # their phase axes start at `first`.  (Explicit sizes: -1 cannot be inferred for N == 0.)
    first = 2 + nd if cl else 2
    blocks, zero = {}, []
    for combo in np.ndindex(*[len(gr) for gr in groups]):
        sel = [groups[a][c] for a, c in enumerate(combo)]
        taps = tuple(t for _, _, t in sel)
        sb = tuple(r1 - r0 for r0, r1, _ in sel)
        if 0 in taps:
            zero.append((combo, sb))
            continue
        k = kfull[
            (slice(None),)
            + tuple(slice(r0, r1) for r0, r1, _ in sel)
            + (slice(None),) * 2
            + tuple(slice(0, t) for t in taps)
        ]
        # Correlation with the sub-kernel reversed along m (x[j - m] read left to right).
        k = lax.rev(k.reshape(-1, c_in_g, *taps), tuple(range(2, 2 + nd)))
        pad = [
            (d * (t - 1) - j0, j1 - ln)
            for d, t, j0, j1, ln in zip(ph.d, taps, ph.j0, ph.j1, ph.length, strict=True)
        ]
        y = lax.conv_general_dilated(
            x,
            k,
            (1,) * nd,
            pad,
            rhs_dilation=ph.d,
            dimension_numbers=dn,
            feature_group_count=g,
            precision=config.precision,
            preferred_element_type=config.preferred_element_type,
        )
        blocks[combo] = (
            y.reshape(n, *rows, g, *sb, c_out_g) if cl else y.reshape(n, g, *sb, c_out_g, *rows)
        )
    if len(blocks) == 1 and not zero:
        y = blocks[(0,) * nd]
    else:
        dtype = next(iter(blocks.values())).dtype
        for combo, sb in zero:  # phases no tap reaches: zeros, no product at all
            blocks[combo] = jnp.zeros(
                (n, *rows, g, *sb, c_out_g) if cl else (n, g, *sb, c_out_g, *rows), dtype
            )

        def assemble(prefix: tuple[int, ...], a: int) -> jax.Array:
            if a == nd:
                return blocks[prefix]
            parts = [assemble(prefix + (c,), a + 1) for c in range(len(groups[a]))]
            return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=first + a)

        y = assemble((), 0)
    # Output channels (g, *s, C_out/g) -> phase-major (*s, g, C_out/g) for depth-to-space.
    if cl:
        if g > 1:
            y = jnp.moveaxis(y, 1 + nd, 1 + 2 * nd)
        y = y.reshape(n, *rows, p * g * c_out_g)
    else:
        if g > 1:
            y = jnp.moveaxis(y, 1, 1 + nd)
        y = y.reshape(n, p * g * c_out_g, *rows)
    return _interleave(y, ph, cl)


def real_taps(a: jax.Array, m: tuple[int, ...], ph: Phases, first: int) -> jax.Array:
    """Zero, by padding rather than by a product, the phases tap ``m`` does not reach.

    ``a`` holds tap ``m``'s products with the phase axes ``first ... first + ndim``;
    phases ``r >= full`` of the last tap multiplied the zero-padded kernel, and a
    NaN/Inf input times that zero is NaN, an output the definition leaves alone.
    """
    for ax, (f, s) in enumerate(zip(ph.real_phases(m), ph.s, strict=True)):
        if f < s:
            index = [slice(None)] * a.ndim
            index[first + ax] = slice(0, f)
            widths = [(0, 0, 0)] * a.ndim
            widths[first + ax] = (0, s - f, 0)
            a = lax.pad(a[tuple(index)], jnp.zeros((), a.dtype), widths)
    return a


def _shift_sum(term: Callable[[tuple[int, ...]], jax.Array], ph: Phases, lead: int) -> jax.Array:
    """``y_r[j] = sum_m term(m)[j - m]`` for rows ``j0 <= j < j1``.

    ``term(m)`` has axes ``(lead..., *L, rest...)``; returns ``(lead..., *J, rest...)``.
    """
    nd = len(ph.m)
    out = None
    for m in np.ndindex(*ph.m):
        zm = term(m)
        pads = (
            [(0, 0, 0)] * lead
            + [
                (mm * d - j0, j1 - n - mm * d, 0)
                for mm, d, j0, j1, n in zip(m, ph.d, ph.j0, ph.j1, ph.length, strict=True)
            ]
            + [(0, 0, 0)] * (zm.ndim - lead - nd)
        )
        zm = lax.pad(zm, jnp.zeros((), zm.dtype), pads)
        out = zm if out is None else out + zm
    if out is None:  # every axis has at least one tap: M >= 1
        raise ValueError(f"no kernel taps (phase counts {ph.m})")
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
    k = _phase_major_kernel(w, 1, config.flip, ph)[0]  # (*s, C_out, C_in, *M)
    c_out = k.shape[nd]
    # -> (C_in, *M, *s, C_out) as a 2-D matrix
    k = k.transpose((nd + 1,) + tuple(range(nd + 2, 2 * nd + 2)) + tuple(range(nd)) + (nd,))
    # Products and the shifted sum in float32 for 16-bit inputs (geo.accumulation_dtype).
    acc = geo.accumulation_dtype(config, xl.dtype)
    z = jnp.dot(
        xl.reshape(-1, c_in),
        k.reshape(c_in, -1).astype(xl.dtype),
        precision=config.precision,
        preferred_element_type=acc,
    )
    z = z.reshape(n, *spatial, *ph.m, math.prod(ph.s) * c_out)  # (N, *L, *M, prod(s)*C_out)

    def term(m):
        zm = z[(slice(None),) * (1 + nd) + m]
        if ph.real_phases(m) == ph.s:
            return zm
        zm = real_taps(zm.reshape(n, *spatial, *ph.s, c_out), m, ph, 1 + nd)
        return zm.reshape(n, *spatial, math.prod(ph.s) * c_out)

    y = _shift_sum(term, ph, lead=1).astype(geo.output_dtype(config, xl.dtype))
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
    k = k[(slice(None),) * (2 + nd) + (0,)]  # (C_in, *s, mult, *M)
    # term(m)[n, *L, *s, C_in, mult] = x[n, *L, C_in] * k[C_in, *s, mult, m]
    kk = k.transpose(tuple(range(2 + nd, 2 + 2 * nd)) + tuple(range(1, 1 + nd)) + (0, 1 + nd))
    acc = geo.accumulation_dtype(config, xl.dtype)
    xe = xl.astype(acc)[(slice(None),) * (1 + nd) + (None,) * nd + (slice(None), None)]

    def term(m):
        f = ph.real_phases(m)
        if f == ph.s:
            return xe * kk[m].astype(acc)
        # Only the real taps: multiply by the reached phases, pad the others with zeros.
        prod = xe * kk[m][tuple(slice(0, v) for v in f)].astype(acc)
        return lax.pad(
            prod,
            jnp.zeros((), prod.dtype),
            [(0, 0, 0)] * (1 + nd)
            + [(0, s - v, 0) for s, v in zip(ph.s, f, strict=True)]
            + [(0, 0, 0)] * 2,
        )

    y = _shift_sum(term, ph, lead=1)  # (N, *J, *s, C_in, mult)
    y = y.astype(geo.output_dtype(config, xl.dtype))
    y = _interleave(
        y.reshape(*y.shape[: 1 + nd], math.prod(y.shape[1 + nd :])), ph, channels_last=True
    )
    return y if cl else geo.to_channels_first(y)
