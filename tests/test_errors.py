"""Every bad-argument rule, one table row per bad argument.

Each row is ``(description, function, call kwargs, exception type, message
regex, torch_rejects)``.  For every row the test checks that

* the eager call raises that exception with a message that names the
  argument, the value received and the rule (the regex), on one line and
  without internal names;
* the same call with its arrays traced under ``jax.jit`` raises the same
  error at trace time (nothing is lowered or compiled);
* where ``torch_rejects`` is set, ``torch.nn.functional.conv_transpose{1,2,3}d``
  (or ``torch.nn.ConvTranspose{1,2,3}d.forward(x, output_size)``) rejects the
  same call too.  Rows marked ``torch_rejects=False`` are this library's
  extensions (settings PyTorch has no notion of, or that PyTorch accepts);
* where the row only involves shapes and shape settings,
  ``conv_transpose_output_shape`` raises the same error.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import convt_jax as ct


class Traced(NamedTuple):
    """A setting that the jitted variant passes as a traced argument.

    Eagerly it is passed as a concrete ``jax.Array``; both must be rejected
    with a TypeError saying settings are static.
    """

    value: Any


class Row(NamedTuple):
    desc: str
    fn: str
    kwargs: dict
    exc: type
    match: str
    torch: bool


def m(*parts: str) -> str:
    """Regex: the literal fragments in order, anything between them."""
    return ".*".join(re.escape(p) for p in parts)


def arr(*shape: int, dtype: Any = np.float64) -> np.ndarray:
    return np.ones(shape, dtype)


X1, W1 = arr(1, 2, 4), arr(2, 3, 3)
X2, W2 = arr(1, 2, 4, 4), arr(2, 3, 3, 3)
X3, W3 = arr(1, 2, 3, 3, 3), arr(2, 3, 2, 2, 2)
D1 = dict(input=X1, weight=W1)
D2 = dict(input=X2, weight=W2)
D3 = dict(input=X3, weight=W3)
STATIC = "must be a static Python int"
PAD_RULE_2D = "must be an int, a tuple of 2 ints, a tuple of 2 (lo, hi) pairs, 'valid' or 'same'"
DTYPE_RULE = "needs a floating or complex dtype"


def row(desc, fn, base, exc, match, *, torch=True, **kwargs):
    fn = {
        "1d": "conv_transpose1d",
        "2d": "conv_transpose2d",
        "3d": "conv_transpose3d",
        "nd": "conv_transpose",
        # the regular convolution (SPEC §8): weight (C_out, C_in // groups, *kernel)
        "c1d": "conv1d",
        "c2d": "conv2d",
        "c3d": "conv3d",
        "cnd": "conv",
    }[fn]
    return Row(desc, fn, {**base, **kwargs}, exc, match, torch)


V, T = ValueError, TypeError

ROWS = [
    # --- output_padding < max(stride, dilation) on each axis -------------------
    row(
        "output_padding == stride",
        "2d",
        D2,
        V,
        m(
            "output_padding=(1, 1) must be smaller than stride=(1, 1) or dilation=(1, 1) "
            "on each axis"
        ),
        stride=1,
        output_padding=1,
    ),
    row(
        "output_padding >= max(stride, dilation) on one axis",
        "2d",
        D2,
        V,
        m("output_padding=(2, 2) must be smaller than stride=(2, 2) or dilation=(1, 3)"),
        stride=2,
        dilation=(1, 3),
        output_padding=2,
    ),
    row(
        "output_padding > stride 1d",
        "1d",
        D1,
        V,
        m("output_padding=(3,) must be smaller than stride=(2,) or dilation=(1,)"),
        stride=2,
        output_padding=3,
    ),
    row(
        "output_padding == dilation > stride 3d",
        "3d",
        D3,
        V,
        m("output_padding=(0, 2, 0) must be smaller than stride=(1, 1, 1) or dilation=(2, 2, 2)"),
        dilation=2,
        output_padding=(0, 2, 0),
    ),
    # --- stride >= 1 -------------------------------------------------------------
    row("stride 0", "2d", D2, V, m("stride=0 must be >= 1 on every axis"), stride=0),
    row(
        "stride negative on one axis", "2d", D2, V, m("stride=(1, -1) must be >= 1"), stride=(1, -1)
    ),
    row(
        "stride 0 on one axis 3d", "3d", D3, V, m("stride=(2, 0, 2) must be >= 1"), stride=(2, 0, 2)
    ),
    # --- dilation >= 1 -----------------------------------------------------------
    row("dilation 0", "2d", D2, V, m("dilation=0 must be >= 1 on every axis"), dilation=0),
    row("dilation 0 on one axis 1d", "1d", D1, V, m("dilation=(0,) must be >= 1"), dilation=(0,)),
    # --- padding >= 0 --------------------------------------------------------------
    row("padding negative", "2d", D2, V, m("padding=-1 must be >= 0 on every axis"), padding=-1),
    row(
        "padding negative on one axis",
        "2d",
        D2,
        V,
        m("padding=(0, -2) must be >= 0"),
        padding=(0, -2),
    ),
    row(
        "padding negative hi in (lo, hi) pair",
        "2d",
        D2,
        V,
        m("padding=((0, 0), (1, -1)) must be >= 0"),
        padding=((0, 0), (1, -1)),
        torch=False,
    ),
    row(
        "padding negative lo in (lo, hi) pair 1d",
        "1d",
        D1,
        V,
        m("padding=((-1, 0),) must be >= 0"),
        padding=((-1, 0),),
        torch=False,
    ),
    # --- output_padding >= 0 ------------------------------------------------------
    row(
        "output_padding negative",
        "2d",
        D2,
        V,
        m("output_padding=-1 must be >= 0 on every axis"),
        output_padding=-1,
    ),
    row(
        "output_padding negative on one axis",
        "1d",
        D1,
        V,
        m("output_padding=(-1,) must be >= 0"),
        stride=2,
        output_padding=(-1,),
    ),
    # --- groups >= 1, divides C_in -----------------------------------------------
    row("groups 0", "2d", D2, V, m("groups=0 must be >= 1"), groups=0),
    row("groups negative", "1d", D1, V, m("groups=-2 must be >= 1"), groups=-2),
    row(
        "groups does not divide C_in",
        "2d",
        dict(input=arr(1, 4, 4, 4), weight=arr(4, 1, 3, 3)),
        V,
        m("groups=3 must divide the 4 input channels"),
        groups=3,
    ),
    row(
        "groups larger than C_in",
        "1d",
        D1,
        V,
        m("groups=4 must divide the 2 input channels"),
        groups=4,
    ),
    # --- input channels == weight.shape[0] -----------------------------------------
    row(
        "input channels != weight.shape[0]",
        "2d",
        dict(input=arr(1, 3, 4, 4), weight=W2),
        V,
        m("input has 3 channels", "weight of shape (2, 3, 3, 3)", "weight.shape[0]=2"),
    ),
    row(
        "unbatched input channels != weight.shape[0]",
        "1d",
        dict(input=arr(3, 4), weight=W1),
        V,
        m("input has 3 channels", "weight.shape[0]=2"),
    ),
    row(
        "channels_last input channels != weight.shape[0]",
        "2d",
        dict(input=arr(1, 4, 4, 3), weight=W2),
        V,
        m("input has 3 channels (shape (1, 4, 4, 3), channels_last=True)", "weight.shape[0]=2"),
        channels_last=True,
        torch=False,
    ),
    # --- tuple lengths == number of spatial axes --------------------------------------
    row(
        "stride tuple too long",
        "2d",
        D2,
        V,
        m("stride=(1, 1, 1) must be an int or a tuple of 2 ints", "got 3 values"),
        stride=(1, 1, 1),
    ),
    row(
        "dilation tuple too short",
        "2d",
        D2,
        V,
        m("dilation=(1,) must be an int or a tuple of 2 ints", "got 1 values"),
        dilation=(1,),
        torch=False,
    ),  # PyTorch broadcasts a one-element list; a length mismatch here
    row(
        "output_padding tuple too long",
        "2d",
        D2,
        V,
        m("output_padding=(0, 0, 0) must be an int or a tuple of 2 ints", "got 3 values"),
        output_padding=(0, 0, 0),
    ),
    row(
        "padding tuple too long",
        "2d",
        D2,
        V,
        m("padding=(1, 1, 1) " + PAD_RULE_2D, "got 3 entries for 2 spatial axes"),
        padding=(1, 1, 1),
    ),
    row(
        "1-d padding given as a bare (lo, hi) pair",
        "1d",
        D1,
        V,
        m("padding=(1, 2) must be", "got 2 entries for 1 spatial axes", "write padding=((1, 2),)"),
        padding=(1, 2),
    ),
    row(
        "stride list too short 3d",
        "3d",
        D3,
        V,
        m("stride=[2, 2] must be an int or a tuple of 3 ints", "got 2 values"),
        stride=[2, 2],
    ),
    row(
        "padding entry not a pair",
        "2d",
        D2,
        V,
        m("padding=((1, 2, 3), (0, 0)) " + PAD_RULE_2D, "(1, 2, 3) is not a pair"),
        padding=((1, 2, 3), (0, 0)),
        torch=False,
    ),
    row(
        "4-d stride tuple too short",
        "nd",
        dict(input=arr(1, 2, 3, 3, 3, 3), weight=arr(2, 1, 2, 2, 2, 2)),
        V,
        m("stride=(1, 1, 1) must be an int or a tuple of 4 ints"),
        stride=(1, 1, 1),
        torch=False,
    ),
    # --- input rank vs weight rank ------------------------------------------------------
    row(
        "input rank 5 with 2-d weight",
        "nd",
        dict(input=arr(1, 2, 4, 4, 4), weight=W2),
        V,
        m(
            "input of shape (1, 2, 4, 4, 4) must have rank 4 (batched) or 3 (unbatched)",
            "weight of shape (2, 3, 3, 3) (2 spatial axes)",
        ),
    ),
    row(
        "input rank 1 with 1-d weight",
        "nd",
        dict(input=arr(4), weight=W1),
        V,
        m("input of shape (4,) must have rank 3 (batched) or 2 (unbatched)"),
    ),
    row(
        "conv_transpose2d with rank-2 input",
        "2d",
        dict(input=arr(2, 4), weight=W2),
        V,
        m("input of shape (2, 4) must have rank 4 (batched) or 3 (unbatched)"),
    ),
    row(
        "conv_transpose3d with rank-6 input",
        "3d",
        dict(input=arr(1, 1, 2, 3, 3, 3), weight=W3),
        V,
        m("input of shape (1, 1, 2, 3, 3, 3) must have rank 5 (batched) or 4 (unbatched)"),
    ),
    row(
        "conv_transpose with rank-2 weight",
        "nd",
        dict(input=X1, weight=arr(2, 3)),
        V,
        m("weight of shape (2, 3) must have rank >= 3", "(C_in, C_out // groups, *kernel)"),
        torch=False,
    ),
    row(
        "conv_transpose1d with rank-4 weight",
        "1d",
        dict(input=X1, weight=W2),
        V,
        m("weight of shape (2, 3, 3, 3) must have rank 3 for conv_transpose1d"),
    ),
    row(
        "conv_transpose2d with rank-3 weight",
        "2d",
        dict(input=X2, weight=W1),
        V,
        m("weight of shape (2, 3, 3) must have rank 4 for conv_transpose2d"),
    ),
    row(
        "conv_transpose3d with rank-4 weight",
        "3d",
        dict(input=X3, weight=W2),
        V,
        m("weight of shape (2, 3, 3, 3) must have rank 5 for conv_transpose3d"),
    ),
    # --- bias shape (C_out,) -----------------------------------------------------------
    row(
        "bias too long",
        "2d",
        D2,
        V,
        m("bias of shape (4,) must have shape (3,)", "C_out = weight.shape[1] * groups = 3 * 1"),
        bias=arr(4),
    ),
    row(
        "bias of C_out // groups with groups",
        "2d",
        dict(input=arr(1, 4, 4, 4), weight=arr(4, 3, 3, 3)),
        V,
        m("bias of shape (3,) must have shape (6,)", "= 3 * 2"),
        groups=2,
        bias=arr(3),
    ),
    row("bias 2-d", "1d", D1, V, m("bias of shape (3, 1) must have shape (3,)"), bias=arr(3, 1)),
    row("bias scalar", "3d", D3, V, m("bias of shape () must have shape (3,)"), bias=arr()),
    # --- output spatial size >= 1 ----------------------------------------------------------
    row(
        "output spatial size negative",
        "2d",
        dict(input=arr(1, 2, 1, 1), weight=arr(2, 3, 1, 1)),
        V,
        m(
            "output spatial size (-1, -1) must be >= 1 on every axis",
            "input spatial size (1, 1)",
            "padding ((1, 1), (1, 1))",
        ),
        padding=1,
    ),
    row(
        "output spatial size 0",
        "1d",
        dict(input=arr(1, 2, 2), weight=arr(2, 3, 1)),
        V,
        m("output spatial size (0,) must be >= 1"),
        padding=1,
    ),
    # --- empty input / weight axes (PyTorch rejects these too) -----------------------------
    row(
        "input spatial size 0",
        "2d",
        dict(input=arr(1, 2, 0, 4), weight=W2),
        V,
        m("input of shape (1, 2, 0, 4) must have every spatial size >= 1"),
    ),
    row(
        "weight with C_out // groups == 0",
        "2d",
        dict(input=X2, weight=arr(2, 0, 3, 3)),
        V,
        m("weight of shape (2, 0, 3, 3) must have", "C_out // groups >= 1"),
    ),
    row(
        "weight with C_in == 0",
        "1d",
        dict(input=arr(1, 0, 4), weight=arr(0, 3, 3)),
        V,
        m("weight of shape (0, 3, 3) must have weight.shape[0] = C_in >= 1"),
    ),
    # --- kernel size >= 1 ----------------------------------------------------------------
    row(
        "kernel size 0",
        "2d",
        dict(input=X2, weight=arr(2, 3, 0, 3)),
        V,
        m("weight of shape (2, 3, 0, 3) must have every kernel size >= 1"),
    ),
    row(
        "kernel size 0 on last axis 3d",
        "3d",
        dict(input=X3, weight=arr(2, 3, 2, 2, 0)),
        V,
        m("weight of shape (2, 3, 2, 2, 0) must have every kernel size >= 1"),
    ),
    # --- output_size ------------------------------------------------------------------------
    row(
        "output_size above reachable",
        "1d",
        D1,
        V,
        m(
            "output_size=12 is not reachable: spatial axis 0 can be 9..10",
            "reachable sizes per axis: 9..10",
        ),
        stride=2,
        output_size=12,
    ),
    row(
        "output_size below reachable on one axis",
        "2d",
        D2,
        V,
        m(
            "output_size=(9, 8) is not reachable: spatial axis 1 can be 9..10",
            "reachable sizes per axis: 9..10, 9..10",
        ),
        stride=2,
        output_size=(9, 8),
    ),
    row(
        "output_size full shape unreachable",
        "2d",
        D2,
        V,
        m("output_size=(1, 3, 9, 11) is not reachable: spatial axis 1 can be 9..10"),
        stride=2,
        output_size=(1, 3, 9, 11),
    ),
    row(
        "output_size with anisotropic reachable ranges",
        "2d",
        D2,
        V,
        m(
            "output_size=(7, 10) is not reachable: spatial axis 0 can be 6..6",
            "reachable sizes per axis: 6..6, 10..12",
        ),
        stride=(1, 3),
        padding=(0, 1),
        output_size=(7, 10),
    ),
    row(
        "output_size wrong length",
        "2d",
        D2,
        V,
        m("output_size=(9, 9, 9) must give 2 spatial sizes", "got 3"),
        stride=2,
        output_size=(9, 9, 9),
    ),
    row(
        "output_size with nonzero output_padding",
        "1d",
        D1,
        V,
        m("output_padding=1 cannot be combined with output_size"),
        stride=2,
        output_padding=1,
        output_size=10,
        torch=False,
    ),
    row(
        "output_size float",
        "1d",
        D1,
        T,
        m("output_size=9.0 must be an int"),
        stride=2,
        output_size=9.0,
        torch=False,
    ),
    row(
        "output_size string",
        "1d",
        D1,
        T,
        m("output_size='9' must be an int"),
        stride=2,
        output_size="9",
        torch=False,
    ),
    # --- padding strings -------------------------------------------------------------------
    row(
        "padding string 'full'",
        "2d",
        D2,
        V,
        m("padding='full' must be 'valid', 'same' or numbers"),
        padding="full",
    ),
    row("padding string empty", "1d", D1, V, m("padding='' must be 'valid', 'same'"), padding=""),
    row(
        "padding string with space",
        "3d",
        D3,
        V,
        m("padding='same ' must be 'valid', 'same'"),
        padding="same ",
    ),
    # --- padding_mode (the functional API's extension; PyTorch's functions have none) ------
    row(
        "padding_mode bad value",
        "2d",
        D2,
        V,
        m("padding_mode='zero' must be one of ('zeros', 'circular', 'reflect', 'replicate')"),
        padding_mode="zero",
        torch=False,
    ),
    row(
        "padding_mode not a string",
        "1d",
        D1,
        T,
        m("padding_mode=0 must be a string"),
        padding_mode=0,
        torch=False,
    ),
    # --- conv_mode ---------------------------------------------------------------------------
    row(
        "conv_mode bad value",
        "2d",
        D2,
        V,
        m("conv_mode='conv' must be one of ('cross_correlation', 'convolution')"),
        conv_mode="conv",
        torch=False,
    ),
    row("conv_mode int", "1d", D1, T, m("conv_mode=1 must be one of"), conv_mode=1, torch=False),
    row(
        "conv_mode None",
        "1d",
        D1,
        T,
        m("conv_mode=None must be one of"),
        conv_mode=None,
        torch=False,
    ),
    # --- dtypes ----------------------------------------------------------------------------
    row(
        "int32 input with float weight",
        "2d",
        dict(input=arr(1, 2, 4, 4, dtype=np.int32), weight=W2),
        T,
        m("input has dtype int32", DTYPE_RULE, "input.astype(jnp.float32)"),
    ),
    row(
        "int input and int weight",
        "1d",
        dict(input=arr(1, 2, 4, dtype=np.int64), weight=arr(2, 3, 3, dtype=np.int64)),
        T,
        m("input has dtype int64", DTYPE_RULE),
        torch=False,
    ),  # PyTorch computes in int64
    row(
        "int weight",
        "1d",
        dict(input=X1, weight=arr(2, 3, 3, dtype=np.int64)),
        T,
        m("weight has dtype int64", DTYPE_RULE),
    ),
    row(
        "bool input",
        "2d",
        dict(input=arr(1, 2, 4, 4, dtype=np.bool_), weight=W2),
        T,
        m("input has dtype bool", DTYPE_RULE),
    ),
    row(
        "uint8 input",
        "3d",
        dict(input=arr(1, 2, 3, 3, 3, dtype=np.uint8), weight=W3),
        T,
        m("input has dtype uint8", DTYPE_RULE),
    ),
    row(
        "int bias",
        "1d",
        D1,
        T,
        m("bias has dtype int32", DTYPE_RULE),
        bias=arr(3, dtype=np.int32),
        torch=False,
    ),  # PyTorch accepts an int bias
    row(
        "complex bias with real input",
        "1d",
        D1,
        T,
        m("bias has complex dtype complex128 but input and weight are real"),
        bias=arr(3, dtype=np.complex128),
    ),
    # --- float settings ----------------------------------------------------------------------
    row("stride float", "2d", D2, T, m("stride=1.5 must be an int or a tuple of ints"), stride=1.5),
    row(
        "dilation float in tuple", "2d", D2, T, m("dilation=2.0 must be an int"), dilation=(1, 2.0)
    ),
    row("padding float", "2d", D2, T, m("padding=1.5 " + PAD_RULE_2D), padding=1.5),
    row("padding float in tuple", "2d", D2, T, m("padding=0.5 must be an int"), padding=(1, 0.5)),
    row(
        "output_padding float",
        "1d",
        D1,
        T,
        m("output_padding=0.0 must be an int"),
        output_padding=0.0,
    ),
    row("groups float", "1d", D1, T, m("groups=1.0 must be an int"), groups=1.0),
    row("stride None", "1d", D1, T, m("stride=None must be an int"), stride=None),
    row("stride string", "1d", D1, T, m("stride='2' must be an int"), stride="2"),
    # --- bool settings ----------------------------------------------------------------------
    row("stride bool", "2d", D2, T, m("stride=True must be an int, not a bool"), stride=True),
    row(
        "dilation bool in tuple",
        "2d",
        D2,
        T,
        m("dilation=True must be an int, not a bool"),
        dilation=(1, True),
        torch=False,
    ),  # PyTorch takes True as 1 inside a tuple
    row(
        "output_padding bool",
        "1d",
        D1,
        T,
        m("output_padding=False must be an int, not a bool"),
        output_padding=False,
    ),
    row("groups bool", "1d", D1, T, m("groups=True must be an int, not a bool"), groups=True),
    row("padding bool", "2d", D2, T, m("padding=True " + PAD_RULE_2D), padding=True),
    row(
        "padding bool in (lo, hi) pair",
        "2d",
        D2,
        T,
        m("padding=True must be an int, not a bool"),
        padding=((0, True), (0, 0)),
        torch=False,
    ),
    row(
        "output_size bool",
        "1d",
        D1,
        T,
        m("output_size=True must be an int, not a bool"),
        output_size=True,
        torch=False,
    ),
    # --- array settings: settings are static (PyTorch converts tensors, so ours only) -------
    row(
        "traced stride",
        "2d",
        D2,
        T,
        m("stride=", "array of shape () " + STATIC),
        stride=Traced(2),
        torch=False,
    ),
    row(
        "traced dilation in tuple",
        "2d",
        D2,
        T,
        m("dilation=", "array of shape () " + STATIC),
        dilation=(1, Traced(1)),
        torch=False,
    ),
    row(
        "traced output_padding",
        "1d",
        D1,
        T,
        m("output_padding=", "array of shape () " + STATIC),
        output_padding=Traced(0),
        torch=False,
    ),
    row(
        "traced groups",
        "1d",
        D1,
        T,
        m("groups=", "array of shape () " + STATIC),
        groups=Traced(1),
        torch=False,
    ),
    row(
        "traced padding",
        "2d",
        D2,
        T,
        m("padding=", "array of shape () " + STATIC),
        padding=Traced(1),
        torch=False,
    ),
    row(
        "traced padding in (lo, hi) pair",
        "2d",
        D2,
        T,
        m("padding=", "array of shape () " + STATIC),
        padding=((0, Traced(0)), (0, 0)),
        torch=False,
    ),
    row(
        "traced output_size",
        "1d",
        D1,
        T,
        m("output_size=", "array of shape () " + STATIC),
        stride=2,
        output_size=Traced(9),
        torch=False,
    ),
    row(
        "concrete jax array stride via closure",
        "2d",
        D2,
        T,
        m("stride=an array of shape () " + STATIC, "not arrays"),
        stride=jnp.array(2),
        torch=False,
    ),
    row(
        "numpy array stride",
        "2d",
        D2,
        T,
        m("stride=an array of shape (2,) " + STATIC),
        stride=np.array([2, 2]),
        torch=False,
    ),
    # --- channels_last -----------------------------------------------------------------------
    row(
        "channels_last int",
        "2d",
        D2,
        T,
        m("channels_last=1 must be a bool"),
        channels_last=1,
        torch=False,
    ),
    row(
        "channels_last string",
        "1d",
        D1,
        T,
        m("channels_last='yes' must be a bool"),
        channels_last="yes",
        torch=False,
    ),
    row(
        "channels_last None",
        "1d",
        D1,
        T,
        m("channels_last=None must be a bool"),
        channels_last=None,
        torch=False,
    ),
    # --- precision ---------------------------------------------------------------------------
    row(
        "precision bad string",
        "2d",
        D2,
        V,
        m(
            "precision='fast' must be None, a jax.lax.Precision or one of 'default', "
            "'high', 'highest'"
        ),
        precision="fast",
        torch=False,
    ),
    row(
        "precision int",
        "1d",
        D1,
        T,
        m("precision=3 must be None, a jax.lax.Precision"),
        precision=3,
        torch=False,
    ),
    row(
        "precision pair with a bad string",
        "1d",
        D1,
        V,
        m("precision='bogus' must be None"),
        precision=("high", "bogus"),
        torch=False,
    ),
    row(
        "precision triple",
        "1d",
        D1,
        T,
        m("precision=('high', 'high', 'high') must be None", "or a pair of them"),
        precision=("high", "high", "high"),
        torch=False,
    ),
    # --- preferred_element_type ---------------------------------------------------------
    row(
        "preferred_element_type int32",
        "2d",
        D2,
        T,
        m("preferred_element_type=int32 must be a floating or complex dtype"),
        preferred_element_type=jnp.int32,
        torch=False,
    ),
    row(
        "preferred_element_type bool",
        "1d",
        D1,
        T,
        m("preferred_element_type=bool must be a floating or complex dtype"),
        preferred_element_type=np.bool_,
        torch=False,
    ),
    row(
        "preferred_element_type not a dtype",
        "1d",
        D1,
        T,
        m("preferred_element_type='foo' must be a dtype or None"),
        preferred_element_type="foo",
        torch=False,
    ),
]

# --- the regular convolution: the same rules, PyTorch's conv{1,2,3}d as the reference --------
CX1, CW1 = arr(1, 2, 5), arr(3, 2, 3)
CX2, CW2 = arr(1, 2, 5, 5), arr(3, 2, 3, 3)
CX3, CW3 = arr(1, 2, 4, 4, 4), arr(3, 2, 2, 2, 2)
C1, C2, C3 = dict(input=CX1, weight=CW1), dict(input=CX2, weight=CW2), dict(input=CX3, weight=CW3)
ROWS += [
    row("conv: stride 0", "c2d", C2, V, m("stride=0 must be >= 1 on every axis"), stride=0),
    row("conv: dilation 0 1d", "c1d", C1, V, m("dilation=(0,) must be >= 1"), dilation=(0,)),
    row("conv: padding negative", "c2d", C2, V, m("padding=-1 must be >= 0"), padding=-1),
    row("conv: groups 0", "c2d", C2, V, m("groups=0 must be >= 1"), groups=0),
    row(
        "conv: groups does not divide C_out",
        "c2d",
        dict(input=arr(1, 4, 5, 5), weight=CW2),
        V,
        m("groups=2 must divide the 3 output channels (weight.shape[0])"),
        groups=2,
    ),
    row(
        "conv: input channels != weight.shape[1] * groups",
        "c2d",
        dict(input=arr(1, 3, 5, 5), weight=CW2),
        V,
        m("input has 3 channels", "expects weight.shape[1] * groups = 2 input channels"),
    ),
    row(
        "conv: bias shape",
        "c2d",
        dict(C2, bias=arr(2)),
        V,
        m("bias of shape (2,) must have shape (3,): C_out = weight.shape[0]"),
    ),
    row(
        "conv: padding same with stride 2",
        "c2d",
        C2,
        V,
        m("padding='same' needs stride=1 on every axis, got stride=2"),
        padding="same",
        stride=2,
    ),
    row(
        "conv: padding string in upper case",
        "c1d",
        C1,
        V,
        m("padding='SAME' must be 'valid', 'same' or numbers"),
        padding="SAME",
    ),
    row(
        "conv: kernel longer than the padded input",
        "c2d",
        dict(input=arr(1, 2, 2, 2), weight=CW2),
        V,
        m("output spatial size (0, 0) must be >= 1 on every axis"),
    ),
    row(
        "conv: weight rank for conv2d",
        "c2d",
        dict(input=CX2, weight=CW1),
        V,
        m(
            "weight of shape (3, 2, 3) must have rank 4 for conv2d",
            "(C_out, C_in // groups, *kernel)",
        ),
    ),
    row(
        "conv: input rank",
        "c2d",
        dict(input=arr(2, 5), weight=CW2),
        V,
        m("input of shape (2, 5) must have rank 4 (batched) or 3 (unbatched)"),
    ),
    row("conv: stride tuple length 3d", "c3d", C3, V, m("got 2 values"), stride=(1, 2)),
    row(
        "conv: integer input",
        "c1d",
        dict(input=arr(1, 2, 5, dtype=np.int32), weight=CW1),
        T,
        m("input has dtype int32", DTYPE_RULE),
    ),
    row("conv: stride float", "c2d", C2, T, m("stride=1.5 must be an int"), stride=1.5),
    row("conv: traced stride", "cnd", C3, T, m(STATIC), stride=Traced(2), torch=False),
    row(
        "conv: padding_mode unknown",
        "c2d",
        C2,
        V,
        m("padding_mode='foo' must be one of ('zeros', 'circular', 'reflect', 'replicate')"),
        padding_mode="foo",
        torch=False,
    ),
    row(
        "conv: reflect padding as long as the input",
        "c1d",
        C1,
        V,
        m("padding=((5, 5),) must be smaller than the input's spatial size (5,)", "'reflect'"),
        padding=5,
        padding_mode="reflect",
        torch=False,
    ),
    row(
        "conv: circular padding longer than the input",
        "c1d",
        C1,
        V,
        m("padding=((6, 6),) must be at most the input's spatial size (5,)", "'circular'"),
        padding=6,
        padding_mode="circular",
        torch=False,
    ),
    row(
        "conv: method that cannot compute it",
        "c2d",
        C2,
        V,
        m("method='depthwise' cannot compute this configuration", "groups == C_in > 1"),
        method="depthwise",
        torch=False,
    ),
]

assert len({r.desc for r in ROWS}) == len(ROWS), "row descriptions must be unique"
# Names a user never sees; a message must not leak them.
INTERNAL_NAMES = (
    "_args",
    "_checkpoints",
    "parse",
    "bind",
    "_op",
    "_lowering",
    "_geometry",
    "_methods",
    "_forward",
    "as_array",
    "int_tuple",
    "padding_pairs",
    "Settings",
    "Bound",
    "Config",
    "Tracer",
    "Traceback",
)
ARRAY_KEYS = ("input", "weight", "bias")
N_SPATIAL = {
    "conv_transpose1d": 1,
    "conv_transpose2d": 2,
    "conv_transpose3d": 3,
    "conv1d": 1,
    "conv2d": 2,
    "conv3d": 3,
}


def _params(rows):
    return [pytest.param(r, id=r.desc) for r in rows]


def _concrete(value):
    """Eager variant: Traced(v) -> a concrete jax.Array."""
    if isinstance(value, Traced):
        return jnp.asarray(value.value)
    if isinstance(value, (tuple, list)):
        return type(value)(_concrete(v) for v in value)
    return value


def _has_traced(value) -> bool:
    if isinstance(value, Traced):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_traced(v) for v in value)
    if isinstance(value, dict):
        return any(_has_traced(v) for v in value.values())
    return False


class _Slot(NamedTuple):
    index: int


def _lift(value, args: list):
    """Replace each Traced by a slot filled from the jitted function's arguments."""
    if isinstance(value, Traced):
        args.append(value.value)
        return _Slot(len(args) - 1)
    if isinstance(value, (tuple, list)):
        return type(value)(_lift(v, args) for v in value)
    return value


def _fill(value, args):
    if isinstance(value, _Slot):
        return args[value.index]
    if isinstance(value, (tuple, list)):
        return type(value)(_fill(v, args) for v in value)
    return value


def _call_eager(r: Row):
    return getattr(ct, r.fn)(**{k: _concrete(v) for k, v in r.kwargs.items()})


def _trace_jitted(r: Row):
    """Trace (only) a jitted call whose arrays and Traced settings are jit arguments.

    Everything else (settings, concrete arrays used as settings) is closed over.
    """
    args: list = []
    template = {}
    for k, v in r.kwargs.items():
        if k in ARRAY_KEYS and isinstance(v, np.ndarray):
            args.append(v)
            template[k] = _Slot(len(args) - 1)
        else:
            template[k] = _lift(v, args)
    fn = getattr(ct, r.fn)

    def f(*a):
        return fn(**{k: _fill(v, a) for k, v in template.items()})

    return jax.jit(f).trace(*args)


def _torch_call(r: Row):
    kw = dict(r.kwargs)
    x, w, b = kw.pop("input"), kw.pop("weight"), kw.pop("bias", None)
    n = N_SPATIAL.get(r.fn, np.ndim(w) - 2)
    assert 1 <= n <= 3, "no PyTorch function for this row; mark it torch=False"
    tx, tw = torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(w))
    tb = None if b is None else torch.from_numpy(np.asarray(b))
    if not r.fn.startswith("conv_transpose"):  # the regular convolution
        return getattr(torch.nn.functional, f"conv{n}d")(tx, tw, tb, **kw)
    output_size = kw.pop("output_size", None)
    if output_size is None:
        return getattr(torch.nn.functional, f"conv_transpose{n}d")(tx, tw, tb, **kw)
    layer = getattr(torch.nn, f"ConvTranspose{n}d")(
        w.shape[0],
        w.shape[1] * kw.get("groups", 1),
        w.shape[2:],
        bias=tb is not None,
        dtype=tw.dtype,
        **kw,
    )
    with torch.no_grad():
        layer.weight.copy_(tw)
    return layer(tx, output_size=output_size)


@pytest.fixture
def no_xla(monkeypatch):
    """Fail if a call gets as far as building the convolution: validation must come first.

    Every lowering and gradient rule of the library is a ``lax.conv_general_dilated``.
    """

    def conv_reached(*args, **kwargs):
        pytest.fail("validation did not reject the call before the convolution was built")

    monkeypatch.setattr(jax.lax, "conv_general_dilated", conv_reached)


def _check_message(msg: str) -> None:
    assert "\n" not in msg, f"message is not one line: {msg!r}"
    for name in INTERNAL_NAMES:
        assert name not in msg, f"message leaks internal name {name!r}: {msg!r}"


@pytest.mark.parametrize("r", _params(ROWS))
def test_error_eager(r: Row, no_xla):
    with pytest.raises(r.exc, match=r.match) as info:
        _call_eager(r)
    assert type(info.value) is r.exc
    _check_message(str(info.value))


@pytest.mark.parametrize("r", _params(ROWS))
def test_error_at_trace_time_under_jit(r: Row, no_xla):
    with pytest.raises(r.exc, match=r.match) as info:
        _trace_jitted(r)
    assert type(info.value) is r.exc
    _check_message(str(info.value))
    if not _has_traced(r.kwargs):  # same message as the eager call, word for word
        with pytest.raises(r.exc) as eager:
            _call_eager(r)
        assert str(info.value) == str(eager.value)


@pytest.mark.parametrize("r", _params([r for r in ROWS if r.torch]))
def test_pytorch_rejects_too(r: Row):
    # PyTorch's exception type varies by check (RuntimeError, ValueError, IndexError, ...).
    with pytest.raises(Exception):  # noqa: B017
        _torch_call(r)


_SHAPE_KEYS = {
    "input",
    "weight",
    "stride",
    "padding",
    "output_padding",
    "groups",
    "dilation",
    "output_size",
    "channels_last",
}


def _shape_rows():
    for r in ROWS:
        x, w = r.kwargs["input"], r.kwargs["weight"]
        if (
            set(r.kwargs) <= _SHAPE_KEYS
            and not _has_traced(r.kwargs)
            and np.issubdtype(x.dtype, np.floating)
            and np.issubdtype(w.dtype, np.floating)
            and N_SPATIAL.get(r.fn, w.ndim - 2) == w.ndim - 2
        ):
            yield r


@pytest.mark.parametrize("r", _params(list(_shape_rows())))
def test_output_shape_helper_raises_the_same(r: Row):
    kw = dict(r.kwargs)
    x, w = kw.pop("input"), kw.pop("weight")
    helper = (
        ct.conv_transpose_output_shape
        if r.fn.startswith("conv_transpose")
        else ct.conv_output_shape
    )
    with pytest.raises(r.exc, match=r.match):
        helper(x.shape, w.shape, **kw)


def test_every_rule_has_a_row():
    """Guard against rows being dropped: each bad-argument rule keeps at least one row."""
    text = " ".join(r.match for r in ROWS)
    for fragment in [
        "must be smaller than stride",
        "stride=0 must be >= 1",
        "dilation=0 must",
        "padding=-1 must",
        "output_padding=-1 must",
        "groups=0 must",
        "must divide",
        "input has 3 channels",
        "got 3 values",
        "must have rank 4 (batched)",
        "must have rank 3 for conv_transpose1d",
        "bias of shape",
        "output spatial size",
        "is not reachable",
        "cannot be combined",
        "'valid', 'same'",
        "conv_mode=",
        "input has dtype int32",
        "stride=1.5",
        "stride=True",
        "static Python int",
        "channels_last=1",
        "precision=",
        "preferred_element_type=int32",
        "kernel size >= 1",
    ]:
        assert re.escape(fragment) in text, fragment


# --- the boundaries of each rule are accepted (validation is not over-strict) -----------

_T = torch.nn.functional


@pytest.mark.parametrize(
    "case",
    [
        # output_padding may reach max(stride, dilation) - 1 on each axis (PyTorch's rule)
        dict(x=(1, 2, 5), w=(2, 3, 3), kw=dict(stride=1, dilation=2, output_padding=1)),
        dict(x=(1, 2, 4, 3), w=(2, 3, 2, 3), kw=dict(stride=(3, 1), output_padding=(2, 0))),
        # groups == C_in, padding == 0, bias of C_out = weight.shape[1] * groups
        dict(x=(2, 4, 3), w=(4, 1, 2), kw=dict(groups=4, padding=0), bias=4),
        dict(x=(1, 4, 3, 3), w=(4, 2, 3, 3), kw=dict(groups=2, stride=2, padding=1), bias=4),
        # the smallest possible output: size 1
        dict(x=(1, 2, 1, 2), w=(2, 1, 1, 1), kw=dict(padding=(0, 0))),
        # unbatched input
        dict(x=(2, 3, 3, 3), w=(2, 1, 2, 2, 2), kw=dict(stride=2, output_padding=1)),
    ],
)
def test_boundary_values_are_accepted_and_match_pytorch(case):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(case["x"]), rng.standard_normal(case["w"])
    b = rng.standard_normal(case["bias"]) if "bias" in case else None
    n = len(case["w"]) - 2
    ours = getattr(ct, f"conv_transpose{n}d")(x, w, b, **case["kw"])
    ref = getattr(_T, f"conv_transpose{n}d")(
        torch.from_numpy(x),
        torch.from_numpy(w),
        None if b is None else torch.from_numpy(b),
        **case["kw"],
    ).numpy()
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [9, 10])
def test_output_size_at_both_ends_of_the_reachable_range(size):
    x, w = np.ones((1, 2, 4)), np.ones((2, 3, 3))
    assert ct.conv_transpose1d(x, w, stride=2, output_size=size).shape == (1, 3, size)
    assert ct.conv_transpose1d(x, w, stride=2, output_size=(1, 3, size)).shape == (1, 3, size)


def test_numpy_scalar_settings_are_accepted():
    x, w = np.ones((1, 2, 4, 4)), np.ones((2, 3, 3, 3))
    y = ct.conv_transpose2d(
        x,
        w,
        np.ones(3),
        np.int64(2),
        (np.int32(1), 0),
        np.int64(1),
        groups=np.int64(1),
        dilation=(np.int16(1), 1),
        channels_last=np.bool_(False),
    )
    assert y.shape == ct.conv_transpose2d(x, w, np.ones(3), 2, (1, 0), 1).shape == (1, 3, 8, 10)
