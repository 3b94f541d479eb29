"""``convt_jax.flax.ConvTranspose1d/2d/3d`` and ``Conv1d/2d/3d``: ``nnx.Module`` s with PyTorch's
semantics, on one private base that holds what they share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike, DTypeLike

from .. import _args
from .. import nn as _nn
from ..nn._torch import check_rank, fold_weight_norm, settings_from_torch
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
from . import _common

_M = TypeVar("_M", bound="_ConvModule")


class _ConvModule(nnx.Module):
    """What :class:`ConvTranspose` and :class:`Conv` share: construction through ``ct.nn``,
    the forward, the state dicts and ``from_torch``. A subclass names its ``ct.nn`` N-d
    class (``_family``); a per-dimension class sets ``_num_spatial_dims``."""

    _family: ClassVar[type] = _nn.ConvTranspose
    _num_spatial_dims: ClassVar[int | None] = None

    # The settings, as the ``ct.nn`` layer normalised them (PyTorch's attribute names).
    num_spatial_dims: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: PaddingString | tuple[int, ...] | tuple[tuple[int, int], ...]
    groups: int
    dilation: tuple[int, ...]
    padding_mode: PaddingMode
    compute_mode: ComputeMode
    channels_last: bool
    dtype: Any
    """The computation dtype (None: the result dtype of the inputs and parameters)."""
    param_dtype: Any
    """The parameters' dtype."""
    weight: nnx.Param[jax.Array]
    """The weight in PyTorch's layout."""
    bias: nnx.Param[jax.Array] | None
    """``(C_out,)``, or None for a module built with ``bias=False``."""

    def _build(self, arguments: dict[str, Any]) -> None:
        """The constructor: validate through ``ct.nn``, draw, keep the settings.

        ``arguments``: the public constructor's, by name.
        """
        kwargs = dict(arguments)
        num_spatial_dims = kwargs.pop("num_spatial_dims")
        dtype, param_dtype, rngs = (
            kwargs.pop("dtype"),
            kwargs.pop("param_dtype"),
            kwargs.pop("rngs"),
        )
        kwargs["dtype"] = jnp.float32 if param_dtype is None else param_dtype
        _common.template(self._family, num_spatial_dims, kwargs)  # ct.nn's validation
        self.dtype = _args.compute_dtype(dtype)
        _args.check_rngs(rngs, isinstance(rngs, nnx.Rngs), type(self).__name__)
        layer = _common.build_layer(self._family, num_spatial_dims, kwargs, rngs.params())
        self.param_dtype = kwargs["dtype"]
        self.num_spatial_dims = layer.num_spatial_dims
        for name in _common.setting_names(self._family):
            setattr(self, name, getattr(layer, name))
        self._treedef = jax.tree_util.tree_structure(layer)
        self.weight = nnx.Param(layer.weight)
        self.bias = None if layer.bias is None else nnx.Param(layer.bias)

    def _apply(self, x: ArrayLike, *args: Any) -> jax.Array:
        bias = None if self.bias is None else self.bias.get_value()
        return _common.forward(self._treedef, self.weight.get_value(), bias, self.dtype, x, *args)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The parameters as NumPy arrays under PyTorch's keys ``"weight"`` and ``"bias"``.

        Returns:
          ``{"weight": ..., "bias": (C_out,)}`` (no ``"bias"`` without one):
          the PyTorch module's ``state_dict()`` keys and layouts
          (``torch.nn.ConvTranspose*d``: ``(C_in, C_out // groups, *kernel)``;
          ``torch.nn.Conv*d``: ``(C_out, C_in // groups, *kernel)``).

        Examples:
          >>> from flax import nnx
          >>> import convt_jax.flax as ctf
          >>> m = ctf.ConvTranspose2d(4, 6, 3, groups=2, rngs=nnx.Rngs(0))
          >>> {k: v.shape for k, v in m.state_dict().items()}
          {'weight': (4, 3, 3, 3), 'bias': (6,)}
        """
        out = {"weight": np.array(self.weight.get_value())}
        if self.bias is not None:
            out["bias"] = np.array(self.bias.get_value())
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load PyTorch weights in place (NNX modules are mutable, like PyTorch's).

        Args:
          state_dict: one layer's state dict, e.g. ``torch_layer.state_dict()``:
            ``"weight"`` (or weight norm's ``"weight_g"``/``"weight_v"`` or
            ``"parametrizations.weight.original0"``/``"original1"``, folded
            exactly as PyTorch computes the weight) and ``"bias"`` if the
            module has one; ``torch.Tensor``, NumPy or JAX arrays of the
            parameters' shapes and dtype.

        Raises:
          ValueError: missing, unexpected or prefixed keys, or a wrong shape
            (``ct.nn``'s messages).
          TypeError: not a mapping, or a wrong dtype.

        Examples:
          >>> import numpy as np
          >>> from flax import nnx
          >>> import convt_jax.flax as ctf
          >>> m = ctf.ConvTranspose1d(2, 3, 4, rngs=nnx.Rngs(0))
          >>> m.load_state_dict({"weight": np.ones((2, 3, 4), np.float32),
          ...                    "bias": np.zeros(3, np.float32)})
          >>> float(m.weight[...].sum())
          24.0
        """
        layer = self._layer()
        new = layer.load_state_dict(fold_weight_norm(state_dict))
        self.weight.set_value(new.weight)
        if self.bias is not None and new.bias is not None:  # both or neither
            self.bias.set_value(new.bias)

    def _layer(self) -> Any:
        """The equivalent ``ct.nn`` layer holding the current parameters."""
        leaves = [self.weight.get_value()]
        if self.bias is not None:
            leaves.append(self.bias.get_value())
        return jax.tree_util.tree_unflatten(self._treedef, leaves)

    @classmethod
    def from_torch(
        cls: type[_M],
        module: Any,
        *,
        rngs: nnx.Rngs | None = None,
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
    ) -> _M:
        """Build from the PyTorch layer this class mirrors: its settings and weights in one call.

        Args:
          module: a ``torch.nn.ConvTranspose*d`` for the transposed modules, a
            ``torch.nn.Conv*d`` for the convolutions, with this class's number
            of spatial axes (any for the N-d classes), plain or weight-normed
            (either PyTorch API).
          rngs: keyword-only, unused (the weights come from ``module``);
            accepted for symmetry with the constructor.
          channels_last: keyword-only; the activation layout (default True,
            Flax's; False keeps PyTorch's ``(N, C, *spatial)``).
          dtype: keyword-only; the computation dtype (None: from the inputs).

        Returns:
          A new module whose parameters have the module's dtype and values.

        Raises:
          TypeError: ``module`` is not the PyTorch layer this class mirrors,
            of this class's dimension.

        Examples:
          >>> import torch, numpy as np
          >>> import convt_jax.flax as ctf
          >>> t = torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(4, 2, 3))
          >>> m = ctf.ConvTranspose1d.from_torch(t, channels_last=False)
          >>> x = np.ones((1, 4, 5), np.float32)
          >>> bool(np.allclose(m(x), t(torch.as_tensor(x)).detach().numpy(), atol=1e-6))
          True
        """
        family = cls._family
        n, kwargs, state = settings_from_torch(module, transposed=family._transposed)
        want = cls._num_spatial_dims
        check_rank("convt_jax.flax", family._kind, cls.__name__, want, n, type(module).__name__)
        kwargs["param_dtype"] = kwargs.pop("dtype")
        kwargs.update(
            channels_last=channels_last,
            dtype=dtype,
            rngs=rngs if isinstance(rngs, nnx.Rngs) else nnx.Rngs(0),
        )
        make = cast(Any, cls)  # a concrete module class: its constructor takes these
        obj = make(**kwargs) if want is not None else make(n, **kwargs)
        obj.load_state_dict(state)
        return obj


class ConvTranspose(_ConvModule):
    """N-d transposed convolution as an ``nnx.Module``, with PyTorch's semantics.

    ``torch.nn.ConvTranspose*d`` for Flax NNX, any number of spatial axes
    (:class:`ConvTranspose1d`, :class:`ConvTranspose2d` and
    :class:`ConvTranspose3d` fix it and take the same arguments after it):
    ``weight`` (PyTorch layout ``(C_in, C_out // groups, *kernel)``) and
    ``bias`` (``(C_out,)``, or ``None`` with ``bias=False``) are ``nnx.Param``
    s, so ``nnx.Optimizer(model, tx, wrt=nnx.Param)``, ``nnx.jit``,
    ``nnx.grad``, ``nnx.split`` / ``merge`` and ``nnx.state`` work as for
    Flax's own layers, and a PyTorch checkpoint loads unchanged
    (:meth:`load_state_dict`, :meth:`from_torch`). Same settings, semantics,
    validation and messages as :class:`convt_jax.nn.ConvTranspose`; initial
    weights as PyTorch's (uniform in ``±1/sqrt(fan_in)``, ``fan_in =
    (out_channels // groups) * prod(kernel_size)``).

    Args:
      num_spatial_dims: the number of spatial axes, ``>= 1`` (not taken by
        the 1-d, 2-d and 3-d classes).
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: an int or one int per spatial axis.
      stride: as in :class:`convt_jax.nn.ConvTranspose`.
      padding: as in :class:`convt_jax.nn.ConvTranspose` (ints, ``(lo, hi)``
        pairs, ``"valid"`` or ``"same"``).
      output_padding: as in :class:`convt_jax.nn.ConvTranspose`.
      groups: keyword-only; as in :class:`convt_jax.nn.ConvTranspose`.
      dilation: keyword-only; as in :class:`convt_jax.nn.ConvTranspose`.
      bias: keyword-only; whether the module has a bias.
      padding_mode: keyword-only; as in :class:`convt_jax.nn.ConvTranspose`.
      conv_mode: keyword-only; as in :class:`convt_jax.nn.ConvTranspose`.
      compute_mode: keyword-only; as in :class:`convt_jax.nn.ConvTranspose`.
      channels_last: keyword-only; default True (Flax's ``(N, *spatial, C)``);
        the weight keeps PyTorch's layout either way.
      dtype: keyword-only; the computation dtype (None: the result dtype of
        the inputs and parameters), Flax's meaning.
      param_dtype: keyword-only; the parameters' dtype (default float32).
      rngs: keyword-only; an ``nnx.Rngs`` (its ``params`` stream draws the
        initial weights).

    Raises:
      ValueError: a bad setting value, at construction, with ``ct.nn``'s messages.
      TypeError: a bad setting type, at construction, with ``ct.nn``'s messages.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.ConvTranspose(4, 2, 3, kernel_size=2, stride=2, rngs=nnx.Rngs(0))
      >>> m(jnp.ones((1, 3, 3, 3, 3, 2))).shape
      (1, 6, 6, 6, 6, 3)

      Training with optax, as any NNX module:

      >>> m = ctf.ConvTranspose(2, 8, 4, 4, stride=2, padding=1, rngs=nnx.Rngs(0))
      >>> x = jnp.ones((2, 5, 5, 8))
      >>> opt = nnx.Optimizer(m, optax.sgd(0.1), wrt=nnx.Param)
      >>> loss = lambda m: jnp.mean(m(x) ** 2)
      >>> before = loss(m)
      >>> _ = opt.update(m, nnx.grad(loss)(m))
      >>> bool(loss(m) < before)
      True
    """

    # The settings only the transposed convolution has (the rest: the base's).
    output_padding: tuple[int, ...]
    conv_mode: ConvMode

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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        self._build(_common.arguments(locals()))

    def __call__(self, x: ArrayLike, output_size: OutputSize = None) -> jax.Array:
        """Apply the layer, exactly as ``torch.nn.ConvTranspose*d.forward(x, output_size)``.

        Args:
          x: ``(N, *spatial, C_in)`` or unbatched ``(*spatial, C_in)``
            (channels-last, the default); ``(N, C_in, *spatial)`` with
            ``channels_last=False``.
          output_size: the wanted spatial output size (or a full output
            shape); it picks the output padding, as in PyTorch.

        Returns:
          The output, in ``dtype`` (or the result dtype of ``x`` and the
          parameters when ``dtype`` is None).
        """
        return self._apply(x, output_size)


class ConvTranspose1d(ConvTranspose):
    """1-d transposed convolution as an ``nnx.Module``: ``torch.nn.ConvTranspose1d`` for Flax.

    See :class:`ConvTranspose` for the arguments (all but ``num_spatial_dims``)
    and the semantics.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.ConvTranspose1d(4, 2, kernel_size=3, stride=2, rngs=nnx.Rngs(0))
      >>> m.weight[...].shape                          # (C_in, C_out // groups, K)
      (4, 2, 3)
      >>> m(jnp.ones((8, 5, 4))).shape                  # (N, (5 - 1)*2 + 3, C_out)
      (8, 11, 2)
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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(1, **_common.arguments(locals()))


class ConvTranspose2d(ConvTranspose):
    """2-d transposed convolution as an ``nnx.Module``: ``torch.nn.ConvTranspose2d`` for Flax.

    See :class:`ConvTranspose` for the arguments (all but ``num_spatial_dims``)
    and the semantics.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.ConvTranspose2d(8, 4, 4, stride=2, padding=1, rngs=nnx.Rngs(0))
      >>> x = jnp.ones((2, 5, 5, 8))
      >>> m(x).shape, m(x, output_size=(11, 11)).shape
      ((2, 10, 10, 4), (2, 11, 11, 4))
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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(2, **_common.arguments(locals()))


class ConvTranspose3d(ConvTranspose):
    """3-d transposed convolution as an ``nnx.Module``: ``torch.nn.ConvTranspose3d`` for Flax.

    See :class:`ConvTranspose` for the arguments (all but ``num_spatial_dims``)
    and the semantics.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.ConvTranspose3d(2, 2, 2, stride=2, bias=False, rngs=nnx.Rngs(0))
      >>> m.bias is None, m(jnp.ones((1, 3, 3, 3, 2))).shape
      (True, (1, 6, 6, 6, 2))
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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(3, **_common.arguments(locals()))


class Conv(_ConvModule):
    """N-d convolution as an ``nnx.Module``, with PyTorch's semantics.

    ``torch.nn.Conv*d`` for Flax NNX, any number of spatial axes
    (:class:`Conv1d`, :class:`Conv2d` and :class:`Conv3d` fix it and take the
    same arguments after it): ``weight`` (PyTorch layout ``(C_out, C_in //
    groups, *kernel)``) and ``bias`` (``(C_out,)``, or ``None`` with
    ``bias=False``) are ``nnx.Param`` s, and a PyTorch checkpoint loads
    unchanged (:meth:`load_state_dict`, :meth:`from_torch`), as for
    :class:`ConvTranspose`. Same settings, semantics, validation and messages
    as :class:`convt_jax.nn.Conv`; initial weights as PyTorch's (uniform in
    ``±1/sqrt(fan_in)``, ``fan_in = (in_channels // groups) *
    prod(kernel_size)``).

    Args:
      num_spatial_dims: the number of spatial axes, ``>= 1`` (not taken by
        the 1-d, 2-d and 3-d classes).
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: an int or one int per spatial axis.
      stride: as in :class:`convt_jax.nn.Conv`.
      padding: as in :class:`convt_jax.nn.Conv` (ints, ``(lo, hi)`` pairs,
        ``"valid"`` or ``"same"``).
      dilation: as in :class:`convt_jax.nn.Conv`.
      groups: as in :class:`convt_jax.nn.Conv`.
      bias: whether the module has a bias.
      padding_mode: as in :class:`convt_jax.nn.Conv`.
      compute_mode: keyword-only; as in :class:`convt_jax.nn.Conv`.
      channels_last: keyword-only; default True (Flax's ``(N, *spatial, C)``);
        the weight keeps PyTorch's layout either way.
      dtype: keyword-only; the computation dtype (None: the result dtype of
        the inputs and parameters), Flax's meaning.
      param_dtype: keyword-only; the parameters' dtype (default float32).
      rngs: keyword-only; an ``nnx.Rngs`` (its ``params`` stream draws the
        initial weights).

    Raises:
      ValueError: a bad setting value, at construction, with ``ct.nn``'s messages.
      TypeError: a bad setting type, at construction, with ``ct.nn``'s messages.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.Conv(4, 3, 8, kernel_size=3, stride=2, padding=1, rngs=nnx.Rngs(0))
      >>> m(jnp.ones((1, 8, 8, 8, 8, 3))).shape
      (1, 4, 4, 4, 4, 8)
    """

    _family = _nn.Conv

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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        self._build(_common.arguments(locals()))

    def __call__(self, x: ArrayLike) -> jax.Array:
        """Apply the layer, exactly as ``torch.nn.Conv*d.forward(x)``.

        Args:
          x: ``(N, *spatial, C_in)`` or unbatched ``(*spatial, C_in)``
            (channels-last, the default); ``(N, C_in, *spatial)`` with
            ``channels_last=False``.

        Returns:
          The output, in ``dtype`` (or the result dtype of ``x`` and the
          parameters when ``dtype`` is None).
        """
        return self._apply(x)


class Conv1d(Conv):
    """1-d convolution as an ``nnx.Module``: ``torch.nn.Conv1d`` for Flax.

    See :class:`Conv` for the arguments (all but ``num_spatial_dims``) and the
    semantics.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.Conv1d(4, 2, kernel_size=3, stride=2, rngs=nnx.Rngs(0))
      >>> m.weight[...].shape                          # (C_out, C_in // groups, K)
      (2, 4, 3)
      >>> m(jnp.ones((8, 11, 4))).shape                 # (N, (11 - 3) // 2 + 1, C_out)
      (8, 5, 2)
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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(1, **_common.arguments(locals()))


class Conv2d(Conv):
    """2-d convolution as an ``nnx.Module``: ``torch.nn.Conv2d`` for Flax.

    See :class:`Conv` for the arguments (all but ``num_spatial_dims``) and the
    semantics.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.Conv2d(8, 4, 3, padding="same", padding_mode="circular", rngs=nnx.Rngs(0))
      >>> m(jnp.ones((2, 5, 5, 8))).shape
      (2, 5, 5, 4)
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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(2, **_common.arguments(locals()))


class Conv3d(Conv):
    """3-d convolution as an ``nnx.Module``: ``torch.nn.Conv3d`` for Flax.

    See :class:`Conv` for the arguments (all but ``num_spatial_dims``) and the
    semantics.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> import convt_jax.flax as ctf
      >>> m = ctf.Conv3d(2, 2, 2, stride=2, bias=False, rngs=nnx.Rngs(0))
      >>> m.bias is None, m(jnp.ones((1, 6, 6, 6, 2))).shape
      (True, (1, 3, 3, 3, 2))
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
        channels_last: bool = True,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike | None = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        super().__init__(3, **_common.arguments(locals()))
