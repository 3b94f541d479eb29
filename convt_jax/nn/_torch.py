"""PyTorch interop shared by ``ct.nn`` layers and the Flax modules (no torch import here).

- :func:`fold_weight_norm`: a PyTorch state dict of one layer whose weight is
  stored under weight norm (``weight_g`` / ``weight_v`` or
  ``parametrizations.weight.original0`` / ``original1``) back to ``weight``,
  exactly as PyTorch computes it.
- :func:`settings_from_torch`: the constructor arguments and the (folded)
  weights of a ``torch.nn.ConvTranspose1d/2d/3d`` or ``torch.nn.Conv1d/2d/3d``.
- :func:`check_module` / :func:`check_rank`: what ``from_torch`` accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _checkpoints

__all__ = ["check_module", "check_rank", "fold_weight_norm", "settings_from_torch"]

_OLD = ("weight_g", "weight_v")
_NEW = ("parametrizations.weight.original0", "parametrizations.weight.original1")
_PLAIN = ("weight", "bias")
_LAYER_KEYS = frozenset(_PLAIN + _OLD + _NEW)
# Key endings that identify a layer's entries inside a whole model's state dict.
_SUFFIXES = _NEW + _OLD + _PLAIN


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch")


def _to_numpy(value: Any) -> np.ndarray:
    """A NumPy array from a NumPy/JAX array, a list or a ``torch.Tensor`` (bfloat16 kept)."""
    if _is_torch(value):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16; the round trip is exact
            import ml_dtypes

            return t.float().numpy().astype(ml_dtypes.bfloat16)
        return t.numpy()
    return np.asarray(value)


def _norm_axes(
    g_key: str, v_key: str, g_shape: tuple[int, ...], v_shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(axes to take the norm over, shape to broadcast g to) from g's and v's shapes.

    PyTorch stores ``g = norm_except_dim(v, 2, dim)``: v's shape with every axis
    but ``dim`` set to 1, or a 0-d tensor when ``dim`` is None (``-1``).
    """
    if v_shape:
        size = int(np.prod(g_shape, dtype=np.int64))
        if size == 1 and (len(g_shape) == 0 or len(g_shape) == len(v_shape)):
            return tuple(range(len(v_shape))), (1,) * len(v_shape)  # dim=None
        if len(g_shape) == len(v_shape):
            kept = [i for i, (a, b) in enumerate(zip(g_shape, v_shape, strict=True)) if a != 1]
            if len(kept) == 1 and g_shape[kept[0]] == v_shape[kept[0]]:
                d = kept[0]
                return tuple(i for i in range(len(v_shape)) if i != d), g_shape
        elif len(g_shape) == 1:
            matches = [i for i, b in enumerate(v_shape) if b == g_shape[0]]
            if len(matches) == 1:
                d = matches[0]
                shape = tuple(v_shape[i] if i == d else 1 for i in range(len(v_shape)))
                return tuple(i for i in range(len(v_shape)) if i != d), shape
    raise _checkpoints.weight_norm_shapes_error(g_key, v_key, g_shape, v_shape)


def fold_weight_norm(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Fold PyTorch's weight-norm entries of one layer's state dict into ``weight``.

    ``torch.nn.utils.weight_norm`` stores ``weight_g`` / ``weight_v`` and
    ``torch.nn.utils.parametrizations.weight_norm`` stores
    ``parametrizations.weight.original0`` (g) / ``original1`` (v). Both mean
    ``weight = g * v / ||v||`` with the 2-norm over every axis but ``dim``;
    ``dim`` is read from g's shape (the one axis where g has v's size; a
    scalar g is ``dim=None``, the norm of the whole tensor). For a
    ConvTranspose weight ``(C_in, C_out // groups, *kernel)`` PyTorch's
    default ``dim=0`` normalises per *input* channel; for a Conv weight
    ``(C_out, C_in // groups, *kernel)`` per *output* channel. The arithmetic is done in
    float64 and cast back to v's dtype, so the result equals PyTorch's
    ``module.weight`` to round-off.

    Args:
      state_dict: one layer's state dict (``torch_module.state_dict()``):
        ``weight`` or one weight-norm pair, optionally ``bias``; values are
        ``torch.Tensor``, NumPy or JAX arrays.

    Returns:
      A new dict: the weight-norm pair replaced by ``"weight"`` (a NumPy
      array in v's dtype), every other entry unchanged. A state dict without
      weight-norm keys comes back as a plain copy.

    Raises:
      TypeError: not a mapping, or a key that is not a str.
      ValueError: keys with a module prefix (the message says how to select
        one layer), half a pair, ``weight`` next to a pair, or g and v shapes
        that do not come from PyTorch's weight norm.

    Examples:
      >>> import numpy as np
      >>> from convt_jax.nn._torch import fold_weight_norm
      >>> v = np.arange(1.0, 7.0).reshape(2, 3, 1)           # (C_in, C_out, K)
      >>> g = np.array([2.0, 1.0]).reshape(2, 1, 1)          # dim=0: one norm per input channel
      >>> w = fold_weight_norm({"weight_g": g, "weight_v": v})["weight"]
      >>> np.round(np.linalg.norm(w.reshape(2, -1), axis=1), 12)
      array([2., 1.])
    """
    _checkpoints.check_mapping("state_dict", state_dict)
    _checkpoints.check_one_layer(state_dict, _LAYER_KEYS, _SUFFIXES, _NEW)
    pair = _checkpoints.weight_norm_pair(state_dict, _OLD, _NEW)
    if pair is None:
        return dict(state_dict)
    g_key, v_key = pair
    g, v = _to_numpy(state_dict[g_key]), _to_numpy(state_dict[v_key])
    dtype = v.dtype
    _checkpoints.check_weight_norm_dtype(v_key, dtype)
    axes, g_shape = _norm_axes(g_key, v_key, tuple(g.shape), tuple(v.shape))
    wide = np.complex128 if np.iscomplexobj(v) or np.iscomplexobj(g) else np.float64
    v64 = v.astype(wide)
    g64 = g.astype(wide).reshape(g_shape)
    norm = np.sqrt(np.sum(np.abs(v64) ** 2, axis=axes, keepdims=True))
    w = (g64 * v64 / norm).astype(dtype)
    out = {k: val for k, val in state_dict.items() if k not in (g_key, v_key)}
    out["weight"] = w
    return out


def check_module(module: Any, transposed: bool) -> None:
    """``module`` must be an initialised ``torch.nn.ConvTranspose1d/2d/3d`` (``transposed``)
    or ``torch.nn.Conv1d/2d/3d`` (or a subclass)."""
    if transposed:
        _checkpoints.check_torch_module(module)
        return
    cls = type(module)
    names = [c.__name__ for c in cls.__mro__]
    is_torch = any(c.__module__.startswith("torch.nn") for c in cls.__mro__)
    if not (is_torch and "_ConvNd" in names and not getattr(module, "transposed", True)):
        raise TypeError(
            f"module must be a torch.nn.Conv1d, Conv2d or Conv3d, not "
            f"{cls.__module__}.{cls.__qualname__}"
        )
    uninitialised = getattr(module, "has_uninitialized_params", None)
    if callable(uninitialised) and uninitialised():
        raise ValueError(
            f"module {cls.__name__} is a lazy module that has not seen an input yet; run one "
            "forward pass first so its in_channels and weight exist"
        )


def check_rank(family: str, kind: str, layer: str, want: int | None, got: int, mod: str) -> None:
    """``from_torch`` of a 1/2/3-d class of ``family`` (``"ct.nn"``, ``"convt_jax.flax"``,
    ...) needs a PyTorch ``kind`` (``"ConvTranspose"`` / ``"Conv"``) module of that rank."""
    if want is not None and got != want:
        raise TypeError(
            f"{layer}.from_torch needs a torch.nn.{kind}{want}d, not a {mod} with {got} "
            f"spatial axes; use {family}.{kind}{got}d.from_torch"
        )


def settings_from_torch(
    module: Any, transposed: bool = True
) -> tuple[int, dict[str, Any], dict[str, np.ndarray]]:
    """Read a ``torch.nn.ConvTranspose1d/2d/3d`` or ``Conv1d/2d/3d`` (weight-normed or not).

    Args:
      module: a ``torch.nn.ConvTranspose1d``, ``2d`` or ``3d`` (``transposed``;
        ``torch.nn.Conv1d``, ``2d`` or ``3d`` otherwise), or a subclass, plain,
        under ``torch.nn.utils.weight_norm`` or under
        ``torch.nn.utils.parametrizations.weight_norm``.
      transposed: which of the two families ``module`` must be.

    Returns:
      ``(num_spatial_dims, kwargs, state_dict)``: ``kwargs`` are the
      constructor arguments of ``ct.nn.ConvTranspose{n}d`` / ``ct.nn.Conv{n}d``
      (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``,
      ``padding``, ``output_padding`` (transposed only), ``groups``,
      ``dilation``, ``bias``, ``padding_mode``, ``dtype``) and ``state_dict``
      holds ``"weight"`` (weight norm folded) and, with a bias, ``"bias"`` as
      NumPy arrays.

    Raises:
      TypeError: ``module`` is not a PyTorch layer of that family.
      ValueError: a lazy module that has not been initialised yet.
    """
    check_module(module, transposed)
    kernel = tuple(int(k) for k in module.kernel_size)
    n = len(kernel)
    padding = module.padding
    if isinstance(padding, str):
        pad: Any = padding
    else:
        pad = tuple(int(p) for p in padding)
    sd = fold_weight_norm(module.state_dict())
    state = {"weight": _to_numpy(sd["weight"])}
    has_bias = module.bias is not None
    if has_bias:
        state["bias"] = _to_numpy(sd["bias"])
    kwargs: dict[str, Any] = dict(
        in_channels=int(module.in_channels),
        out_channels=int(module.out_channels),
        kernel_size=kernel,
        stride=tuple(int(s) for s in module.stride),
        padding=pad,
    )
    if transposed:
        kwargs["output_padding"] = tuple(int(a) for a in module.output_padding)
    kwargs.update(
        groups=int(module.groups),
        dilation=tuple(int(d) for d in module.dilation),
        bias=has_bias,
        padding_mode=str(module.padding_mode),
        dtype=state["weight"].dtype,
    )
    return n, kwargs, state
