"""Transposed-convolution layers: immutable pytrees with PyTorch's semantics (SPEC §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import GetAttrKey
from jax.typing import ArrayLike

from .. import _args, _op, _padding_modes
from . import init as _init

COMPUTE_MODES = ("default", "float32")
_HALF = (np.dtype(jnp.float16), np.dtype(jnp.bfloat16))


class _Settings(NamedTuple):
    """The static (hashable) part of a layer: everything but ``weight`` and ``bias``."""

    num_spatial_dims: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Any  # "same" / "valid", a tuple of ints, or a tuple of (lo, hi) pairs
    output_padding: tuple[int, ...]
    groups: int
    dilation: tuple[int, ...]
    padding_mode: str
    conv_mode: str
    compute_mode: str
    channels_last: bool


_FUNCTIONS = {1: _op.conv_transpose1d, 2: _op.conv_transpose2d, 3: _op.conv_transpose3d}


def _positive(name: str, value: Any) -> int:
    try:
        v = _args._int(name, value)
    except TypeError:
        raise TypeError(f"{name}={value!r} must be an int, not {type(value).__name__}") from None
    if v < 1:
        raise ValueError(f"{name}={value!r} must be >= 1")
    return v


def _settings(num_spatial_dims, in_channels, out_channels, kernel_size, stride, padding,
              output_padding, groups, dilation, bias, padding_mode, conv_mode, compute_mode,
              channels_last, dtype) -> _Settings:
    """Validate the constructor arguments with the functions' validators."""
    n = _positive("num_spatial_dims", num_spatial_dims)
    c_in = _positive("in_channels", in_channels)
    c_out = _positive("out_channels", out_channels)
    kernel = _args.int_tuple("kernel_size", kernel_size, n)
    if any(k < 1 for k in kernel):
        raise ValueError(f"kernel_size={kernel_size!r} must be >= 1 on every axis")
    g = _positive("groups", groups)
    if c_in % g or c_out % g:
        raise ValueError(
            f"groups={g} must divide in_channels={c_in} and out_channels={c_out}"
        )
    if not isinstance(bias, (bool, np.bool_)):
        raise TypeError(f"bias={bias!r} must be a bool (whether the layer has a bias)")
    _padding_modes.check_mode(padding_mode)
    if not isinstance(compute_mode, str):
        raise TypeError(f"compute_mode={compute_mode!r} must be one of {COMPUTE_MODES}")
    if compute_mode not in COMPUTE_MODES:
        raise ValueError(f"compute_mode={compute_mode!r} must be one of {COMPUTE_MODES}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype={dtype!r} must be a floating or complex dtype") from None
    _args.check_dtype("dtype", dt)

    # Everything else through the functions' own parser, on a dummy input
    # long enough that any padding leaves a non-empty output.
    if isinstance(padding, str):
        length = 1
    else:
        pairs = _args._padding_pairs(padding, n)
        length = 1 + max(max(lo, 0) + max(hi, 0) for lo, hi in pairs)
    if not isinstance(channels_last, (bool, np.bool_)):
        raise TypeError(f"channels_last={channels_last!r} must be a bool")
    spatial = (length,) * n
    in_shape = (1,) + spatial + (c_in,) if channels_last else (1, c_in) + spatial
    parsed = _args.parse(
        in_shape, (c_in, c_out // g) + kernel, (c_out,) if bias else None, stride, padding,
        output_padding, g, dilation, None, channels_last, conv_mode,
        num_spatial=n, fn_name=f"ConvTranspose{n}d",
    )
    if isinstance(padding, str):
        pad = padding.lower()
    elif all(lo == hi for lo, hi in parsed.padding):
        pad = tuple(lo for lo, _ in parsed.padding)
    else:
        pad = parsed.padding
    return _Settings(
        num_spatial_dims=n, in_channels=c_in, out_channels=c_out, kernel_size=kernel,
        stride=parsed.config.stride, padding=pad, output_padding=parsed.output_padding,
        groups=g, dilation=parsed.config.dilation, padding_mode=padding_mode,
        conv_mode=conv_mode, compute_mode=compute_mode, channels_last=bool(channels_last),
    )


def _to_array(name: str, value: Any) -> Any:
    """A jax array from a jax/NumPy array, a list, or a ``torch.Tensor`` (no torch import)."""
    if value is None:
        return None
    if type(value).__module__.startswith("torch"):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16; the round trip is exact
            return jnp.asarray(t.float().numpy()).astype(jnp.bfloat16)
        value = t.numpy()
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"{name}={value!r} must be an array, not {type(value).__name__}")
    return jnp.asarray(value)


class ConvTranspose:
    """N-d transposed convolution layer (SPEC §5); see :class:`ConvTranspose2d`.

    ``ConvTranspose(num_spatial_dims, in_channels, out_channels, kernel_size,
    ...)`` takes the same arguments as :class:`ConvTranspose2d` after
    ``num_spatial_dims``; any number of spatial axes.

    Example:
      >>> import jax, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose(4, 2, 3, kernel_size=2, stride=2, key=jax.random.key(0))
      >>> layer(jax.numpy.ones((1, 2, 3, 3, 3, 3))).shape
      (1, 3, 6, 6, 6, 6)
    """

    weight: jax.Array
    bias: jax.Array | None
    _settings: _Settings

    def __init__(self, num_spatial_dims: int, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...] = 1,
                 padding: Any = 0, output_padding: int | tuple[int, ...] = 0, *,
                 groups: int = 1, dilation: int | tuple[int, ...] = 1, bias: bool = True,
                 padding_mode: str = "zeros", conv_mode: str = "cross_correlation",
                 compute_mode: str = "default", channels_last: bool = False,
                 dtype: Any = jnp.float32, key: jax.Array):
        dtype = jnp.float32 if dtype is None else dtype
        settings = _settings(num_spatial_dims, in_channels, out_channels, kernel_size, stride,
                             padding, output_padding, groups, dilation, bias, padding_mode,
                             conv_mode, compute_mode, channels_last, dtype)
        if key is None:
            raise TypeError("key=None must be a jax.random key, e.g. jax.random.key(0)")
        shape = (settings.in_channels, settings.out_channels // settings.groups,
                 *settings.kernel_size)
        w, b = _init.pytorch_default(key, shape, dtype, groups=settings.groups, bias=bool(bias))
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "_settings", settings)

    # -- pytree --------------------------------------------------------------------------

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register(cls)

    @classmethod
    def _from_parts(cls, weight: Any, bias: Any, settings: _Settings):
        obj = object.__new__(cls)
        object.__setattr__(obj, "weight", weight)
        object.__setattr__(obj, "bias", bias)
        object.__setattr__(obj, "_settings", settings)
        return obj

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable: use layer.replace({name}=...) or "
            "layer.load_state_dict(...), which return a new layer"
        )

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    # -- settings, read-only (PyTorch's attribute names) ---------------------------------

    num_spatial_dims = property(lambda self: self._settings.num_spatial_dims)
    in_channels = property(lambda self: self._settings.in_channels)
    out_channels = property(lambda self: self._settings.out_channels)
    kernel_size = property(lambda self: self._settings.kernel_size)
    stride = property(lambda self: self._settings.stride)
    padding = property(lambda self: self._settings.padding)
    output_padding = property(lambda self: self._settings.output_padding)
    groups = property(lambda self: self._settings.groups)
    dilation = property(lambda self: self._settings.dilation)
    padding_mode = property(lambda self: self._settings.padding_mode)
    conv_mode = property(lambda self: self._settings.conv_mode)
    compute_mode = property(lambda self: self._settings.compute_mode)
    channels_last = property(lambda self: self._settings.channels_last)

    @property
    def dtype(self) -> Any:
        """The dtype of ``weight``."""
        return self.weight.dtype

    # -- forward -------------------------------------------------------------------------

    def __call__(self, x: ArrayLike, output_size: Any = None) -> jax.Array:
        """Apply the layer, exactly as ``torch.nn.ConvTranspose*d.forward(x, output_size)``.

        Args:
          x: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; with
            ``channels_last=True`` ``(N, *spatial, C_in)`` or ``(*spatial, C_in)``.
          output_size: the wanted spatial output size (or a full output
            shape); it picks the output padding (the layer's own
            ``output_padding`` is then ignored, as in PyTorch).

        Returns:
          ``(N, C_out, *out_spatial)`` (or the unbatched / channels-last
          equivalent) in the result dtype of ``x`` and ``weight``.
        """
        s = self._settings
        preferred = None
        if s.compute_mode == "float32":
            dt = jnp.result_type(x if hasattr(x, "dtype") else np.asarray(x), self.weight)
            if np.dtype(dt) in _HALF:
                preferred = jnp.float32
        fn = _FUNCTIONS.get(s.num_spatial_dims, _op.conv_transpose)
        return fn(
            x, self.weight, self.bias, s.stride, s.padding,
            s.output_padding if output_size is None else 0,
            groups=s.groups, dilation=s.dilation, output_size=output_size,
            channels_last=s.channels_last, conv_mode=s.conv_mode,
            preferred_element_type=preferred, padding_mode=s.padding_mode,
        )

    # -- weights in and out --------------------------------------------------------------

    def replace(self, **leaves: Any):
        """A new layer with ``weight`` and/or ``bias`` replaced (shape and dtype checked).

        Args:
          **leaves: ``weight=`` (shape ``(C_in, C_out // groups, *kernel)``)
            and/or ``bias=`` (shape ``(C_out,)``): jax or NumPy arrays or
            ``torch.Tensor``; each must have the shape and dtype of the leaf
            it replaces.

        Returns:
          A new layer with the same settings.

        Raises:
          ValueError: an unknown name, a wrong shape, or a bias for a layer
            built with ``bias=False``.
          TypeError: a wrong dtype (cast it first: no silent conversion).

        Example:
          >>> import jax, jax.numpy as jnp, convt_jax as ct
          >>> layer = ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0))
          >>> layer.replace(weight=jnp.zeros((2, 3, 4))).weight.sum()
          Array(0., dtype=float32)
        """
        unknown = sorted(set(leaves) - {"weight", "bias"})
        if unknown:
            raise ValueError(
                f"{type(self).__name__}.replace got {unknown}: only 'weight' and 'bias' "
                "are arrays; the settings are fixed at construction"
            )
        new = {"weight": self.weight, "bias": self.bias}
        for name, value in leaves.items():
            current = new[name]
            value = _to_array(name, value)
            if current is None or value is None:
                if current is None and value is None:
                    continue
                raise ValueError(
                    f"{name}: this {type(self).__name__} was built with "
                    f"bias={current is not None}, so its bias cannot be "
                    f"{'removed' if value is None else 'set'}"
                )
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(
                    f"{name} of shape {tuple(value.shape)} must have shape "
                    f"{tuple(current.shape)} for this {type(self).__name__}"
                    + (" (C_in, C_out // groups, *kernel)" if name == "weight" else " (C_out,)")
                )
            if np.dtype(value.dtype) != np.dtype(current.dtype):
                raise TypeError(
                    f"{name} has dtype {np.dtype(value.dtype).name} but this layer's {name} is "
                    f"{np.dtype(current.dtype).name}: cast it first (e.g. "
                    f"{name}.astype({np.dtype(current.dtype).name!r})) or build the layer "
                    f"with dtype={np.dtype(value.dtype).name}"
                )
            new[name] = value
        return self._from_parts(new["weight"], new["bias"], self._settings)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays under PyTorch's key names.

        Returns:
          ``{"weight": (C_in, C_out // groups, *kernel), "bias": (C_out,)}``
          (no ``"bias"`` when the layer has none): the keys and layouts of
          ``torch.nn.ConvTranspose*d.state_dict()``.

        Example:
          >>> import jax, convt_jax as ct
          >>> sd = ct.nn.ConvTranspose2d(4, 6, 3, groups=2, key=jax.random.key(0)).state_dict()
          >>> {k: v.shape for k, v in sd.items()}
          {'weight': (4, 3, 3, 3), 'bias': (6,)}
        """
        out = {"weight": np.array(self.weight)}
        if self.bias is not None:
            out["bias"] = np.array(self.bias)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]):
        """A new layer holding the weights of ``state_dict`` (PyTorch's key names).

        Args:
          state_dict: a mapping with exactly the keys ``"weight"`` and, if the
            layer has a bias, ``"bias"``; values are jax/NumPy arrays or
            ``torch.Tensor`` (``torch_layer.state_dict()`` works as it is).
            Shapes and dtypes must match the layer's.

        Returns:
          A new layer; this one is unchanged.

        Raises:
          ValueError: missing or unexpected keys, or a wrong shape.
          TypeError: not a mapping, or a wrong dtype.

        Example:
          >>> import jax, numpy as np, convt_jax as ct
          >>> layer = ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0))
          >>> new = layer.load_state_dict({"weight": np.ones((2, 3, 4), np.float32),
          ...                              "bias": np.zeros(3, np.float32)})
          >>> float(new.weight.sum())
          24.0
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays, not {type(state_dict).__name__}"
            )
        expected = {"weight"} | ({"bias"} if self.bias is not None else set())
        got = set(state_dict)
        if got != expected:
            missing, unexpected = sorted(expected - got), sorted(got - expected, key=str)
            raise ValueError(
                f"state_dict has keys {sorted(got, key=str)} but this {type(self).__name__} "
                f"needs exactly {sorted(expected)} (missing: {missing}, unexpected: "
                f"{unexpected}); strip any module prefix first, e.g. "
                "{k.removeprefix('decoder.0.'): v for k, v in sd.items()}"
            )
        return self.replace(**{k: state_dict[k] for k in expected})

    def __repr__(self) -> str:
        s = self._settings
        parts = [f"{s.in_channels}", f"{s.out_channels}", f"kernel_size={s.kernel_size}"]
        defaults = _DEFAULTS
        for name in ("stride", "padding", "output_padding", "groups", "dilation",
                     "padding_mode", "conv_mode", "compute_mode", "channels_last"):
            value = getattr(s, name)
            if value != defaults[name] and value != (defaults[name],) * s.num_spatial_dims:
                parts.append(f"{name}={value!r}")
        if self.bias is None:
            parts.append("bias=False")
        dt = getattr(self.weight, "dtype", None)
        if dt is not None and np.dtype(dt) != np.dtype(np.float32):
            parts.append(f"dtype={np.dtype(dt).name}")
        if type(self) is ConvTranspose:
            parts.insert(0, f"num_spatial_dims={s.num_spatial_dims}")
        return f"{type(self).__name__}({', '.join(parts)})"


_DEFAULTS = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1,
             "padding_mode": "zeros", "conv_mode": "cross_correlation",
             "compute_mode": "default", "channels_last": False}


def _register(cls: type) -> None:
    def flatten_with_keys(layer):
        return ((GetAttrKey("weight"), layer.weight), (GetAttrKey("bias"), layer.bias)), \
            layer._settings

    def flatten(layer):
        return (layer.weight, layer.bias), layer._settings

    def unflatten(settings, children):
        return cls._from_parts(children[0], children[1], settings)

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


_register(ConvTranspose)

_LAYER_DOC = """{n}-d transposed convolution layer with PyTorch's semantics (SPEC §5).

    ``torch.nn.ConvTranspose{n}d`` as an immutable JAX pytree: its only leaves
    are ``weight`` (PyTorch layout ``(C_in, C_out // groups, *kernel)``) and
    ``bias`` (``(C_out,)`` or ``None``); every setting is static. So
    ``jax.grad(loss)(layer)`` returns a layer-shaped gradient and
    ``optax.apply_updates(layer, updates)`` returns the updated layer. Weights
    start as PyTorch's do: uniform in ``±1/sqrt(fan_in)`` with ``fan_in =
    (out_channels // groups) * prod(kernel_size)``.

    Args:
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: int or one int per spatial axis.
      stride, padding, output_padding: as in :func:`convt_jax.conv_transpose{n}d`
        (``padding`` also takes ``(lo, hi)`` pairs, ``"valid"`` and ``"same"``).
      groups: keyword-only; divides both ``in_channels`` and ``out_channels``.
      dilation: keyword-only; int or one int per spatial axis.
      bias: keyword-only; whether the layer has a bias.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"``
        or ``"replicate"``: the exact adjoint of the convolution that pads
        with that mode (see :func:`convt_jax.conv_transpose`).
      conv_mode: keyword-only; ``"cross_correlation"`` (PyTorch) or
        ``"convolution"`` (kernel flipped on every spatial axis).
      compute_mode: keyword-only; ``"default"`` or ``"float32"`` (accumulate
        float16/bfloat16 in float32 and return the input's dtype).
      channels_last: keyword-only; inputs and outputs have channels last
        (the weight keeps the PyTorch layout).
      dtype: keyword-only; the dtype of ``weight`` and ``bias``.
      key: keyword-only; a ``jax.random`` key for the initial weights.

    Raises:
      ValueError, TypeError: a bad setting, at construction, with the
        functions' own messages.

    Example:
{example}
"""


class ConvTranspose1d(ConvTranspose):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: Any = 0,
                 output_padding: int | tuple[int] = 0, *, groups: int = 1,
                 dilation: int | tuple[int] = 1, bias: bool = True, padding_mode: str = "zeros",
                 conv_mode: str = "cross_correlation", compute_mode: str = "default",
                 channels_last: bool = False, dtype: Any = jnp.float32, key: jax.Array):
        super().__init__(1, in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups=groups, dilation=dilation, bias=bias,
                         padding_mode=padding_mode, conv_mode=conv_mode,
                         compute_mode=compute_mode, channels_last=channels_last, dtype=dtype,
                         key=key)


class ConvTranspose2d(ConvTranspose):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: Any = 0,
                 output_padding: int | tuple[int, int] = 0, *, groups: int = 1,
                 dilation: int | tuple[int, int] = 1, bias: bool = True,
                 padding_mode: str = "zeros", conv_mode: str = "cross_correlation",
                 compute_mode: str = "default", channels_last: bool = False,
                 dtype: Any = jnp.float32, key: jax.Array):
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups=groups, dilation=dilation, bias=bias,
                         padding_mode=padding_mode, conv_mode=conv_mode,
                         compute_mode=compute_mode, channels_last=channels_last, dtype=dtype,
                         key=key)


class ConvTranspose3d(ConvTranspose):
    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int, int], stride: int | tuple[int, int, int] = 1,
                 padding: Any = 0, output_padding: int | tuple[int, int, int] = 0, *,
                 groups: int = 1, dilation: int | tuple[int, int, int] = 1, bias: bool = True,
                 padding_mode: str = "zeros", conv_mode: str = "cross_correlation",
                 compute_mode: str = "default", channels_last: bool = False,
                 dtype: Any = jnp.float32, key: jax.Array):
        super().__init__(3, in_channels, out_channels, kernel_size, stride, padding,
                         output_padding, groups=groups, dilation=dilation, bias=bias,
                         padding_mode=padding_mode, conv_mode=conv_mode,
                         compute_mode=compute_mode, channels_last=channels_last, dtype=dtype,
                         key=key)


for _cls in (ConvTranspose, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d):
    _cls.__module__ = "convt_jax.nn"

ConvTranspose1d.__doc__ = _LAYER_DOC.format(n=1, example="""\
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose1d(4, 2, kernel_size=3, stride=2, key=jax.random.key(0))
      >>> layer.weight.shape, layer.bias.shape          # (C_in, C_out // groups, K)
      ((4, 2, 3), (2,))
      >>> layer(jnp.ones((8, 4, 5))).shape              # (N, C_out, (5 - 1)*2 + 3)
      (8, 2, 11)""")
ConvTranspose2d.__doc__ = _LAYER_DOC.format(n=2, example="""\
      >>> import jax, jax.numpy as jnp, optax, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, key=jax.random.key(0))
      >>> x = jnp.ones((2, 8, 5, 5))
      >>> layer(x).shape, layer(x, output_size=(11, 11)).shape
      ((2, 4, 10, 10), (2, 4, 11, 11))
      >>> loss = lambda l: jnp.mean(l(x) ** 2)
      >>> grads = jax.grad(loss)(layer)                 # a ConvTranspose2d of gradients
      >>> opt = optax.sgd(0.1)
      >>> updates, _ = opt.update(grads, opt.init(layer))
      >>> bool(loss(optax.apply_updates(layer, updates)) < loss(layer))
      True""")
ConvTranspose3d.__doc__ = _LAYER_DOC.format(n=3, example="""\
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose3d(2, 2, 2, stride=2, bias=False, key=jax.random.key(0))
      >>> layer(jnp.ones((1, 2, 3, 3, 3))).shape
      (1, 2, 6, 6, 6)""")
