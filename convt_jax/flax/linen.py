"""``convt_jax.flax.linen.ConvTranspose1d/2d/3d``: ``flax.linen.Module`` s.

The same fields and semantics as the NNX modules of ``convt_jax.flax``, as
linen modules: parameters ``"weight"`` (PyTorch layout ``(C_in, C_out //
groups, *kernel)``) and ``"bias"`` (``(C_out,)``; none with ``bias=False``),
initialised as PyTorch's. The settings are validated when a module is first
called (``init`` / ``apply``), with ``ct.nn``'s messages.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import jax
import jax.numpy as jnp
from flax import linen
from jax.typing import ArrayLike, DTypeLike

from .. import _args
from ..nn import init as _init
from ..nn._torch import fold_weight_norm, settings_from_torch
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

__all__ = ["ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"]

_M = TypeVar("_M", bound="_ConvTranspose")


class _ConvTranspose(linen.Module):
    """What the 1-d, 2-d and 3-d linen modules share (their fields and methods)."""

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

    num_spatial_dims: ClassVar[int] = 0

    def _template(self) -> Any:
        kwargs = dict(
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            groups=self.groups,
            dilation=self.dilation,
            bias=self.bias,
            padding_mode=self.padding_mode,
            conv_mode=self.conv_mode,
            compute_mode=self.compute_mode,
            channels_last=self.channels_last,
            dtype=jnp.float32 if self.param_dtype is None else self.param_dtype,
        )
        return _common.template(self.num_spatial_dims, kwargs)

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
        tmpl = self._template()  # ct.nn's validation
        dtype = _args.compute_dtype(self.dtype)
        shape = tuple(tmpl.weight.shape)
        param_dtype = tmpl.weight.dtype
        weight = self.param("weight", _init.pytorch_uniform, shape, param_dtype)
        bias = None
        if tmpl.bias is not None:
            bias_init = functools.partial(_init.pytorch_uniform, fan_in=_init.fan_in(shape))
            bias = self.param("bias", bias_init, tuple(tmpl.bias.shape), param_dtype)
        return _common.forward(
            jax.tree_util.tree_structure(tmpl), weight, bias, dtype, x, output_size
        )

    @classmethod
    def from_torch(
        cls: type[_M], module: Any, *, channels_last: bool = True, dtype: DTypeLike | None = None
    ) -> tuple[_M, dict[str, Any]]:
        """A linen module and its variables from a ``torch.nn.ConvTranspose*d``.

        Args:
          module: a ``torch.nn.ConvTranspose*d`` with this class's number of
            spatial axes, plain or weight-normed (either PyTorch API).
          channels_last: keyword-only; the activation layout (default True).
          dtype: keyword-only; the computation dtype (None: from the inputs).

        Returns:
          ``(linen_module, {"params": {"weight": ..., "bias": ...}})``, ready
          for ``linen_module.apply(variables, x)``.

        Raises:
          TypeError: ``module`` is not a PyTorch transposed convolution of
            this class's dimension.

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
        n, kwargs, state = settings_from_torch(module)
        _args.check_torch_rank_for(
            "convt_jax.flax.linen", cls.__name__, cls.num_spatial_dims, n, type(module).__name__
        )
        kwargs["param_dtype"] = kwargs.pop("dtype")
        mod = cls(**kwargs, channels_last=channels_last, dtype=dtype)
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
