"""Transposed-convolution layers: frozen dataclasses that are JAX pytrees, with PyTorch's semantics.

A layer's only pytree leaves are ``weight`` and ``bias``; every setting is a
static field (``jax.tree_util.register_dataclass``), so ``jax.grad`` of a loss
of a layer is a layer of gradients and ``optax.apply_updates`` returns a layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from .. import _args, _op
from ..typing import (
    ComputeMode,
    ConvMode,
    Dilation,
    KernelSize,
    OutputPadding,
    OutputSize,
    Padding,
    PaddingMode,
    PaddingString,
    Stride,
)
from . import _torch
from . import init as _init

_L = TypeVar("_L", bound="ConvTranspose")

_HALF = (np.dtype(jnp.float16), np.dtype(jnp.bfloat16))
_FUNCTIONS = {1: _op.conv_transpose1d, 2: _op.conv_transpose2d, 3: _op.conv_transpose3d}
_DEFAULTS = {
    "stride": 1,
    "padding": 0,
    "output_padding": 0,
    "groups": 1,
    "dilation": 1,
    "padding_mode": "zeros",
    "conv_mode": "cross_correlation",
    "compute_mode": "default",
    "channels_last": False,
}


_T = TypeVar("_T")


def _static() -> Any:
    return dataclasses.field(metadata={"static": True})


class _FromFields(type):
    """Builds a layer from its fields when called with exactly them (no constructor run).

    ``jax.tree_util.register_dataclass`` rebuilds a pytree as ``cls(**fields)``
    (after ``jax.tree.map``, ``jax.grad``, ``optax.apply_updates``, ...), and so
    does ``dataclasses.replace``; the PyTorch-style constructor takes
    different arguments and draws the initial weights, so those calls skip it.
    """

    def __call__(cls: type[_T], *args: Any, **kwargs: Any) -> _T:
        if not args and kwargs.keys() == _FIELD_NAMES:
            layer = object.__new__(cls)
            for name, value in kwargs.items():
                object.__setattr__(layer, name, value)
            return layer
        return super().__call__(*args, **kwargs)  # type: ignore[misc]


@dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)
class ConvTranspose(metaclass=_FromFields):
    """N-d transposed convolution layer: ``torch.nn.ConvTranspose*d`` as an immutable JAX pytree.

    Any number of spatial axes; :class:`ConvTranspose1d`,
    :class:`ConvTranspose2d` and :class:`ConvTranspose3d` fix it and take the
    same arguments after it. Its only leaves are ``weight`` (PyTorch layout
    ``(C_in, C_out // groups, *kernel)``) and ``bias`` (``(C_out,)`` or
    ``None``); every setting is static. So ``jax.grad(loss)(layer)`` returns a
    layer-shaped gradient and ``optax.apply_updates(layer, updates)`` returns
    the updated layer. Weights start as PyTorch's do: uniform in
    ``±1/sqrt(fan_in)`` with ``fan_in = (out_channels // groups) *
    prod(kernel_size)``.

    Args:
      num_spatial_dims: the number of spatial axes, ``>= 1`` (not taken by
        the 1-d, 2-d and 3-d classes).
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: int or one int per spatial axis.
      stride: as in :func:`convt_jax.conv_transpose`.
      padding: as in :func:`convt_jax.conv_transpose` (ints, ``(lo, hi)``
        pairs, ``"valid"`` or ``"same"``).
      output_padding: as in :func:`convt_jax.conv_transpose`.
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
      ValueError: a bad setting value, at construction, with the functions'
        own messages.
      TypeError: a bad setting type, at construction, with the functions'
        own messages.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose(4, 2, 3, kernel_size=2, stride=2, key=jax.random.key(0))
      >>> layer(jnp.ones((1, 2, 3, 3, 3, 3))).shape
      (1, 3, 6, 6, 6, 6)

      A layer is a pytree: ``jax.grad`` and optax work on it as on any other.

      >>> layer = ct.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, key=jax.random.key(0))
      >>> x = jnp.ones((2, 8, 5, 5))
      >>> loss = lambda l: jnp.mean(l(x) ** 2)
      >>> grads = jax.grad(loss)(layer)                 # a ConvTranspose2d of gradients
      >>> opt = optax.sgd(0.1)
      >>> updates, _ = opt.update(grads, opt.init(layer))
      >>> bool(loss(optax.apply_updates(layer, updates)) < loss(layer))
      True
    """

    weight: jax.Array
    bias: jax.Array | None
    # The settings, static (PyTorch's attribute names), as the constructor normalised them.
    num_spatial_dims: int = _static()
    in_channels: int = _static()
    out_channels: int = _static()
    kernel_size: tuple[int, ...] = _static()
    stride: tuple[int, ...] = _static()
    # "same" / "valid", a tuple of ints, or a tuple of (lo, hi) pairs
    padding: PaddingString | tuple[int, ...] | tuple[tuple[int, int], ...] = _static()
    output_padding: tuple[int, ...] = _static()
    groups: int = _static()
    dilation: tuple[int, ...] = _static()
    padding_mode: PaddingMode = _static()
    conv_mode: ConvMode = _static()
    compute_mode: ComputeMode = _static()
    channels_last: bool = _static()

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        output_padding: OutputPadding = 0,
        *,
        groups: int = 1,
        dilation: Dilation = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        conv_mode: ConvMode = "cross_correlation",
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        if dtype is None:
            dtype = jnp.float32
        parsed = _args.parse_layer(
            num_spatial_dims,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups,
            dilation,
            bias,
            padding_mode,
            conv_mode,
            compute_mode,
            channels_last,
            dtype,
        )
        _args.check_key(key, type(self).__name__)
        s = parsed.settings
        shape = (parsed.in_channels, parsed.out_channels // s.groups, *parsed.kernel_size)
        assert key is not None  # check_key raised otherwise
        dt = cast(DTypeLike, dtype)  # jnp.float32 is a DTypeLike the checker does not see
        w, b = _init.pytorch_default(key, shape, dt, groups=s.groups, bias=parsed.bias)
        fields = dict(
            weight=w,
            bias=b,
            num_spatial_dims=s.ndim,
            in_channels=parsed.in_channels,
            out_channels=parsed.out_channels,
            kernel_size=parsed.kernel_size,
            stride=s.stride,
            padding=parsed.padding,
            output_padding=s.output_padding,
            groups=s.groups,
            dilation=s.dilation,
            padding_mode=padding_mode,
            conv_mode=conv_mode,
            compute_mode=compute_mode,
            channels_last=s.channels_last,
        )
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _register(cls)

    @property
    def dtype(self) -> Any:
        """The dtype of ``weight``."""
        return self.weight.dtype

    # -- forward -------------------------------------------------------------------------

    def __call__(self, x: ArrayLike, output_size: OutputSize = None) -> jax.Array:
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
        preferred = None
        if self.compute_mode == "float32":
            dt = jnp.result_type(x if hasattr(x, "dtype") else np.asarray(x), self.weight)
            if np.dtype(dt) in _HALF:
                preferred = jnp.float32
        fn = _FUNCTIONS.get(self.num_spatial_dims, _op.conv_transpose)
        return fn(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding if output_size is None else 0,
            groups=self.groups,
            dilation=self.dilation,
            output_size=output_size,
            channels_last=self.channels_last,
            conv_mode=self.conv_mode,
            preferred_element_type=preferred,
            padding_mode=self.padding_mode,
        )

    # -- weights in and out --------------------------------------------------------------

    def replace(self: _L, **leaves: Any) -> _L:
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

        Examples:
          >>> import jax, jax.numpy as jnp, convt_jax as ct
          >>> layer = ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0))
          >>> layer.replace(weight=jnp.zeros((2, 3, 4))).weight.sum()
          Array(0., dtype=float32)
        """
        name_ = type(self).__name__
        _args.check_leaf_names(name_, leaves)
        new = {"weight": self.weight, "bias": self.bias}
        for name, value in leaves.items():
            value = _args.leaf_array(name, value)
            if new[name] is None and value is None:
                continue
            _args.check_leaf(name_, name, new[name], value)  # the dtype as passed
            new[name] = _args.owned_leaf(value)
        return dataclasses.replace(self, **new)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays under PyTorch's key names.

        Returns:
          ``{"weight": (C_in, C_out // groups, *kernel), "bias": (C_out,)}``
          (no ``"bias"`` when the layer has none): the keys and layouts of
          ``torch.nn.ConvTranspose*d.state_dict()``.

        Examples:
          >>> import jax, convt_jax as ct
          >>> sd = ct.nn.ConvTranspose2d(4, 6, 3, groups=2, key=jax.random.key(0)).state_dict()
          >>> {k: v.shape for k, v in sd.items()}
          {'weight': (4, 3, 3, 3), 'bias': (6,)}
        """
        out = {"weight": np.array(self.weight)}
        if self.bias is not None:
            out["bias"] = np.array(self.bias)
        return out

    def load_state_dict(self: _L, state_dict: Mapping[str, Any]) -> _L:
        """A new layer holding the weights of ``state_dict`` (PyTorch's key names).

        Args:
          state_dict: a mapping with exactly the keys ``"weight"`` and, if the
            layer has a bias, ``"bias"``; values are jax/NumPy arrays or
            ``torch.Tensor`` (``torch_layer.state_dict()`` works as it is).
            PyTorch's weight-norm spellings ``"weight_g"`` / ``"weight_v"`` and
            ``"parametrizations.weight.original0"`` / ``"original1"`` are
            folded into ``"weight"`` exactly as PyTorch computes it.
            Shapes and dtypes must match the layer's.

        Returns:
          A new layer; this one is unchanged.

        Raises:
          ValueError: missing or unexpected keys, or a wrong shape.
          TypeError: not a mapping, or a wrong dtype.

        Examples:
          >>> import jax, numpy as np, convt_jax as ct
          >>> layer = ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0))
          >>> new = layer.load_state_dict({"weight": np.ones((2, 3, 4), np.float32),
          ...                              "bias": np.zeros(3, np.float32)})
          >>> float(new.weight.sum())
          24.0
        """
        state_dict = _torch.fold_weight_norm(state_dict)
        expected = _args.check_state_dict(type(self).__name__, state_dict, self.bias is not None)
        return self.replace(**{k: state_dict[k] for k in expected})

    @classmethod
    def from_torch(cls: type[_L], module: Any, *, channels_last: bool = False) -> _L:
        """Build from a ``torch.nn.ConvTranspose1d/2d/3d``: settings and weights, no key.

        Args:
          module: a ``torch.nn.ConvTranspose*d`` (with this class's number of
            spatial axes; any for :class:`ConvTranspose`), plain or under
            either PyTorch weight-norm API (folded as PyTorch computes it).
          channels_last: keyword-only; the activation layout of the new layer.

        Returns:
          A layer with the module's settings, dtype and weights.

        Raises:
          TypeError: ``module`` is not a PyTorch transposed convolution of
            this class's dimension.

        Examples:
          >>> import torch, numpy as np, convt_jax as ct
          >>> t = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
          >>> layer = ct.nn.ConvTranspose2d.from_torch(t)
          >>> layer.stride, layer.padding, layer.output_padding
          ((2, 2), (1, 1), (1, 1))
          >>> x = np.ones((1, 4, 5, 5), np.float32)
          >>> bool(np.allclose(layer(x), t(torch.as_tensor(x)).detach().numpy(), atol=1e-6))
          True
        """
        n, kwargs, state = _torch.settings_from_torch(module)
        want = next((_NUM_SPATIAL_DIMS[c] for c in cls.__mro__ if c in _NUM_SPATIAL_DIMS), None)
        _args.check_torch_rank(cls.__name__, want, n, type(module).__name__)
        args = () if want is not None else (n,)
        # The constructor validates the settings; eval_shape skips drawing weights.
        shape_only = jax.eval_shape(
            lambda: cls(*args, **kwargs, channels_last=channels_last, key=jax.random.key(0))
        )
        return shape_only.load_state_dict(state)

    def __repr__(self) -> str:
        parts = [f"{self.in_channels}", f"{self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value != default and value != (default,) * self.num_spatial_dims:
                parts.append(f"{name}={value!r}")
        if self.bias is None:
            parts.append("bias=False")
        dt = getattr(self.weight, "dtype", None)
        if dt is not None and np.dtype(dt) != np.dtype(np.float32):
            parts.append(f"dtype={np.dtype(dt).name}")
        if type(self) is ConvTranspose:
            parts.insert(0, f"num_spatial_dims={self.num_spatial_dims}")
        return f"{type(self).__name__}({', '.join(parts)})"


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ConvTranspose))
_SETTINGS = [f.name for f in dataclasses.fields(ConvTranspose) if f.metadata.get("static")]


def _register(cls: type) -> None:
    """Weight and bias are the leaves, the settings static (named: JAX 0.4 needs the lists)."""
    jax.tree_util.register_dataclass(cls, data_fields=["weight", "bias"], meta_fields=_SETTINGS)


_register(ConvTranspose)


class ConvTranspose1d(ConvTranspose):
    """1-d transposed convolution layer: ``torch.nn.ConvTranspose1d`` as an immutable JAX pytree.

    See :class:`ConvTranspose` for the arguments (all but ``num_spatial_dims``)
    and the semantics.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose1d(4, 2, kernel_size=3, stride=2, key=jax.random.key(0))
      >>> layer.weight.shape, layer.bias.shape          # (C_in, C_out // groups, K)
      ((4, 2, 3), (2,))
      >>> layer(jnp.ones((8, 4, 5))).shape              # (N, C_out, (5 - 1)*2 + 3)
      (8, 2, 11)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        output_padding: OutputPadding = 0,
        *,
        groups: int = 1,
        dilation: Dilation = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        conv_mode: ConvMode = "cross_correlation",
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        super().__init__(
            1,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups=groups,
            dilation=dilation,
            bias=bias,
            padding_mode=padding_mode,
            conv_mode=conv_mode,
            compute_mode=compute_mode,
            channels_last=channels_last,
            dtype=dtype,
            key=key,
        )


class ConvTranspose2d(ConvTranspose):
    """2-d transposed convolution layer: ``torch.nn.ConvTranspose2d`` as an immutable JAX pytree.

    See :class:`ConvTranspose` for the arguments (all but ``num_spatial_dims``)
    and the semantics.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, key=jax.random.key(0))
      >>> x = jnp.ones((2, 8, 5, 5))
      >>> layer(x).shape, layer(x, output_size=(11, 11)).shape
      ((2, 4, 10, 10), (2, 4, 11, 11))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        output_padding: OutputPadding = 0,
        *,
        groups: int = 1,
        dilation: Dilation = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        conv_mode: ConvMode = "cross_correlation",
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        super().__init__(
            2,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups=groups,
            dilation=dilation,
            bias=bias,
            padding_mode=padding_mode,
            conv_mode=conv_mode,
            compute_mode=compute_mode,
            channels_last=channels_last,
            dtype=dtype,
            key=key,
        )


class ConvTranspose3d(ConvTranspose):
    """3-d transposed convolution layer: ``torch.nn.ConvTranspose3d`` as an immutable JAX pytree.

    See :class:`ConvTranspose` for the arguments (all but ``num_spatial_dims``)
    and the semantics.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.ConvTranspose3d(2, 2, 2, stride=2, bias=False, key=jax.random.key(0))
      >>> layer(jnp.ones((1, 2, 3, 3, 3))).shape
      (1, 2, 6, 6, 6)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        output_padding: OutputPadding = 0,
        *,
        groups: int = 1,
        dilation: Dilation = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        conv_mode: ConvMode = "cross_correlation",
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        super().__init__(
            3,
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            output_padding,
            groups=groups,
            dilation=dilation,
            bias=bias,
            padding_mode=padding_mode,
            conv_mode=conv_mode,
            compute_mode=compute_mode,
            channels_last=channels_last,
            dtype=dtype,
            key=key,
        )


_NUM_SPATIAL_DIMS = {ConvTranspose1d: 1, ConvTranspose2d: 2, ConvTranspose3d: 3}
