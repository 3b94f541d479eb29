"""Checks of checkpoints, layer state and weight converters; their error messages live here.

What :mod:`convt_jax._args` (the arguments of the functions and layers) leaves out:

* a layer's leaves: a new ``weight`` / ``bias`` (:func:`leaf_array`, :func:`owned_leaf`,
  :func:`check_leaf`, :func:`check_leaf_names`) and ``load_state_dict``'s keys
  (:func:`check_state_dict`);
* PyTorch checkpoints read by ``from_torch`` and ``fold_weight_norm``: one layer's state
  dict (:func:`check_mapping`, :func:`check_one_layer`), weight norm's ``g`` / ``v`` pair
  (:func:`weight_norm_pair`, :func:`check_weight_norm_dtype`,
  :func:`weight_norm_shapes_error`) and the module itself (:func:`check_torch_module`);
* the rules of the weight converters (:mod:`convt_jax.layouts`): a kernel's rank and
  groups, and which of another framework's paddings PyTorch's semantics (or Keras')
  can express (:func:`check_rank`, :func:`check_kernel_groups`, :func:`check_torch_crop`,
  :func:`padding_string`, :func:`keras_padding`, :func:`no_keras_equivalent`,
  :func:`check_output_padding_below_stride`).

Like ``_args``, it checks at the Python boundary and raises the user-facing
``TypeError`` / ``ValueError``; the generic validators it needs come from ``_args``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NoReturn

import jax
import jax.numpy as jnp
import numpy as np

from ._args import CONV_WEIGHT, TRANSPOSED_WEIGHT, from_torch_tensor

# --- a layer's leaves: replace, load_state_dict (the convt_jax.nn layers) --------------------


def leaf_array(name: str, value: Any) -> Any:
    """A layer's new ``weight`` / ``bias`` as passed: a jax or NumPy array (a list or a
    ``torch.Tensor`` becomes a NumPy array; torch is not imported); ``None`` stays ``None``.

    Nothing goes through ``jnp.asarray`` here: with x64 off that would turn a float64
    array into float32 before the dtype check, a silent cast.  The caller checks the
    dtype as passed, then converts."""
    if value is None:
        return None
    value = from_torch_tensor(value)
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"{name}={value!r} must be an array, not {type(value).__name__}")
    if not hasattr(value, "dtype") or not hasattr(value, "shape"):
        value = np.asarray(value)
    return value


def owned_leaf(value: Any) -> jax.Array:
    """A checked ``weight`` / ``bias`` (from :func:`leaf_array`) as a JAX array that no
    one else can write to.

    ``jnp.asarray`` of a host array (NumPy, or a ``torch.Tensor``'s ``.numpy()`` view,
    which shares the tensor's memory) may return before its copy is made, or share the
    buffer (jax-ml/jax#37830): an in-place change to the source right after loading (a
    PyTorch model trained on, a buffer reused) could reach the layer's weights.  Measured:
    a state dict loaded, then its tensors changed in place: 84 / 2000 (108 floats) and
    271 / 2000 (4096 floats) layers held changed weights.  A private copy is made first;
    JAX arrays are immutable and pass through."""
    if isinstance(value, jax.Array):
        return value
    return jnp.asarray(np.array(value, copy=True))


def check_leaf(layer: str, name: str, current: Any, value: Any, transposed: bool = True) -> None:
    """A replacement ``weight`` / ``bias`` must keep the leaf's presence, shape and dtype
    (the weight's layout named for a transposed or a regular convolution)."""
    if current is None or value is None:
        raise ValueError(
            f"{name}: this {layer} was built with "
            f"bias={current is not None}, so its bias cannot be "
            f"{'removed' if value is None else 'set'}"
        )
    if tuple(value.shape) != tuple(current.shape):
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} must have shape "
            f"{tuple(current.shape)} for this {layer}"
            + (
                f" {TRANSPOSED_WEIGHT if transposed else CONV_WEIGHT}"
                if name == "weight"
                else " (C_out,)"
            )
        )
    got, want = np.dtype(value.dtype), np.dtype(current.dtype)
    if got != want:
        hint = f"cast it first (e.g. {name}.astype({want.name!r}))"
        if not (np.issubdtype(got, np.inexact) or got.name == "bfloat16"):
            pass  # a layer cannot have an integer or bool dtype: only the cast helps
        elif jax.dtypes.canonicalize_dtype(got) != got:
            hint += (
                f", or enable 64-bit types (jax.config.update('jax_enable_x64', True)) "
                f"and build the layer with dtype={got.name}"
            )
        else:
            hint += f" or build the layer with dtype={got.name}"
        raise TypeError(
            f"{name} has dtype {got.name} but this layer's {name} is {want.name}: {hint}"
        )


def check_leaf_names(layer: str, names: Collection[str]) -> None:
    unknown = sorted(set(names) - {"weight", "bias"})
    if unknown:
        raise ValueError(
            f"{layer}.replace got {unknown}: only 'weight' and 'bias' "
            "are arrays; the settings are fixed at construction"
        )


def check_state_dict(layer: str, state_dict: Any, has_bias: bool) -> set[str]:
    """The keys a layer's ``load_state_dict`` needs: exactly ``weight`` (and ``bias``)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping of names to arrays, not {type(state_dict).__name__}"
        )
    expected = {"weight"} | ({"bias"} if has_bias else set())
    got = set(state_dict)
    if got != expected:
        missing, unexpected = sorted(expected - got), sorted(got - expected, key=str)
        raise ValueError(
            f"state_dict has keys {sorted(got, key=str)} but this {layer} "
            f"needs exactly {sorted(expected)} (missing: {missing}, unexpected: "
            f"{unexpected}); strip any module prefix first, e.g. "
            "{k.removeprefix('decoder.0.'): v for k, v in sd.items()}"
        )
    return expected


# --- PyTorch checkpoints: one layer's state dict, weight norm, the module --------------------


def check_mapping(name: str, value: Any) -> Mapping:
    """A PyTorch state dict: a mapping of names to arrays."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of names to arrays, not {type(value).__name__}")
    return value


def check_one_layer(
    state_dict: Mapping,
    layer_keys: Collection[str],
    suffixes: Sequence[str],
    parametrization: tuple[str, str],
) -> None:
    """A state dict of one layer: str keys, none with a module prefix (``decoder.0.weight``)
    or a parametrization other than weight norm's ``parametrization`` pair."""
    for key in state_dict:
        if not isinstance(key, str):
            raise TypeError(f"state_dict key {key!r} must be a str, not {type(key).__name__}")
        if key in layer_keys or "." not in key:
            continue
        prefix = next(
            (key[: -len(s)] for s in suffixes if key.endswith("." + s)), key.rsplit(".", 1)[0] + "."
        )
        if prefix.endswith("parametrizations.weight."):
            raise ValueError(
                f"state_dict key {key!r}: only weight norm's parametrization "
                f"({parametrization[0]!r}, {parametrization[1]!r}) can be folded; remove other "
                "parametrizations in PyTorch first (torch.nn.utils.parametrize."
                "remove_parametrizations(module, 'weight'))"
            )
        keys = sorted(state_dict, key=str)
        shown = keys if len(keys) <= 6 else keys[:6] + ["..."]
        raise ValueError(
            f"state_dict has keys {shown} with a module prefix ({prefix!r}); it must hold "
            "one layer's keys ('weight', 'bias', or weight norm's 'weight_g'/'weight_v' or "
            f"'{parametrization[0]}'/'original1'). Select one layer's keys first, e.g. "
            f"{{k.removeprefix({prefix!r}): v for k, v in sd.items() "
            f"if k.startswith({prefix!r})}}"
        )


def weight_norm_pair(
    state_dict: Mapping, old: tuple[str, str], new: tuple[str, str]
) -> tuple[str, str] | None:
    """The ``(g, v)`` keys of the one weight-norm pair in ``state_dict`` (``None`` if none)."""
    if "weight_orig" in state_dict:
        raise ValueError(
            "state_dict has 'weight_orig': that is spectral norm "
            "(torch.nn.utils.spectral_norm), not weight norm; fold it in PyTorch first "
            "(torch.nn.utils.remove_spectral_norm(module)) and pass module.state_dict()"
        )
    pairs = [p for p in (old, new) if p[0] in state_dict or p[1] in state_dict]
    if not pairs:
        return None
    if len(pairs) == 2:
        raise ValueError(
            f"state_dict has both weight-norm spellings {old} and {new}; it must hold one "
            "layer's weight once"
        )
    g_key, v_key = pairs[0]
    for k in (g_key, v_key):
        if k not in state_dict:
            raise ValueError(
                f"state_dict has {(g_key if k == v_key else v_key)!r} but not {k!r}: "
                f"weight norm needs both {g_key!r} (g) and {v_key!r} (v)"
            )
    if "weight" in state_dict:
        raise ValueError(
            f"state_dict has both 'weight' and the weight-norm pair {g_key!r}/{v_key!r}; "
            "pass one of them"
        )
    return g_key, v_key


def check_weight_norm_dtype(v_key: str, dtype: Any) -> None:
    """Weight norm's v must be floating or complex (bfloat16 included)."""
    if not (np.issubdtype(dtype, np.inexact) or np.dtype(dtype).name == "bfloat16"):
        raise TypeError(f"{v_key} has dtype {dtype} but must be floating or complex")


def weight_norm_shapes_error(
    g_key: str, v_key: str, g_shape: tuple[int, ...], v_shape: tuple[int, ...]
) -> ValueError:
    """The error for g and v shapes that PyTorch's weight norm does not produce (says why)."""
    shapes = f"{g_key} of shape {g_shape} and {v_key} of shape {v_shape}"
    if len(v_shape) == 0:
        return ValueError(f"{shapes}: {v_key} must be a weight, not a scalar")
    if len(g_shape) == len(v_shape):
        return ValueError(
            f"{shapes} are inconsistent: weight norm's g must have v's size on one axis "
            "(the norm's `dim`) and size 1 on every other axis, as "
            "torch.norm_except_dim(v, 2, dim) returns it, or be a scalar (dim=None)"
        )
    matches = [i for i, b in enumerate(v_shape) if len(g_shape) == 1 and b == g_shape[0]]
    if len(matches) > 1:
        return ValueError(
            f"{shapes} are ambiguous: g's size {g_shape[0]} matches axes {matches} of "
            f"{v_key}, so the norm's `dim` cannot be told; reshape {g_key} to PyTorch's "
            f"keepdim shape (size 1 on every axis but `dim`, e.g. "
            f"{tuple(v_shape[i] if i == matches[0] else 1 for i in range(len(v_shape)))} "
            f"for dim={matches[0]})"
        )
    return ValueError(
        f"{shapes} are inconsistent: weight norm's g must have v's size on one axis "
        "(the norm's `dim`) and size 1 on every other axis, or be a scalar (dim=None)"
    )


def check_torch_module(module: Any) -> None:
    """``module`` must be an initialised ``torch.nn.ConvTranspose1d/2d/3d`` (or subclass)."""
    cls = type(module)
    names = [c.__name__ for c in cls.__mro__]
    is_torch = cls.__module__.startswith("torch") or any(
        c.__module__.startswith("torch.nn") for c in cls.__mro__
    )
    if not (is_torch and "_ConvTransposeNd" in names and getattr(module, "transposed", False)):
        raise TypeError(
            f"module must be a torch.nn.ConvTranspose1d, ConvTranspose2d or ConvTranspose3d, "
            f"not {cls.__module__}.{cls.__qualname__}"
        )
    uninitialised = getattr(module, "has_uninitialized_params", None)
    if callable(uninitialised) and uninitialised():
        raise ValueError(
            f"module {cls.__name__} is a lazy module that has not seen an input yet; run one "
            "forward pass first so its in_channels and weight exist"
        )


# --- the weight converters (convt_jax.layouts) -----------------------------------------------


def check_rank(name: str, shape: Sequence[int], min_rank: int, rule: str) -> None:
    if len(shape) < min_rank:
        raise ValueError(f"{name} of shape {tuple(shape)} must have rank >= {min_rank}: {rule}")


def check_kernel_groups(groups: int, c_out: int) -> None:
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the kernel's {c_out} output channels")


def check_torch_crop(framework: str, ax: int, crop: tuple[int, int], s: int, d: int) -> None:
    """A framework's crop must be one PyTorch's padding and output_padding can express."""
    lo, hi = crop
    if lo < 0 or (hi < 0 and -hi >= max(s, d)):
        raise ValueError(
            f"{framework}'s padding extends the output by {-lo if lo < 0 else -hi} "
            f"position(s) at the {'start' if lo < 0 else 'end'} of spatial axis {ax} "
            f"(crop {(lo, hi)}): PyTorch semantics can only crop the start and extend the "
            f"end by output_padding < max(stride, dilation) = {max(s, d)}"
        )


def padding_string(value: str, options: Sequence[str], framework: str) -> str:
    """A framework's string ``padding`` (upper case), one of ``options``."""
    mode = value.upper()
    if mode == "CIRCULAR" and framework in ("Flax", "Haiku"):
        raise ValueError(
            f"padding={value!r}: {framework}'s CIRCULAR transposed convolution wraps a "
            "VALID result onto a period of input * stride; it has no PyTorch-style "
            "equivalent here (use padding_mode='circular' for the adjoint of a circular "
            "convolution)"
        )
    if mode not in options:
        quoted = ", ".join(repr(o) for o in options)
        raise ValueError(f"padding={value!r} must be {quoted} or numbers")
    return mode


def keras_padding(padding: Any) -> None:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} must be 'valid' or 'same' (Keras' padding)")


def no_keras_equivalent(padding: Any, output_padding: Any, crops: Any, reachable: str) -> NoReturn:
    raise ValueError(
        f"padding={padding!r} with output_padding={output_padding!r} (crop {crops}) has no "
        f"Keras equivalent: Keras only has padding='valid'/'same' plus output_padding < stride; "
        f"the settings it can express are {reachable}"
    )


def check_output_padding_below_stride(
    framework: str,
    padding: Any,
    output_padding: Any,
    needed: tuple[int, ...],
    stride: tuple[int, ...],
) -> None:
    if any(a >= s for a, s in zip(needed, stride, strict=True)):
        raise ValueError(
            f"output_padding={output_padding!r} with padding={padding!r} needs an output "
            f"padding of {needed}, but {framework} requires output_padding < stride={stride}"
        )
