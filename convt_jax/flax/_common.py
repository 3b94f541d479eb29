"""What the NNX and linen modules share: validation through ``ct.nn`` and the forward call."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from .. import nn as _nn

_LAYERS = {1: _nn.ConvTranspose1d, 2: _nn.ConvTranspose2d, 3: _nn.ConvTranspose3d}

# Settings a Flax module reads back from its ct.nn template (PyTorch's attribute names).
SETTING_NAMES = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "output_padding",
    "groups",
    "dilation",
    "padding_mode",
    "conv_mode",
    "compute_mode",
    "channels_last",
)


def layer_class(num_spatial_dims: int) -> type:
    return _LAYERS.get(num_spatial_dims, _nn.ConvTranspose)


def build_layer(num_spatial_dims: int, kwargs: dict[str, Any], key: jax.Array):
    """A ``ct.nn`` layer (validated by ``ct.nn``'s constructor, with its messages)."""
    cls = layer_class(num_spatial_dims)
    if cls is _nn.ConvTranspose:
        return cls(num_spatial_dims, key=key, **kwargs)
    return cls(key=key, **kwargs)


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@functools.lru_cache(maxsize=256)
def _template_cached(num_spatial_dims: int, items: tuple) -> Any:
    kwargs = dict(items)
    return jax.eval_shape(lambda: build_layer(num_spatial_dims, kwargs, jax.random.key(0)))


def template(num_spatial_dims: Any, kwargs: dict[str, Any]) -> Any:
    """A shape-only ``ct.nn`` layer for these settings: validates them without drawing weights.

    Its leaves are ``jax.ShapeDtypeStruct`` s; its tree structure holds the
    validated settings and rebuilds a real layer from ``(weight, bias)``.
    """
    items = tuple((k, _freeze(v)) for k, v in kwargs.items())
    try:
        hash(items)
        hash(num_spatial_dims)
    except TypeError:
        return jax.eval_shape(lambda: build_layer(num_spatial_dims, kwargs, jax.random.key(0)))
    return _template_cached(num_spatial_dims, items)


def forward(treedef: Any, weight: Any, bias: Any, dtype: Any, x: Any, output_size: Any):
    """The ``ct.nn`` layer's forward on ``weight``/``bias`` cast to the computation dtype."""
    x = jnp.asarray(x)
    arrays = [weight] if bias is None else [weight, bias]
    dt = jnp.result_type(x, *arrays) if dtype is None else dtype
    x = x.astype(dt)
    arrays = [a.astype(dt) for a in arrays]
    layer = jax.tree_util.tree_unflatten(treedef, arrays)
    return layer(x, output_size)
