"""The public functions: validate -> choose a lowering -> call it under ``jax.jit``."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _args, _auto, _padding_modes, _primitive, _shapes

_ARGS_DOC = """
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
        convolution, the reference), ``"subpixel"`` (phase decomposition: one
        stride-1 convolution, then depth-to-space), ``"matmul"`` (one matrix
        multiply and a shifted sum) or ``"depthwise"`` (elementwise, for
        ``groups == C_in``).  All give the same numbers; where a method does
        not apply it falls back to one that does.

    Returns:
      ``(N, C_out, *out_spatial)`` (or the unbatched / channels-last
      equivalent) in the result dtype of ``input`` and ``weight``, with
      ``out = (L - 1)*stride - lo - hi + dilation*(K - 1) + output_padding + 1``
      per axis.

    Raises:
      ValueError: a bad value (see SPEC §3), naming the argument and the rule.
      TypeError: a bad kind (integer dtypes, non-int settings, traced settings).
"""


def _as_array(name: str, value: Any) -> Any:
    if value is None:
        raise TypeError(f"{name}=None must be an array")
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        if isinstance(value, (str, bytes, dict, set)):
            raise TypeError(f"{name}={value!r} must be an array, not {type(value).__name__}")
        value = np.asarray(value)
    if value.dtype == np.dtype(object):
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    _args.check_dtype(name, value.dtype)
    return value


@functools.partial(jax.jit, static_argnames=("config", "batched", "dtype", "method", "fold"))
def _forward(x, w, b, *, config: _args.Config, batched: bool, dtype, method: str, fold=None):
    """Batch, bind the primitive, fold a non-zero padding mode's border, add the bias, cast.

    ``fold`` is ``None`` or ``(pads, padding_mode)``: then ``config`` crops no
    padding and the border is folded back (in the accumulation dtype) before
    the bias is added once per output position.
    """
    x = x.astype(dtype)
    w = w.astype(dtype)
    if not batched:
        x = x[None]
    if x.shape[0] == 0:
        # An empty batch: the result is the bias alone and the gradients are zero.  Not
        # lowered: the im2col gradient forms cannot reshape an empty batch.
        spatial = x.shape[1:-1] if config.channels_last else x.shape[2:]
        out = _shapes.output_spatial_shape(spatial, w.shape[2:], config.stride,
                                           config.dilation, config.crops)
        c_out = w.shape[1] * config.groups
        y = jnp.zeros((0, *out, c_out) if config.channels_last else (0, c_out, *out), dtype)
    else:
        y = _primitive.conv_transpose_batched(
            x, w, config, _auto.resolve(method, config, x.shape, w.shape))
    if fold is not None:
        y = _padding_modes.fold(y, *fold, channels_last=config.channels_last)
    if b is not None:
        shape = [1] * y.ndim
        shape[-1 if config.channels_last else 1] = -1
        y = y + b.astype(y.dtype).reshape(shape)
    y = y.astype(dtype)
    return y if batched else y[0]


def _conv_transpose(input, weight, bias, stride, padding, output_padding, *, groups, dilation,
                    output_size, channels_last, conv_mode, precision, preferred_element_type,
                    padding_mode, method, num_spatial, fn_name):
    x = _as_array("input", input)
    w = _as_array("weight", weight)
    b = None if bias is None else _as_array("bias", bias)
    parsed = _args.parse(
        x.shape, w.shape, None if b is None else b.shape, stride, padding, output_padding,
        groups, dilation, output_size, channels_last, conv_mode, precision,
        preferred_element_type, num_spatial=num_spatial, fn_name=fn_name,
    )
    method = _auto.check(method)
    dtype = jnp.result_type(x, w)
    if b is not None and jnp.issubdtype(b.dtype, jnp.complexfloating) and not jnp.issubdtype(
            dtype, jnp.complexfloating):
        raise TypeError(
            f"bias has complex dtype {b.dtype} but input and weight are real ({dtype}): "
            "make input or weight complex too"
        )
    if padding_mode == "zeros":
        return _forward(x, w, b, config=parsed.config, batched=parsed.batched,
                        dtype=np.dtype(dtype), method=method)
    # Non-zero padding modes: the unpadded transposed convolution (keeping the
    # output padding), then the border folded back (see _padding_modes).
    pads = _padding_modes.check(padding_mode, parsed)
    full = parsed.config._replace(crops=tuple((0, hi - p_hi) for (_, hi), (_, p_hi) in zip(
        parsed.config.crops, pads)))
    return _forward(x, w, b, config=full, batched=parsed.batched, dtype=np.dtype(dtype),
                    method=method, fold=(pads, padding_mode))


def _make(num_spatial: int | None, name: str, summary: str, example: str):
    def fn(
        input: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike | None = None,
        stride: int | tuple[int, ...] = 1,
        padding: Any = 0,
        output_padding: int | tuple[int, ...] = 0,
        *,
        groups: int = 1,
        dilation: int | tuple[int, ...] = 1,
        output_size: Any = None,
        channels_last: bool = False,
        conv_mode: str = "cross_correlation",
        precision: Any = None,
        preferred_element_type: Any = None,
        padding_mode: str = "zeros",
        method: str = "auto",
    ) -> jax.Array:
        return _conv_transpose(
            input, weight, bias, stride, padding, output_padding, groups=groups,
            dilation=dilation, output_size=output_size, channels_last=channels_last,
            conv_mode=conv_mode, precision=precision,
            preferred_element_type=preferred_element_type, padding_mode=padding_mode, method=method,
            num_spatial=num_spatial, fn_name=name,
        )

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = "convt_jax"
    fn.__doc__ = f"{summary}\n\n    Exactly ``torch.nn.functional.{name}`` where both accept the arguments.\n{_ARGS_DOC}\n    Example:\n{example}"
    return fn


conv_transpose1d = _make(1, "conv_transpose1d", "1-d transposed convolution (SPEC §1).", """
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.array([[[1.0, 2.0, 3.0]]])           # (N=1, C_in=1, L=3)
      >>> w = jnp.array([[[1.0, 0.5]]])                # (C_in=1, C_out=1, K=2)
      >>> ct.conv_transpose1d(x, w, stride=2)
      Array([[[1. , 0.5, 2. , 1. , 3. , 1.5]]], dtype=float32)
""")
conv_transpose2d = _make(2, "conv_transpose2d", "2-d transposed convolution (SPEC §1).", """
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])            # (1, 1, 2, 2)
      >>> w = jnp.array([[[[1.0, 0.5], [0.25, -0.25]]]])         # (1, 1, 2, 2)
      >>> ct.conv_transpose2d(x, w)
      Array([[[[ 1.  ,  2.5 ,  1.  ],
               [ 3.25,  5.75,  1.5 ],
               [ 0.75,  0.25, -1.  ]]]], dtype=float32)
""")
conv_transpose3d = _make(3, "conv_transpose3d", "3-d transposed convolution (SPEC §1).", """
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.ones((1, 1, 1, 1, 1))
      >>> w = jnp.ones((1, 1, 2, 2, 2))
      >>> ct.conv_transpose3d(x, w, stride=2).shape
      (1, 1, 2, 2, 2)
""")
conv_transpose = _make(None, "conv_transpose",
                       "N-d transposed convolution; the number of spatial axes is "
                       "``weight.ndim - 2``.", """
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.ones((2, 4, 3, 3, 3, 3))     # 4 spatial axes
      >>> w = jnp.ones((4, 2, 2, 2, 2, 2))
      >>> ct.conv_transpose(x, w, stride=2).shape
      (2, 2, 6, 6, 6, 6)
""")


def conv_transpose_output_shape(
    input_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    stride: int | tuple[int, ...] = 1,
    padding: Any = 0,
    output_padding: int | tuple[int, ...] = 0,
    *,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    output_size: Any = None,
    channels_last: bool = False,
) -> tuple[int, ...]:
    """The output shape :func:`conv_transpose` gives, without computing anything.

    Shares the validation and the arithmetic of the operation itself, so it
    raises the same errors.

    Args:
      input_shape: shape of ``input`` (batched or unbatched, see :func:`conv_transpose`).
      weight_shape: ``(C_in, C_out // groups, *kernel)``.
      stride, padding, output_padding, groups, dilation, output_size,
        channels_last: as in :func:`conv_transpose`.

    Returns:
      The output shape as a tuple of ints.

    Example:
      >>> import convt_jax as ct
      >>> ct.conv_transpose_output_shape((64, 512, 4, 4), (512, 256, 4, 4), 2, 1)
      (64, 256, 8, 8)
    """
    return _args.parse(
        input_shape, weight_shape, None, stride, padding, output_padding, groups, dilation,
        output_size, channels_last, fn_name="conv_transpose_output_shape",
    ).out_shape
