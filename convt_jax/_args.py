"""Normalise and validate the public arguments; every user-facing error lives here.

The public functions call :func:`parse` once, at the Python boundary, before
any XLA work (so errors are also raised at trace time under ``jax.jit``).
It returns a hashable :class:`Config` of canonical tuples that the lowerings
and gradient rules receive as static parameters.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from . import _shapes

CONV_MODES = ("cross_correlation", "convolution")
PADDING_STRINGS = ("valid", "same")
_DTYPE_RULE = "float16, bfloat16, float32, float64, complex64 or complex128"
_SCALAR_SETTINGS = ("groups",)  # settings that take one int, never a tuple


class Config(NamedTuple):
    """Canonical, hashable settings of one transposed convolution.

    ``crops`` already hold the padding and the output padding: output axis
    ``a`` is the full transposed convolution with ``crops[a][0]`` positions
    removed at the start and ``crops[a][1]`` at the end (negative: extended).
    """

    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    crops: tuple[tuple[int, int], ...]
    groups: int
    channels_last: bool
    flip: bool
    precision: Any
    preferred_element_type: Any

    @property
    def ndim(self) -> int:
        return len(self.stride)


class Parsed(NamedTuple):
    """:class:`Config` plus what the caller needs besides it."""

    config: Config
    batched: bool
    out_shape: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # (lo, hi) per axis, before output padding
    output_padding: tuple[int, ...]


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, jax.core.Tracer):
        return f"a traced array of shape {tuple(value.shape)}"
    if isinstance(value, (np.ndarray, jax.Array)):
        return f"an array of shape {tuple(value.shape)}"
    return repr(value)


def _int(name: str, value: Any) -> int:
    """A static Python integer (numpy integers accepted, bools and floats not)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}={value!r} must be an int, not a bool")
    if isinstance(value, (jax.Array, np.ndarray)):
        raise TypeError(
            f"{name}={_fmt(value)} must be a static Python int: settings are "
            "compile-time constants, not arrays (mark them static under jax.jit)"
        )
    try:
        return operator.index(value)
    except TypeError:
        kind = "an int" if name in _SCALAR_SETTINGS else "an int or a tuple of ints"
        raise TypeError(f"{name}={_fmt(value)} must be {kind}") from None


def int_tuple(name: str, value: Any, n: int) -> tuple[int, ...]:
    """An int, or a tuple/list of ``n`` ints, as a tuple of ``n`` ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(
                f"{name}={_fmt(value)} must be an int or a tuple of {n} ints "
                f"(one per spatial axis), got {len(value)} values"
            )
        return tuple(_int(name, v) for v in value)
    return (_int(name, value),) * n


def _padding_pairs(value: Any, n: int) -> tuple[tuple[int, int], ...]:
    """Numeric ``padding`` as ``(lo, hi)`` per axis."""
    rule = (
        f"an int, a tuple of {n} ints, a tuple of {n} (lo, hi) pairs, 'valid' or 'same'"
    )
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(
                f"padding={_fmt(value)} must be {rule}; got {len(value)} entries for "
                f"{n} spatial axes"
                + (f" (for asymmetric 1-d padding write padding=({tuple(value)!r},))"
                   if n == 1 and len(value) == 2 else "")
            )
        pairs = []
        for v in value:
            if isinstance(v, (tuple, list)):
                if len(v) != 2:
                    raise ValueError(f"padding={_fmt(value)} must be {rule}; {v!r} is not a pair")
                pairs.append((_int("padding", v[0]), _int("padding", v[1])))
            else:
                p = _int("padding", v)
                pairs.append((p, p))
        return tuple(pairs)
    if isinstance(value, (jax.Array, np.ndarray)):
        _int("padding", value)  # raises: settings must be static
    try:
        p = _int("padding", value)
    except TypeError:
        raise TypeError(f"padding={_fmt(value)} must be {rule}") from None
    return ((p, p),) * n


def check_dtype(name: str, dtype: Any) -> None:
    """Reject integer, bool and other non-inexact dtypes with a TypeError."""
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.inexact) and dt.name != "bfloat16":
        raise TypeError(
            f"{name} has dtype {dt.name}; transposed convolution needs a floating or complex "
            f"dtype ({_DTYPE_RULE}): cast it first, e.g. {name}.astype(jnp.float32)"
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
        f"precision={_fmt(value)} must be None, a jax.lax.Precision, a string or a pair of them"
    )


def _preferred(value: Any) -> Any:
    if value is None:
        return None
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"preferred_element_type={_fmt(value)} must be a dtype or None") from None
    if not np.issubdtype(dt, np.inexact) and dt.name != "bfloat16":
        raise TypeError(
            f"preferred_element_type={dt.name} must be a floating or complex dtype ({_DTYPE_RULE})"
        )
    return dt


def _output_size(value: Any, n: int, in_ndim: int, channels_last: bool) -> tuple[int, ...]:
    if isinstance(value, str):
        raise TypeError(f"output_size={value!r} must be an int or a tuple of ints")
    if isinstance(value, (jax.Array, np.ndarray)) and value.ndim == 0:
        _int("output_size", value)  # raises: settings must be static
    if isinstance(value, (tuple, list)) or hasattr(value, "__len__"):
        size = tuple(_int("output_size", v) for v in value)
        if len(size) == in_ndim and in_ndim != n:
            size = size[1:-1] if channels_last and in_ndim == n + 2 else (
                size[:-1] if channels_last else size[in_ndim - n:])
        if len(size) != n:
            raise ValueError(
                f"output_size={_fmt(value)} must give {n} spatial sizes (or a full output shape "
                f"of {in_ndim} entries), got {len(tuple(value))}"
            )
        return size
    return (_int("output_size", value),) * n


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
    fn_name: str = "conv_transpose",
) -> Parsed:
    """Validate every argument and return the canonical :class:`Config`."""
    in_shape = tuple(int(s) for s in input_shape)
    w_shape = tuple(int(s) for s in weight_shape)
    if num_spatial is None:
        if len(w_shape) < 3:
            raise ValueError(
                f"weight of shape {w_shape} must have rank >= 3: (C_in, C_out // groups, *kernel)"
            )
        n = len(w_shape) - 2
    else:
        n = num_spatial
        if len(w_shape) != n + 2:
            raise ValueError(
                f"weight of shape {w_shape} must have rank {n + 2} for {fn_name}: "
                f"(C_in, C_out // groups, *kernel)"
            )
    if len(in_shape) not in (n + 1, n + 2):
        raise ValueError(
            f"input of shape {in_shape} must have rank {n + 2} (batched) or {n + 1} "
            f"(unbatched) to match weight of shape {w_shape} ({n} spatial axes)"
        )
    if not isinstance(channels_last, (bool, np.bool_)):
        raise TypeError(f"channels_last={_fmt(channels_last)} must be a bool")
    channels_last = bool(channels_last)
    batched = len(in_shape) == n + 2
    if channels_last:
        c_in, spatial = in_shape[-1], in_shape[-1 - n:-1]
    else:
        c_in, spatial = in_shape[-1 - n], in_shape[len(in_shape) - n:]
    kernel = w_shape[2:]

    if not isinstance(conv_mode, str):
        raise TypeError(f"conv_mode={_fmt(conv_mode)} must be one of {CONV_MODES}")
    if conv_mode not in CONV_MODES:
        raise ValueError(f"conv_mode={conv_mode!r} must be one of {CONV_MODES}")

    stride_t = int_tuple("stride", stride, n)
    dilation_t = int_tuple("dilation", dilation, n)
    opad = int_tuple("output_padding", output_padding, n)
    g = _int("groups", groups)
    if any(v < 1 for v in stride_t):
        raise ValueError(f"stride={stride!r} must be >= 1 on every axis")
    if any(v < 1 for v in dilation_t):
        raise ValueError(f"dilation={dilation!r} must be >= 1 on every axis")
    if any(v < 0 for v in opad):
        raise ValueError(f"output_padding={output_padding!r} must be >= 0 on every axis")
    if g < 1:
        raise ValueError(f"groups={groups!r} must be >= 1")
    if any(k < 1 for k in kernel):
        raise ValueError(f"weight of shape {w_shape} must have every kernel size >= 1")
    if w_shape[0] < 1 or w_shape[1] < 1:
        raise ValueError(
            f"weight of shape {w_shape} must have weight.shape[0] = C_in >= 1 and "
            "weight.shape[1] = C_out // groups >= 1"
        )
    if any(length < 1 for length in spatial):
        raise ValueError(
            f"input of shape {in_shape} must have every spatial size >= 1, got {spatial}"
        )
    if c_in != w_shape[0]:
        raise ValueError(
            f"input has {c_in} channels (shape {in_shape}, channels_last={channels_last}) but "
            f"weight of shape {w_shape} expects weight.shape[0]={w_shape[0]} input channels"
        )
    if c_in % g:
        raise ValueError(f"groups={g} must divide the {c_in} input channels")
    c_out = w_shape[1] * g

    if bias_shape is not None:
        b_shape = tuple(int(s) for s in bias_shape)
        if b_shape != (c_out,):
            raise ValueError(
                f"bias of shape {b_shape} must have shape ({c_out},): C_out = "
                f"weight.shape[1] * groups = {w_shape[1]} * {g}"
            )

    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in PADDING_STRINGS:
            raise ValueError(f"padding={padding!r} must be 'valid', 'same' or numbers")
        if mode == "valid":
            pads = ((0, 0),) * n
        else:
            pads = tuple(_shapes.same_padding(k, s, d)
                         for k, s, d in zip(kernel, stride_t, dilation_t))
    else:
        pads = _padding_pairs(padding, n)
        if any(lo < 0 or hi < 0 for lo, hi in pads):
            raise ValueError(f"padding={padding!r} must be >= 0 on every axis")

    if output_size is not None:
        if any(opad):
            raise ValueError(
                f"output_padding={output_padding!r} cannot be combined with output_size: "
                "output_size determines the output padding"
            )
        size = _output_size(output_size, n, len(in_shape), channels_last)
        chosen = []
        for ax, (length, k, s, d, p, want) in enumerate(
                zip(spatial, kernel, stride_t, dilation_t, pads, size)):
            lo_size, hi_size = _shapes.output_padding_range(length, k, s, d, p)
            if not lo_size <= want <= hi_size:
                ranges = ", ".join(
                    f"{a}..{b}" for a, b in (
                        _shapes.output_padding_range(*args)
                        for args in zip(spatial, kernel, stride_t, dilation_t, pads)))
                raise ValueError(
                    f"output_size={_fmt(output_size)} is not reachable: spatial axis {ax} can be "
                    f"{lo_size}..{hi_size} for input spatial size {spatial} (reachable sizes per "
                    f"axis: {ranges})"
                )
            chosen.append(want - lo_size)
        opad = tuple(chosen)
    elif any(a >= max(s, d) for a, s, d in zip(opad, stride_t, dilation_t)):
        raise ValueError(
            f"output_padding={tuple(opad)} must be smaller than stride={stride_t} or "
            f"dilation={dilation_t} on each axis"
        )

    crops = tuple(_shapes.crop_from_padding(p, a) for p, a in zip(pads, opad))
    out_spatial = _shapes.output_spatial_shape(spatial, kernel, stride_t, dilation_t, crops)
    if any(o < 1 for o in out_spatial):
        raise ValueError(
            f"output spatial size {out_spatial} must be >= 1 on every axis: input spatial size "
            f"{spatial}, kernel {kernel}, stride {stride_t}, dilation {dilation_t}, padding "
            f"{pads} and output_padding {opad} give (L-1)*s - lo - hi + d*(K-1) + a + 1 < 1"
        )

    config = Config(
        stride=stride_t, dilation=dilation_t, crops=crops, groups=g,
        channels_last=channels_last, flip=conv_mode == "convolution",
        precision=_precision(precision), preferred_element_type=_preferred(preferred_element_type),
    )
    lead = in_shape[:1] if batched else ()
    out_shape = (lead + out_spatial + (c_out,)) if channels_last else (lead + (c_out,) + out_spatial)
    return Parsed(config, batched, out_shape, pads, opad)
