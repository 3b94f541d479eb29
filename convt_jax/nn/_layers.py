"""Convolution layers: frozen dataclasses that are JAX pytrees, with PyTorch's semantics.

``ConvTranspose*`` mirror ``torch.nn.ConvTranspose*d``, ``Conv*`` mirror
``torch.nn.Conv*d``; both derive from one private base that holds what they share
(the settings, validation, initialisation, ``replace`` / ``state_dict`` /
``load_state_dict`` / ``from_torch`` and the pytree registration). A layer's only
pytree leaves are ``weight`` and ``bias``; every setting is a static field
(``jax.tree_util.register_dataclass``), so ``jax.grad`` of a loss of a layer is a
layer of gradients and ``optax.apply_updates`` returns a layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from .. import _args, _checkpoints, _conv, _op
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

_L = TypeVar("_L", bound="_ConvLayer")

_HALF = (np.dtype(jnp.float16), np.dtype(jnp.bfloat16))


_T = TypeVar("_T")


def _static() -> Any:
    return dataclasses.field(metadata={"static": True})


def _arguments(frame_locals: dict[str, Any]) -> dict[str, Any]:
    """A per-dimension constructor's arguments, to pass on to the N-d constructor."""
    return {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}


class _FromFields(type):
    """Builds a layer from its fields when called with exactly them (no constructor run).

    ``jax.tree_util.register_dataclass`` rebuilds a pytree as ``cls(**fields)``
    (after ``jax.tree.map``, ``jax.grad``, ``optax.apply_updates``, ...), and so
    does ``dataclasses.replace``; the PyTorch-style constructor takes
    different arguments and draws the initial weights, so those calls skip it.
    """

    def __call__(cls: type[_T], *args: Any, **kwargs: Any) -> _T:
        if not args and kwargs.keys() == (cls.__dict__.get("_field_names") or _register(cls)):
            layer = object.__new__(cls)
            for name, value in kwargs.items():
                object.__setattr__(layer, name, value)
            return layer
        return super().__call__(*args, **kwargs)  # type: ignore[misc]


@dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)
class _ConvLayer(metaclass=_FromFields):
    """What :class:`ConvTranspose` and :class:`Conv` share: the leaves, the common
    settings, construction, the forward's dtype rule, the weights in and out.

    A subclass names PyTorch's class stem (``_kind``), says whether it is transposed,
    lists its repr defaults and computes its weight shape; a per-dimension class sets
    ``_num_spatial_dims``.
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
    groups: int = _static()
    dilation: tuple[int, ...] = _static()
    padding_mode: PaddingMode = _static()
    compute_mode: ComputeMode = _static()
    channels_last: bool = _static()

    _kind: ClassVar[str] = ""
    _transposed: ClassVar[bool] = True
    _num_spatial_dims: ClassVar[int | None] = None
    _defaults: ClassVar[dict[str, Any]] = {}

    def _weight_shape(self, parsed: _args.LayerSettings) -> tuple[int, ...]:
        raise NotImplementedError

    def _setup(
        self,
        parsed: _args.LayerSettings,
        dtype: Any,
        key: jax.Array | None,
        **settings: Any,
    ) -> None:
        """Draw PyTorch's initial weights and set every field (``settings``: the
        subclass's own, as given)."""
        _args.check_key(key, type(self).__name__)
        assert key is not None  # check_key raised otherwise
        s = parsed.settings
        shape = self._weight_shape(parsed)
        dt = cast(DTypeLike, dtype)  # jnp.float32 is a DTypeLike the checker does not see
        w, b = _init._pytorch_weights(key, shape, dt, parsed.out_channels, parsed.bias)
        fields = dict(
            weight=w,
            bias=b,
            num_spatial_dims=s.ndim,
            in_channels=parsed.in_channels,
            out_channels=parsed.out_channels,
            kernel_size=parsed.kernel_size,
            stride=s.stride,
            padding=parsed.padding,
            groups=s.groups,
            dilation=s.dilation,
            channels_last=s.channels_last,
            **settings,
        )
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ != __name__:  # ours are registered below, once they are dataclasses
            _register(cls)

    @property
    def dtype(self) -> Any:
        """The dtype of ``weight``."""
        return self.weight.dtype

    def _preferred(self, x: ArrayLike) -> Any:
        """float32 for half-precision operands under ``compute_mode="float32"``, else None."""
        if self.compute_mode == "float32":
            dt = jnp.result_type(x if hasattr(x, "dtype") else np.asarray(x), self.weight)
            if np.dtype(dt) in _HALF:
                return jnp.float32
        return None

    # -- weights in and out --------------------------------------------------------------

    def replace(self: _L, **leaves: Any) -> _L:
        """A new layer with ``weight`` and/or ``bias`` replaced (shape and dtype checked).

        Args:
          **leaves: ``weight=`` (the layer's weight shape: ``(C_in, C_out //
            groups, *kernel)`` for a transposed convolution, ``(C_out, C_in //
            groups, *kernel)`` for a convolution) and/or ``bias=`` (shape
            ``(C_out,)``): jax or NumPy arrays or ``torch.Tensor``; each must
            have the shape and dtype of the leaf it replaces.

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
        _checkpoints.check_leaf_names(name_, leaves)
        new = {"weight": self.weight, "bias": self.bias}
        for name, value in leaves.items():
            value = _checkpoints.leaf_array(name, value)
            if new[name] is None and value is None:
                continue
            # the dtype as passed
            _checkpoints.check_leaf(name_, name, new[name], value, self._transposed)
            new[name] = _checkpoints.owned_leaf(value)
        return dataclasses.replace(self, **new)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The weights as NumPy arrays under PyTorch's key names.

        Returns:
          ``{"weight": ..., "bias": (C_out,)}`` (no ``"bias"`` when the layer
          has none): the keys and layouts of the PyTorch module's
          ``state_dict()`` (``torch.nn.ConvTranspose*d``: ``(C_in, C_out //
          groups, *kernel)``; ``torch.nn.Conv*d``: ``(C_out, C_in // groups,
          *kernel)``).

        Examples:
          >>> import jax, convt_jax as ct
          >>> sd = ct.nn.ConvTranspose2d(4, 6, 3, groups=2, key=jax.random.key(0)).state_dict()
          >>> {k: v.shape for k, v in sd.items()}
          {'weight': (4, 3, 3, 3), 'bias': (6,)}
          >>> {k: v.shape for k, v in ct.nn.Conv2d(4, 6, 3, groups=2,
          ...                                      key=jax.random.key(0)).state_dict().items()}
          {'weight': (6, 2, 3, 3), 'bias': (6,)}
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
        expected = _checkpoints.check_state_dict(
            type(self).__name__, state_dict, self.bias is not None
        )
        return self.replace(**{k: state_dict[k] for k in expected})

    @classmethod
    def from_torch(cls: type[_L], module: Any, *, channels_last: bool = False) -> _L:
        """Build from the PyTorch layer this class mirrors: settings and weights, no key.

        Args:
          module: a ``torch.nn.ConvTranspose*d`` for the transposed layers, a
            ``torch.nn.Conv*d`` for the convolutions (with this class's number
            of spatial axes; any for the N-d classes), plain or under either
            PyTorch weight-norm API (folded as PyTorch computes it).
          channels_last: keyword-only; the activation layout of the new layer.

        Returns:
          A layer with the module's settings, dtype and weights.

        Raises:
          TypeError: ``module`` is not the PyTorch layer this class mirrors,
            of this class's dimension.

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
        n, kwargs, state = _torch.settings_from_torch(module, transposed=cls._transposed)
        want = cls._num_spatial_dims
        _torch.check_rank("ct.nn", cls._kind, cls.__name__, want, n, type(module).__name__)
        args = () if want is not None else (n,)
        # The constructor validates the settings; eval_shape skips drawing weights.
        make = cast(Any, cls)  # a concrete layer class: its constructor takes these
        shape_only = jax.eval_shape(
            lambda: make(*args, **kwargs, channels_last=channels_last, key=jax.random.key(0))
        )
        return shape_only.load_state_dict(state)

    def __repr__(self) -> str:
        parts = [f"{self.in_channels}", f"{self.out_channels}", f"kernel_size={self.kernel_size}"]
        for name, default in self._defaults.items():
            value = getattr(self, name)
            if value != default and value != (default,) * self.num_spatial_dims:
                parts.append(f"{name}={value!r}")
        if self.bias is None:
            parts.append("bias=False")
        dt = getattr(self.weight, "dtype", None)
        if dt is not None and np.dtype(dt) != np.dtype(np.float32):
            parts.append(f"dtype={np.dtype(dt).name}")
        if self._num_spatial_dims is None:
            parts.insert(0, f"num_spatial_dims={self.num_spatial_dims}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _register(cls: type) -> frozenset[str]:
    """Weight and bias are the leaves, the settings static (named: JAX 0.4 needs the lists).

    Returns the names of the fields (kept on the class for :class:`_FromFields`).
    """
    fields = dataclasses.fields(cls)
    settings = [f.name for f in fields if f.metadata.get("static")]
    if "_field_names" not in cls.__dict__:
        jax.tree_util.register_dataclass(cls, data_fields=["weight", "bias"], meta_fields=settings)
        cls._field_names = frozenset(f.name for f in fields)  # type: ignore[attr-defined]
    return cls.__dict__["_field_names"]


@dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)
class ConvTranspose(_ConvLayer):
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

    # The settings only the transposed convolution has (the rest: the base's).
    output_padding: tuple[int, ...] = _static()
    conv_mode: ConvMode = _static()

    _kind = "ConvTranspose"
    _defaults = {
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
        self._setup(
            parsed,
            dtype,
            key,
            output_padding=parsed.settings.output_padding,
            padding_mode=padding_mode,
            conv_mode=conv_mode,
            compute_mode=compute_mode,
        )

    def _weight_shape(self, parsed: _args.LayerSettings) -> tuple[int, ...]:
        groups = parsed.settings.groups
        return (parsed.in_channels, parsed.out_channels // groups, *parsed.kernel_size)

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
        fn = _TRANSPOSED.get(self.num_spatial_dims, _op.conv_transpose)
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
            preferred_element_type=self._preferred(x),
            padding_mode=self.padding_mode,
        )


_TRANSPOSED = {1: _op.conv_transpose1d, 2: _op.conv_transpose2d, 3: _op.conv_transpose3d}
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

    _num_spatial_dims = 1

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
        super().__init__(1, **_arguments(locals()))


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

    _num_spatial_dims = 2

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
        super().__init__(2, **_arguments(locals()))


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

    _num_spatial_dims = 3

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
        super().__init__(3, **_arguments(locals()))


@dataclasses.dataclass(frozen=True, init=False, repr=False, eq=False)
class Conv(_ConvLayer):
    """N-d convolution layer: ``torch.nn.Conv*d`` as an immutable JAX pytree.

    Any number of spatial axes; :class:`Conv1d`, :class:`Conv2d` and
    :class:`Conv3d` fix it and take the same arguments after it. Its only
    leaves are ``weight`` (PyTorch layout ``(C_out, C_in // groups,
    *kernel)``) and ``bias`` (``(C_out,)`` or ``None``); every setting is
    static, so ``jax.grad`` and optax work on it as on
    :class:`ConvTranspose`. The forward is :func:`convt_jax.conv`, the adjoint
    of the transposed convolution with the same weight. Weights start as
    PyTorch's do: ``kaiming_uniform(a=sqrt(5))``, i.e. uniform in
    ``±1/sqrt(fan_in)``, and the bias in the same bound, with ``fan_in =
    (in_channels // groups) * prod(kernel_size)``.

    Args:
      num_spatial_dims: the number of spatial axes, ``>= 1`` (not taken by
        the 1-d, 2-d and 3-d classes).
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: int or one int per spatial axis.
      stride: as in :func:`convt_jax.conv`.
      padding: as in :func:`convt_jax.conv` (ints, ``(lo, hi)`` pairs,
        ``"valid"`` or ``"same"``, the last with stride 1 only).
      dilation: int or one int per spatial axis.
      groups: divides both ``in_channels`` and ``out_channels``.
      bias: whether the layer has a bias.
      padding_mode: ``"zeros"``, ``"circular"``, ``"reflect"`` or
        ``"replicate"``: the input is padded with that mode, as
        ``torch.nn.Conv*d`` does.
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
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.Conv(4, 3, 8, kernel_size=3, stride=2, padding=1, key=jax.random.key(0))
      >>> layer(jnp.ones((1, 3, 8, 8, 8, 8))).shape
      (1, 8, 4, 4, 4, 4)

      The adjoint pair: a strided convolution down, the transposed one back up.

      >>> down = ct.nn.Conv2d(3, 16, 4, stride=2, padding=1, key=jax.random.key(0))
      >>> up = ct.nn.ConvTranspose2d(16, 3, 4, stride=2, padding=1, key=jax.random.key(1))
      >>> x = jnp.ones((2, 3, 32, 32))
      >>> down(x).shape, up(down(x)).shape
      ((2, 16, 16, 16), (2, 3, 32, 32))
    """

    _kind = "Conv"
    _transposed = False
    _defaults = {
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "padding_mode": "zeros",
        "compute_mode": "default",
        "channels_last": False,
    }

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        dilation: Dilation = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
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
            0,
            groups,
            dilation,
            bias,
            padding_mode,
            "cross_correlation",
            compute_mode,
            channels_last,
            dtype,
        )
        # The convolution's own rules: PyTorch's padding strings, "same" with stride 1.
        _args.parse_conv_settings(parsed.settings.ndim, stride, padding, dilation, groups)
        self._setup(parsed, dtype, key, padding_mode=padding_mode, compute_mode=compute_mode)

    def _weight_shape(self, parsed: _args.LayerSettings) -> tuple[int, ...]:
        groups = parsed.settings.groups
        return (parsed.out_channels, parsed.in_channels // groups, *parsed.kernel_size)

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply the layer, exactly as ``torch.nn.Conv*d.forward(x)``.

        Args:
          x: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; with
            ``channels_last=True`` ``(N, *spatial, C_in)`` or ``(*spatial, C_in)``.

        Returns:
          ``(N, C_out, *out_spatial)`` (or the unbatched / channels-last
          equivalent) in the result dtype of ``x`` and ``weight``.
        """
        fn = _CONVOLUTIONS.get(self.num_spatial_dims, _conv.conv)
        return fn(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            channels_last=self.channels_last,
            preferred_element_type=self._preferred(x),
        )


_CONVOLUTIONS = {1: _conv.conv1d, 2: _conv.conv2d, 3: _conv.conv3d}
_register(Conv)


class Conv1d(Conv):
    """1-d convolution layer: ``torch.nn.Conv1d`` as an immutable JAX pytree.

    See :class:`Conv` for the arguments (all but ``num_spatial_dims``) and the
    semantics.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.Conv1d(4, 2, kernel_size=3, stride=2, key=jax.random.key(0))
      >>> layer.weight.shape, layer.bias.shape          # (C_out, C_in // groups, K)
      ((2, 4, 3), (2,))
      >>> layer(jnp.ones((8, 4, 11))).shape             # (N, C_out, (11 - 3) // 2 + 1)
      (8, 2, 5)
    """

    _num_spatial_dims = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        dilation: Dilation = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        super().__init__(1, **_arguments(locals()))


class Conv2d(Conv):
    """2-d convolution layer: ``torch.nn.Conv2d`` as an immutable JAX pytree.

    See :class:`Conv` for the arguments (all but ``num_spatial_dims``) and the
    semantics.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect", key=jax.random.key(0))
      >>> layer(jnp.ones((2, 8, 5, 5))).shape
      (2, 4, 5, 5)
    """

    _num_spatial_dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        dilation: Dilation = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        super().__init__(2, **_arguments(locals()))


class Conv3d(Conv):
    """3-d convolution layer: ``torch.nn.Conv3d`` as an immutable JAX pytree.

    See :class:`Conv` for the arguments (all but ``num_spatial_dims``) and the
    semantics.

    Examples:
      >>> import jax, jax.numpy as jnp, convt_jax as ct
      >>> layer = ct.nn.Conv3d(2, 2, 2, stride=2, bias=False, key=jax.random.key(0))
      >>> layer(jnp.ones((1, 2, 6, 6, 6))).shape
      (1, 2, 3, 3, 3)
    """

    _num_spatial_dims = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: KernelSize,
        stride: Stride = 1,
        padding: Padding = 0,
        dilation: Dilation = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        *,
        compute_mode: ComputeMode = "default",
        channels_last: bool = False,
        dtype: DTypeLike | None = jnp.float32,
        key: jax.Array | None = None,
    ) -> None:
        super().__init__(3, **_arguments(locals()))


for _cls in (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, Conv1d, Conv2d, Conv3d):
    _register(_cls)
del _cls
