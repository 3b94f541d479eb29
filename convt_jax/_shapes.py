"""Pure-integer shape and padding arithmetic (no ``jnp``).

Everything that decides a size lives here, so the operation, the public
shape helper and the tests can never disagree.

Conventions, per spatial axis (SPEC §1):

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

from collections.abc import Sequence

Crop = tuple[int, int]


def full_length(length: int, kernel: int, stride: int, dilation: int) -> int:
    """Length of the uncropped transposed convolution on one axis."""
    return (length - 1) * stride + dilation * (kernel - 1) + 1


def output_length(length: int, kernel: int, stride: int, dilation: int, crop: Crop) -> int:
    """``L_out = (L - 1)*s - lo - hi + d*(K - 1) + 1`` (``hi`` already holds ``-output_padding``)."""
    lo, hi = crop
    return full_length(length, kernel, stride, dilation) - lo - hi


def crop_from_padding(padding: Crop, output_padding: int) -> Crop:
    """PyTorch-style ``(lo, hi)`` padding plus ``output_padding`` as a crop."""
    lo, hi = padding
    return (lo, hi - output_padding)


def same_padding(kernel: int, stride: int, dilation: int) -> Crop:
    """The crop that makes ``L_out == L * stride``, split as ``jax.lax.conv_transpose(padding="SAME")``.

    ``jax.lax.conv_transpose`` pads the stride-dilated input by ``(pad_a,
    pad_b)`` with ``pad_len = k + s - 2`` (``k`` the dilated kernel length)
    and ``pad_a = k - 1`` when ``s > k - 1`` else ``ceil(pad_len / 2)``.  A
    lax padding ``p`` of the dilated input is the crop ``k - 1 - p``.
    """
    k = dilation * (kernel - 1) + 1
    pad_len = k + stride - 2
    pad_a = k - 1 if stride > k - 1 else -(-pad_len // 2)
    pad_b = pad_len - pad_a
    return (k - 1 - pad_a, k - 1 - pad_b)


def lax_padding(kernel: int, dilation: int, crop: Crop) -> Crop:
    """Padding of the stride-dilated input for the lhs-dilated lowering."""
    k = dilation * (kernel - 1) + 1
    lo, hi = crop
    return (k - 1 - lo, k - 1 - hi)


def output_padding_range(length: int, kernel: int, stride: int, dilation: int,
                         padding: Crop) -> tuple[int, int]:
    """``(min, max)`` output sizes reachable with ``output_padding`` in ``[0, stride - 1]``.

    This is the range ``torch.nn.ConvTranspose*d.forward(x, output_size)``
    accepts (its ``_output_padding`` helper).
    """
    smallest = output_length(length, kernel, stride, dilation, padding)
    return smallest, smallest + stride - 1


def output_spatial_shape(spatial: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                         dilation: Sequence[int], crops: Sequence[Crop]) -> tuple[int, ...]:
    """Per-axis :func:`output_length`."""
    return tuple(
        output_length(n, k, s, d, c)
        for n, k, s, d, c in zip(spatial, kernel, stride, dilation, crops, strict=True)
    )
