"""convt_jax: PyTorch-exact, fast convolutions for JAX, centred on the transposed one."""

from importlib.metadata import PackageNotFoundError, version

from . import layouts as layouts
from . import nn as nn
from . import typing as typing
from ._conv import conv as conv
from ._conv import conv1d as conv1d
from ._conv import conv2d as conv2d
from ._conv import conv3d as conv3d
from ._conv import conv_output_shape as conv_output_shape
from ._onednn import BackendInfo as BackendInfo
from ._onednn import BackendWarning as BackendWarning
from ._onednn import backend_info as backend_info
from ._op import conv_transpose as conv_transpose
from ._op import conv_transpose1d as conv_transpose1d
from ._op import conv_transpose2d as conv_transpose2d
from ._op import conv_transpose3d as conv_transpose3d
from ._op import conv_transpose_output_shape as conv_transpose_output_shape
from ._tune import autotune as autotune
from ._tune import clear_tuning_cache as clear_tuning_cache
from ._tune import tuning_cache as tuning_cache

try:
    __version__ = version("convt_jax")  # the one place it is written: pyproject.toml
except PackageNotFoundError:  # pragma: no cover - running from a source tree, not installed
    __version__ = "unknown"
del PackageNotFoundError, version

__all__ = [
    "BackendInfo",
    "BackendWarning",
    "autotune",
    "backend_info",
    "clear_tuning_cache",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_output_shape",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose_output_shape",
    "layouts",
    "nn",
    "tuning_cache",
    "typing",
]
