"""Layers and initialisers: ``ConvTranspose1d/2d/3d`` and ``Conv1d/2d/3d`` as immutable JAX pytrees.

``ct.nn.ConvTranspose*d`` mirror ``torch.nn.ConvTranspose*d`` and ``ct.nn.Conv*d``
mirror ``torch.nn.Conv*d`` (same arguments, weight layout, initial distribution
and ``state_dict`` keys); ``ct.nn.init`` holds the initialisers they use and ICNR.
"""

from . import init as init
from ._layers import Conv as Conv
from ._layers import Conv1d as Conv1d
from ._layers import Conv2d as Conv2d
from ._layers import Conv3d as Conv3d
from ._layers import ConvTranspose as ConvTranspose
from ._layers import ConvTranspose1d as ConvTranspose1d
from ._layers import ConvTranspose2d as ConvTranspose2d
from ._layers import ConvTranspose3d as ConvTranspose3d

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "init",
]
