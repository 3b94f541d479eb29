"""Argument-space fuzz against PyTorch: every bad input rejected clearly, every good one right.

A drawn *case* is a valid base configuration (1-3 spatial axes, batched or
not, N = 0 allowed, groups, kernel larger than the input, stride larger
than the kernel, now and then a very large stride or dilation) with its
settings spelled in one of the equivalent Python forms (int, tuple, list,
NumPy integers), then up to a few *mutations*: bad values (negative
padding, stride 0, ...), bad kinds (floats, ``None``, bools, strings,
arrays where ints belong), wrong tuple lengths and ranks, zero-size axes,
bad bias shapes, integer / bool / mixed dtypes, or this library's
extensions (string and asymmetric padding, ``channels_last``,
``output_size`` on the function, mixed float dtypes, complex).

PyTorch judges each case:

* PyTorch accepts -> convt_jax accepts, with the same shape and dtype (and,
  in :func:`test_fuzz_values`, the same numbers within a rounding bound
  computed from the data);
* PyTorch rejects -> convt_jax raises ``ValueError`` or ``TypeError`` and
  nothing else (no XLA error, no assert).  When a single mutation breaks an
  otherwise valid case, the exception is the one that mutation calls for and
  its message names the argument.

Extensions are judged by a reference built from PyTorch: channels-last is
PyTorch on the moved input, string / ``(lo, hi)`` padding is PyTorch's
unpadded result cropped (or zero-extended) by definition, ``output_size``
picks the output padding as ``torch.nn.ConvTranspose*d`` does, mixed
dtypes are PyTorch on inputs cast to ``jnp.result_type(input, weight)``, and
a bias of another float dtype is cast to that dtype first.  The rules of the
extensions themselves (a padding pair that is not a pair, an unreachable
``output_size``, ...) are ours: :data:`OWN_RULES`.

Where PyTorch accepts something convt_jax rejects *by design*, the case is
listed in :data:`DIVERGENCES` with the reason (by the mutation that made it,
or, for PyTorch's empty-batch and empty-output shortcuts, by the shape of
PyTorch's result); the fuzz asserts our exception type there and fails on
any undocumented disagreement.  Each entry has a concrete instance in
:data:`DIVERGENCE_EXAMPLES`, checked against both libraries.

``test_fuzz_verdicts`` traces only (``jax.eval_shape``: validation, shape and
dtype, no compile), so it runs thousands of cases; ``test_fuzz_values``
compiles and compares numbers for fewer.  ``pytest --slow`` (or
``HYPOTHESIS_PROFILE=dev``) runs ten times as many of each.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from reference import FUNCTIONS, TORCH_FUNCTIONS

import convt_jax as ct

# Examples per run: the 'ci' profile (60 examples) gives the CI counts below;
# 'slow' (--slow) and 'dev' profiles (600) ten times as many.
_SCALE = max(1, settings().max_examples // 60)
N_VERDICTS = 2500 * _SCALE
N_VALUES = 300 * _SCALE

F = torch.nn.functional
TORCH_FN, NAMED_FN = TORCH_FUNCTIONS, FUNCTIONS

V, T = ValueError, TypeError
FLOATS = (np.float32, np.float64, np.float16, jnp.bfloat16, np.complex64, np.complex128)
BAD_DTYPES = (np.int32, np.int64, np.bool_, np.uint8, np.int8)

# PyTorch accepts, convt_jax rejects by design: mutation label -> (our exception, why).
DIVERGENCES: dict[str, tuple[type, str]] = {
    "int-dtype": (
        T,
        "PyTorch computes int64 transposed convolutions on CPU (integer result); "
        "by design: integer inputs raise a clear TypeError rather than silently "
        "computing in integers or promoting",
    ),
    "int-bias": (
        T,
        "PyTorch adds an integer or bool bias to a float result; convt_jax rejects "
        "integer arrays in every array argument",
    ),
    "one-element-tuple": (
        V,
        "PyTorch broadcasts a one-element stride/padding/... list to every "
        "spatial axis; the rule: tuple lengths equal the number of spatial "
        "axes (a 1-tuple on 2-D is more likely a bug than a broadcast)",
    ),
    "bool-in-tuple": (
        T,
        "PyTorch's int-list parser takes True/False as 1/0 after the first "
        "element; convt_jax rejects bools as settings everywhere",
    ),
    "empty-batch": (
        V,
        "with N == 0 PyTorch skips some checks and returns an empty result: "
        "it accepts dilation 0, output_padding >= max(stride, dilation), an "
        "input spatial size 0 and padding that makes an output size exactly 0; "
        "convt_jax applies its rules whatever N is, so a bad setting fails on "
        "the first batch, not only on non-empty ones",
    ),
    "onednn-path": (
        V,
        "PyTorch's oneDNN CPU path (taken for N >= 2 or groups > 1) skips checks "
        "its other path makes: it returns an empty result when an output "
        "spatial size is exactly 0 ('Output size is too small' with N == 1) "
        "and computes with dilation 0 when the kernel has one tap; the "
        "rules do not depend on N or groups",
    ),
    "array-setting": (
        T,
        "PyTorch takes a 0-d array (NumPy, or JAX via __index__) as groups or "
        "a stride; convt_jax settings are static ints, so an array "
        "is refused eagerly too: under jit it would be a traced value",
    ),
    "output_size+output_padding": (
        V,
        "torch.nn.ConvTranspose*d.forward(x, output_size) "
        "silently ignores the layer's output_padding; the "
        "function refuses the ambiguous combination",
    ),
}
# Settings we own (PyTorch's functions have no such argument or form): a
# mutation of these has no PyTorch verdict; the rule is ours.
OWN_RULES = {
    "pair-not-pair",
    "negative-pair",
    "bad-in-pair",
    "output_size-unreachable",
    "output_size-length",
    "output_size-bad-type",
    "channels_last-bad-type",
}


# ------------------------------------------------------------------------------ case model


@dataclasses.dataclass
class Case:
    nd: int
    generic: bool  # ct.conv_transpose instead of conv_transpose{nd}d
    n: int
    batched: bool
    groups: int
    c_in: int
    c_out_g: int
    kernel: tuple
    spatial: tuple
    stride: tuple
    dilation: tuple
    pads: tuple  # ((lo, hi), ...)
    opad: tuple
    bias: bool
    x_dtype: Any
    w_dtype: Any
    b_dtype: Any
    padding_form: str = "int"  # int | tuple | pairs | same | valid
    channels_last: bool = False
    output_size: Any = None  # what is passed
    output_size_spatial: tuple | None = None
    kwargs: dict = dataclasses.field(default_factory=dict)  # spelled settings for ct
    x_shape: tuple | None = None  # channels-first overrides (shape mutations)
    w_shape: tuple | None = None
    b_shape: tuple | None = None
    x_none: bool = False
    w_none: bool = False
    labels: list = dataclasses.field(default_factory=list)
    mutation: tuple | None = None  # (label, argument, exception) of a lone mutation
    seed: int = 0
    special: bool = False  # inject inf / nan into the data
    method: str = "auto"

    # -- shapes, channels first
    def cf_x_shape(self):
        if self.x_shape is not None:
            return self.x_shape
        lead = (self.n,) if self.batched else ()
        return lead + (self.c_in,) + self.spatial

    def cf_w_shape(self):
        return (
            self.w_shape if self.w_shape is not None else ((self.c_in, self.c_out_g) + self.kernel)
        )

    def b_shape_(self):
        return self.b_shape if self.b_shape is not None else (self.c_out_g * self.groups,)


def _spell_tuple(draw, values: tuple):
    """One of the equivalent spellings of a per-axis setting."""
    forms = ["tuple", "list", "np"]
    if len(set(values)) == 1:
        forms += ["int", "int", "npint"]
    form = draw(st.sampled_from(forms))
    if form == "int":
        return values[0]
    small = max(values) < 100
    if form == "npint":
        kinds = (np.int64, np.int32, np.int16) + ((np.uint8,) if small else ())
        return draw(st.sampled_from(kinds))(values[0])
    if form == "list":
        return list(values)
    if form == "np":
        kinds = (np.int64, np.int32, int) + ((np.int8,) if small else ())
        return tuple(draw(st.sampled_from(kinds))(v) for v in values)
    return tuple(values)


def _spell_padding(draw, case: Case):
    pads = case.pads
    if case.padding_form == "same":
        return draw(st.sampled_from(("same", "SAME", "Same")))
    if case.padding_form == "valid":
        return draw(st.sampled_from(("valid", "VALID")))
    if case.padding_form == "pairs":
        kind = draw(st.sampled_from((tuple, list)))
        return kind(kind(p) if draw(st.booleans()) or p[0] != p[1] else p[0] for p in pads)
    return _spell_tuple(draw, tuple(lo for lo, _ in pads))


def _out_len(length, k, s, d, lo, hi, a):
    return (length - 1) * s - lo - hi + d * (k - 1) + a + 1


def _same_crop(k, s, d):
    """jax.lax.conv_transpose(padding='SAME')'s split, as a crop of the full result.

    From lax's documented rule: the stride-dilated input is padded by
    ``pad_len = k_eff + s - 2``, ``pad_a = k_eff - 1`` if ``s > k_eff - 1`` else
    ``ceil(pad_len / 2)``; a lax padding ``p`` crops ``k_eff - 1 - p``.
    """
    ke = d * (k - 1) + 1
    pad_len = ke + s - 2
    pad_a = ke - 1 if s > ke - 1 else -(-pad_len // 2)
    return ke - 1 - pad_a, ke - 1 - (pad_len - pad_a)


@st.composite
def base_cases(draw, values: bool = False) -> Case:
    nd = draw(st.sampled_from((1, 1, 2, 2, 2, 3)))
    groups = draw(st.sampled_from((1, 1, 1, 2, 3)))
    c_in = groups * draw(st.integers(1, 2))
    big = {1: 6, 2: 5, 3: 3}[nd]
    spatial = tuple(draw(st.integers(1, big)) for _ in range(nd))
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    stride = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 3)) for _ in range(nd)]
    if draw(st.integers(0, 9)) == 0:  # a very large stride or dilation on one axis
        ax = draw(st.integers(0, nd - 1))
        big_value = draw(st.sampled_from((7, 64, 1000)))
        if draw(st.booleans()):
            stride[ax] = big_value
        else:
            dilation[ax] = big_value
    if draw(st.integers(0, 9)) == 0:  # kernel larger than the input
        kernel = tuple(length + draw(st.integers(1, 2)) for length in spatial)
    pads = tuple((p, p) for p in (draw(st.integers(0, 2)) for _ in range(nd)))
    opad = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
    dtype = draw(st.sampled_from((np.float32,) * 4 + (np.float64,) * 2 + FLOATS[2:]))
    case = Case(
        nd=nd,
        generic=draw(st.integers(0, 3)) == 0,
        n=draw(st.sampled_from((0, 1, 1, 2, 2))),
        batched=draw(st.integers(0, 4)) > 0,
        groups=groups,
        c_in=c_in,
        c_out_g=draw(st.integers(1, 2)),
        kernel=kernel,
        spatial=spatial,
        stride=tuple(stride),
        dilation=tuple(dilation),
        pads=pads,
        opad=opad,
        bias=draw(st.booleans()),
        x_dtype=dtype,
        w_dtype=dtype,
        b_dtype=dtype,
        padding_form=draw(st.sampled_from(("int", "int", "int", "pairs", "same", "valid"))),
        seed=draw(st.integers(0, 2**16)),
    )
    if case.padding_form == "pairs":
        case.pads = tuple((lo, draw(st.integers(0, 2))) for lo, _ in pads)
    elif case.padding_form == "valid":
        case.pads = ((0, 0),) * nd
    elif case.padding_form == "same":
        case.pads = tuple(
            _same_crop(k, s, d)
            for k, s, d in zip(case.kernel, case.stride, case.dilation, strict=True)
        )
    if case.bias and draw(st.integers(0, 3)) == 0:  # bias in another float dtype
        case.b_dtype = draw(st.sampled_from(FLOATS[:4]))
    if draw(st.integers(0, 3)) == 0:
        case.channels_last = True
    if draw(st.integers(0, 5)) == 0:  # output_size on the function
        sizes = tuple(
            _out_len(L, k, s, d, lo, hi, 0) + draw(st.integers(0, s - 1))
            for L, k, s, d, (lo, hi) in zip(
                case.spatial, case.kernel, case.stride, case.dilation, case.pads, strict=True
            )
        )
        case.opad = (0,) * nd
        case.output_size_spatial = sizes
        form = draw(st.sampled_from(("tuple", "list", "full", "int")))
        if form == "int" and len(set(sizes)) == 1:
            case.output_size = sizes[0]
        elif form == "full":
            lead = (case.n,) if case.batched else ()
            c_out = case.c_out_g * groups
            case.output_size = (
                lead + sizes + (c_out,) if case.channels_last else lead + (c_out,) + sizes
            )
        else:
            case.output_size = list(sizes) if form == "list" else sizes
    if draw(st.integers(0, 5)) == 0:  # mixed float dtypes (designed extension)
        case.w_dtype = draw(st.sampled_from(FLOATS))
    case.kwargs = dict(
        stride=_spell_tuple(draw, case.stride),
        padding=_spell_padding(draw, case),
        output_padding=_spell_tuple(draw, case.opad),
        groups=draw(st.sampled_from((int, int, np.int64, np.int32)))(groups),
        dilation=_spell_tuple(draw, case.dilation),
    )
    if case.channels_last:
        case.kwargs["channels_last"] = draw(st.sampled_from((True, np.True_)))
    if case.output_size is not None:
        case.kwargs["output_size"] = case.output_size
    if values:
        case.method = draw(
            st.sampled_from(("auto", "auto", "dilated", "subpixel", "matmul", "depthwise"))
        )
        # inf / nan in real float32 / float64 data (complex infinities follow each
        # implementation's complex multiply, which differ: not compared)
        case.special = (
            all(d in (np.float32, np.float64) for d in (case.x_dtype, case.w_dtype))
            and draw(st.integers(0, 9)) == 0
        )
    return case


# --- mutations: (label, argument named in the message, exception for a lone mutation) ------

SETTINGS = ("stride", "dilation", "output_padding", "padding", "groups")


def _canonical(case: Case, name: str):
    if name == "padding":
        return tuple(max(lo, 0) for lo, _ in case.pads)
    return {
        "stride": case.stride,
        "dilation": case.dilation,
        "output_padding": case.opad,
        "groups": case.groups,
    }[name]


def _bad_kind(draw, case: Case):
    name = draw(st.sampled_from(SETTINGS))
    scalar = draw(
        st.sampled_from(
            (2.0, 1.5, np.float64(1.0), None, "2", b"1", True, np.bool_(False), 1 + 0j, object())
        )
    )
    if name != "groups" and draw(st.booleans()):  # inside a tuple
        value = [1] * case.nd
        value[draw(st.integers(0, case.nd - 1))] = scalar
        label = "bool-in-tuple" if isinstance(scalar, (bool, np.bool_)) else "bad-kind"
        if label == "bool-in-tuple" and case.nd == 1:
            label = "bad-kind"
        case.kwargs[name] = tuple(value)
        if name == "padding" and case.padding_form != "int":
            case.padding_form = "tuple"
    else:
        label = "bad-kind"
        case.kwargs[name] = scalar
        if name == "padding":
            case.padding_form = "int"  # PyTorch gets it as it is
            if isinstance(scalar, str):
                return ("padding-string", "padding", V)
    return (label, name, T)


def _array_setting(draw, case: Case):
    name = draw(st.sampled_from(SETTINGS))
    value = draw(st.sampled_from(("np0", "np1", "jnp0")))
    v = _canonical(case, name)
    first = v if name == "groups" else v[0]
    case.kwargs[name] = {"np0": np.array(first), "np1": np.array(v), "jnp0": jnp.array(first)}[
        value
    ]
    if name == "padding":
        case.padding_form = "int"
    return ("array-setting", name, T)


def _bad_value(draw, case: Case):
    kind = draw(
        st.sampled_from(
            (
                "stride",
                "dilation",
                "padding",
                "output_padding",
                "opad-big",
                "groups",
                "groups-divide",
                "pad-big",
            )
        )
    )
    ax = draw(st.integers(0, case.nd - 1))

    def set_axis(name, values, v):
        values = list(values)
        values[ax] = v
        case.kwargs[name] = tuple(values)
        return tuple(values)

    if kind in ("stride", "dilation"):
        set_axis(kind, getattr(case, kind), draw(st.sampled_from((0, -1, -3))))
        return (f"{kind}<1", kind, V)
    if kind == "padding":
        case.padding_form = "int"
        case.pads = tuple(
            (p, p)
            for p in set_axis(
                "padding", [lo for lo, _ in case.pads], draw(st.sampled_from((-1, -2)))
            )
        )
        return ("padding<0", "padding", V)
    if kind == "output_padding":
        case.output_size = case.output_size_spatial = None
        case.kwargs.pop("output_size", None)
        set_axis("output_padding", case.opad, -1)
        return ("output_padding<0", "output_padding", V)
    if kind == "opad-big":
        case.output_size = case.output_size_spatial = None
        case.kwargs.pop("output_size", None)
        set_axis(
            "output_padding",
            case.opad,
            max(case.stride[ax], case.dilation[ax]) + draw(st.integers(0, 1)),
        )
        return ("output_padding>=max(stride,dilation)", "output_padding", V)
    if kind in ("groups", "groups-divide"):
        case.kwargs["groups"] = draw(st.sampled_from((0, -1)))
        return ("groups<1", "groups", V)
    if kind == "groups-divide" and case.c_in > 0:
        g = draw(st.sampled_from([v for v in range(2, 2 * case.c_in + 2) if case.c_in % v]))
        case.kwargs["groups"] = g
        return ("groups-not-dividing", "groups", V)
    # padding so large the output is empty
    case.padding_form = "int"
    case.output_size = case.output_size_spatial = None
    case.kwargs.pop("output_size", None)
    L, k, s, d = case.spatial[ax], case.kernel[ax], case.stride[ax], case.dilation[ax]
    full = (L - 1) * s + d * (k - 1) + 1 + case.opad[ax]
    p = (full + 1) // 2 + draw(st.integers(0, 2))
    pads = [lo for lo, _ in case.pads]
    pads[ax] = p
    case.pads = tuple((q, q) for q in pads)
    case.kwargs["padding"] = tuple(pads)
    return ("output-size<1", "output spatial size", V)


def _bad_length(draw, case: Case):
    name = draw(st.sampled_from(("stride", "dilation", "output_padding", "padding")))
    v = _canonical(case, name)
    if name == "padding":
        case.padding_form = "int"
    lengths = [0, case.nd + 1] + ([1] if case.nd > 1 else [])
    n = draw(st.sampled_from(lengths))
    value = (tuple(v) * 2)[:n] if n <= case.nd else tuple(v) + (v[0],)
    case.kwargs[name] = draw(st.sampled_from((tuple, list)))(value)
    if n == 1:
        return ("one-element-tuple", name, V)
    return ("tuple-length", name, V)


def _bad_shape(draw, case: Case):
    kind = draw(
        st.sampled_from(
            (
                "channels",
                "zero-spatial",
                "zero-c_in",
                "zero-c_out",
                "zero-kernel",
                "x-rank",
                "w-rank",
                "bias",
            )
        )
    )
    x = list(case.cf_x_shape())
    c_axis = max(0, len(x) - case.nd - 1)  # (an earlier mutation may have changed the rank)
    if kind == "channels":
        x[c_axis] += draw(st.sampled_from((1, -1)) if x[c_axis] > 1 else st.just(1))
        case.x_shape = tuple(x)
        return ("channel-mismatch", "input has", V)
    if kind == "zero-spatial":
        x[len(x) - 1 - draw(st.integers(0, min(case.nd, len(x)) - 1))] = 0
        case.x_shape = tuple(x)
        return ("zero-spatial", "input of shape", V)
    if kind == "zero-c_in":
        case.c_in, case.groups = 0, 1
        case.kwargs["groups"] = 1
        case.bias = False
        return ("zero-c_in", "weight of shape", V)
    if kind == "zero-c_out":
        case.c_out_g = 0
        case.bias = False
        return ("zero-c_out", "weight of shape", V)
    if kind == "zero-kernel":
        k = list(case.kernel)
        k[draw(st.integers(0, case.nd - 1))] = 0
        case.kernel = tuple(k)
        return ("zero-kernel", "kernel size", V)
    if kind == "x-rank":
        # rank nd (one short of unbatched) or nd + 3 (one more than batched)
        if draw(st.booleans()):
            case.x_shape = tuple(x[-case.nd :])
        else:
            case.x_shape = (1,) * (case.nd + 3 - len(x)) + tuple(x)
        return ("input-rank", "input of shape", V)
    if kind == "w-rank":
        if case.generic:  # the generic function infers the axes from the weight: no rule
            case.x_shape = (1,) * (case.nd + 3 - len(x)) + tuple(x)
            return ("input-rank", "input of shape", V)
        w = case.cf_w_shape()
        case.w_shape = w + (1,) if draw(st.booleans()) or case.nd == 1 else w[:-1]
        return ("weight-rank", "weight of shape", V)
    case.bias = True
    c_out = case.c_out_g * case.groups
    case.b_shape = draw(st.sampled_from(((c_out + 1,), (), (c_out, 1), (1, c_out), (0,))))
    return ("bias-shape", "bias of shape", V)


def _bad_dtype(draw, case: Case):
    which = draw(st.sampled_from(("x", "w", "both", "bias")))
    dt = draw(st.sampled_from(BAD_DTYPES))
    if which == "bias":
        case.bias = True
        case.b_dtype = dt
        return ("int-bias", "bias has dtype", T)
    if which in ("x", "both"):
        case.x_dtype = dt
    if which in ("w", "both"):
        case.w_dtype = dt
    return ("int-dtype", "has dtype", T)


def _complex_bias(draw, case: Case):
    if np.issubdtype(jnp.result_type(case.x_dtype, case.w_dtype), np.complexfloating):
        case.x_dtype = case.w_dtype = np.float32
    case.bias = True
    case.b_dtype = np.complex64
    return ("complex-bias-real", "bias has complex dtype", T)


def _none_array(draw, case: Case):
    if draw(st.booleans()):
        case.x_none = True
        return ("none-array", "input=None", T)
    case.w_none = True
    return ("none-array", "weight=None", T)


def _own_rules(draw, case: Case):
    """Rules of the extensions PyTorch's functions do not have."""
    kind = draw(
        st.sampled_from(
            (
                "pair",
                "negative-pair",
                "bad-in-pair",
                "os-unreachable",
                "os-length",
                "os-kind",
                "os+opad",
                "cl-kind",
            )
        )
    )
    if kind in ("pair", "negative-pair", "bad-in-pair"):
        case.padding_form = "pairs"
        pads = [list(p) for p in case.pads]
        ax = draw(st.integers(0, case.nd - 1))
        if kind == "pair":
            pads[ax] = pads[ax] + [0]
            case.kwargs["padding"] = tuple(tuple(p) for p in pads)
            return ("pair-not-pair", "is not a pair", V)
        if kind == "negative-pair":
            pads[ax][draw(st.integers(0, 1))] = -1
            case.pads = tuple(tuple(p) for p in pads)
            case.kwargs["padding"] = case.pads
            return ("negative-pair", "padding=", V)
        pads[ax][draw(st.integers(0, 1))] = draw(st.sampled_from((1.0, None, "1", True)))
        case.kwargs["padding"] = tuple(tuple(p) for p in pads)
        return ("bad-in-pair", "padding=", T)
    if kind == "cl-kind":
        case.kwargs["channels_last"] = draw(st.sampled_from((1, 0, "yes", None)))
        return ("channels_last-bad-type", "channels_last=", T)
    # output_size rules
    sizes = tuple(
        _out_len(L, k, s, d, lo, hi, 0)
        for L, k, s, d, (lo, hi) in zip(
            case.spatial, case.kernel, case.stride, case.dilation, case.pads, strict=True
        )
    )
    case.opad = (0,) * case.nd
    case.kwargs["output_padding"] = 0
    if kind == "os-unreachable":
        ax = draw(st.integers(0, case.nd - 1))
        want = list(sizes)
        want[ax] += draw(st.sampled_from((-1, case.stride[ax], case.stride[ax] + 3)))
        case.output_size = case.output_size_spatial = tuple(want)
        case.kwargs["output_size"] = case.output_size
        return ("output_size-unreachable", "is not reachable", V)
    if kind == "os-length":
        in_ndim = len(case.cf_x_shape())  # neither nd nor the input's rank
        case.output_size = sizes + (1,) * (in_ndim - case.nd + 1) if draw(st.booleans()) else ()
        case.kwargs["output_size"] = case.output_size
        return ("output_size-length", "output_size=", V)
    if kind == "os-kind":
        case.output_size = draw(st.sampled_from((float(sizes[0]), "9", True)))
        case.kwargs["output_size"] = case.output_size
        return ("output_size-bad-type", "output_size=", T)
    case.output_size = case.output_size_spatial = sizes
    case.kwargs["output_size"] = sizes
    ax = draw(st.integers(0, case.nd - 1))
    opad = [0] * case.nd
    opad[ax] = 1
    case.opad = tuple(opad)
    case.kwargs["output_padding"] = tuple(opad)
    return ("output_size+output_padding", "cannot be combined with output_size", V)


MUTATIONS = (
    _bad_kind,
    _array_setting,
    _bad_value,
    _bad_value,
    _bad_length,
    _bad_shape,
    _bad_shape,
    _bad_dtype,
    _complex_bias,
    _none_array,
    _own_rules,
)


# ------------------------------------------------------------------------ running both sides


def _data(case: Case, shape, dtype, salt: int):
    """Quarter-grid values in [-2, 2]: exact in every float dtype."""
    rng = np.random.default_rng(case.seed * 7 + salt)
    v = rng.integers(-8, 9, size=shape) / 4
    if np.issubdtype(np.dtype(dtype), np.complexfloating):
        v = v + 1j * rng.integers(-8, 9, size=shape) / 4
    if case.special and salt == 0 and v.size:
        flat = v.reshape(-1)
        idx = rng.choice(flat.size, size=min(2, flat.size), replace=False)
        flat[idx] = rng.choice([np.inf, -np.inf, np.nan], size=idx.size)
    if np.dtype(dtype) == np.bool_:
        return v > 0
    if np.issubdtype(np.dtype(dtype), np.integer):
        return (v * 4).astype(dtype) if np.dtype(dtype).kind == "i" else np.abs(v * 4).astype(dtype)
    return v.astype(dtype)


def _to_layout(a: np.ndarray, case: Case) -> np.ndarray:
    """Channels-first data -> the layout passed to convt_jax."""
    if case.channels_last and a.ndim >= 2:
        return np.moveaxis(a, max(0, a.ndim - case.nd - 1), -1)
    return a


def arrays(case: Case):
    x = None if case.x_none else _data(case, case.cf_x_shape(), case.x_dtype, 0)
    w = None if case.w_none else _data(case, case.cf_w_shape(), case.w_dtype, 1)
    b = _data(case, case.b_shape_(), case.b_dtype, 2) if case.bias else None
    return x, w, b


def _call_ours(case: Case, x, w, b, *, trace_only: bool):
    fn = ct.conv_transpose if case.generic else NAMED_FN[case.nd]
    xin = None if x is None else _to_layout(x, case)
    kw = dict(case.kwargs)
    if not trace_only:
        try:
            return fn(xin, w, b, **kw, method=case.method)
        except ValueError as e:
            # An explicit method that cannot compute a (valid) call says so, never switching
            # silently to another; the numbers are then checked with "auto".
            if not str(e).startswith(f"method={case.method!r} cannot compute this configuration: "):
                raise
            event(f"method={case.method} cannot compute it")
        return fn(xin, w, b, **kw, method="auto")

    def f(x, w, b):
        return fn(x, w, b, **kw)

    return jax.eval_shape(f, xin, w, b)


def _torch_tensor(a, dtype=None):
    if a is None:
        return None
    dt = np.dtype(dtype or a.dtype)
    if dt == jnp.bfloat16:
        return torch.from_numpy(np.asarray(a, np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(a, dtype=dt, copy=True))  # (keeps 0-d arrays 0-d)


def _is_float(dtype) -> bool:
    return np.issubdtype(np.dtype(dtype), np.inexact) or np.dtype(dtype) == jnp.bfloat16


def _reference(case: Case, x, w, b, *, compute=None):
    """PyTorch's result in our layout, or the exception PyTorch raises.

    ``compute``: a dtype to compute in (float64 / complex128 for the value
    reference); by default the inputs' own dtypes (PyTorch's verdict).
    """
    tfn = TORCH_FN[case.nd]
    dt = compute
    if (
        dt is None
        and x is not None
        and w is not None
        and x.dtype != w.dtype
        and all(_is_float(a.dtype) for a in (x, w))
    ):
        dt = jnp.result_type(x.dtype, w.dtype)  # mixed float dtypes: designed extension
    tx, tw = _torch_tensor(x, dt), _torch_tensor(w, dt)
    bdt = None
    if b is not None and tx is not None and tw is not None and _is_float(b.dtype):
        # The bias is cast to the result dtype (designed: PyTorch's CPU kernels disagree,
        # the slow path casts, the oneDNN path rejects a bias of another dtype).
        rt = np.dtype(compute or (dt or x.dtype))
        if not (
            np.issubdtype(b.dtype, np.complexfloating) and not np.issubdtype(rt, np.complexfloating)
        ):
            bdt = rt
    tb = _torch_tensor(b, bdt)
    kw = {k: case.kwargs[k] for k in ("stride", "dilation", "groups", "output_padding")}
    if case.output_size is not None:
        # PyTorch's verdict on the other settings as spelled (output_padding included: the
        # layer would ignore it; the function refuses a nonzero one, see DIVERGENCES).
        tfn(tx, tw, tb, padding=0, **kw)
        opad = []
        for L, k, s, d, (lo, hi), want in zip(
            case.spatial,
            case.kernel,
            case.stride,
            case.dilation,
            case.pads,
            case.output_size_spatial,
            strict=True,
        ):
            smallest = _out_len(L, k, s, d, lo, hi, 0)
            if not smallest <= want < smallest + s:  # torch's _output_padding range
                raise ValueError("output_size unreachable")
            opad.append(want - smallest)
        kw["output_padding"] = tuple(opad)
    if case.padding_form in ("int", "tuple"):
        y = tfn(tx, tw, tb, padding=case.kwargs["padding"], **kw)
    else:
        # Extension: PyTorch's unpadded result (its verdict on every other setting),
        # then the crop (lo, hi) of the definition; a negative hi zero-extends.
        pads = case.pads
        tfn(tx, tw, tb, padding=0, **kw)  # PyTorch's verdict on everything else
        y = tfn(tx, tw, None, padding=0, **kw)
        lead = y.shape[: y.ndim - case.nd]
        for ax, (lo, hi) in enumerate(pads):
            axis = len(lead) + ax
            if y.shape[axis] - lo - hi < 1:
                raise ValueError("output spatial size < 1")
            if hi < 0:
                y = torch.cat(
                    [y, torch.zeros(*y.shape[:axis], -hi, *y.shape[axis + 1 :], dtype=y.dtype)],
                    axis,
                )
                hi = 0
            y = y.narrow(axis, lo, y.shape[axis] - lo - hi)
        if tb is not None:
            y = y + tb.to(y.dtype).reshape((-1,) + (1,) * case.nd)
    y = y.numpy() if y.dtype != torch.bfloat16 else y.float().numpy().astype(jnp.bfloat16)
    if case.channels_last:
        y = np.moveaxis(y, y.ndim - case.nd - 1, -1)
    return y


def _outcome(thunk):
    try:
        return thunk(), None
    except Exception as e:  # noqa: BLE001 - the point is to see every kind
        return None, e


def _describe(case: Case) -> str:
    return (
        f"labels={case.labels} nd={case.nd} generic={case.generic} "
        f"x={case.cf_x_shape()} {np.dtype(case.x_dtype).name} w={case.cf_w_shape()} "
        f"{np.dtype(case.w_dtype).name} bias={case.b_shape_() if case.bias else None} "
        f"{np.dtype(case.b_dtype).name if case.bias else ''} kwargs={case.kwargs} "
        f"channels_last={case.channels_last} method={case.method}"
    )


def _accepted_by_both(case: Case) -> bool:
    x, w, b = arrays(case)
    return (
        _outcome(lambda: _reference(case, x, w, b))[1] is None
        and _outcome(lambda: _call_ours(case, x, w, b, trace_only=True))[1] is None
    )


def check_case(case: Case, *, values: bool) -> None:
    note(_describe(case))
    for label in case.labels:
        event(label[0])
    labels = {lab for lab, _, _ in case.labels}
    x, w, b = arrays(case)
    ours, err = _outcome(lambda: _call_ours(case, x, w, b, trace_only=not values))
    ref, terr = _outcome(lambda: _reference(case, x, w, b))
    if labels & OWN_RULES:  # a rule of an extension: no PyTorch verdict, ours is "reject"
        ref, terr = None, ValueError("own rule")
    if err is not None:
        # Only ValueError / TypeError, exactly (not an XLA error, an assert or a subclass).
        assert type(err) in (ValueError, TypeError), f"{type(err).__name__}: {err}"
        msg = str(err)
        assert "\n" not in msg and msg, msg
    if case.mutation is not None and _accepted_by_both(case._base):
        # A lone mutation of a case PyTorch accepts: its own exception and message.
        label, arg, exc = case.mutation
        assert err is not None, f"{label}: convt_jax accepted it"
        assert type(err) is exc, f"{label}: expected {exc.__name__}, got {err!r}"
        assert arg in str(err), f"{label}: message does not name {arg!r}: {err}"
        event("lone mutation of a valid case: exact exception and message checked")
    if terr is None:  # PyTorch (or its translation for an extension) accepts
        if err is not None:
            documented = labels & set(DIVERGENCES)
            if x is not None and x.ndim == case.nd + 2 and x.shape[0] == 0:
                documented.add("empty-batch")
            spatial_axes = range(
                ref.ndim - case.nd - (1 if case.channels_last else 0),
                ref.ndim - (1 if case.channels_last else 0),
            )
            if any(ref.shape[a] == 0 for a in spatial_axes) or "dilation<1" in labels:
                documented.add("onednn-path")
            assert documented, (
                f"PyTorch accepts, convt_jax rejects (undocumented): {err!r}; {_describe(case)}"
            )
            assert type(err) in {DIVERGENCES[d][0] for d in documented}, err
            event("divergence: " + ",".join(sorted(documented)))
            return
        want_dtype = np.dtype(ref.dtype)
        assert tuple(ours.shape) == ref.shape, (ours.shape, ref.shape)
        assert np.dtype(ours.dtype) == want_dtype, (ours.dtype, want_dtype)
        if values:
            _compare_values(case, x, w, b, np.asarray(ours))
        event("accepted")
        for feature, on in [
            ("N=0", 0 in (x.shape[:1] if x.ndim == case.nd + 2 else ())),
            ("unbatched", x.ndim == case.nd + 1),
            (f"padding {case.padding_form}", True),
            ("channels_last", case.channels_last),
            ("output_size", case.output_size is not None),
            ("mixed dtypes", x.dtype != w.dtype),
            (f"dtype {np.dtype(ours.dtype).name}", True),
            (f"method {case.method}", values),
            ("huge stride/dilation", max(case.stride + case.dilation) > 3),
            ("kernel > input", any(k > n for k, n in zip(case.kernel, case.spatial, strict=True))),
        ]:
            if on:
                event("accepted: " + feature)
    else:
        assert err is not None, (
            f"PyTorch rejects ({type(terr).__name__}: "
            f"{str(terr)[:200]}), convt_jax accepts; {_describe(case)}"
        )
        event("rejected")


def _compare_values(case: Case, x, w, b, got: np.ndarray) -> None:
    if got.size == 0:
        return
    rt = np.dtype(got.dtype)
    wide = np.complex128 if np.issubdtype(rt, np.complexfloating) else np.float64
    want = _reference(case, x, w, b, compute=wide)
    absx = None if x is None else np.abs(x.astype(wide))
    with np.errstate(invalid="ignore"):
        bound = _reference(
            case,
            np.nan_to_num(absx, nan=0, posinf=0),
            np.abs(w.astype(wide)),
            None if b is None else np.abs(b.astype(wide)),
            compute=np.float64,
        )
    eps = float(jnp.finfo(rt).eps)
    if jax.default_backend() != "cpu" and rt in (np.float32, np.complex64):
        eps = max(eps, 2.0**-10)  # float32 convolutions may run in TF32 on GPU
    got = got.astype(wide)
    finite = np.isfinite(want)
    inf = np.isinf(want)
    groups = int(case.kwargs["groups"])
    if case.method == "dilated" and not (groups > 1 and case.c_in == groups):
        # Non-finite values propagate as in PyTorch: same positions, same values.
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg="nan positions")
        np.testing.assert_array_equal(got[inf], want[inf], err_msg="inf values")
    else:
        # KNOWN ISSUES (test_robustness.py::test_nonfinite_*): the zero-free lowerings
        # multiply zero-padded phase taps, and XLA:CPU's grouped convolution with one input
        # channel per group multiplies other groups' inputs by zeros, so a non-finite input
        # can also make other outputs NaN.  Everything PyTorch makes non-finite is
        # non-finite here too, and every finite output of ours is PyTorch's.
        assert not np.isfinite(got[~finite]).any(), "a non-finite value was lost"
        np.testing.assert_array_equal(np.isnan(got[np.isnan(want)]), True)
        keep = inf & ~np.isnan(got)
        np.testing.assert_array_equal(got[keep], want[keep], err_msg="inf values")
        if (finite & ~np.isfinite(got)).any():
            event("extra non-finite outputs (known issues, see above)")
        finite = finite & np.isfinite(got)
    # Rounding: each output is a sum of products of exactly representable
    # inputs; allow a few ulps of the sum of magnitudes.
    with np.errstate(invalid="ignore"):
        err = np.abs(got - want)[finite]
    tol = 4 * eps * bound[finite]
    assert np.all(err <= tol), (
        f"max error {err.max()} > bound (worst excess {(err - tol).max()}); dtype {rt}"
    )


# --------------------------------------------------------------------------------- the tests


@pytest.fixture(autouse=True, scope="module")
def _fast_and_quiet():
    """One torch thread (2 shared cores: a pool makes a 0.1 ms call take 25 ms) and no
    traceback filtering (jax rewrites every rejected call's traceback: 7 ms each)."""
    threads, filtering = torch.get_num_threads(), jax.config.jax_traceback_filtering
    torch.set_num_threads(1)
    jax.config.update("jax_traceback_filtering", "off")
    yield
    jax.config.update("jax_traceback_filtering", filtering)
    torch.set_num_threads(threads)


@st.composite
def cases(draw, max_mutations: int = 2, values: bool = False) -> Case:
    data_base = draw(base_cases(values=values))
    base = dataclasses.replace(data_base, kwargs=dict(data_base.kwargs), labels=[])
    case = dataclasses.replace(data_base, kwargs=dict(data_base.kwargs), labels=[])
    k = draw(st.sampled_from([0, 0, 1, 1, 1, 2] if max_mutations >= 2 else [0, 0, 0, 1]))
    for _ in range(k):
        case.labels.append(draw(st.sampled_from(MUTATIONS))(draw, case))
    if len(case.labels) == 1:
        case.mutation = case.labels[0]
    case._base = base  # type: ignore[attr-defined]
    return case


@pytest.mark.slow
@settings(max_examples=N_VERDICTS)
@given(case=cases(max_mutations=2, values=False))
def test_fuzz_verdicts(case):
    """Validation, shape and dtype against PyTorch (trace only, no compile)."""
    check_case(case, values=False)


@settings(max_examples=N_VALUES)
@given(case=cases(max_mutations=1, values=True))
def test_fuzz_values(case):
    """The numbers too: every method, eager (compiled), against PyTorch in float64."""
    check_case(case, values=True)


_X, _W = np.ones((1, 2, 3, 3), np.float32), np.ones((2, 3, 2, 2), np.float32)
_LAYER = torch.nn.ConvTranspose1d(2, 3, 3, stride=2, output_padding=1)
# One instance of each divergence: (PyTorch's call, convt_jax's call with the same arguments).
DIVERGENCE_EXAMPLES = {
    "int-dtype": (
        lambda: F.conv_transpose2d(
            torch.ones(1, 2, 3, 3, dtype=torch.int64), torch.ones(2, 3, 2, 2, dtype=torch.int64)
        ),
        lambda: ct.conv_transpose2d(_X.astype(np.int64), _W.astype(np.int64)),
    ),
    "int-bias": (
        lambda: F.conv_transpose2d(
            torch.ones(1, 2, 3, 3), torch.ones(2, 3, 2, 2), torch.ones(3, dtype=torch.int32)
        ),
        lambda: ct.conv_transpose2d(_X, _W, np.ones(3, np.int32)),
    ),
    "one-element-tuple": (
        lambda: F.conv_transpose2d(torch.ones(1, 2, 3, 3), torch.ones(2, 3, 2, 2), stride=(2,)),
        lambda: ct.conv_transpose2d(_X, _W, stride=(2,)),
    ),
    "bool-in-tuple": (
        lambda: F.conv_transpose2d(
            torch.ones(1, 2, 3, 3), torch.ones(2, 3, 2, 2), dilation=(1, True)
        ),
        lambda: ct.conv_transpose2d(_X, _W, dilation=(1, True)),
    ),
    "empty-batch": (
        lambda: F.conv_transpose1d(torch.ones(0, 2, 3), torch.ones(2, 3, 2), dilation=0),
        lambda: ct.conv_transpose1d(np.ones((0, 2, 3)), np.ones((2, 3, 2)), dilation=0),
    ),
    "onednn-path": (
        lambda: (
            F.conv_transpose1d(
                torch.ones(2, 1, 1), torch.ones(1, 1, 2), padding=1
            ),  # output size 0
            F.conv_transpose1d(torch.ones(2, 1, 3), torch.ones(1, 1, 1), dilation=0),
        ),  # dilation 0, one tap
        lambda: ct.conv_transpose1d(np.ones((2, 1, 1)), np.ones((1, 1, 2)), padding=1),
    ),
    "array-setting": (
        lambda: F.conv_transpose2d(
            torch.ones(1, 2, 3, 3), torch.ones(2, 3, 2, 2), groups=np.array(1)
        ),
        lambda: ct.conv_transpose2d(_X, _W, groups=np.array(1)),
    ),
    "output_size+output_padding": (
        lambda: _LAYER(torch.ones(1, 2, 4), output_size=[9]),
        lambda: ct.conv_transpose1d(
            np.ones((1, 2, 4)), np.ones((2, 3, 3)), stride=2, output_padding=1, output_size=9
        ),
    ),
}


@pytest.mark.parametrize("key", sorted(DIVERGENCES))
def test_divergences_are_real_and_raise_the_documented_error(key):
    """PyTorch accepts each documented divergence; convt_jax raises the listed error."""
    torch_call, ours = DIVERGENCE_EXAMPLES[key]
    torch_call()
    with pytest.raises(DIVERGENCES[key][0]) as info:
        ours()
    assert type(info.value) is DIVERGENCES[key][0]


def test_every_divergence_has_an_example():
    assert set(DIVERGENCE_EXAMPLES) == set(DIVERGENCES)
