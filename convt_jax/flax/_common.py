"""What the NNX and linen modules share: validation through ``ct.nn`` and the forward call.

Each function takes the family, the N-d ``ct.nn`` class (``ConvTranspose`` or ``Conv``).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp

from .. import nn as _nn
from ..nn._layers import _arguments as arguments  # noqa: F401  (the per-dimension classes')

# Each family's N-d ct.nn class -> its 1-d, 2-d and 3-d classes.
_LAYERS = {
    _nn.ConvTranspose: {1: _nn.ConvTranspose1d, 2: _nn.ConvTranspose2d, 3: _nn.ConvTranspose3d},
    _nn.Conv: {1: _nn.Conv1d, 2: _nn.Conv2d, 3: _nn.Conv3d},
}


def setting_names(family: type) -> tuple[str, ...]:
    """Settings a Flax module reads back from its ct.nn template (PyTorch's attribute names)."""
    return tuple(
        f.name
        for f in dataclasses.fields(family)
        if f.metadata.get("static") and f.name != "num_spatial_dims"
    )


def layer_class(family: type, num_spatial_dims: Any) -> type:
    """The 1/2/3-d ``ct.nn`` class for an int 1, 2 or 3; the N-d ``family`` for anything else
    (which validates it: ``True`` and ``2.0`` equal 1 and 2 but are not ints)."""
    if type(num_spatial_dims) is not int:
        return family
    return _LAYERS[family].get(num_spatial_dims, family)


def build_layer(family: type, num_spatial_dims: int, kwargs: dict[str, Any], key: jax.Array):
    """A ``ct.nn`` layer (validated by ``ct.nn``'s constructor, with its messages)."""
    cls = layer_class(family, num_spatial_dims)
    if cls is family:
        return cls(num_spatial_dims, key=key, **kwargs)
    return cls(key=key, **kwargs)


def _freeze(value: Any) -> Any:
    """A hashable cache key for a setting that keeps its type (``True`` / ``1``, ``2.0`` /
    ``2``, a list / a tuple compare equal but validate differently); :func:`_thaw` undoes it."""
    if type(value) in (list, tuple):
        return type(value), tuple(_freeze(v) for v in value)
    return type(value), value


def _thaw(frozen: Any) -> Any:
    kind, value = frozen
    return kind(_thaw(v) for v in value) if kind in (list, tuple) else value


@functools.lru_cache(maxsize=256)
def _template_cached(family: type, frozen_n: Any, items: tuple) -> Any:
    num_spatial_dims = _thaw(frozen_n)
    kwargs = {k: _thaw(v) for k, v in items}
    return jax.eval_shape(lambda: build_layer(family, num_spatial_dims, kwargs, jax.random.key(0)))


def template(family: type, num_spatial_dims: Any, kwargs: dict[str, Any]) -> Any:
    """A shape-only ``ct.nn`` layer for these settings: validates them without drawing weights.

    Its leaves are ``jax.ShapeDtypeStruct`` s; its tree structure holds the
    validated settings and rebuilds a real layer from ``(weight, bias)``.
    """
    frozen_n = _freeze(num_spatial_dims)
    items = tuple((k, _freeze(v)) for k, v in kwargs.items())
    try:
        hash((frozen_n, items))
    except TypeError:
        return jax.eval_shape(
            lambda: build_layer(family, num_spatial_dims, kwargs, jax.random.key(0))
        )
    return _template_cached(family, frozen_n, items)


def forward(treedef: Any, weight: Any, bias: Any, dtype: Any, x: Any, *args: Any):
    """The ``ct.nn`` layer's forward on ``weight``/``bias`` cast to the computation dtype
    (``args``: what the layer takes after ``x``, e.g. ``output_size``)."""
    x = jnp.asarray(x)
    arrays = [weight] if bias is None else [weight, bias]
    dt = jnp.result_type(x, *arrays) if dtype is None else dtype
    x = x.astype(dt)
    arrays = [a.astype(dt) for a in arrays]
    layer = jax.tree_util.tree_unflatten(treedef, arrays)
    return layer(x, *args)
