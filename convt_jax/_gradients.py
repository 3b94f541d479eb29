"""Hand-written cotangent rules of ``y = conv_transpose(x, w) + b``.

Notation (one spatial axis; every axis is independent, so N-d is the
product): input ``x[n, ci, i]`` of length ``L``, PyTorch weight
``w[ci, cl, k]`` (``cl`` the output channel inside the group), stride ``s``,
dilation ``d``, crop ``(lo, hi)`` (``hi`` holds ``-output_padding``; either
may be negative: zero extension) and output ``y[n, co, o]`` of length
``L_out = (L - 1)*s + d*(K - 1) + 1 - lo - hi``.  Group ``j`` joins input
channels ``ci`` of group ``j`` with output channels ``co = j*C_out/g + cl``.
The forward operation (SPEC §1) is

    y[n, co, o] = sum_{ci in grp(co), i, k : s*i + d*k = o + lo} x[n, ci, i] * w[ci, cl, k]

With ``conv_mode="convolution"`` the forward uses the spatially reversed
weight, so ``dx`` uses the reversed weight and ``dw`` is reversed at the end.
None of the rules multiplies by inserted zeros: the cotangent is never
dilated, only padded by ``lo`` / ``hi`` (negative padding crops).
"""

from __future__ import annotations

import jax
from jax import lax

from ._args import Config
from ._lowering import dimension_numbers, flip_spatial


def _pads(config: Config) -> list[tuple[int, int]]:
    # The cotangent padded by (lo, hi) has the uncropped length
    # (L - 1)*s + d*(K - 1) + 1; position o + lo of it is output position o.
    return [tuple(c) for c in config.crops]


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
    out = lax.conv_general_dilated(
        g,
        w.astype(g.dtype),
        window_strides=config.stride,
        padding=_pads(config),
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
    spatial = tuple(range(1, nd + 1)) if config.channels_last else tuple(range(2, nd + 2))
    channel = nd + 1 if config.channels_last else 1
    act = (channel, 0) + spatial          # (batch := channel, feature := n, *spatial)
    dn = lax.ConvDimensionNumbers(lhs_spec=act, rhs_spec=act,
                                  out_spec=(1, 0) + tuple(range(2, nd + 2)))
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


# db: y depends on b through y[n, co, o] += b[co], so db[co] = sum_{n, o} g[n, co, o].
def bias_grad(g: jax.Array, config: Config, batched: bool = True) -> jax.Array:
    """Cotangent of the bias: ``g`` summed over batch and spatial axes."""
    channel = g.ndim - 1 if config.channels_last else (1 if batched else 0)
    return g.sum(axis=tuple(a for a in range(g.ndim) if a != channel))
