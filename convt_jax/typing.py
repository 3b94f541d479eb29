"""Type aliases for the arguments of convt_jax's public functions and layers.

Static type checkers (pyright, mypy) flag a misspelled string setting such as
``method="subpixle"`` with these; at run time every value is still validated
with a message that names the argument.

Examples:
  >>> import convt_jax as ct
  >>> from convt_jax.typing import Method
  >>> def upsample(x, w, method: Method = "auto"):
  ...     return ct.conv_transpose2d(x, w, stride=2, method=method)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

__all__ = [
    "ComputeMode",
    "ConvMode",
    "Dilation",
    "FrameworkPadding",
    "KernelSize",
    "Method",
    "OutputPadding",
    "OutputSize",
    "Padding",
    "PaddingMode",
    "PaddingString",
    "Size",
    "Stride",
]

Method: TypeAlias = Literal[
    "auto", "dilated", "subpixel", "matmul", "depthwise", "grouped", "onednn"
]
"""The lowering: ``"auto"`` (picked by backend and shape) or one explicit method."""

PaddingMode: TypeAlias = Literal["zeros", "circular", "reflect", "replicate"]
"""How the forward convolution pads its input (``"zeros"``: PyTorch's transposed convolution)."""

ConvMode: TypeAlias = Literal["cross_correlation", "convolution"]
"""``"cross_correlation"`` (PyTorch) or ``"convolution"`` (kernel flipped on every axis)."""

ComputeMode: TypeAlias = Literal["default", "float32"]
"""A layer's accumulation: ``"float32"`` accumulates float16 / bfloat16 inputs in float32."""

PaddingString: TypeAlias = Literal["valid", "same"]
"""``"valid"`` (no padding) or ``"same"`` (output = input * stride)."""

Size: TypeAlias = int | Sequence[int]
"""An int for every spatial axis, or one int per spatial axis."""

Stride: TypeAlias = int | Sequence[int]
"""``stride``: an int or one int per spatial axis, each ``>= 1``."""

Dilation: TypeAlias = int | Sequence[int]
"""``dilation``: an int or one int per spatial axis, each ``>= 1``."""

OutputPadding: TypeAlias = int | Sequence[int]
"""``output_padding``: an int or one int per spatial axis, each ``< max(stride, dilation)``."""

KernelSize: TypeAlias = int | Sequence[int]
"""A layer's ``kernel_size``: an int or one int per spatial axis."""

Padding: TypeAlias = int | PaddingString | Sequence[int | Sequence[int]]
"""``padding``: an int; per spatial axis an int or a ``(lo, hi)`` pair; or a string."""

FrameworkPadding: TypeAlias = str | int | Sequence[int | Sequence[int]]
"""Another framework's ``padding``: its string (``"SAME"``, ``"valid"``, ...), an int, or per
spatial axis an int or a ``(lo, hi)`` pair."""

OutputSize: TypeAlias = int | Sequence[int] | None
"""``output_size``: the wanted spatial output size (or a full output shape), or None."""
