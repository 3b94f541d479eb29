"""What the tests share: the table of public functions and the independent references.

The references are PyTorch and a NumPy loop of the definition; neither uses
convt_jax's own arithmetic: the oracle walks
``y[n, co, o] += x[n, ci, i] * w[ci, co_local, k]`` with ``o = s*i + d*k - lo``.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

import convt_jax as ct

torch.set_num_threads(2)

# The public functions and PyTorch's, by number of spatial axes.
FUNCTIONS = {1: ct.conv_transpose1d, 2: ct.conv_transpose2d, 3: ct.conv_transpose3d}
TORCH_FUNCTIONS = {
    1: torch.nn.functional.conv_transpose1d,
    2: torch.nn.functional.conv_transpose2d,
    3: torch.nn.functional.conv_transpose3d,
}


def config_of(
    x_shape,
    w_shape,
    stride=1,
    padding=0,
    output_padding=0,
    groups=1,
    dilation=1,
    channels_last=False,
    conv_mode="cross_correlation",
):
    """The configuration a public call with these shapes and settings binds (for the tests
    that drive the lowerings, the gradient rules or the method registry directly)."""
    from convt_jax import _args

    settings = _args.parse_settings(
        len(w_shape) - 2,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
        channels_last,
        conv_mode,
    )
    return _args.bind(settings, x_shape, w_shape).config


def numpy_oracle(x, w, b, stride, pads, output_padding, groups, dilation):
    """Channels-first, batched, per-axis settings; pads = ((lo, hi), ...)."""
    x = np.asarray(x)
    w = np.asarray(w)
    n, c_in, *spatial = x.shape
    _, c_out_g, *kernel = w.shape
    c_in_g = c_in // groups
    out = [
        (length - 1) * s - lo - hi + d * (k - 1) + a + 1
        for length, k, s, d, (lo, hi), a in zip(
            spatial, kernel, stride, dilation, pads, output_padding, strict=True
        )
    ]
    y = np.zeros((n, c_out_g * groups, *out), dtype=np.result_type(x, w))
    for ci in range(c_in):
        g = ci // c_in_g
        for col in range(c_out_g):
            co = g * c_out_g + col
            for i in itertools.product(*(range(length) for length in spatial)):
                for k in itertools.product(*(range(kk) for kk in kernel)):
                    o = tuple(
                        s * ii + d * kk - lo
                        for ii, kk, s, d, (lo, _) in zip(i, k, stride, dilation, pads, strict=True)
                    )
                    if all(0 <= oo < size for oo, size in zip(o, out, strict=True)):
                        y[(slice(None), co) + o] += x[(slice(None), ci) + i] * w[(ci, col) + k]
    if b is not None:
        y += np.asarray(b).reshape((1, -1) + (1,) * len(spatial))
    return y


def torch_forward(tx, tw, tb, stride, pads, output_padding, groups, dilation):
    """PyTorch on tensors (autograd works through it); asymmetric pads via a crop.

    Symmetric padding with a legal output_padding calls PyTorch directly (the
    semantic reference); other forms are PyTorch's unpadded result cropped /
    zero-extended, which is what (lo, hi) padding means.
    """
    nd = tw.ndim - 2
    fn = TORCH_FUNCTIONS[nd]
    stride, dilation = tuple(stride), tuple(dilation)
    if all(lo == hi for lo, hi in pads) and all(
        a < max(s, d) for a, s, d in zip(output_padding, stride, dilation, strict=True)
    ):
        return fn(
            tx,
            tw,
            tb,
            stride=stride,
            padding=tuple(lo for lo, _ in pads),
            output_padding=tuple(output_padding),
            groups=groups,
            dilation=dilation,
        )
    full = fn(tx, tw, None, stride=stride, padding=0, groups=groups, dilation=dilation)
    widths, index = [], [slice(None), slice(None)]
    for (lo, hi), a, size in zip(pads, output_padding, full.shape[2:], strict=True):
        end = hi - a
        widths = [0, max(0, -end)] + widths  # torch's pad lists the last axis first
        index.append(slice(lo, size + max(0, -end) - max(0, end)))
    y = torch.nn.functional.pad(full, widths)[tuple(index)]
    if tb is not None:
        y = y + tb.reshape((1, -1) + (1,) * nd)
    return y


def torch_reference(x, w, b, stride, pads, output_padding, groups, dilation):
    """:func:`torch_forward` on NumPy arrays (channels-first, batched), as a NumPy array."""
    tensor = lambda a: None if a is None else torch.from_numpy(np.asarray(a))  # noqa: E731
    return torch_forward(
        tensor(x), tensor(w), tensor(b), stride, pads, output_padding, groups, dilation
    ).numpy()


def to_layout(y, channels_last, batched):
    """Channels-first batched reference -> the layout under test."""
    if channels_last:
        y = np.moveaxis(y, 1, -1)
    return y if batched else y[0]


@st.composite
def configs(draw, max_ndim=3, allow_asymmetric=True):
    """A random valid configuration; sizes kept small for 3-d."""
    nd = draw(st.integers(1, max_ndim))
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out_g = draw(st.integers(1, 2))
    big = {1: 6, 2: 5, 3: 3}[nd]
    kernel = tuple(draw(st.integers(1, 4 if nd < 3 else 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    spatial = tuple(draw(st.integers(1, big)) for _ in range(nd))
    pads = []
    for _ in range(nd):
        lo = draw(st.integers(0, 3))
        hi = draw(st.integers(0, 3)) if allow_asymmetric and draw(st.booleans()) else lo
        pads.append((lo, hi))
    output_padding = tuple(
        draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
    )
    out = [
        (length - 1) * s - lo - hi + d * (k - 1) + a + 1
        for length, k, s, d, (lo, hi), a in zip(
            spatial, kernel, stride, dilation, pads, output_padding, strict=True
        )
    ]
    assume(all(o >= 1 for o in out))
    return dict(
        nd=nd,
        groups=groups,
        c_in=c_in,
        c_out=c_out_g * groups,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        spatial=spatial,
        pads=tuple(pads),
        output_padding=output_padding,
        batch=draw(st.integers(1, 2)),
        bias=draw(st.booleans()),
        batched=draw(st.booleans()),
        channels_last=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )


def make_arrays(cfg, dtype=np.float64):
    rng = np.random.default_rng(cfg["seed"])
    x = rng.standard_normal((cfg["batch"], cfg["c_in"], *cfg["spatial"])).astype(dtype)
    w = rng.standard_normal((cfg["c_in"], cfg["c_out"] // cfg["groups"], *cfg["kernel"])).astype(
        dtype
    )
    b = rng.standard_normal(cfg["c_out"]).astype(dtype) if cfg["bias"] else None
    return x, w, b


def padding_arg(pads):
    """The most natural public spelling of per-axis pads."""
    if all(lo == hi for lo, hi in pads):
        return tuple(lo for lo, _ in pads)
    return tuple(pads)


def call_args(cfg, x):
    """(input in the tested layout, kwargs) for convt_jax from a config."""
    xin = np.moveaxis(x, 1, -1) if cfg["channels_last"] else x
    if not cfg["batched"]:
        xin = xin[:1][0]
    kwargs = dict(
        stride=cfg["stride"],
        padding=padding_arg(cfg["pads"]),
        output_padding=cfg["output_padding"],
        groups=cfg["groups"],
        dilation=cfg["dilation"],
        channels_last=cfg["channels_last"],
    )
    return xin, kwargs


def reference(cfg, x, w, b):
    """PyTorch reference in the layout under test (x is the channels-first batched input)."""
    if not cfg["batched"]:
        x = x[:1]
    y = torch_reference(
        x, w, b, cfg["stride"], cfg["pads"], cfg["output_padding"], cfg["groups"], cfg["dilation"]
    )
    return to_layout(y, cfg["channels_last"], cfg["batched"])
