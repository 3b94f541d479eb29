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
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple, NoReturn, cast

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
        # owned_leaf), so the caller's array could change in place under the computation.
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


def leaf_array(name: str, value: Any) -> Any:
    """A layer's new ``weight`` / ``bias`` as passed: a jax or NumPy array (a list or a
    ``torch.Tensor`` becomes a NumPy array; torch is not imported); ``None`` stays ``None``.

    Nothing goes through ``jnp.asarray`` here: with x64 off that would turn a float64
    array into float32 before the dtype check, a silent cast.  The caller checks the
    dtype as passed, then converts."""
    if value is None:
        return None
    value = from_torch_tensor(value)
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"{name}={value!r} must be an array, not {type(value).__name__}")
    if not hasattr(value, "dtype") or not hasattr(value, "shape"):
        value = np.asarray(value)
    return value


def owned_leaf(value: Any) -> jax.Array:
    """A checked ``weight`` / ``bias`` (from :func:`leaf_array`) as a JAX array that no
    one else can write to.

    ``jnp.asarray`` of a host array (NumPy, or a ``torch.Tensor``'s ``.numpy()`` view,
    which shares the tensor's memory) may return before its copy is made, or share the
    buffer (jax-ml/jax#37830): an in-place change to the source right after loading (a
    PyTorch model trained on, a buffer reused) could reach the layer's weights.  Measured:
    a state dict loaded, then its tensors changed in place: 84 / 2000 (108 floats) and
    271 / 2000 (4096 floats) layers held changed weights.  A private copy is made first;
    JAX arrays are immutable and pass through."""
    if isinstance(value, jax.Array):
        return value
    return jnp.asarray(np.array(value, copy=True))


def check_leaf(layer: str, name: str, current: Any, value: Any, transposed: bool = True) -> None:
    """A replacement ``weight`` / ``bias`` must keep the leaf's presence, shape and dtype
    (the weight's layout named for a transposed or a regular convolution)."""
    if current is None or value is None:
        raise ValueError(
            f"{name}: this {layer} was built with "
            f"bias={current is not None}, so its bias cannot be "
            f"{'removed' if value is None else 'set'}"
        )
    if tuple(value.shape) != tuple(current.shape):
        raise ValueError(
            f"{name} of shape {tuple(value.shape)} must have shape "
            f"{tuple(current.shape)} for this {layer}"
            + (
                f" {TRANSPOSED_WEIGHT if transposed else CONV_WEIGHT}"
                if name == "weight"
                else " (C_out,)"
            )
        )
    got, want = np.dtype(value.dtype), np.dtype(current.dtype)
    if got != want:
        hint = f"cast it first (e.g. {name}.astype({want.name!r}))"
        if not (np.issubdtype(got, np.inexact) or got.name == "bfloat16"):
            pass  # a layer cannot have an integer or bool dtype: only the cast helps
        elif jax.dtypes.canonicalize_dtype(got) != got:
            hint += (
                f", or enable 64-bit types (jax.config.update('jax_enable_x64', True)) "
                f"and build the layer with dtype={got.name}"
            )
        else:
            hint += f" or build the layer with dtype={got.name}"
        raise TypeError(
            f"{name} has dtype {got.name} but this layer's {name} is {want.name}: {hint}"
        )


def check_leaf_names(layer: str, names: Collection[str]) -> None:
    unknown = sorted(set(names) - {"weight", "bias"})
    if unknown:
        raise ValueError(
            f"{layer}.replace got {unknown}: only 'weight' and 'bias' "
            "are arrays; the settings are fixed at construction"
        )


def check_state_dict(layer: str, state_dict: Any, has_bias: bool) -> set[str]:
    """The keys a layer's ``load_state_dict`` needs: exactly ``weight`` (and ``bias``)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping of names to arrays, not {type(state_dict).__name__}"
        )
    expected = {"weight"} | ({"bias"} if has_bias else set())
    got = set(state_dict)
    if got != expected:
        missing, unexpected = sorted(expected - got), sorted(got - expected, key=str)
        raise ValueError(
            f"state_dict has keys {sorted(got, key=str)} but this {layer} "
            f"needs exactly {sorted(expected)} (missing: {missing}, unexpected: "
            f"{unexpected}); strip any module prefix first, e.g. "
            "{k.removeprefix('decoder.0.'): v for k, v in sd.items()}"
        )
    return expected


# --- the weight converters (convt_jax.layouts) ----------------------------------------------


def check_kernel_groups(groups: int, c_out: int) -> None:
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the kernel's {c_out} output channels")


def check_torch_crop(framework: str, ax: int, crop: tuple[int, int], s: int, d: int) -> None:
    """A framework's crop must be one PyTorch's padding and output_padding can express."""
    lo, hi = crop
    if lo < 0 or (hi < 0 and -hi >= max(s, d)):
        raise ValueError(
            f"{framework}'s padding extends the output by {-lo if lo < 0 else -hi} "
            f"position(s) at the {'start' if lo < 0 else 'end'} of spatial axis {ax} "
            f"(crop {(lo, hi)}): PyTorch semantics can only crop the start and extend the "
            f"end by output_padding < max(stride, dilation) = {max(s, d)}"
        )


def padding_string(value: str, options: Sequence[str], framework: str) -> str:
    """A framework's string ``padding`` (upper case), one of ``options``."""
    mode = value.upper()
    if mode == "CIRCULAR" and framework in ("Flax", "Haiku"):
        raise ValueError(
            f"padding={value!r}: {framework}'s CIRCULAR transposed convolution wraps a "
            "VALID result onto a period of input * stride; it has no PyTorch-style "
            "equivalent here (use padding_mode='circular' for the adjoint of a circular "
            "convolution)"
        )
    if mode not in options:
        quoted = ", ".join(repr(o) for o in options)
        raise ValueError(f"padding={value!r} must be {quoted} or numbers")
    return mode


def keras_padding(padding: Any) -> None:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} must be 'valid' or 'same' (Keras' padding)")


def no_keras_equivalent(padding: Any, output_padding: Any, crops: Any, reachable: str) -> NoReturn:
    raise ValueError(
        f"padding={padding!r} with output_padding={output_padding!r} (crop {crops}) has no "
        f"Keras equivalent: Keras only has padding='valid'/'same' plus output_padding < stride; "
        f"the settings it can express are {reachable}"
    )


def check_output_padding_below_stride(
    framework: str,
    padding: Any,
    output_padding: Any,
    needed: tuple[int, ...],
    stride: tuple[int, ...],
) -> None:
    if any(a >= s for a, s in zip(needed, stride, strict=True)):
        raise ValueError(
            f"output_padding={output_padding!r} with padding={padding!r} needs an output "
            f"padding of {needed}, but {framework} requires output_padding < stride={stride}"
        )


def check_icnr_kernel(kernel: tuple[int, ...], strides: tuple[int, ...]) -> None:
    if any(k < s for k, s in zip(kernel, strides, strict=True)):
        raise ValueError(
            f"icnr needs every kernel size >= stride: kernel {kernel} with stride={strides} "
            "(the kernel must hold the nearest-neighbour box of `stride` taps)"
        )


def check_rank(name: str, shape: Sequence[int], min_rank: int, rule: str) -> None:
    if len(shape) < min_rank:
        raise ValueError(f"{name} of shape {tuple(shape)} must have rank >= {min_rank}: {rule}")


def weight_shape(name: str, shape: Any, min_rank: int) -> tuple[int, ...]:
    """An initialiser's ``shape``: a tuple of ints ``>= 1`` of rank ``>= min_rank``."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name}={shape!r} must be a tuple of ints")
    shape = tuple(to_int(name, s) for s in shape)
    if len(shape) < min_rank or any(s < 1 for s in shape):
        layout = ": (C_in, C_out // groups, *kernel)" if min_rank == 3 else ""
        raise ValueError(f"{name}={shape} must have rank >= {min_rank} and every size >= 1{layout}")
    return shape


# --- checkpoints, initialisers, framework modules, autotune ---------------------------------


def check_mapping(name: str, value: Any) -> Mapping:
    """A PyTorch state dict: a mapping of names to arrays."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of names to arrays, not {type(value).__name__}")
    return value


def check_one_layer(
    state_dict: Mapping,
    layer_keys: Collection[str],
    suffixes: Sequence[str],
    parametrization: tuple[str, str],
) -> None:
    """A state dict of one layer: str keys, none with a module prefix (``decoder.0.weight``)
    or a parametrization other than weight norm's ``parametrization`` pair."""
    for key in state_dict:
        if not isinstance(key, str):
            raise TypeError(f"state_dict key {key!r} must be a str, not {type(key).__name__}")
        if key in layer_keys or "." not in key:
            continue
        prefix = next(
            (key[: -len(s)] for s in suffixes if key.endswith("." + s)), key.rsplit(".", 1)[0] + "."
        )
        if prefix.endswith("parametrizations.weight."):
            raise ValueError(
                f"state_dict key {key!r}: only weight norm's parametrization "
                f"({parametrization[0]!r}, {parametrization[1]!r}) can be folded; remove other "
                "parametrizations in PyTorch first (torch.nn.utils.parametrize."
                "remove_parametrizations(module, 'weight'))"
            )
        keys = sorted(state_dict, key=str)
        shown = keys if len(keys) <= 6 else keys[:6] + ["..."]
        raise ValueError(
            f"state_dict has keys {shown} with a module prefix ({prefix!r}); it must hold "
            "one layer's keys ('weight', 'bias', or weight norm's 'weight_g'/'weight_v' or "
            f"'{parametrization[0]}'/'original1'). Select one layer's keys first, e.g. "
            f"{{k.removeprefix({prefix!r}): v for k, v in sd.items() "
            f"if k.startswith({prefix!r})}}"
        )


def weight_norm_pair(
    state_dict: Mapping, old: tuple[str, str], new: tuple[str, str]
) -> tuple[str, str] | None:
    """The ``(g, v)`` keys of the one weight-norm pair in ``state_dict`` (``None`` if none)."""
    if "weight_orig" in state_dict:
        raise ValueError(
            "state_dict has 'weight_orig': that is spectral norm "
            "(torch.nn.utils.spectral_norm), not weight norm; fold it in PyTorch first "
            "(torch.nn.utils.remove_spectral_norm(module)) and pass module.state_dict()"
        )
    pairs = [p for p in (old, new) if p[0] in state_dict or p[1] in state_dict]
    if not pairs:
        return None
    if len(pairs) == 2:
        raise ValueError(
            f"state_dict has both weight-norm spellings {old} and {new}; it must hold one "
            "layer's weight once"
        )
    g_key, v_key = pairs[0]
    for k in (g_key, v_key):
        if k not in state_dict:
            raise ValueError(
                f"state_dict has {(g_key if k == v_key else v_key)!r} but not {k!r}: "
                f"weight norm needs both {g_key!r} (g) and {v_key!r} (v)"
            )
    if "weight" in state_dict:
        raise ValueError(
            f"state_dict has both 'weight' and the weight-norm pair {g_key!r}/{v_key!r}; "
            "pass one of them"
        )
    return g_key, v_key


def check_weight_norm_dtype(v_key: str, dtype: Any) -> None:
    """Weight norm's v must be floating or complex (bfloat16 included)."""
    if not (np.issubdtype(dtype, np.inexact) or np.dtype(dtype).name == "bfloat16"):
        raise TypeError(f"{v_key} has dtype {dtype} but must be floating or complex")


def weight_norm_shapes_error(
    g_key: str, v_key: str, g_shape: tuple[int, ...], v_shape: tuple[int, ...]
) -> ValueError:
    """The error for g and v shapes that PyTorch's weight norm does not produce (says why)."""
    shapes = f"{g_key} of shape {g_shape} and {v_key} of shape {v_shape}"
    if len(v_shape) == 0:
        return ValueError(f"{shapes}: {v_key} must be a weight, not a scalar")
    if len(g_shape) == len(v_shape):
        return ValueError(
            f"{shapes} are inconsistent: weight norm's g must have v's size on one axis "
            "(the norm's `dim`) and size 1 on every other axis, as "
            "torch.norm_except_dim(v, 2, dim) returns it, or be a scalar (dim=None)"
        )
    matches = [i for i, b in enumerate(v_shape) if len(g_shape) == 1 and b == g_shape[0]]
    if len(matches) > 1:
        return ValueError(
            f"{shapes} are ambiguous: g's size {g_shape[0]} matches axes {matches} of "
            f"{v_key}, so the norm's `dim` cannot be told; reshape {g_key} to PyTorch's "
            f"keepdim shape (size 1 on every axis but `dim`, e.g. "
            f"{tuple(v_shape[i] if i == matches[0] else 1 for i in range(len(v_shape)))} "
            f"for dim={matches[0]})"
        )
    return ValueError(
        f"{shapes} are inconsistent: weight norm's g must have v's size on one axis "
        "(the norm's `dim`) and size 1 on every other axis, or be a scalar (dim=None)"
    )


def check_torch_module(module: Any) -> None:
    """``module`` must be an initialised ``torch.nn.ConvTranspose1d/2d/3d`` (or subclass)."""
    cls = type(module)
    names = [c.__name__ for c in cls.__mro__]
    is_torch = cls.__module__.startswith("torch") or any(
        c.__module__.startswith("torch.nn") for c in cls.__mro__
    )
    if not (is_torch and "_ConvTransposeNd" in names and getattr(module, "transposed", False)):
        raise TypeError(
            f"module must be a torch.nn.ConvTranspose1d, ConvTranspose2d or ConvTranspose3d, "
            f"not {cls.__module__}.{cls.__qualname__}"
        )
    uninitialised = getattr(module, "has_uninitialized_params", None)
    if callable(uninitialised) and uninitialised():
        raise ValueError(
            f"module {cls.__name__} is a lazy module that has not seen an input yet; run one "
            "forward pass first so its in_channels and weight exist"
        )


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
