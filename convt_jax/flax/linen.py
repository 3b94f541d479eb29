"""``convt_jax.flax.linen.ConvTranspose/1d/2d/3d`` and ``Conv/1d/2d/3d``: ``flax.linen.Module`` s.

The same fields and semantics as the NNX modules of ``convt_jax.flax``, as
linen modules: the N-d ``ConvTranspose`` and ``Conv`` take ``num_spatial_dims``
first, the 1-d, 2-d and 3-d classes the same fields without it. Parameters
``"weight"`` (PyTorch's layout: ``(C_in, C_out // groups, *kernel)`` for the
transposed convolutions, ``(C_out, C_in // groups, *kernel)`` for the
convolutions) and ``"bias"`` (``(C_out,)``; none with ``bias=False``),
initialised as PyTorch's. The settings are validated when a module is first
called (``init`` / ``apply``), with ``ct.nn``'s messages.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, cast

import jax
import jax.numpy as jnp
from flax import linen
from jax.typing import ArrayLike, DTypeLike

from .. import _args
from .. import nn as _nn
from ..nn import init as _init
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
    Stride,
)
from . import _common

__all__ = [
    "Conv",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
]

_M = TypeVar("_M", bound="_Module")


class _Module(linen.Module):
    """What every linen module here shares: its methods. The fields (in the PyTorch
    class's positional order, so not shared) are the family's (:class:`_ConvTranspose`,
    :class:`_Conv`); ``_family`` names its ``ct.nn`` N-d class.

    ``num_spatial_dims`` is a ClassVar of each 1/2/3-d class and the first field of the
    N-d classes (:class:`_NumSpatialDims`); it is not declared here, where a ClassVar would
    hold its place among the dataclass fields and take it from the N-d classes' field.
    """

    _family: ClassVar[type] = _nn.ConvTranspose

    @classmethod
    def _fixed_num_spatial_dims(cls) -> int | None:
        """The 1/2/3-d classes' number of spatial axes; None for the N-d classes."""
        if issubclass(cls, _NumSpatialDims):
            return None
        return getattr(cls, "num_spatial_dims")  # noqa: B009  (a ClassVar of the subclasses)

    def _template(self) -> Any:
        names = (*_common.setting_names(self._family), "bias")
        kwargs = {name: getattr(self, name) for name in names}
        param_dtype = getattr(self, "param_dtype")  # noqa: B009  (a field of the subclasses)
        kwargs["dtype"] = jnp.float32 if param_dtype is None else param_dtype
        n = getattr(self, "num_spatial_dims")  # noqa: B009  (a ClassVar or a field, likewise)
        return _common.template(self._family, n, kwargs)  # ct.nn validates n (N-d classes)

    def _apply(self, x: ArrayLike, *args: Any) -> jax.Array:
        """The forward, from a compact ``__call__`` (``args``: what follows ``x``)."""
        tmpl = self._template()  # ct.nn's validation
        dtype = _args.compute_dtype(getattr(self, "dtype"))  # noqa: B009  (likewise)
        shape = tuple(tmpl.weight.shape)
        param_dtype = tmpl.weight.dtype
        weight = self.param("weight", _init.pytorch_uniform, shape, param_dtype)
        bias = None
        if tmpl.bias is not None:
            bias_init = functools.partial(_init.pytorch_uniform, fan_in=_init.fan_in(shape))
            bias = self.param("bias", bias_init, tuple(tmpl.bias.shape), param_dtype)
        return _common.forward(jax.tree_util.tree_structure(tmpl), weight, bias, dtype, x, *args)

    @classmethod
    def from_torch(
        cls: type[_M], module: Any, *, channels_last: bool = True, dtype: DTypeLike | None = None
    ) -> tuple[_M, dict[str, Any]]:
        """A linen module and its variables from the PyTorch layer this class mirrors.

        Args:
          module: a ``torch.nn.ConvTranspose*d`` for the transposed modules, a
            ``torch.nn.Conv*d`` for the convolutions, with this class's number
            of spatial axes (any for the N-d classes), plain or weight-normed
            (either PyTorch API).
          channels_last: keyword-only; the activation layout (default True).
          dtype: keyword-only; the computation dtype (None: from the inputs).

        Returns:
          ``(linen_module, {"params": {"weight": ..., "bias": ...}})``, ready
          for ``linen_module.apply(variables, x)``.

        Raises:
          TypeError: ``module`` is not the PyTorch layer this class mirrors,
            of this class's dimension.

        Examples:
          >>> import torch, numpy as np
          >>> from convt_jax.flax import linen as ctl
          >>> t = torch.nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
          >>> m, variables = ctl.ConvTranspose2d.from_torch(t, channels_last=False)
          >>> x = np.ones((1, 3, 5, 5), np.float32)
          >>> bool(np.allclose(m.apply(variables, x), t(torch.as_tensor(x)).detach().numpy(),
          ...                  atol=1e-6))
          True
        """
        family = cls._family
        n, kwargs, state = settings_from_torch(module, transposed=family._transposed)
        want, got = cls._fixed_num_spatial_dims(), type(module).__name__
        check_rank("convt_jax.flax.linen", family._kind, cls.__name__, want, n, got)
        kwargs.update(param_dtype=kwargs.pop("dtype"), channels_last=channels_last, dtype=dtype)
        make = cast(Any, cls)  # a concrete module class: its fields take these
        mod = make(**kwargs) if want is not None else make(n, **kwargs)
        return mod, mod.variables_from_state_dict(state)

    def variables_from_state_dict(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Variables ``{"params": {...}}`` for ``apply`` from a PyTorch state dict.

        Args:
          state_dict: one layer's state dict (``torch_layer.state_dict()``),
            ``weight`` or either weight-norm spelling (folded as PyTorch
            computes it), and ``bias`` if the module has one; shapes and
            dtype must match this module's parameters.

        Returns:
          ``{"params": {"weight": jax.Array, "bias": jax.Array}}``.

        Raises:
          ValueError: missing or unexpected keys, or a wrong shape (``ct.nn``'s
            ``load_state_dict`` messages).
          TypeError: not a mapping, or a wrong dtype.

        Examples:
          >>> import numpy as np
          >>> from convt_jax.flax import linen as ctl
          >>> m = ctl.ConvTranspose1d(2, 3, 4, bias=False)
          >>> v = m.variables_from_state_dict({"weight": np.ones((2, 3, 4), np.float32)})
          >>> m.apply(v, np.ones((5, 2), np.float32)).shape
          (8, 3)
        """
        tmpl = self._template()
        leaves = [jnp.zeros(tmpl.weight.shape, tmpl.weight.dtype)]
        if tmpl.bias is not None:
            leaves.append(jnp.zeros(tmpl.bias.shape, tmpl.bias.dtype))
        layer = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tmpl), leaves)
        new = layer.load_state_dict(fold_weight_norm(state_dict))
        params = {"weight": new.weight}
        if new.bias is not None:
            params["bias"] = new.bias
        return {"params": params}


class _NumSpatialDims(linen.Module):
    """The N-d classes' own field. A dataclass collects its fields along its method
    resolution order backwards (``object``'s first), so an N-d class lists this base after
    its family's (``class ConvTranspose(_ConvTranspose, _NumSpatialDims)``) to take
    ``num_spatial_dims`` first, as :class:`convt_jax.flax.ConvTranspose` does."""

    num_spatial_dims: int


class _ConvTranspose(_Module):
    """The fields of the transposed modules (``torch.nn.ConvTranspose*d``'s order)."""

    in_channels: int
    out_channels: int
    kernel_size: KernelSize
    stride: Stride = 1
    padding: Padding = 0
    output_padding: OutputPadding = 0
    groups: int = 1
    dilation: Dilation = 1
    bias: bool = True
    padding_mode: PaddingMode = "zeros"
    conv_mode: ConvMode = "cross_correlation"
    compute_mode: ComputeMode = "default"
    channels_last: bool = True
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike | None = jnp.float32

    @linen.compact
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


class ConvTranspose(_ConvTranspose, _NumSpatialDims):
    """N-d transposed convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    :class:`convt_jax.flax.ConvTranspose` as a linen module, any number of
    spatial axes (:class:`ConvTranspose1d`, :class:`ConvTranspose2d` and
    :class:`ConvTranspose3d` fix it and take the same fields after it):
    parameters ``"weight"`` (PyTorch's layout ``(C_in, C_out // groups,
    *kernel)``) and ``"bias"`` (``(C_out,)``; none with ``bias=False``),
    initialised as PyTorch's. The fields are checked when the module is first
    called (``init`` / ``apply``), ``num_spatial_dims`` too, with the messages
    of :class:`convt_jax.nn.ConvTranspose`.

    Attributes:
      num_spatial_dims: the number of spatial axes, ``>= 1`` (not taken by
        the 1-d, 2-d and 3-d classes).
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: an int or one int per spatial axis.
      stride: as in :class:`convt_jax.flax.ConvTranspose`.
      padding: as in :class:`convt_jax.flax.ConvTranspose`.
      output_padding: as in :class:`convt_jax.flax.ConvTranspose`.
      groups: as in :class:`convt_jax.flax.ConvTranspose`.
      dilation: as in :class:`convt_jax.flax.ConvTranspose`.
      bias: whether the module has a ``"bias"`` parameter.
      padding_mode: as in :class:`convt_jax.flax.ConvTranspose`.
      conv_mode: as in :class:`convt_jax.flax.ConvTranspose`.
      compute_mode: as in :class:`convt_jax.flax.ConvTranspose`.
      channels_last: default True (Flax's ``(N, *spatial, C)``); the weight
        keeps PyTorch's layout either way.
      dtype: the computation dtype (None: the result dtype of the inputs and
        parameters), Flax's meaning.
      param_dtype: the parameters' dtype (default float32).

    Raises:
      ValueError: a bad setting value, at ``init`` / ``apply``, with ``ct.nn``'s messages.
      TypeError: a bad setting type, at ``init`` / ``apply``, with ``ct.nn``'s messages.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.ConvTranspose(2, 8, 4, 4, stride=2, padding=1)
      >>> m.num_spatial_dims, m.in_channels, m.out_channels, m.kernel_size
      (2, 8, 4, 4)
      >>> x = jnp.ones((2, 5, 5, 8))
      >>> variables = m.init(jax.random.key(0), x)
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'bias': (4,), 'weight': (8, 4, 4, 4)}
      >>> m.apply(variables, x).shape, m.apply(variables, x, output_size=(11, 11)).shape
      ((2, 10, 10, 4), (2, 11, 11, 4))

      Four spatial axes:

      >>> m4 = ctl.ConvTranspose(4, 2, 3, kernel_size=2, stride=2)
      >>> x4 = jnp.ones((1, 3, 3, 3, 3, 2))
      >>> m4.apply(m4.init(jax.random.key(0), x4), x4).shape
      (1, 6, 6, 6, 6, 3)
    """


class ConvTranspose1d(_ConvTranspose):
    """1-d transposed convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    Its fields are the arguments of :class:`convt_jax.flax.ConvTranspose`
    (see there), all but ``num_spatial_dims`` and ``rngs``, with the same
    defaults.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.ConvTranspose1d(4, 2, kernel_size=3, stride=2)
      >>> variables = m.init(jax.random.key(0), jnp.ones((8, 5, 4)))
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'bias': (2,), 'weight': (4, 2, 3)}
      >>> m.apply(variables, jnp.ones((8, 5, 4))).shape
      (8, 11, 2)
    """

    num_spatial_dims: ClassVar[int] = 1


class ConvTranspose2d(_ConvTranspose):
    """2-d transposed convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    Its fields are the arguments of :class:`convt_jax.flax.ConvTranspose`
    (see there), all but ``num_spatial_dims`` and ``rngs``, with the same
    defaults.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2)
      >>> x = jnp.ones((2, 5, 5, 8))
      >>> variables = m.init(jax.random.key(0), x)
      >>> m.apply(variables, x).shape, m.apply(variables, x, output_size=(11, 11)).shape
      ((2, 10, 10, 4), (2, 11, 11, 4))
    """

    num_spatial_dims: ClassVar[int] = 2


class ConvTranspose3d(_ConvTranspose):
    """3-d transposed convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    Its fields are the arguments of :class:`convt_jax.flax.ConvTranspose`
    (see there), all but ``num_spatial_dims`` and ``rngs``, with the same
    defaults.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.ConvTranspose3d(2, 2, 2, stride=2, bias=False)
      >>> variables = m.init(jax.random.key(0), jnp.ones((1, 3, 3, 3, 2)))
      >>> list(variables["params"]), m.apply(variables, jnp.ones((1, 3, 3, 3, 2))).shape
      (['weight'], (1, 6, 6, 6, 2))
    """

    num_spatial_dims: ClassVar[int] = 3


class _Conv(_Module):
    """The fields of the convolutions (``torch.nn.Conv*d``'s order)."""

    in_channels: int
    out_channels: int
    kernel_size: KernelSize
    stride: Stride = 1
    padding: Padding = 0
    dilation: Dilation = 1
    groups: int = 1
    bias: bool = True
    padding_mode: PaddingMode = "zeros"
    compute_mode: ComputeMode = "default"
    channels_last: bool = True
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike | None = jnp.float32

    _family: ClassVar[type] = _nn.Conv

    @linen.compact
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


class Conv(_Conv, _NumSpatialDims):
    """N-d convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    :class:`convt_jax.flax.Conv` as a linen module, any number of spatial
    axes (:class:`Conv1d`, :class:`Conv2d` and :class:`Conv3d` fix it and
    take the same fields after it): parameters ``"weight"`` (PyTorch's layout
    ``(C_out, C_in // groups, *kernel)``) and ``"bias"`` (``(C_out,)``; none
    with ``bias=False``), initialised as PyTorch's. The fields are checked
    when the module is first called (``init`` / ``apply``),
    ``num_spatial_dims`` too, with the messages of :class:`convt_jax.nn.Conv`.

    Attributes:
      num_spatial_dims: the number of spatial axes, ``>= 1`` (not taken by
        the 1-d, 2-d and 3-d classes).
      in_channels: ``C_in``, ``>= 1``.
      out_channels: ``C_out``, ``>= 1``.
      kernel_size: an int or one int per spatial axis.
      stride: as in :class:`convt_jax.flax.Conv`.
      padding: as in :class:`convt_jax.flax.Conv`.
      dilation: as in :class:`convt_jax.flax.Conv`.
      groups: as in :class:`convt_jax.flax.Conv`.
      bias: whether the module has a ``"bias"`` parameter.
      padding_mode: as in :class:`convt_jax.flax.Conv`.
      compute_mode: as in :class:`convt_jax.flax.Conv`.
      channels_last: default True (Flax's ``(N, *spatial, C)``); the weight
        keeps PyTorch's layout either way.
      dtype: the computation dtype (None: the result dtype of the inputs and
        parameters), Flax's meaning.
      param_dtype: the parameters' dtype (default float32).

    Raises:
      ValueError: a bad setting value, at ``init`` / ``apply``, with ``ct.nn``'s messages.
      TypeError: a bad setting type, at ``init`` / ``apply``, with ``ct.nn``'s messages.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.Conv(4, 3, 8, kernel_size=3, stride=2, padding=1)
      >>> x = jnp.ones((1, 8, 8, 8, 8, 3))
      >>> variables = m.init(jax.random.key(0), x)
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'bias': (8,), 'weight': (8, 3, 3, 3, 3, 3)}
      >>> m.apply(variables, x).shape
      (1, 4, 4, 4, 4, 8)

      From a PyTorch layer, whose number of spatial axes it takes:

      >>> import torch, numpy as np
      >>> t = torch.nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect")
      >>> m, variables = ctl.Conv.from_torch(t, channels_last=False)
      >>> m.num_spatial_dims, m.padding_mode
      (2, 'reflect')
      >>> x = np.ones((1, 3, 5, 5), np.float32)
      >>> bool(np.allclose(m.apply(variables, x), t(torch.as_tensor(x)).detach().numpy(),
      ...                  atol=1e-6))
      True
    """


class Conv1d(_Conv):
    """1-d convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    Its fields are the arguments of :class:`convt_jax.flax.Conv` (see there),
    all but ``num_spatial_dims`` and ``rngs``, with the same defaults.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.Conv1d(4, 2, kernel_size=3, stride=2)
      >>> variables = m.init(jax.random.key(0), jnp.ones((8, 11, 4)))
      >>> jax.tree.map(jnp.shape, variables["params"])
      {'bias': (2,), 'weight': (2, 4, 3)}
      >>> m.apply(variables, jnp.ones((8, 11, 4))).shape
      (8, 5, 2)
    """

    num_spatial_dims: ClassVar[int] = 1


class Conv2d(_Conv):
    """2-d convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    Its fields are the arguments of :class:`convt_jax.flax.Conv` (see there),
    all but ``num_spatial_dims`` and ``rngs``, with the same defaults.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.Conv2d(8, 4, 3, padding=1, padding_mode="replicate", groups=2)
      >>> x = jnp.ones((2, 5, 5, 8))
      >>> variables = m.init(jax.random.key(0), x)
      >>> m.apply(variables, x).shape
      (2, 5, 5, 4)
    """

    num_spatial_dims: ClassVar[int] = 2


class Conv3d(_Conv):
    """3-d convolution as a ``flax.linen.Module`` with PyTorch's semantics.

    Its fields are the arguments of :class:`convt_jax.flax.Conv` (see there),
    all but ``num_spatial_dims`` and ``rngs``, with the same defaults.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from convt_jax.flax import linen as ctl
      >>> m = ctl.Conv3d(2, 2, 2, stride=2, bias=False)
      >>> variables = m.init(jax.random.key(0), jnp.ones((1, 6, 6, 6, 2)))
      >>> list(variables["params"]), m.apply(variables, jnp.ones((1, 6, 6, 6, 2))).shape
      (['weight'], (1, 3, 3, 3, 2))
    """

    num_spatial_dims: ClassVar[int] = 3
