"""The regular convolution, PyTorch's ``conv{1,2,3}d``, as the adjoint of the transposed one.

A convolution with stride ``s``, padding ``(lo, hi)``, dilation ``d`` and groups ``g``
is the transpose of :func:`convt_jax.conv_transpose` with the same settings and the same
weight (SPEC §8): ``<conv(x, W), y> == <x, conv_transpose(y, W)>``.  So ``conv(x, W)`` is
the *input gradient* of the transposed convolution whose input has the convolution's
output shape, with the output padding ``(L + lo + hi - d*(K - 1) - 1) mod s`` per axis that
maps that shape back to exactly ``L``.  That input gradient is one of the primitive's own
maps (:data:`convt_jax._primitive.input_grad_p`), with hand-written rules for everything
a caller can ask of it: its transposes are the transposed convolution's forward (the
convolution's ``dx``) and its weight-gradient map with the roles swapped (the
convolution's ``dw``); its JVP and batching rules bind the same primitives.  ``method``
picks the forms of those maps exactly as for ``conv_transpose`` (oneDNN's kernels on CPU
where they apply).

A non-zero ``padding_mode`` pads the input with that mode first and then convolves
without zero padding, as ``torch.nn.Conv*d`` does: ``jnp.pad`` in numpy's name for the
mode (the transpose of :func:`convt_jax._padding_modes.fold`, which the transposed
convolution uses for the same modes; the tests check both against PyTorch).  A plain
``jnp.pad`` rather than that transpose traced again: inside ``shard_map`` (a batch split
on Explicit axes) the transpose would need the operand's varying-axes type.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.lax import PrecisionLike
from jax.sharding import PartitionSpec as P
from jax.typing import ArrayLike, DTypeLike

from . import _args, _compat, _geometry, _halo, _methods, _onednn, _primitive, _tune
from ._geometry import Config
from ._op import _forms
from .typing import Dilation, Method, Padding, PaddingMode, Stride

# torch.nn.functional.pad's modes in numpy's (and jnp.pad's) words.
_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _mode_pad(x: jax.Array, pads, padding_mode: str, channels_last: bool) -> jax.Array:
    """``torch.nn.functional.pad(x, pads, mode=padding_mode)`` on the spatial axes
    (``jnp.pad``: the same values for the pads PyTorch accepts, which the argument checks
    enforce; the transpose of the transposed convolution's fold)."""
    n = len(pads)
    first = x.ndim - n - 1 if channels_last else x.ndim - n
    widths = [(0, 0)] * x.ndim
    for i, pair in enumerate(pads):
        widths[first + i] = tuple(pair)
    return jnp.pad(x, widths, mode=_PAD_MODES[padding_mode])


def _output_shape(config: Config, x_shape: Sequence[int], w_shape: Sequence[int]) -> tuple:
    """The convolution's (batched) output shape for a zero-padding-free input shape."""
    spatial = tuple(
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, k, s, d, (lo, hi) in zip(
            _geometry.spatial_shape(config, x_shape),
            w_shape[2:],
            config.stride,
            config.dilation,
            config.crops,
            strict=True,
        )
    )
    c_out = w_shape[0]
    return (x_shape[0], *spatial, c_out) if config.channels_last else (x_shape[0], c_out, *spatial)


def _bind(x, w, config: Config, forms: tuple, out_shape: tuple, pad=None) -> jax.Array:
    """The input-gradient map of the transposed convolution on ``(pad(x), w)``; with
    Explicit mesh axes in the types: a batch split alone runs per device in ``shard_map``
    (``_halo.batch_plan``), anything else (the pad too) with the axes Auto, as the
    primitive's own transposes are, and the result split like ``x`` on the batch axis."""

    def fn(x, w):
        if pad is not None:
            x = pad(x)
        return _primitive.input_grad_batched(x, w, config, forms, out_shape)

    aval = _compat.typeof(x)
    axes = _primitive._explicit_axes(aval, _compat.typeof(w))
    if not axes:
        return fn(x, w)
    if (batch := _halo.batch_plan(x, w)) is not None:
        # Data parallelism in the types: each device its block of the batch (shard_map).
        def block(xb, wb):
            if pad is not None:
                xb = pad(xb)
            shape = (xb.shape[0], *out_shape[1:])
            return _primitive.input_grad_batched(xb, wb, config, forms, shape)

        return _halo.run_batch(block, x, w, batch)
    # The output's type: split like x on the batch axis, and on its channels like the
    # weight's output channels (axis 0) where they divide evenly.
    spec = [None] * len(out_shape)
    spec[0] = (tuple(aval.sharding.spec) + (None,))[0]
    w_sharding = _compat.aval_sharding(_compat.typeof(w))
    w_out = (tuple(w_sharding.spec) + (None,))[0] if w_sharding is not None else None
    c_ax = _geometry.channel_axis(config, len(out_shape))
    if (
        w_out is not None
        and out_shape[c_ax] % _primitive._axis_size(aval.sharding.mesh, w_out) == 0
    ):
        spec[c_ax] = w_out
    return _compat.auto_axes(fn, axes, _compat.with_spec(aval.sharding, P(*spec)))(x, w)


@functools.partial(
    jax.jit,
    static_argnames=(
        "config",
        "batched",
        "dtype",
        "method",
        "pads",
        "padding_mode",
        "tune",
        "xla_only",
    ),
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
    pads=None,
    padding_mode: str = "zeros",
    tune: bool = False,
    xla_only: bool = False,
):
    """Batch, pad with the mode, bind the input-gradient map, add the bias, cast.

    ``config`` is the transposed convolution's (:func:`_args.bind_conv`); with a non-zero
    padding mode the input is padded first and ``config`` crops nothing but the output
    padding.  ``tune`` and ``xla_only`` are static only so that switching autotuning or
    oneDNN retraces (as in :func:`convt_jax._op._forward`).
    """
    x = x.astype(dtype)
    w = w.astype(dtype)
    if not batched:
        x = x[None]
    pad = None
    x_shape = x.shape
    if pads is not None:
        pad = functools.partial(
            _mode_pad, pads=pads, padding_mode=padding_mode, channels_last=config.channels_last
        )
        x_shape = jax.eval_shape(pad, jax.ShapeDtypeStruct(x.shape, x.dtype)).shape
    out_shape = _output_shape(config, x_shape, w.shape)
    if x.shape[0] == 0:
        # An empty batch: the bias alone (the im2col forms cannot reshape an empty batch).
        y = jnp.zeros(out_shape, dtype)
    else:
        forms = _forms(method, dtype, tune, config, out_shape, w.shape)
        y = _bind(x, w, config, forms, out_shape, pad)
    if b is not None:
        shape = [1] * y.ndim
        shape[_geometry.channel_axis(config)] = -1
        y = y + b.astype(y.dtype).reshape(shape)
    y = y.astype(dtype)
    return y if batched else y[0]


def _conv(
    num_spatial: int | None,
    fn_name: str,
    input,
    weight,
    bias,
    stride,
    padding,
    dilation,
    groups,
    padding_mode,
    channels_last,
    method,
    precision,
    preferred_element_type,
) -> jax.Array:
    """The one implementation behind the four public functions."""
    x = _args.as_array("input", input)
    w = _args.as_array("weight", weight)
    b = None if bias is None else _args.as_array("bias", bias)
    bound = _args.parse_conv(
        x.shape,
        w.shape,
        None if b is None else b.shape,
        stride,
        padding,
        dilation,
        groups,
        channels_last,
        precision,
        preferred_element_type,
        padding_mode,
        num_spatial,
        fn_name,
    )
    config = bound.config
    pads = None
    if bound.padding_mode != "zeros" and any(lo or hi for lo, hi in bound.padding):
        pads = bound.padding
        # The input is padded with the mode; the convolution then has no zero padding.
        config = config._replace(
            crops=tuple(
                (0, hi - p_hi) for (_, hi), (_, p_hi) in zip(config.crops, pads, strict=True)
            )
        )
    lead = bound.out_shape[:1] if bound.batched else (1,)
    out_batched = lead + tuple(bound.out_shape[1:] if bound.batched else bound.out_shape)
    # ``method`` names the lowering of the transposed convolution whose maps compute this
    # one: checked against that configuration (input: this call's output).
    try:
        _args.check_method(method, _methods.METHODS, _methods.reasons(config, out_batched, w.shape))
    except ValueError as e:
        raise ValueError(
            f"{e} (for a convolution, method names the lowering of the transposed convolution "
            "whose input gradient it is: that one's C_in is this call's C_out)"
        ) from None
    dtype = np.dtype(jnp.result_type(x, w))
    if b is not None:
        _args.check_bias_dtype(b.dtype, dtype)
    return _forward(
        x,
        w,
        b,
        config=config,
        batched=bound.batched,
        dtype=dtype,
        method=method,
        pads=pads,
        padding_mode=bound.padding_mode,
        tune=_tune.enabled(),
        xla_only=_onednn.is_switched_off(),
    )


def conv1d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    channels_last: bool = False,
    method: Method = "auto",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """1-d convolution: exactly ``torch.nn.functional.conv1d``.

    :func:`conv` with one spatial axis; where PyTorch accepts the arguments the result
    is PyTorch's.

    Args:
      input: ``(N, C_in, L)`` or ``(C_in, L)`` (``(N, L, C_in)`` or ``(L, C_in)`` with
        ``channels_last=True``).
      weight: ``(C_out, C_in // groups, K)``, PyTorch's layout (whatever ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per axis, ``>= 1``.
      padding: int, one int per axis, one ``(lo, hi)`` pair per axis, ``"valid"`` or
        ``"same"`` (stride 1 only).
      dilation: int or one int per axis, ``>= 1``.
      groups: ``>= 1``, divides ``C_out``; ``C_in = weight.shape[1] * groups``.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      channels_last: keyword-only; input and output have channels last.
      method: keyword-only; the lowering (see :func:`conv`).
      precision: keyword-only; passed to XLA as in ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA.

    Returns:
      ``(N, C_out, L_out)`` (or the unbatched / channels-last equivalent) with
      ``L_out = floor((L + lo + hi - dilation*(K - 1) - 1) / stride) + 1``.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.array([[[1.0, 2.0, 3.0, 4.0]]])      # (N=1, C_in=1, L=4)
      >>> w = jnp.array([[[1.0, 0.5]]])                # (C_out=1, C_in=1, K=2)
      >>> ct.conv1d(x, w)
      Array([[[2. , 3.5, 5. ]]], dtype=float32)
    """
    return _conv(
        1,
        "conv1d",
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        channels_last,
        method,
        precision,
        preferred_element_type,
    )


def conv2d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    channels_last: bool = False,
    method: Method = "auto",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """2-d convolution: exactly ``torch.nn.functional.conv2d``.

    :func:`conv` with two spatial axes; where PyTorch accepts the arguments the result
    is PyTorch's.

    Args:
      input: ``(N, C_in, H, W)`` or ``(C_in, H, W)`` (channels last with
        ``channels_last=True``).
      weight: ``(C_out, C_in // groups, KH, KW)``, PyTorch's layout (whatever
        ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per axis, ``>= 1``.
      padding: int, one int per axis, one ``(lo, hi)`` pair per axis, ``"valid"`` or
        ``"same"`` (stride 1 only).
      dilation: int or one int per axis, ``>= 1``.
      groups: ``>= 1``, divides ``C_out``; ``C_in = weight.shape[1] * groups``.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      channels_last: keyword-only; input and output have channels last.
      method: keyword-only; the lowering (see :func:`conv`).
      precision: keyword-only; passed to XLA as in ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA.

    Returns:
      ``(N, C_out, H_out, W_out)`` (or the unbatched / channels-last equivalent), each
      output size as in :func:`conv`.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.arange(9.0).reshape(1, 1, 3, 3)                # (1, 1, 3, 3)
      >>> w = jnp.array([[[[1.0, 0.5], [0.25, -0.25]]]])         # (1, 1, 2, 2)
      >>> ct.conv2d(x, w)
      Array([[[[0.25, 1.75],
               [4.75, 6.25]]]], dtype=float32)
      >>> ct.conv2d(x, w, padding="same").shape
      (1, 1, 3, 3)
    """
    return _conv(
        2,
        "conv2d",
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        channels_last,
        method,
        precision,
        preferred_element_type,
    )


def conv3d(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    channels_last: bool = False,
    method: Method = "auto",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """3-d convolution: exactly ``torch.nn.functional.conv3d``.

    :func:`conv` with three spatial axes; where PyTorch accepts the arguments the result
    is PyTorch's.

    Args:
      input: ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)`` (channels last with
        ``channels_last=True``).
      weight: ``(C_out, C_in // groups, KD, KH, KW)``, PyTorch's layout (whatever
        ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per axis, ``>= 1``.
      padding: int, one int per axis, one ``(lo, hi)`` pair per axis, ``"valid"`` or
        ``"same"`` (stride 1 only).
      dilation: int or one int per axis, ``>= 1``.
      groups: ``>= 1``, divides ``C_out``; ``C_in = weight.shape[1] * groups``.
      padding_mode: keyword-only; ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      channels_last: keyword-only; input and output have channels last.
      method: keyword-only; the lowering (see :func:`conv`).
      precision: keyword-only; passed to XLA as in ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA.

    Returns:
      ``(N, C_out, D_out, H_out, W_out)`` (or the unbatched / channels-last equivalent),
      each output size as in :func:`conv`.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.ones((1, 2, 4, 4, 4))
      >>> w = jnp.ones((3, 2, 2, 2, 2))
      >>> ct.conv3d(x, w, stride=2).shape
      (1, 3, 2, 2, 2)
    """
    return _conv(
        3,
        "conv3d",
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        channels_last,
        method,
        precision,
        preferred_element_type,
    )


def conv(
    input: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: int = 1,
    *,
    padding_mode: PaddingMode = "zeros",
    channels_last: bool = False,
    method: Method = "auto",
    precision: PrecisionLike = None,
    preferred_element_type: DTypeLike | None = None,
) -> jax.Array:
    """N-d convolution; the number of spatial axes is ``weight.ndim - 2``.

    PyTorch's ``conv{1,2,3}d`` generalised to any number of spatial axes: per axis,
    ``y[o] = sum over k of x_padded[stride*o + dilation*k] * w[k]`` (a cross-correlation,
    as PyTorch's).  It is the adjoint of :func:`convt_jax.conv_transpose` with the same
    weight, stride, padding, dilation and groups, ``<conv(x, W), y> == <x,
    conv_transpose(y, W)>``, and is computed as exactly that: the input gradient of the
    transposed convolution, with its hand-written rules for every transformation.

    Args:
      input: ``(N, C_in, *spatial)`` or unbatched ``(C_in, *spatial)``; with
        ``channels_last=True`` ``(N, *spatial, C_in)`` or ``(*spatial, C_in)``.
      weight: PyTorch layout ``(C_out, C_in // groups, *kernel)`` (always, whatever
        ``channels_last`` is).
      bias: ``(C_out,)`` or ``None``.
      stride: int or one int per spatial axis, ``>= 1``.
      padding: int; one int per axis; one ``(lo, hi)`` pair per axis (zeros, or
        ``padding_mode``'s values, before the start and after the end of each axis);
        ``"valid"`` (= 0); or ``"same"`` (output size = input size; stride 1 only; in all
        ``dilation*(K - 1)`` per axis, the odd unit at the end, as PyTorch).
      dilation: int or one int per axis, ``>= 1``.
      groups: ``>= 1``, divides ``C_out``; ``C_in = weight.shape[1] * groups``.
      padding_mode: keyword-only; ``"zeros"`` (default), ``"circular"``, ``"reflect"`` or
        ``"replicate"``: the input is padded with that mode, then convolved without
        padding, as ``torch.nn.Conv*d(padding_mode=...)`` does.
      channels_last: keyword-only; input and output have channels last.
      method: keyword-only; the lowering of the transposed convolution's maps that
        compute this one (as for :func:`convt_jax.conv_transpose`); an explicit method
        that cannot compute the configuration raises a ValueError saying why.
      precision: keyword-only; passed to XLA as in ``jax.lax.conv_general_dilated``.
      preferred_element_type: keyword-only; the accumulation dtype passed to XLA (e.g.
        ``jnp.float32`` for float16 inputs); the result is cast back.

    Returns:
      ``(N, C_out, *out_spatial)`` (or the unbatched / channels-last equivalent) in the
      result dtype of ``input`` and ``weight``, with ``out = floor((L + lo + hi -
      dilation*(K - 1) - 1) / stride) + 1`` per axis.

    Raises:
      ValueError: a bad value, naming the argument, the value and the rule.
      TypeError: a bad kind (integer dtypes, non-int settings, traced settings).

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> x = jnp.ones((2, 4, 6, 6, 6, 6))     # 4 spatial axes
      >>> w = jnp.ones((8, 4, 3, 3, 3, 3))
      >>> ct.conv(x, w, stride=2, padding=1).shape
      (2, 8, 3, 3, 3, 3)
    """
    return _conv(
        None,
        "conv",
        input,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
        padding_mode,
        channels_last,
        method,
        precision,
        preferred_element_type,
    )


def conv_output_shape(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    stride: Stride = 1,
    padding: Padding = 0,
    dilation: Dilation = 1,
    groups: int = 1,
    *,
    channels_last: bool = False,
) -> tuple[int, ...]:
    """The output shape :func:`conv` gives, without computing anything.

    Shares the validation and the arithmetic of the operation itself, so it raises the
    same errors.

    Args:
      input_shape: shape of ``input`` (batched or unbatched, see :func:`conv`).
      weight_shape: ``(C_out, C_in // groups, *kernel)``.
      stride: as in :func:`conv`.
      padding: as in :func:`conv`.
      dilation: as in :func:`conv`.
      groups: as in :func:`conv`.
      channels_last: keyword-only; as in :func:`conv`.

    Returns:
      The output shape as a tuple of ints.

    Examples:
      >>> import convt_jax as ct
      >>> ct.conv_output_shape((64, 3, 224, 224), (64, 3, 7, 7), 2, 3)
      (64, 64, 112, 112)
    """
    return _args.parse_conv(
        input_shape, weight_shape, None, stride, padding, dilation, groups, channels_last
    ).out_shape
