"""The configuration of one transposed convolution and its geometry.

This module is the bottom of the package: it imports nothing from it.  It
holds the canonical :class:`Config`, the integer arithmetic that decides
every size (output length, crops, ``"same"`` padding), where the spatial and
channel axes of a layout are, the kernel as the equivalent forward
convolution needs it, the phase geometry of the zero-free lowerings and the
N-d depth-to-space / space-to-depth pair they interleave with.

Conventions, per spatial axis:

* ``L`` input length, ``K`` kernel length, ``s`` stride, ``d`` dilation.
* The *full* (uncropped) transposed convolution has length
  ``(L - 1) * s + d * (K - 1) + 1``; input element ``i`` and tap ``k`` land
  on full position ``s * i + d * k``.
* A *crop* ``(lo, hi)`` removes ``lo`` positions at the start and ``hi`` at
  the end of the full result.  PyTorch's ``padding=p, output_padding=a`` is
  the crop ``(p, p - a)``; a negative ``hi`` appends zeros-contributions
  (positions no input reaches), which is how ``output_padding`` and the
  ``"same"`` rule for kernels shorter than the stride are expressed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

Crop = tuple[int, int]


class Config(NamedTuple):
    """Canonical, hashable settings of one transposed convolution (a static jit argument).

    ``crops`` already hold the padding and the output padding: output axis
    ``a`` is the full transposed convolution with ``crops[a][0]`` positions
    removed at the start and ``crops[a][1]`` at the end (negative: extended).
    """

    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    crops: tuple[tuple[int, int], ...]
    groups: int
    channels_last: bool
    flip: bool
    precision: Any
    preferred_element_type: Any

    @property
    def ndim(self) -> int:
        return len(self.stride)


# --- integer arithmetic ----------------------------------------------------------------------


def full_length(length: int, kernel: int, stride: int, dilation: int) -> int:
    """Length of the uncropped transposed convolution on one axis."""
    return (length - 1) * stride + dilation * (kernel - 1) + 1


def output_length(length: int, kernel: int, stride: int, dilation: int, crop: Crop) -> int:
    """``L_out = (L - 1)*s - lo - hi + d*(K - 1) + 1`` (``hi`` holds ``-output_padding``)."""
    lo, hi = crop
    return full_length(length, kernel, stride, dilation) - lo - hi


def crop_from_padding(padding: Crop, output_padding: int) -> Crop:
    """PyTorch-style ``(lo, hi)`` padding plus ``output_padding`` as a crop."""
    lo, hi = padding
    return (lo, hi - output_padding)


def same_padding(kernel: int, stride: int, dilation: int) -> Crop:
    """The crop that makes ``L_out == L * stride``, split as ``lax.conv_transpose``'s "SAME".

    ``jax.lax.conv_transpose`` pads the stride-dilated input by ``(pad_a,
    pad_b)`` with ``pad_len = k + s - 2`` (``k`` the dilated kernel length)
    and ``pad_a = k - 1`` when ``s > k - 1`` else ``ceil(pad_len / 2)``.  A
    lax padding ``p`` of the dilated input is the crop ``k - 1 - p``.
    """
    return lax_padding(kernel, dilation, lax_string_padding("SAME", kernel, stride, dilation))


def lax_string_padding(mode: str, kernel: int, stride: int, dilation: int) -> Crop:
    """``jax.lax.conv_transpose``'s ``"SAME"`` / ``"VALID"`` padding of the dilated input."""
    k = dilation * (kernel - 1) + 1
    if mode == "SAME":
        pad_len = k + stride - 2
        pad_a = k - 1 if stride > k - 1 else -(-pad_len // 2)
    else:
        pad_len = k + stride - 2 + max(k - stride, 0)
        pad_a = k - 1
    return (pad_a, pad_len - pad_a)


def lax_padding(kernel: int, dilation: int, crop: Crop) -> Crop:
    """Padding of the stride-dilated input for the lhs-dilated lowering (its own inverse)."""
    k = dilation * (kernel - 1) + 1
    lo, hi = crop
    return (k - 1 - lo, k - 1 - hi)


def output_padding_range(
    length: int, kernel: int, stride: int, dilation: int, padding: Crop
) -> tuple[int, int]:
    """``(min, max)`` output sizes reachable with ``output_padding`` in ``[0, stride - 1]``.

    This is the range ``torch.nn.ConvTranspose*d.forward(x, output_size)``
    accepts (its ``_output_padding`` helper).
    """
    smallest = output_length(length, kernel, stride, dilation, padding)
    return smallest, smallest + stride - 1


def output_spatial_shape(
    spatial: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    crops: Sequence[Crop],
) -> tuple[int, ...]:
    """Per-axis :func:`output_length`."""
    return tuple(
        output_length(n, k, s, d, c)
        for n, k, s, d, c in zip(spatial, kernel, stride, dilation, crops, strict=True)
    )


# --- an XLA:CPU compile-time abort routed around -------------------------------------------
#
# XLA:CPU (jaxlib 0.10) aborts the process (algebraic_simplifier.cc, "Window dimensions do
# not match RHS shape") compiling a non-grouped (or depthwise, which XLA expands to dense)
# lhs-dilated convolution with an axis of kernel size 2, lhs dilation 2, window stride 1,
# kernel dilation 1 and padding (0, 0), when its other axes hold a kernel larger than the
# input: SwapConvolutionOperandsIfBeneficial swaps the operands, copies that axis' window
# unchanged, and the swapped convolution's window disagrees with its kernel.  In
# transposed-convolution terms: an axis with K == s == 2, d == 1 and lax padding (0, 0)
# (PyTorch padding 1, output_padding 0).  Any other padding of that axis compiles; both
# callers change the padding exactly (an extra row cropped off, or an explicit pad).


def xla_swap_abort_axes(
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    lax_padding: Sequence[Crop],
) -> tuple[bool, ...]:
    """Per axis: does an lhs-dilated convolution (lhs dilation ``stride``, kernel dilation
    ``dilation``, padding ``lax_padding``) have the pattern XLA:CPU aborts on (see above)?"""
    return tuple(
        k == s == 2 and d == 1 and tuple(p) == (0, 0)
        for k, s, d, p in zip(kernel, stride, dilation, lax_padding, strict=True)
    )


def transposed_strided_padding(
    length: int, kernel: int, stride: int, dilation: int, padding: Crop
) -> Crop:
    """The padding of the lhs-dilated convolution that transposes a strided one.

    A strided correlation (window stride ``stride``, kernel dilation ``dilation``,
    padding ``(lo, hi)``) of an input of ``length``; its transpose with respect to the
    input (JAX's rule) dilates the cotangent by ``stride`` and pads it by this.
    """
    lo, hi = padding
    k = dilation * (kernel - 1)
    rem = (length + lo + hi - k - 1) % stride
    return (k - lo, k - hi + rem)


# --- layouts ---------------------------------------------------------------------------------


def channel_axis(config: Config, rank: int | None = None) -> int:
    """The channel axis of an activation of ``rank`` (default batched: ``ndim + 2``)."""
    rank = config.ndim + 2 if rank is None else rank
    return rank - 1 if config.channels_last else rank - config.ndim - 1


def spatial_axes(config: Config, rank: int | None = None) -> tuple[int, ...]:
    """The spatial axes of an activation of ``rank`` (default batched: ``ndim + 2``)."""
    rank = config.ndim + 2 if rank is None else rank
    first = rank - config.ndim - 1 if config.channels_last else rank - config.ndim
    return tuple(range(first, first + config.ndim))


def spatial_shape(config: Config, shape: Sequence[int]) -> tuple[int, ...]:
    """The spatial sizes of an activation shape (batched or not)."""
    return tuple(shape[a] for a in spatial_axes(config, len(shape)))


def output_shape(config: Config, x_shape: Sequence[int], w_shape: Sequence[int]) -> tuple[int, ...]:
    """The output shape for an input shape (any leading axes) and a PyTorch-layout weight shape."""
    x_shape = tuple(x_shape)
    out = output_spatial_shape(
        spatial_shape(config, x_shape),
        tuple(w_shape[2:]),
        config.stride,
        config.dilation,
        config.crops,
    )
    lead = x_shape[: len(x_shape) - config.ndim - 1]
    c_out = w_shape[1] * config.groups
    return lead + out + (c_out,) if config.channels_last else lead + (c_out,) + out


def output_dtype(config: Config, dtype) -> jnp.dtype:
    """The dtype a lowering returns: ``preferred_element_type`` if set, else ``dtype``."""
    return jnp.dtype(config.preferred_element_type or dtype)


def accumulation_dtype(config: Config, dtype) -> jnp.dtype:
    """The dtype sums are carried in: ``preferred_element_type`` if set, else float32 for
    16-bit floats (bfloat16 / float16: their sums of products lose digits fast), else
    ``dtype``."""
    if config.preferred_element_type is not None:
        return jnp.dtype(config.preferred_element_type)
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize == 2:
        return jnp.dtype(jnp.float32)
    return dtype


def dimension_numbers(ndim: int, channels_last: bool) -> lax.ConvDimensionNumbers:
    """``(lhs, rhs, out)`` specs for an activation layout and an ``(O, I, *K)`` kernel."""
    spatial = tuple(range(2, ndim + 2))
    if channels_last:
        act = (0, ndim + 1) + tuple(range(1, ndim + 1))
    else:
        act = (0, 1) + spatial
    return lax.ConvDimensionNumbers(lhs_spec=act, rhs_spec=(0, 1) + spatial, out_spec=act)


def to_channels_last(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, 1, -1)


def to_channels_first(x: jax.Array) -> jax.Array:
    return jnp.moveaxis(x, -1, 1)


# --- kernels ---------------------------------------------------------------------------------


def flip_spatial(w: jax.Array) -> jax.Array:
    """Reverse every spatial (kernel) axis of an ``(A, B, *K)`` weight."""
    return lax.rev(w, tuple(range(2, w.ndim)))


def forward_kernel(w: jax.Array, groups: int, flip: bool) -> jax.Array:
    """``(A, B/g, *K)`` -> ``(B, A/g, *K)``: each group's channel block transposed, then reversed.

    For the PyTorch weight ``(C_in, C_out/g, *K)`` this is the lax kernel
    ``(C_out, C_in/g, *K)`` of the equivalent stride-1 convolution of the
    dilated input: group ``j`` maps input channels ``j*C_in/g ...`` to output
    channels ``j*C_out/g ...``; that convolution needs, per group, the
    ``(C_out/g, C_in/g)`` transpose of the block and the kernel reversed (a
    scatter becomes a gather).  ``flip=True`` (``conv_mode="convolution"``)
    cancels the reversal.  The map is its own inverse: applied to the result
    with the same ``groups`` and ``flip`` it gives ``w`` back.
    """
    a, b_g, *kernel = w.shape
    w = w.reshape(groups, a // groups, b_g, *kernel)
    w = jnp.swapaxes(w, 1, 2).reshape(groups * b_g, a // groups, *kernel)
    return w if flip else flip_spatial(w)


# --- phase geometry --------------------------------------------------------------------------
#
# Full position f = s*i + d*k of input i and tap k.  With d = 1 write k = s*m + r
# (r in [0, s), m in [0, M), M = ceil(K / s), the kernel zero-padded to M*s taps):
# then f = s*(i + m) + r, so output *phase* r of row j = i + m is
#
#     y_r[j] = sum_m x[j - m] * w[s*m + r]                                   (*)
#
# a stride-1 correlation of the un-dilated input with the sub-kernel of taps
# s*m + r.  Phase rows j0 <= j < j1 cover the cropped output; interleaving
# them (depth-to-space) and cropping gives y.  On an axis with s = 1, (*) is the
# ordinary correlation with kernel dilation d.  An axis with both s > 1 and
# d > 1 splits its taps into phases unevenly (gcd(s, d) matters) and has no phase form.


def phase_counts(kernel: Sequence[int], stride: Sequence[int]) -> tuple[int, ...]:
    """``M = ceil(K / s)`` per axis: taps of each phase of the kernel."""
    return tuple(-(-k // s) for k, s in zip(kernel, stride, strict=True))


def pad_to_phases(w: jax.Array, stride: Sequence[int], first_spatial: int = 2) -> jax.Array:
    """Zero-pad the kernel axes ``first_spatial...`` of ``w`` at the end to ``M*s`` taps."""
    kernel = w.shape[first_spatial : first_spatial + len(stride)]
    m = phase_counts(kernel, stride)
    widths = [(0, 0)] * w.ndim
    for a, (mm, s, k) in enumerate(zip(m, stride, kernel, strict=True)):
        widths[first_spatial + a] = (0, mm * s - k)
    return jnp.pad(w, widths)


def has_phases(config: Config) -> bool:
    """Whether (*) applies: no axis has both stride > 1 and dilation > 1."""
    return all(s == 1 or d == 1 for s, d in zip(config.stride, config.dilation, strict=True))


class Phases(NamedTuple):
    """Per-axis phase geometry of (*) for one configuration, input and kernel size."""

    s: tuple[int, ...]  # stride
    d: tuple[int, ...]  # kernel dilation inside a phase (d where s == 1, else 1)
    m: tuple[int, ...]  # M = ceil(K / s)
    length: tuple[int, ...]  # input length L
    out: tuple[int, ...]  # cropped output length
    lo: tuple[int, ...]  # crop at the start
    j0: tuple[int, ...]  # first phase row of the output
    j1: tuple[int, ...]  # one past the last phase row of the output
    full: tuple[int, ...] = ()  # phases r < full have M real taps, the others M - 1

    @classmethod
    def of(cls, spatial: Sequence[int], kernel: Sequence[int], config: Config) -> Phases:
        s = config.stride
        out = output_spatial_shape(spatial, kernel, s, config.dilation, config.crops)
        lo = tuple(c[0] for c in config.crops)
        return cls(
            s=s,
            d=tuple(d if st == 1 else 1 for st, d in zip(s, config.dilation, strict=True)),
            m=phase_counts(kernel, s),
            length=tuple(spatial),
            out=out,
            lo=lo,
            j0=tuple(lo_ // st for lo_, st in zip(lo, s, strict=True)),
            j1=tuple(-(-(lo_ + o) // st) for lo_, o, st in zip(lo, out, s, strict=True)),
            full=tuple(
                k - st * (m - 1)
                for k, st, m in zip(kernel, s, phase_counts(kernel, s), strict=True)
            ),
        )

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(j1 - j0 for j0, j1 in zip(self.j0, self.j1, strict=True))

    def conv_padding(self) -> list[tuple[int, int]]:
        """Rows ``j0..j1-1`` of ``y_r`` as a correlation over ``x`` padded left by ``d*(M-1)``."""
        return [
            (d * (m - 1) - j0, j1 - n)
            for d, m, j0, j1, n in zip(self.d, self.m, self.j0, self.j1, self.length, strict=True)
        ]

    def tap_groups(self) -> list[list[tuple[int, int, int]]]:
        """Per axis, the phase ranges with equal real tap counts: ``[(r0, r1, taps), ...]``.

        The kernel is zero-padded to ``M*s`` taps; tap ``m = M - 1`` is real only for
        phases ``r < full``.  At most two ranges per axis; ``taps`` may be 0 (``K < s``).
        """
        return [
            [(0, f, m)] + ([(f, s, m - 1)] if f < s else [])
            for f, s, m in zip(self.full, self.s, self.m, strict=True)
        ]

    def real_phases(self, m: Sequence[int]) -> tuple[int, ...]:
        """Per axis, how many leading phases tap ``m`` really reaches (the rest are padding)."""
        return tuple(
            f if mm == mt - 1 else s
            for mm, mt, s, f in zip(m, self.m, self.s, self.full, strict=True)
        )

    def crop(self) -> tuple[slice, ...]:
        """Per-axis slice of the interleaved phase rows ``j0*s ...`` that is the output."""
        return tuple(
            slice(lo - j0 * s, lo - j0 * s + o)
            for lo, j0, s, o in zip(self.lo, self.j0, self.s, self.out, strict=True)
        )


# --- depth-to-space ---------------------------------------------------------------------------


def depth_to_space(x: jax.Array, block: Sequence[int], *, channels_last: bool = True) -> jax.Array:
    """Move ``prod(block)`` channel phases into the spatial axes (inverse: :func:`space_to_depth`).

    Shape contract, with ``n = len(block)`` spatial axes and any leading axes:

    * channels-last: ``(*lead, *J, prod(block) * C)`` -> ``(*lead, *(J * block), C)``;
    * channels-first: ``(*lead, prod(block) * C, *J)`` -> ``(*lead, C, *(J * block))``;

    the channel axis is read as ``(*block, C)`` (phase-major, C fastest) and
    output position ``J_a * block_a + r_a`` on axis ``a`` takes phase ``r``
    of row ``J``.  As ``dm_pix.depth_to_space`` for ``n = 2`` and a square block.
    """
    block = tuple(block)
    n = len(block)
    p = math.prod(block)
    if channels_last:
        lead, rows, c = x.shape[: x.ndim - n - 1], x.shape[x.ndim - n - 1 : -1], x.shape[-1]
        k = len(lead)
        x = x.reshape(*lead, *rows, *block, c // p)
        perm = (
            tuple(range(k)) + tuple(v for a in range(n) for v in (k + a, k + n + a)) + (k + 2 * n,)
        )
        return x.transpose(perm).reshape(
            *lead, *(j * b for j, b in zip(rows, block, strict=True)), c // p
        )
    lead, c, rows = x.shape[: x.ndim - n - 1], x.shape[x.ndim - n - 1], x.shape[x.ndim - n :]
    k = len(lead)
    x = x.reshape(*lead, *block, c // p, *rows)
    perm = tuple(range(k)) + (k + n,) + tuple(v for a in range(n) for v in (k + n + 1 + a, k + a))
    return x.transpose(perm).reshape(
        *lead, c // p, *(j * b for j, b in zip(rows, block, strict=True))
    )


def space_to_depth(x: jax.Array, block: Sequence[int], *, channels_last: bool = True) -> jax.Array:
    """Move the phases of each spatial axis into the channels (inverse: :func:`depth_to_space`).

    Shape contract, with ``n = len(block)`` spatial axes whose sizes are
    multiples of ``block``:

    * channels-last: ``(*lead, *(J * block), C)`` -> ``(*lead, *J, prod(block) * C)``;
    * channels-first: ``(*lead, C, *(J * block))`` -> ``(*lead, prod(block) * C, *J)``;

    channel ``(r, c)`` (phase-major) of row ``J`` holds position ``J * block + r``.
    """
    block = tuple(block)
    n = len(block)
    if channels_last:
        lead, sizes, c = x.shape[: x.ndim - n - 1], x.shape[x.ndim - n - 1 : -1], x.shape[-1]
        k = len(lead)
        rows = tuple(size // b for size, b in zip(sizes, block, strict=True))
        x = x.reshape(*lead, *(v for j, b in zip(rows, block, strict=True) for v in (j, b)), c)
        perm = (
            tuple(range(k))
            + tuple(k + 2 * a for a in range(n))
            + tuple(k + 2 * a + 1 for a in range(n))
            + (k + 2 * n,)
        )
        return x.transpose(perm).reshape(*lead, *rows, math.prod(block) * c)
    lead, c, sizes = x.shape[: x.ndim - n - 1], x.shape[x.ndim - n - 1], x.shape[x.ndim - n :]
    k = len(lead)
    rows = tuple(size // b for size, b in zip(sizes, block, strict=True))
    x = x.reshape(*lead, c, *(v for j, b in zip(rows, block, strict=True) for v in (j, b)))
    perm = (
        tuple(range(k))
        + tuple(k + 2 + 2 * a for a in range(n))
        + (k,)
        + tuple(k + 1 + 2 * a for a in range(n))
    )
    return x.transpose(perm).reshape(*lead, math.prod(block) * c, *rows)
