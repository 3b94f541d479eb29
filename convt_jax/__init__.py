"""convt_jax: exact, fast transposed convolution for JAX with PyTorch's semantics."""

from . import layouts as layouts
from . import nn as nn
from ._op import conv_transpose as conv_transpose
from ._op import conv_transpose1d as conv_transpose1d
from ._op import conv_transpose2d as conv_transpose2d
from ._op import conv_transpose3d as conv_transpose3d
from ._op import conv_transpose_output_shape as conv_transpose_output_shape

__version__ = "0.1.0"

__all__ = [
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose_output_shape",
    "layouts",
    "nn",
]
