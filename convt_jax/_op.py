"""The public functions: validate -> choose a lowering -> call it under ``jax.jit``.

``conv_transpose1d/2d/3d`` and ``conv_transpose`` differ only in their
number of spatial axes and their docstrings; :func:`_conv_transpose` is
their one implementation.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.lax import PrecisionLike
from jax.typing import ArrayLike, DTypeLike

from . import _args, _geometry, _halo, _methods, _onednn, _padding_modes, _primitive, _tune
from ._geometry import Config
from .typing import (
    ConvMode,
    Dilation,
    Method,
    OutputPadding,
    OutputSize,
    Padding,
    PaddingMode,
    Stride,
)


@functools.partial(
    jax.jit,
    static_argnames=("config", "batched", "dtype", "method", "fold", "tune", "xla_only"),
)
def _forward(
    x,
    w,
    b,
    *,
    config: Config,
    batched: bool,
    dtype,
    method: str,
    fold=None,
    tune: bool = False,
    xla_only: bool = False,
):
    """Batch, bind the primitive, fold a non-zero padding mode's border, add the bias, cast.

    ``fold`` is ``None`` or ``(pads, padding_mode)``: then ``config`` crops no
    padding and the border is folded back (in the accumulation dtype) before
    the bias is added once per output position.  ``tune`` is the autotuning
    switch (:func:`_tune.enabled`) when the call was made: read by
    ``_methods.resolve`` itself, it is a static argument only so that turning
    the switch traces (and chooses) again instead of reusing the other setting's trace;
    ``xla_only`` likewise for :func:`_onednn.switched_off`.
    """
    x = x.astype(dtype)
    w = w.astype(dtype)
    if not batched:
        x = x[None]
    if x.shape[0] == 0:
        # An empty batch: the result is the bias alone and the gradients are zero.  Not
        # lowered: the im2col gradient forms cannot reshape an empty batch.
        y = jnp.zeros(_geometry.output_shape(config, x.shape, w.shape), dtype)
    else:
        forms = functools.partial(_forms, method, dtype, tune)  # (config, x, w shapes) ->
        if (halo := _halo.plan(config, x, w)) is not None:
            # A spatial split visible in the types (Explicit mesh axes): halo exchange.
            y = _halo.run(x, w, config, forms, halo)
        elif (channels := _halo.channel_plan(config, x, w)) is not None:
            # Output channels (or whole groups) split in the types: each device its own.
            y = _halo.run_channels(x, w, config, forms, channels)
        elif (batch := _halo.batch_plan(x, w)) is not None:
            # Data parallelism in the types: each device its block of the batch.
            y = _halo.run_batch(
                lambda xb, wb: _primitive.conv_transpose_batched(
                    xb, wb, config, forms(config, xb.shape, wb.shape)
                ),
                x,
                w,
                batch,
            )
        else:
            y = _primitive.conv_transpose_batched(x, w, config, forms(config, x.shape, w.shape))
    if fold is not None:
        # Slices of split axes: with Explicit mesh axes, run where the partitioner decides.
        y = _primitive.with_auto_axes(
            functools.partial(
                _padding_modes.fold,
                pads=fold[0],
                padding_mode=fold[1],
                channels_last=config.channels_last,
            ),
            y,
        )
    if b is not None:
        shape = [1] * y.ndim
        shape[_geometry.channel_axis(config)] = -1
        y = y + b.astype(y.dtype).reshape(shape)
    y = y.astype(dtype)
    return y if batched else y[0]


def _forms(method: str, dtype, tune: bool, config: Config, x_shape, w_shape) -> tuple:
    """The CPU's forms and the accelerators' (the lowering picks by its platform).

    An explicit method: the same forms on every platform.  ``"auto"``: the CPU rule on
    CPU and XLA's convolutions on the accelerators; with autotuning on, the forms
    measured on the default backend replace that platform's (the tuner times there).
    """
    rule = _methods.resolve(method, config, x_shape, w_shape, dtype, tune=False)
    if method != "auto":
        return rule + rule
    accelerator = _methods.ACCELERATOR_FORMS
    if tune:
        tuned = _methods.resolve(method, config, x_shape, w_shape, dtype)
        if jax.default_backend() == "cpu":
            rule = tuned
        else:
            accelerator = tuned
    return tuple(rule) + tuple(accelerator)


def _conv_transpose(
    num_spatial: int | None,
    fn_name: str,
    input,
    weight,
    bias,
    stride,
    padding,
    output_padding,
    groups,
    dilation,
    output_size,
    channels_last,
    conv_mode,
    precision,
    preferred_element_type,
    padding_mode,
    method,
) -> jax.Array:
    """The one implementation behind the four public functions."""
    x = _args.as_array("input", input)
    w = _args.as_array("weight", weight)
    b = None if bias is None else _args.as_array("bias", bias)
    n = _args.spatial_rank(w.shape, num_spatial, fn_name)
    _args.check_input_rank(x.shape, w.shape, n)
    settings = _args.parse_settings(
        n,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        channels_last,
        conv_mode,
        precision,
        preferred_element_type,
        output_size_given=output_size is not None,
    )
    bound = _args.bind(settings, x.shape, w.shape, None if b is None else b.shape, output_size)
    config = bound.config
    batched_shape = x.shape if bound.batched else (1,) + tuple(x.shape)
    _args.check_method(method, _methods.METHODS, _methods.reasons(config, batched_shape, w.shape))
    dtype = np.dtype(jnp.result_type(x, w))
    if b is not None:
        _args.check_bias_dtype(b.dtype, dtype)
    if padding_mode == "zeros":
        return _forward(
            x,
            w,
            b,
            config=config,
            batched=bound.batched,
            dtype=dtype,
            method=method,
            tune=_tune.enabled(),
            xla_only=_onednn.is_switched_off(),
        )
    # Non-zero padding modes: the unpadded transposed convolution (keeping the
    # output padding), then the border folded back (see _padding_modes).
    pads = _args.padding_mode_pads(padding_mode, bound)
    full = config._replace(
        crops=tuple((0, hi - p_hi) for (_, hi), (_, p_hi) in zip(config.crops, pads, strict=True))
    )
    return _forward(
        x,
        w,
        b,
        config=full,
        batched=bound.batched,
        dtype=dtype,
        method=method,
        fold=(pads, padding_mode),
        tune=_tune.enabled(),
        xla_only=_onednn.is_switched_off(),
    )


def conv_transpose1d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    groups: int = 1,
    dilation: Dilation = 1,
    output_size: OutputSize = None,
    channels_last: bool = False,
    conv_mode: ConvMode = "cross_correlation",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    padding_mode: PaddingMode = "zeros",
    method: Method = "auto",
) -> jax.Array:
    """1-d transposed convolution: exactly ``torch.nn.functional.conv_transpose1d``.

    :func:`conv_transpose` with one spatial axis; where PyTorch accepts the
    arguments the result is PyTorch's.

    Args:
      input: ``(N, C_in, L)`` or ``(C_in, L)`` (``(N, L, C_in)`` or ``(L, C_in)``
        with ``channels_last=True``).
      weight: ``(C_in, C_out // groups, K)``, PyTorch's layout (whatever ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per axis, ``>= 1``.
      padding: int, one int per axis, one ``(lo, hi)`` pair per axis, ``"valid"`` or ``"same"``.
      output_padding: int or one int per axis, each ``< max(stride, dilation)``.
      groups: keyword-only; ``>= 1``, divides ``C_in``; ``C_out = weight.shape[1] * groups``.
      dilation: keyword-only; int or one int per axis, ``>= 1``.
      output_size: keyword-only; the wanted spatial output size (picks ``output_padding``).
      channels_last: keyword-only; input and output have channels last.
      conv_mode: keyword-only; ``"cross_correlation"`` (PyTorch) or ``"convolution"``.
      precision: keyword-only; passed to ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      method: keyword-only; the lowering (see :func:`conv_transpose`).

    Returns:
      ``(N, C_out, L_out)`` (or the unbatched / channels-last equivalent) with
      ``L_out = (L - 1)*stride - lo - hi + dilation*(K - 1) + output_padding + 1``.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.array([[[1.0, 2.0, 3.0]]])           # (N=1, C_in=1, L=3)
      >>> w = jnp.array([[[1.0, 0.5]]])                # (C_in=1, C_out=1, K=2)
      >>> ct.conv_transpose1d(x, w, stride=2)
      Array([[[1. , 0.5, 2. , 1. , 3. , 1.5]]], dtype=float32)
    """
    return _conv_transpose(
        1,
        "conv_transpose1d",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        output_size,
        channels_last,
        conv_mode,
        precision,
        preferred_element_type,
        padding_mode,
        method,
    )


def conv_transpose2d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    groups: int = 1,
    dilation: Dilation = 1,
    output_size: OutputSize = None,
    channels_last: bool = False,
    conv_mode: ConvMode = "cross_correlation",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    padding_mode: PaddingMode = "zeros",
    method: Method = "auto",
) -> jax.Array:
    """2-d transposed convolution: exactly ``torch.nn.functional.conv_transpose2d``.

    :func:`conv_transpose` with two spatial axes; where PyTorch accepts the
    arguments the result is PyTorch's.

    Args:
      input: ``(N, C_in, H, W)`` or ``(C_in, H, W)`` (channels last with
        ``channels_last=True``).
      weight: ``(C_in, C_out // groups, KH, KW)``, PyTorch's layout (whatever ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per axis, ``>= 1``.
      padding: int, one int per axis, one ``(lo, hi)`` pair per axis, ``"valid"`` or ``"same"``.
      output_padding: int or one int per axis, each ``< max(stride, dilation)``.
      groups: keyword-only; ``>= 1``, divides ``C_in``; ``C_out = weight.shape[1] * groups``.
      dilation: keyword-only; int or one int per axis, ``>= 1``.
      output_size: keyword-only; the wanted spatial output size (picks ``output_padding``).
      channels_last: keyword-only; input and output have channels last.
      conv_mode: keyword-only; ``"cross_correlation"`` (PyTorch) or ``"convolution"``.
      precision: keyword-only; passed to ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      method: keyword-only; the lowering (see :func:`conv_transpose`).

    Returns:
      ``(N, C_out, H_out, W_out)`` (or the unbatched / channels-last
      equivalent), each output size as in :func:`conv_transpose`.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])            # (1, 1, 2, 2)
      >>> w = jnp.array([[[[1.0, 0.5], [0.25, -0.25]]]])         # (1, 1, 2, 2)
      >>> ct.conv_transpose2d(x, w)
      Array([[[[ 1.  ,  2.5 ,  1.  ],
               [ 3.25,  5.75,  1.5 ],
               [ 0.75,  0.25, -1.  ]]]], dtype=float32)
    """
    return _conv_transpose(
        2,
        "conv_transpose2d",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        output_size,
        channels_last,
        conv_mode,
        precision,
        preferred_element_type,
        padding_mode,
        method,
    )


def conv_transpose3d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    groups: int = 1,
    dilation: Dilation = 1,
    output_size: OutputSize = None,
    channels_last: bool = False,
    conv_mode: ConvMode = "cross_correlation",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    padding_mode: PaddingMode = "zeros",
    method: Method = "auto",
) -> jax.Array:
    """3-d transposed convolution: exactly ``torch.nn.functional.conv_transpose3d``.

    :func:`conv_transpose` with three spatial axes; where PyTorch accepts the
    arguments the result is PyTorch's.

    Args:
      input: ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)`` (channels last with
        ``channels_last=True``).
      weight: ``(C_in, C_out // groups, KD, KH, KW)``, PyTorch's layout (for either
        ``channels_last``).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per axis, ``>= 1``.
      padding: int, one int per axis, one ``(lo, hi)`` pair per axis, ``"valid"`` or ``"same"``.
      output_padding: int or one int per axis, each ``< max(stride, dilation)``.
      groups: keyword-only; ``>= 1``, divides ``C_in``; ``C_out = weight.shape[1] * groups``.
      dilation: keyword-only; int or one int per axis, ``>= 1``.
      output_size: keyword-only; the wanted spatial output size (picks ``output_padding``).
      channels_last: keyword-only; input and output have channels last.
      conv_mode: keyword-only; ``"cross_correlation"`` (PyTorch) or ``"convolution"``.
      precision: keyword-only; passed to ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      method: keyword-only; the lowering (see :func:`conv_transpose`).

    Returns:
      ``(N, C_out, D_out, H_out, W_out)`` (or the unbatched / channels-last
      equivalent), each output size as in :func:`conv_transpose`.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.ones((1, 1, 1, 1, 1))
      >>> w = jnp.ones((1, 1, 2, 2, 2))
      >>> ct.conv_transpose3d(x, w, stride=2).shape
      (1, 1, 2, 2, 2)
    """
    return _conv_transpose(
        3,
        "conv_transpose3d",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        output_size,
        channels_last,
        conv_mode,
        precision,
        preferred_element_type,
        padding_mode,
        method,
    )


def conv_transpose(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    groups: int = 1,
    dilation: Dilation = 1,
    output_size: OutputSize = None,
    channels_last: bool = False,
    conv_mode: ConvMode = "cross_correlation",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
    padding_mode: PaddingMode = "zeros",
    method: Method = "auto",
) -> jax.Array:
    """N-d transposed convolution; the number of spatial axes is ``weight.ndim - 2``.

    Per spatial axis, input element ``i`` and kernel tap ``k`` land on output
    position ``stride*i + dilation*k - lo``: PyTorch's ``conv_transpose{1,2,3}d``
    generalised to any number of spatial axes.

    Args:
      input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; with
        ``channels_last=True`` ``(N, *spatial, C_in)`` or ``(*spatial, C_in)``.
      weight: PyTorch layout ``(C_in, C_out // groups, *kernel)`` (always,
        whatever ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per spatial axis, ``>= 1``.
      padding: int; one int per axis; one ``(lo, hi)`` pair per axis (``lo``
        cropped at the start, ``hi`` at the end of every axis); ``"valid"``
        (= 0); or ``"same"`` (output = input * stride, split like
        ``jax.lax.conv_transpose(..., padding="SAME")``).
      output_padding: int or one int per axis, each ``< max(stride, dilation)``:
        extra positions appended at the end of each axis.
      groups: keyword-only; ``>= 1``, divides ``C_in``; ``C_out =
        weight.shape[1] * groups``.
      dilation: keyword-only; int or one int per axis, ``>= 1``.
      output_size: keyword-only; the wanted spatial output size (or a full
        output shape); picks ``output_padding`` exactly as
        ``torch.nn.ConvTranspose*d.forward(x, output_size)`` does.
      channels_last: keyword-only; input and output have channels last.
      conv_mode: keyword-only; ``"cross_correlation"`` (PyTorch) or
        ``"convolution"`` (kernel flipped on every spatial axis).
      precision: keyword-only; passed to ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; accumulation dtype passed to XLA
        (e.g. ``jnp.float32`` for float16 inputs); the result is cast back.
      padding_mode: keyword-only; ``"zeros"`` (default, PyTorch's meaning),
        ``"circular"``, ``"reflect"`` or ``"replicate"``: the exact adjoint of
        the forward convolution that pads its input with that mode (output
        contributions that land in the padded border are folded back onto
        the positions the border was copied from).
      method: keyword-only; the lowering: ``"auto"`` (default: picked by
        backend and shape from measurements), ``"dilated"`` (one lhs-dilated
        convolution, the reference; computes every configuration),
        ``"subpixel"`` (phase decomposition: one stride-1 convolution, then
        depth-to-space; no axis with both stride and dilation > 1),
        ``"matmul"`` (one matrix multiply and a shifted sum; ``groups == 1``,
        no dilation) or ``"depthwise"`` (elementwise, for ``groups == C_in``).
        All give the same numbers; an explicit method that cannot compute the
        configuration raises a ValueError that says why and which can.

    Returns:
      ``(N, C_out, *out_spatial)`` (or the unbatched / channels-last
      equivalent) in the result dtype of ``input`` and ``weight``, with
      ``out = (L - 1)*stride - lo - hi + dilation*(K - 1) + output_padding + 1``
      per axis.

    Raises:
      ValueError: a bad value, naming the argument, the value and the rule.
      TypeError: a bad kind (integer dtypes, non-int settings, traced settings).

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.ones((2, 4, 3, 3, 3, 3))     # 4 spatial axes
      >>> w = jnp.ones((4, 2, 2, 2, 2, 2))
      >>> ct.conv_transpose(x, w, stride=2).shape
      (2, 2, 6, 6, 6, 6)
    """
    return _conv_transpose(
        None,
        "conv_transpose",
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        output_size,
        channels_last,
        conv_mode,
        precision,
        preferred_element_type,
        padding_mode,
        method,
    )


def conv_transpose_output_shape(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: Stride = 1,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    groups: int = 1,
    dilation: Dilation = 1,
    output_size: OutputSize = None,
    channels_last: bool = False,
) -> tuple[int, ...]:
    """The output shape :func:`conv_transpose` gives, without computing anything.

    Shares the validation and the arithmetic of the operation itself, so it
    raises the same errors.

    Args:
      input_shape: shape of ``input`` (batched or unbatched, see :func:`conv_transpose`).
      weight_shape: ``(C_in, C_out // groups, *kernel)``.
      stride: as in :func:`conv_transpose`.
      padding: as in :func:`conv_transpose`.
      output_padding: as in :func:`conv_transpose`.
      groups: keyword-only; as in :func:`conv_transpose`.
      dilation: keyword-only; as in :func:`conv_transpose`.
      output_size: keyword-only; as in :func:`conv_transpose`.
      channels_last: keyword-only; as in :func:`conv_transpose`.

    Returns:
      The output shape as a tuple of ints.

    Examples:
      >>> import convt_jax as ct
      >>> ct.conv_transpose_output_shape((64, 512, 4, 4), (512, 256, 4, 4), 2, 1)
      (64, 256, 8, 8)
    """
    return _args.parse(
        input_shape,
        weight_shape,
        None,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        output_size,
        channels_last,
    ).out_shape
