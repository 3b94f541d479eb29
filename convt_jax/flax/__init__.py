"""Flax modules: ``ConvTranspose1d/2d/3d`` and ``Conv1d/2d/3d`` as ``nnx.Module`` s; linen too.

``convt_jax.flax.ConvTranspose2d(...)`` is an ``nnx.Module`` with the
arguments and semantics of ``ct.nn.ConvTranspose2d``: its ``weight`` and
``bias`` are ``nnx.Param`` s in PyTorch's layout, so ``nnx.Optimizer(model,
tx, wrt=nnx.Param)`` trains them and a PyTorch checkpoint loads unchanged.
``Conv1d/2d/3d`` do the same for ``ct.nn.Conv1d/2d/3d``. Channels-last by default
(Flax's convention). ``ConvTranspose`` and ``Conv`` take the number of spatial axes
first. ``convt_jax.flax.linen`` holds the same layers, N-d ones included, as
``flax.linen.Module`` s.

Needs flax: ``pip install "convt_jax[flax]"``.
"""

try:
    from flax import nnx as _nnx  # noqa: F401
except ImportError as _e:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "convt_jax.flax needs Flax, which is not installed: "
        'pip install "convt_jax[flax]" (or pip install flax)'
    ) from _e

from . import linen as linen  # noqa: E402  (``cf.linen`` after ``import convt_jax.flax``)
from ._nnx import Conv as Conv
from ._nnx import Conv1d as Conv1d
from ._nnx import Conv2d as Conv2d
from ._nnx import Conv3d as Conv3d
from ._nnx import ConvTranspose as ConvTranspose
from ._nnx import ConvTranspose1d as ConvTranspose1d
from ._nnx import ConvTranspose2d as ConvTranspose2d
from ._nnx import ConvTranspose3d as ConvTranspose3d

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "linen",
]
