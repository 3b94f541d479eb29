"""Validate the public arguments; the user-facing error messages of the package live here.

Two steps, so every entry point checks the same things the same way:

* :func:`parse_settings` validates the settings alone (no input shape) and
  returns a hashable :class:`Settings`: the functions, the layers, the
  initialisers and the weight converters all use it;
* :func:`bind` checks a :class:`Settings` against the input, weight and
  bias shapes and builds the :class:`~convt_jax._geometry.Config` the
  lowerings receive as a static parameter.

The public functions call both at the Python boundary, before any XLA work,
so errors are also raised at trace time under ``jax.jit``.  The small
validators (:func:`choice`, :func:`positive`, :func:`divides`,
:func:`int_tuple`, :func:`padding_pairs`) are what the other entry points share.

The checks of checkpoints, of a layer's state and of the weight converters' rules
(with their messages) are in :mod:`convt_jax._checkpoints`.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

from . import _geometry as geo
from ._geometry import Config

CONV_MODES = ("cross_correlation", "convolution")
PADDING_STRINGS = ("valid", "same")
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
COMPUTE_MODES = ("default", "float32")
_DTYPE_RULE = "float16, bfloat16, float32, float64, complex64 or complex128"
_SCALAR_SETTINGS = ("groups",)  # settings that take one int, never a tuple
TRANSPOSED_WEIGHT = "(C_in, C_out // groups, *kernel)"  # the weight layouts, as messages say

Pairs = tuple[tuple[int, int], ...]


# --- small validators ------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A value as an error message shows it (arrays by shape, never by content)."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, jax.core.Tracer):
        return f"a traced array of shape {tuple(value.shape)}"
    if isinstance(value, (np.ndarray, jax.Array)):
        return f"an array of shape {tuple(value.shape)}"
    return repr(value)


def to_int(name: str, value: Any) -> int:
    """A static Python integer (numpy integers accepted, bools and floats not)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r} must be an int, not a bool")
    if isinstance(value, (jax.Array, np.ndarray)):
        raise TypeError(
            f"{name}={fmt(value)} must be a static Python int: settings are "
            "compile-time constants, not arrays (mark them static under jax.jit)"
        )
    try:
        return operator.index(value)
    except TypeError:
        kind = "an int" if name in _SCALAR_SETTINGS else "an int or a tuple of ints"
        raise TypeError(f"{name}={fmt(value)} must be {kind}") from None


def positive(name: str, value: Any) -> int:
    """An int ``>= 1`` (a layer's channel counts, ``groups``, ...)."""
    try:
        v = to_int(name, value)
    except TypeError:
        raise TypeError(f"{name}={value!r} must be an int, not {type(value).__name__}") from None
    if v < 1:
        raise ValueError(f"{name}={value!r} must be >= 1")
    return v


def divides(name: str, value: Any, total: int, what: str) -> int:
    """``value`` as an int ``>= 1`` that divides ``total`` (``what`` names ``total``)."""
    g = to_int(name, value)
    if g < 1 or total % g:
        raise ValueError(f"{name}={value!r} must be >= 1 and divide {what}={total}")
    return g


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """One of ``options`` (a TypeError for a non-string, a ValueError for an unknown one)."""
    if not isinstance(value, str):
        raise TypeError(f"{name}={fmt(value)} must be one of {tuple(options)}")
    if value not in options:
        raise ValueError(f"{name}={value!r} must be one of {tuple(options)}")
    return value


def is_bool(name: str, value: Any, rule: str = "") -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={fmt(value)} must be a bool{rule}")
    return bool(value)


def int_tuple(name: str, value: Any, n: int) -> tuple[int, ...]:
    """An int, or a tuple/list of ``n`` ints, as a tuple of ``n`` ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(
                f"{name}={fmt(value)} must be an int or a tuple of {n} ints "
                f"(one per spatial axis), got {len(value)} values"
            )
        return tuple(to_int(name, v) for v in value)
    return (to_int(name, value),) * n


def at_least(name: str, value: Any, values: Sequence[int], low: int) -> None:
    if any(v < low for v in values):
        raise ValueError(f"{name}={value!r} must be >= {low} on every axis")


def padding_pairs(value: Any, n: int) -> Pairs:
    """Numeric ``padding`` as ``(lo, hi)`` per axis."""
    rule = f"an int, a tuple of {n} ints, a tuple of {n} (lo, hi) pairs, 'valid' or 'same'"
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(
                f"padding={fmt(value)} must be {rule}; got {len(value)} entries for "
                f"{n} spatial axes"
                + (
                    f" (for asymmetric 1-d padding write padding=({tuple(value)!r},))"
                    if n == 1 and len(value) == 2
                    else ""
                )
            )
        pairs = []
        for v in value:
            if isinstance(v, (tuple, list)):
                if len(v) != 2:
                    raise ValueError(f"padding={fmt(value)} must be {rule}; {v!r} is not a pair")
                pairs.append((to_int("padding", v[0]), to_int("padding", v[1])))
            else:
                p = to_int("padding", v)
                pairs.append((p, p))
        return tuple(pairs)
    if isinstance(value, (jax.Array, np.ndarray)):
        to_int("padding", value)  # raises: settings must be static
    try:
        p = to_int("padding", value)
    except TypeError:
        raise TypeError(f"padding={fmt(value)} must be {rule}") from None
    return ((p, p),) * n


def check_dtype(name: str, dtype: Any) -> None:
    """Reject integer, bool and other non-inexact dtypes with a TypeError."""
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.inexact) and dt.name != "bfloat16":
        raise TypeError(
            f"{name} has dtype {dt.name}; convolution needs a floating or complex "
            f"dtype ({_DTYPE_RULE}): cast it first, e.g. {name}.astype(jnp.float32)"
        )


def from_torch_tensor(value: Any) -> Any:
    """A ``torch.Tensor`` as a NumPy array of its dtype (``.detach().cpu().numpy()``;
    bfloat16, which NumPy lacks, through float32 back to JAX's bfloat16: exact);
    anything else unchanged.  torch is not imported."""
    if not type(value).__module__.startswith("torch") or not hasattr(value, "detach"):
        return value
    t = value.detach().cpu()
    if str(t.dtype) == "torch.bfloat16":
        return jnp.asarray(t.float().numpy()).astype(jnp.bfloat16)
    try:
        return t.numpy()
    except TypeError as e:  # a torch dtype NumPy cannot hold (e.g. float8, quantized)
        raise TypeError(
            f"a torch.Tensor of dtype {t.dtype} has no NumPy equivalent: convert "
            f"it first, e.g. tensor.float() ({e})"
        ) from None


def as_array(name: str, value: Any) -> Any:
    """An array argument (``input``, ``weight``, ``bias``) with a floating or complex dtype."""
    if value is None:
        raise TypeError(f"{name}=None must be an array")
    value = from_torch_tensor(value)
    if not hasattr(value, "shape") or not hasattr(value, "dtype"):
        if isinstance(value, (str, bytes, dict, set)):
            raise TypeError(f"{name}={value!r} must be an array, not {type(value).__name__}")
        value = np.asarray(value)
    if value.dtype == np.dtype(object):
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    check_dtype(name, value.dtype)
    if isinstance(value, np.ndarray):
        # A private copy: JAX may read a host array after the call has returned (see
        # _checkpoints.owned_leaf), so the caller's array could change in place under the
        # computation.
        value = np.array(value, copy=True)
    return value


def check_bias_dtype(bias_dtype: Any, dtype: Any) -> None:
    if np.issubdtype(bias_dtype, np.complexfloating) and not np.issubdtype(
        dtype, np.complexfloating
    ):
        raise TypeError(
            f"bias has complex dtype {bias_dtype} but input and weight are real ({dtype}): "
            "make input or weight complex too"
        )


def _precision(value: Any) -> Any:
    if value is None or isinstance(value, jax.lax.Precision):
        return value
    if isinstance(value, str):
        try:
            return jax.lax.Precision(value)
        except (ValueError, KeyError):
            raise ValueError(
                f"precision={value!r} must be None, a jax.lax.Precision or one of "
                "'default', 'high', 'highest' (or a pair of them)"
            ) from None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return tuple(_precision(v) for v in value)
    raise TypeError(
        f"precision={fmt(value)} must be None, a jax.lax.Precision, a string or a pair of them"
    )


def _preferred(value: Any) -> Any:
    if value is None:
        return None
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"preferred_element_type={fmt(value)} must be a dtype or None") from None
    if not np.issubdtype(dt, np.inexact) and dt.name != "bfloat16":
        raise TypeError(
            f"preferred_element_type={dt.name} must be a floating or complex dtype ({_DTYPE_RULE})"
        )
    return dt


# --- settings without shapes -----------------------------------------------------------------


class Settings(NamedTuple):
    """Validated, canonical, hashable settings of a transposed convolution (no shapes yet)."""

    ndim: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: str | Pairs  # "valid" / "same", or (lo, hi) per axis
    output_padding: tuple[int, ...]
    groups: int
    channels_last: bool
    conv_mode: str
    precision: Any = None
    preferred_element_type: Any = None

    def pads(self, kernel: Sequence[int]) -> Pairs:
        """The ``(lo, hi)`` padding per axis for a kernel size (``"same"`` depends on it)."""
        if self.padding == "valid":
            return ((0, 0),) * self.ndim
        if self.padding == "same":
            return tuple(
                geo.same_padding(k, s, d)
                for k, s, d in zip(kernel, self.stride, self.dilation, strict=True)
            )
        return cast(Pairs, self.padding)

    def crops(self, kernel: Sequence[int]) -> Pairs:
        return tuple(
            geo.crop_from_padding(p, a)
            for p, a in zip(self.pads(kernel), self.output_padding, strict=True)
        )


def spatial_rank(
    weight_shape: Sequence[int], num_spatial: int | None, fn_name: str = "conv_transpose"
) -> int:
    """The number of spatial axes: ``num_spatial``, or ``weight.ndim - 2``."""
    w_shape = tuple(int(s) for s in weight_shape)
    if num_spatial is None:
        if len(w_shape) < 3:
            raise ValueError(
                f"weight of shape {w_shape} must have rank >= 3: (C_in, C_out // groups, *kernel)"
            )
        return len(w_shape) - 2
    if len(w_shape) != num_spatial + 2:
        raise ValueError(
            f"weight of shape {w_shape} must have rank {num_spatial + 2} for {fn_name}: "
            f"(C_in, C_out // groups, *kernel)"
        )
    return num_spatial


def parse_settings(
    n: int,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: Any = 1,
    dilation: Any = 1,
    channels_last: Any = False,
    conv_mode: Any = "cross_correlation",
    precision: Any = None,
    preferred_element_type: Any = None,
    *,
    output_size_given: bool = False,
) -> Settings:
    """Validate every setting that needs no shape; ``n`` is the number of spatial axes.

    With ``output_size_given`` the output padding must be zero (``output_size``
    picks it, in :func:`bind`); otherwise it must be ``< max(stride, dilation)``.
    """
    channels_last = is_bool("channels_last", channels_last)
    choice("conv_mode", conv_mode, CONV_MODES)
    stride_t = int_tuple("stride", stride, n)
    dilation_t = int_tuple("dilation", dilation, n)
    opad = int_tuple("output_padding", output_padding, n)
    g = to_int("groups", groups)
    at_least("stride", stride, stride_t, 1)
    at_least("dilation", dilation, dilation_t, 1)
    at_least("output_padding", output_padding, opad, 0)
    if g < 1:
        raise ValueError(f"groups={groups!r} must be >= 1")
    if isinstance(padding, str):
        pad: str | Pairs = padding.lower()
        if pad not in PADDING_STRINGS:
            raise ValueError(f"padding={padding!r} must be 'valid', 'same' or numbers")
    else:
        pad = padding_pairs(padding, n)
        if any(lo < 0 or hi < 0 for lo, hi in pad):
            raise ValueError(f"padding={padding!r} must be >= 0 on every axis")
    if output_size_given:
        if any(opad):
            raise ValueError(
                f"output_padding={output_padding!r} cannot be combined with output_size: "
                "output_size determines the output padding"
            )
    elif any(a >= max(s, d) for a, s, d in zip(opad, stride_t, dilation_t, strict=True)):
        raise ValueError(
            f"output_padding={tuple(opad)} must be smaller than stride={stride_t} or "
            f"dilation={dilation_t} on each axis"
        )
    return Settings(
        n,
        stride_t,
        dilation_t,
        pad,
        opad,
        g,
        channels_last,
        conv_mode,
        _precision(precision),
        _preferred(preferred_element_type),
    )


# --- settings bound to shapes ----------------------------------------------------------------


class Bound(NamedTuple):
    """:class:`Config` plus what the caller needs besides it."""

    config: Config
    batched: bool
    out_shape: tuple[int, ...]
    padding: Pairs  # (lo, hi) per axis, before output padding
    output_padding: tuple[int, ...]


def _output_size(value: Any, n: int, in_ndim: int, channels_last: bool) -> tuple[int, ...]:
    if isinstance(value, str):
        raise TypeError(f"output_size={value!r} must be an int or a tuple of ints")
    if isinstance(value, (jax.Array, np.ndarray)) and value.ndim == 0:
        to_int("output_size", value)  # raises: settings must be static
    if isinstance(value, (tuple, list)) or hasattr(value, "__len__"):
        size = tuple(to_int("output_size", v) for v in value)
        if len(size) == in_ndim and in_ndim != n:
            size = (
                size[1:-1]
                if channels_last and in_ndim == n + 2
                else (size[:-1] if channels_last else size[in_ndim - n :])
            )
        if len(size) != n:
            raise ValueError(
                f"output_size={fmt(value)} must give {n} spatial sizes (or a full output shape "
                f"of {in_ndim} entries), got {len(tuple(value))}"
            )
        return size
    return (to_int("output_size", value),) * n


def _operands(settings: Settings, input_shape, weight_shape, weight_axes: tuple[str, str]):
    """``(input shape, weight shape, batched, C_in, spatial sizes, kernel)`` as ints, with
    the checks both convolutions share: the input's rank, and no empty kernel, weight
    channel axis (named ``weight_axes``: the weight's layout) or input spatial axis."""
    n = settings.ndim
    in_shape = tuple(int(v) for v in input_shape)
    w_shape = tuple(int(v) for v in weight_shape)
    check_input_rank(in_shape, w_shape, n)
    if settings.channels_last:
        c_in, spatial = in_shape[-1], in_shape[-1 - n : -1]
    else:
        c_in, spatial = in_shape[-1 - n], in_shape[len(in_shape) - n :]
    kernel = w_shape[2:]
    if any(k < 1 for k in kernel):
        raise ValueError(f"weight of shape {w_shape} must have every kernel size >= 1")
    if w_shape[0] < 1 or w_shape[1] < 1:
        raise ValueError(
            f"weight of shape {w_shape} must have weight.shape[0] = {weight_axes[0]} >= 1 and "
            f"weight.shape[1] = {weight_axes[1]} >= 1"
        )
    if any(length < 1 for length in spatial):
        raise ValueError(
            f"input of shape {in_shape} must have every spatial size >= 1, got {spatial}"
        )
    return in_shape, w_shape, len(in_shape) == n + 2, c_in, spatial, kernel


def check_input_rank(input_shape: Sequence[int], weight_shape: Sequence[int], n: int) -> None:
    in_shape, w_shape = tuple(input_shape), tuple(weight_shape)
    if len(in_shape) not in (n + 1, n + 2):
        raise ValueError(
            f"input of shape {in_shape} must have rank {n + 2} (batched) or {n + 1} "
            f"(unbatched) to match weight of shape {w_shape} ({n} spatial axes)"
        )


def bind(
    settings: Settings,
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None = None,
    output_size: Any = None,
) -> Bound:
    """Check ``settings`` against the shapes and build the :class:`Config`."""
    s = settings
    n = s.ndim
    in_shape, w_shape, batched, c_in, spatial, kernel = _operands(
        s, input_shape, weight_shape, ("C_in", "C_out // groups")
    )
    g = s.groups
    if c_in != w_shape[0]:
        raise ValueError(
            f"input has {c_in} channels (shape {in_shape}, channels_last={s.channels_last}) but "
            f"weight of shape {w_shape} expects weight.shape[0]={w_shape[0]} input channels"
        )
    if c_in % g:
        raise ValueError(f"groups={g} must divide the {c_in} input channels")
    c_out = w_shape[1] * g
    if bias_shape is not None:
        b_shape = tuple(int(v) for v in bias_shape)
        if b_shape != (c_out,):
            raise ValueError(
                f"bias of shape {b_shape} must have shape ({c_out},): C_out = "
                f"weight.shape[1] * groups = {w_shape[1]} * {g}"
            )

    pads = s.pads(kernel)
    opad = s.output_padding
    if output_size is not None:
        size = _output_size(output_size, n, len(in_shape), s.channels_last)
        ranges = [
            geo.output_padding_range(*args)
            for args in zip(spatial, kernel, s.stride, s.dilation, pads, strict=True)
        ]
        for ax, ((lo_size, hi_size), want) in enumerate(zip(ranges, size, strict=True)):
            if not lo_size <= want <= hi_size:
                reachable = ", ".join(f"{a}..{b}" for a, b in ranges)
                raise ValueError(
                    f"output_size={fmt(output_size)} is not reachable: spatial axis {ax} can be "
                    f"{lo_size}..{hi_size} for input spatial size {spatial} (reachable sizes per "
                    f"axis: {reachable})"
                )
        opad = tuple(want - lo_size for (lo_size, _), want in zip(ranges, size, strict=True))

    crops = tuple(geo.crop_from_padding(p, a) for p, a in zip(pads, opad, strict=True))
    out_spatial = geo.output_spatial_shape(spatial, kernel, s.stride, s.dilation, crops)
    if any(o < 1 for o in out_spatial):
        raise ValueError(
            f"output spatial size {out_spatial} must be >= 1 on every axis: input spatial size "
            f"{spatial}, kernel {kernel}, stride {s.stride}, dilation {s.dilation}, padding "
            f"{pads} and output_padding {opad} give (L-1)*s - lo - hi + d*(K-1) + a + 1 < 1"
        )
    config = Config(
        stride=s.stride,
        dilation=s.dilation,
        crops=crops,
        groups=g,
        channels_last=s.channels_last,
        flip=s.conv_mode == "convolution",
        precision=s.precision,
        preferred_element_type=s.preferred_element_type,
    )
    return Bound(config, batched, geo.output_shape(config, in_shape, w_shape), pads, opad)


def parse(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None,
    stride: Any,
    padding: Any,
    output_padding: Any,
    groups: Any,
    dilation: Any,
    output_size: Any,
    channels_last: Any,
    conv_mode: Any = "cross_correlation",
    precision: Any = None,
    preferred_element_type: Any = None,
    num_spatial: int | None = None,
) -> Bound:
    """:func:`parse_settings` then :func:`bind`: the settings of one call, validated and bound."""
    n = spatial_rank(weight_shape, num_spatial)
    check_input_rank(input_shape, weight_shape, n)
    settings = parse_settings(
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
    return bind(settings, input_shape, weight_shape, bias_shape, output_size)


# --- other entry points ----------------------------------------------------------------------


def check_method(method: Any, methods: Sequence[str], reasons: Mapping[str, str | None]) -> str:
    """``method`` must be known and, unless ``"auto"``, able to compute the configuration.

    ``reasons`` maps each method to ``None`` (it applies) or why it does not.
    """
    choice("method", method, methods)
    reason = reasons.get(method)
    if reason is not None:
        able = ", ".join(repr(m) for m in methods if reasons.get(m) is None)
        raise ValueError(
            f"method={method!r} cannot compute this configuration: {reason}; the methods that "
            f"can are {able}"
        )
    return method


def padding_mode_pads(padding_mode: Any, bound: Bound) -> Pairs:
    """Validate ``padding_mode`` against a bound call; return its ``(lo, hi)`` padding.

    A padding the mode cannot pad with for the output size is rejected with
    the same rules ``torch.nn.functional.pad`` has.
    """
    mode = check_padding_mode(padding_mode)
    pads = tuple(bound.padding)
    if mode == "zeros":
        return pads
    out_spatial = geo.spatial_shape(bound.config, bound.out_shape)
    if mode == "reflect":
        bad = any(max(lo, hi) >= size for (lo, hi), size in zip(pads, out_spatial, strict=True))
        rule = "must be smaller than the output size"
    elif mode == "circular":
        bad = any(max(lo, hi) > size for (lo, hi), size in zip(pads, out_spatial, strict=True))
        rule = "must be at most the output size"
    else:
        bad = False
        rule = ""
    if bad:
        raise ValueError(
            f"padding={pads} {rule} {tuple(out_spatial)} on every axis for "
            f"padding_mode={mode!r} (the forward convolution pads an input of the output's "
            f"size; {mode} padding cannot wrap or mirror further than that)"
        )
    return pads


def check_padding_mode(padding_mode: Any) -> str:
    """Validate the ``padding_mode`` string (shared by the functions and the layers)."""
    if not isinstance(padding_mode, str):
        raise TypeError(
            f"padding_mode={padding_mode!r} must be a string, one of {PADDING_MODES}, "
            f"not {type(padding_mode).__name__}"
        )
    return choice("padding_mode", padding_mode, PADDING_MODES)


class LayerSettings(NamedTuple):
    """A layer's validated constructor arguments."""

    settings: Settings
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    padding: Any  # "same" / "valid", a tuple of ints, or a tuple of (lo, hi) pairs
    bias: bool


def parse_layer(
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
) -> LayerSettings:
    """Validate a layer's constructor arguments with the functions' validators."""
    n = positive("num_spatial_dims", num_spatial_dims)
    c_in = positive("in_channels", in_channels)
    c_out = positive("out_channels", out_channels)
    kernel = int_tuple("kernel_size", kernel_size, n)
    at_least("kernel_size", kernel_size, kernel, 1)
    g = positive("groups", groups)
    if c_in % g or c_out % g:
        raise ValueError(f"groups={g} must divide in_channels={c_in} and out_channels={c_out}")
    is_bool("bias", bias, " (whether the layer has a bias)")
    check_padding_mode(padding_mode)
    choice("compute_mode", compute_mode, COMPUTE_MODES)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype={dtype!r} must be a floating or complex dtype") from None
    check_dtype("dtype", dt)
    check_x64("dtype", dt)
    settings = parse_settings(
        n, stride, padding, output_padding, g, dilation, channels_last, conv_mode
    )
    pad = settings.padding
    if not isinstance(pad, str) and all(lo == hi for lo, hi in pad):
        pad = tuple(lo for lo, _ in pad)
    return LayerSettings(settings, c_in, c_out, kernel, pad, bool(bias))


def check_x64(name: str, dt: Any) -> None:
    """A 64-bit ``dtype`` needs JAX's 64-bit types on: with them off, JAX would build the
    arrays in 32 bits, a silent cast."""
    if jax.dtypes.canonicalize_dtype(dt) != dt:
        raise TypeError(
            f"{name}={np.dtype(dt).name} needs 64-bit types, which JAX has off (it would "
            f"silently make {jax.dtypes.canonicalize_dtype(dt).name} arrays): call "
            f"jax.config.update('jax_enable_x64', True) first, or pass "
            f"{name}={jax.dtypes.canonicalize_dtype(dt).name}"
        )


def check_key(key: Any, layer: str) -> None:
    if key is None:
        raise TypeError(
            f"key=None must be a jax.random key for {layer}'s initial weights: pass "
            f"key=jax.random.key(0), or build from PyTorch with {layer}.from_torch(module)"
        )


# --- the initialisers (convt_jax.nn.init) ----------------------------------------------------


def check_icnr_kernel(kernel: tuple[int, ...], strides: tuple[int, ...]) -> None:
    if any(k < s for k, s in zip(kernel, strides, strict=True)):
        raise ValueError(
            f"icnr needs every kernel size >= stride: kernel {kernel} with stride={strides} "
            "(the kernel must hold the nearest-neighbour box of `stride` taps)"
        )


def weight_shape(name: str, shape: Any, min_rank: int) -> tuple[int, ...]:
    """An initialiser's ``shape``: a tuple of ints ``>= 1`` of rank ``>= min_rank``."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name}={shape!r} must be a tuple of ints")
    shape = tuple(to_int(name, s) for s in shape)
    if len(shape) < min_rank or any(s < 1 for s in shape):
        layout = ": (C_in, C_out // groups, *kernel)" if min_rank == 3 else ""
        raise ValueError(f"{name}={shape} must have rank >= {min_rank} and every size >= 1{layout}")
    return shape


# --- framework modules, autotune -------------------------------------------------------------


def floating_dtype(name: str, dtype: Any, rule: str = "a floating or complex dtype") -> Any:
    """``dtype`` as a NumPy dtype, which must be floating or complex (``rule`` says so)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or not (
        jnp.issubdtype(dt, jnp.floating) or jnp.issubdtype(dt, jnp.complexfloating)
    ):
        raise TypeError(f"{name}={dtype!r} must be {rule}")
    return dt


def compute_dtype(dtype: Any) -> Any:
    """A Flax module's ``dtype`` (its computation dtype): None or floating / complex."""
    if dtype is not None:
        floating_dtype(
            "dtype",
            dtype,
            "None (compute in the inputs' and parameters' dtype) or a floating or complex dtype",
        )
    return dtype


def check_bilinear_shape(shape: tuple[int, ...]) -> None:
    """``init.bilinear``'s weight: ``(C, C, *K)`` or depthwise ``(C, 1, *K)``."""
    c_in, c_out = shape[:2]
    if c_out not in (1, c_in):
        raise ValueError(
            f"shape={shape}: bilinear upsamples each channel on its own, so C_out // groups "
            f"must equal C_in={c_in} (groups=1, a diagonal weight) or 1 (depthwise, "
            f"groups=C_in), not {c_out}"
        )


def check_rngs(rngs: Any, is_rngs: bool, layer: str) -> None:
    """An NNX module's ``rngs`` (``is_rngs``: whether it is an ``nnx.Rngs``)."""
    if not is_rngs:
        raise TypeError(
            f"rngs={rngs!r} must be an nnx.Rngs for the initial weights: pass "
            f"rngs=nnx.Rngs(0), or build from PyTorch with {layer}.from_torch(module)"
        )


def check_autotune_switch(enabled: Any) -> bool:
    """``convt_jax.autotune(enabled)``: a bool (NumPy's accepted)."""
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(
            f"autotune(enabled={enabled!r}) must be a bool, not {type(enabled).__name__}"
        )
    return bool(enabled)


# --- the regular convolution (convt_jax.conv*) -----------------------------------------------

CONV_WEIGHT = "(C_out, C_in // groups, *kernel)"


class ConvBound(NamedTuple):
    """A regular convolution's call, bound: the transposed convolution it is the input
    gradient of (``config``: the same stride, dilation and groups, the crop of the
    convolution's zero padding, with the output padding that maps back to exactly the
    input's size), and what the caller needs besides it."""

    config: Config
    batched: bool
    out_shape: tuple[int, ...]
    padding: Pairs  # (lo, hi) per axis, as the input is padded
    padding_mode: str


def conv_spatial_rank(weight_shape: Sequence[int], num_spatial: int | None, fn_name: str) -> int:
    """A regular convolution's number of spatial axes: ``num_spatial`` or ``weight.ndim - 2``."""
    w_shape = tuple(int(s) for s in weight_shape)
    if num_spatial is None:
        if len(w_shape) < 3:
            raise ValueError(f"weight of shape {w_shape} must have rank >= 3: {CONV_WEIGHT}")
        return len(w_shape) - 2
    if len(w_shape) != num_spatial + 2:
        raise ValueError(
            f"weight of shape {w_shape} must have rank {num_spatial + 2} for {fn_name}: "
            f"{CONV_WEIGHT}"
        )
    return num_spatial


def parse_conv_settings(
    n: int,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: Any = 1,
    channels_last: Any = False,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> Settings:
    """:func:`parse_settings` for a regular convolution (no output padding, no conv_mode).

    The padding strings are PyTorch's, spelt as PyTorch spells them, and ``"same"`` needs
    stride 1 on every axis (PyTorch's rule: with a stride no padding gives every axis the
    input's size)."""
    if isinstance(padding, str) and padding not in PADDING_STRINGS:
        raise ValueError(f"padding={padding!r} must be 'valid', 'same' or numbers")
    settings = parse_settings(
        n,
        stride,
        padding,
        0,
        groups,
        dilation,
        channels_last,
        "cross_correlation",
        precision,
        preferred_element_type,
    )
    if settings.padding == "same" and any(s != 1 for s in settings.stride):
        raise ValueError(
            f"padding='same' needs stride=1 on every axis, got stride={stride!r} (as PyTorch: "
            "pass the padding as numbers for a strided convolution)"
        )
    return settings


def conv_pads(settings: Settings, kernel: Sequence[int]) -> Pairs:
    """The ``(lo, hi)`` zero padding of the input per axis; ``"same"`` is PyTorch's: in
    all ``d*(K - 1)``, the odd unit on the high side."""
    if settings.padding == "valid":
        return ((0, 0),) * settings.ndim
    if settings.padding == "same":
        return tuple(
            (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
            for k, d in zip(kernel, settings.dilation, strict=True)
        )
    return cast(Pairs, settings.padding)


def bind_conv(
    settings: Settings,
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None = None,
    padding_mode: Any = "zeros",
) -> ConvBound:
    """Check a regular convolution's settings against the shapes; build its :class:`Config`."""
    s = settings
    in_shape, w_shape, batched, c_in, spatial, kernel = _operands(
        s, input_shape, weight_shape, ("C_out", "C_in // groups")
    )
    mode = check_padding_mode(padding_mode)
    g = s.groups
    if c_in != w_shape[1] * g:
        raise ValueError(
            f"input has {c_in} channels (shape {in_shape}, channels_last={s.channels_last}) but "
            f"weight of shape {w_shape} with groups={g} expects weight.shape[1] * groups = "
            f"{w_shape[1] * g} input channels"
        )
    c_out = w_shape[0]
    if c_out % g:
        raise ValueError(
            f"groups={g} must divide the {c_out} output channels (weight.shape[0]) of "
            f"weight of shape {w_shape}"
        )
    if bias_shape is not None:
        b_shape = tuple(int(v) for v in bias_shape)
        if b_shape != (c_out,):
            raise ValueError(
                f"bias of shape {b_shape} must have shape ({c_out},): C_out = weight.shape[0]"
            )
    pads = conv_pads(s, kernel)
    # L_out = floor((L + lo + hi - d*(K - 1) - 1) / s) + 1, and the output padding of the
    # transposed convolution that maps L_out back to exactly L.
    rests = [
        length + lo + hi - d * (k - 1) - 1
        for length, k, d, (lo, hi) in zip(spatial, kernel, s.dilation, pads, strict=True)
    ]
    out_spatial = tuple(r // st + 1 for r, st in zip(rests, s.stride, strict=True))
    if any(o < 1 for o in out_spatial):
        raise ValueError(
            f"output spatial size {out_spatial} must be >= 1 on every axis: input spatial size "
            f"{spatial}, kernel {kernel}, stride {s.stride}, dilation {s.dilation} and padding "
            f"{pads} give floor((L + lo + hi - d*(K-1) - 1) / s) + 1 < 1 (the dilated kernel "
            "is longer than the padded input)"
        )
    if mode == "reflect" and any(max(p) >= n_ for p, n_ in zip(pads, spatial, strict=True)):
        raise ValueError(
            f"padding={pads} must be smaller than the input's spatial size {spatial} on every "
            "axis for padding_mode='reflect' (a reflection cannot reach further)"
        )
    if mode == "circular" and any(max(p) > n_ for p, n_ in zip(pads, spatial, strict=True)):
        raise ValueError(
            f"padding={pads} must be at most the input's spatial size {spatial} on every "
            "axis for padding_mode='circular' (the padding cannot wrap around more than once)"
        )
    output_padding = tuple(r % st for r, st in zip(rests, s.stride, strict=True))
    config = Config(
        stride=s.stride,
        dilation=s.dilation,
        crops=tuple(geo.crop_from_padding(p, a) for p, a in zip(pads, output_padding, strict=True)),
        groups=g,
        channels_last=s.channels_last,
        flip=False,
        precision=s.precision,
        preferred_element_type=s.preferred_element_type,
    )
    lead = in_shape[:1] if batched else ()
    out_shape = lead + (out_spatial + (c_out,) if s.channels_last else (c_out,) + out_spatial)
    return ConvBound(config, batched, out_shape, pads, mode)


def parse_conv(
    input_shape: Sequence[int],
    weight_shape: Sequence[int],
    bias_shape: Sequence[int] | None,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    channels_last: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
    padding_mode: Any = "zeros",
    num_spatial: int | None = None,
    fn_name: str = "conv",
) -> ConvBound:
    """:func:`parse_conv_settings` then :func:`bind_conv`: one regular convolution's call."""
    n = conv_spatial_rank(weight_shape, num_spatial, fn_name)
    check_input_rank(input_shape, weight_shape, n)
    settings = parse_conv_settings(
        n, stride, padding, dilation, groups, channels_last, precision, preferred_element_type
    )
    return bind_conv(settings, input_shape, weight_shape, bias_shape, padding_mode)
