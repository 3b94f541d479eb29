"""One transposed-convolution layer at a time: convt_jax vs PyTorch (CPU) and jax.lax.

    python -m benchmarks.run                      # the whole suite, forward and forward+backward
    python -m benchmarks.run --quick              # fewer shapes and rounds
    python -m benchmarks.run --shapes dcgan1,group8,k3s2op1_cl,unet1_bf16 --rounds 9 --out t.md
    python -m benchmarks.run --shapes dcgan2,unet1 --channels-last   # the _cl variants of those
    python -m benchmarks.run --shapes dcgan2,unet1 --bfloat16        # the _bf16 variants
    python -m benchmarks.run --list               # every shape and what it is

Shape names: a base name from ``SHAPES``, optionally followed by ``_cl``
(channels-last: ``channels_last=True`` for JAX, PyTorch's ``channels_last``
memory format for input, weight and cotangent; 1-D has no such format in
PyTorch, so there its input stays ``(N, C, L)``) and/or ``_bf16``
(bfloat16 inputs and weight in both frameworks; the correctness check is
against PyTorch float32 on the same rounded values).

Every implementation runs once per round, in turn, on the same inputs (the
machines are shared and noisy: ratios from one run are what count); each
figure is the median over the rounds after warm-up.  Every result is checked
against PyTorch before it is timed.  "f+b" is the forward plus the gradients
with respect to input and weight.  Only the public API is used:
``ct.conv_transpose(..., method=m)``; an explicit method that does not apply
to a layer (``ValueError``) is reported as ``n/a``.  ``--methods auto,xla`` compares
the two CPU backends: ``auto`` uses oneDNN's kernels where that backend is in use
(``convt_jax.backend_info()``, printed in the header), ``xla`` is ``auto`` with it
switched off (the XLA forms alone).  The ``jax.lax`` column is
``jax.lax.conv_transpose`` (``output_padding`` as extra padding at the high
end); for grouped layers, which it cannot express, the lhs-dilated
``jax.lax.conv_general_dilated`` with ``feature_group_count`` (as Equinox does).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from typing import NamedTuple

os.environ.setdefault("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import convt_jax as ct  # noqa: E402
from convt_jax import _onednn  # noqa: E402

from . import _machine  # noqa: E402

# name: (N, C_in, spatial, C_out, kernel, stride, padding, groups)
SHAPES = {
    "dcgan1": (64, 512, (4, 4), 256, 4, 2, 1, 1),
    "dcgan2": (64, 256, (8, 8), 128, 4, 2, 1, 1),
    "dcgan3": (64, 128, (16, 16), 64, 4, 2, 1, 1),
    "dcgan4": (64, 64, (32, 32), 3, 4, 2, 1, 1),
    "unet1": (8, 256, (32, 32), 128, 2, 2, 0, 1),
    "unet2": (4, 128, (64, 64), 64, 2, 2, 0, 1),
    "s1k3": (16, 64, (32, 32), 64, 3, 1, 1, 1),
    "depthwise": (8, 128, (32, 32), 128, 4, 2, 1, 128),
    "hifigan": (8, 512, (256,), 256, 16, 8, 4, 1),
    "conv1d": (16, 256, (1024,), 128, 4, 2, 1, 1),
    "vnet3d": (2, 64, (16, 16, 16), 32, 2, 2, 0, 1),
    "unet3d": (2, 32, (32, 32, 32), 16, 4, 2, 1, 1),
    # grouped, 1 < groups < C_in
    "group4": (8, 256, (16, 16), 256, 4, 2, 1, 4),
    "group8": (8, 256, (16, 16), 256, 4, 2, 1, 8),
    "group32": (8, 256, (16, 16), 256, 4, 2, 1, 32),
    # k=3, s=2, p=1, output_padding=1: the exact-doubling layer of ResNet-style decoders
    "k3s2op1": (8, 128, (32, 32), 64, 3, 2, 1, 1),
    "k3s2op1w": (8, 512, (16, 16), 256, 3, 2, 1, 1),
    # wide layers
    "wide2d": (8, 512, (16, 16), 256, 4, 2, 1, 1),
    "s1k3w": (8, 512, (16, 16), 256, 3, 1, 1, 1),
    "wide3d": (2, 128, (8, 8, 8), 128, 4, 2, 1, 1),
}
DESCRIPTION = {
    "dcgan1": "DCGAN generator layer 2",
    "dcgan2": "DCGAN generator layer 3",
    "dcgan3": "DCGAN generator layer 4",
    "dcgan4": "DCGAN generator output layer",
    "unet1": "U-Net up-convolution (k = s)",
    "unet2": "U-Net up-convolution (k = s)",
    "s1k3": "stride 1, 3x3",
    "depthwise": "depthwise (groups = C_in)",
    "hifigan": "HiFi-GAN V1 first upsampler (1-D)",
    "conv1d": "1-D",
    "vnet3d": "V-Net up-convolution (3-D, k = s)",
    "unet3d": "3-D U-Net decoder layer (k4 s2)",
    "group4": "grouped, 4 groups",
    "group8": "grouped, 8 groups",
    "group32": "grouped, 32 groups",
    "k3s2op1": "k3 s2 p1 output_padding=1",
    "k3s2op1w": "k3 s2 p1 output_padding=1, C_in 512",
    "wide2d": "wide 2-D, C_in 512",
    "s1k3w": "wide stride 1, 3x3, C_in 512",
    "wide3d": "wide 3-D, 128 channels, k4 s2",
}
OUTPUT_PADDING = {"k3s2op1": 1, "k3s2op1w": 1}
# The regular convolutions of the models (ct.conv against torch.nn.functional.conv*d and
# jax.lax.conv_general_dilated): (N, C_in, spatial, C_out, k, s, p, groups, dilation).
REGULAR = {
    "conv_k3s1": (16, 64, (32, 32), 64, 3, 1, 1, 1, 1),
    "conv_k4s2": (4, 128, (64, 64), 256, 4, 2, 1, 1, 1),
    "conv_1x1": (16, 256, (32, 32), 64, 1, 1, 0, 1, 1),
    "conv3d_k3": (1, 32, (32, 32, 32), 32, 3, 1, 1, 1, 1),
    "conv1d_k3d1": (1, 128, (8192,), 128, 3, 1, 1, 1, 1),
    "conv1d_k7d3": (1, 128, (8192,), 128, 7, 1, 9, 1, 3),
    "conv1d_k11d5": (1, 64, (8192,), 64, 11, 1, 25, 1, 5),
}
DESCRIPTION_REGULAR = {
    "conv_k3s1": "regular 3x3 stride 1 (U-Net, pix2pix)",
    "conv_k4s2": "regular 4x4 stride 2 down (pix2pix encoder)",
    "conv_1x1": "regular 1x1",
    "conv3d_k3": "regular 3x3x3 (3-D U-Net)",
    "conv1d_k3d1": "regular 1-D k3 (HiFi-GAN ResBlock)",
    "conv1d_k7d3": "regular 1-D k7 dilation 3 (HiFi-GAN ResBlock)",
    "conv1d_k11d5": "regular 1-D k11 dilation 5 (HiFi-GAN ResBlock)",
}
# The default suite: every base shape, channels-last variants of several, and bfloat16 in
# both layouts for six (DCGAN k4 s2 x2, U-Net k2 s2, k3 s1, HiFi-GAN's k16 s8 1-D, V-Net's
# k2 s2 3-D).
CHANNELS_LAST = (
    "dcgan2",
    "dcgan4",
    "unet1",
    "s1k3",
    "depthwise",
    "group8",
    "k3s2op1",
    "wide2d",
    "vnet3d",
    "wide3d",
)
BFLOAT16 = ("dcgan2", "dcgan3", "unet1", "s1k3", "hifigan", "vnet3d")
SUITE = (
    *SHAPES,
    *REGULAR,
    *(f"{n}_cl" for n in REGULAR),
    *(f"{n}_cl" for n in CHANNELS_LAST),
    *(f"{n}_bf16" for n in BFLOAT16),
    *(f"{n}_cl_bf16" for n in BFLOAT16),
)
QUICK = (
    "dcgan1",
    "dcgan4",
    "unet1",
    "s1k3",
    "depthwise",
    "hifigan",
    "vnet3d",
    "group8",
    "k3s2op1",
    "wide3d",
    "dcgan2_cl",
    "s1k3_cl",
    "dcgan2_bf16",
)
METHODS = ("auto", "dilated", "subpixel", "matmul", "depthwise", "grouped")
FLAG_ABOVE = 1.5


class Case(NamedTuple):
    name: str
    base: str
    shape: tuple
    output_padding: int
    channels_last: bool
    dtype: str  # "float32" or "bfloat16"
    regular: bool = False  # a regular convolution (REGULAR), else a transposed one
    dilation: int = 1


def case(name: str) -> Case:
    """The layer a shape name stands for: a base name plus optional ``_cl`` / ``_bf16``."""
    base, cl, dtype = name, False, "float32"
    while base not in SHAPES and base not in REGULAR:
        if base.endswith("_bf16") and dtype == "float32":
            base, dtype = base[:-5], "bfloat16"
        elif base.endswith("_cl") and not cl:
            base, cl = base[:-3], True
        else:
            raise ValueError(
                f"shape {name!r} is not a base shape ({', '.join([*SHAPES, *REGULAR])}) "
                "optionally followed by _cl and/or _bf16"
            )
    if base in REGULAR:
        *shape, d = REGULAR[base]
        return Case(name, base, tuple(shape), 0, cl, dtype, True, d)
    return Case(name, base, SHAPES[base], OUTPUT_PADDING.get(base, 0), cl, dtype)


def _flops(shape, regular=False) -> float:
    n, c_in, spatial, c_out, k, s, _, g = shape
    if regular:  # per output position: C_in / g * k^nd products (about: input / s^nd outputs)
        return (
            2.0
            * n
            * c_out
            * math.prod(spatial)
            / s ** len(spatial)
            * (c_in // g)
            * k ** len(spatial)
        )
    return 2.0 * n * c_in * math.prod(spatial) * (c_out // g) * k ** len(spatial)


def _fwd_bwd(f):
    """y, dx, dw together (returning y keeps XLA from dropping the forward pass)."""

    def fb(x, w, gy):
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(gy))

    return fb


def _lax_conv(x, w, *, s, p, d, g, channels_last):
    """A regular convolution with public jax.lax only."""
    nd = w.ndim - 2
    spec = "DHW"[3 - nd :]
    lhs = ("N" + spec + "C") if channels_last else ("NC" + spec)
    return jax.lax.conv_general_dilated(
        x,
        w,
        (s,) * nd,
        [(p, p)] * nd,
        rhs_dilation=(d,) * nd,
        dimension_numbers=(lhs, "OI" + spec, lhs),
        feature_group_count=g,
        preferred_element_type=jnp.promote_types(x.dtype, jnp.float32),
    ).astype(x.dtype)


def _lax_transpose(x, w, *, nd, k, s, p, op, g, channels_last):
    """The layer with public jax.lax only (what a user has without this package)."""
    spec = "DHW"[3 - nd :]
    lhs = ("N" + spec + "C") if channels_last else ("NC" + spec)
    dn = (lhs, "OI" + spec, lhs)
    pads = [(k - 1 - p, k - 1 - p + op)] * nd
    if g == 1:
        return jax.lax.conv_transpose(
            x, w, (s,) * nd, pads, dimension_numbers=dn, transpose_kernel=True
        )
    # (C_in, C_out/g, *K) -> (C_out, C_in/g, *K), spatially flipped: a forward grouped conv
    c_in, cog = w.shape[:2]
    kern = w.reshape(g, c_in // g, cog, *w.shape[2:]).swapaxes(1, 2)
    kern = kern.reshape(g * cog, c_in // g, *w.shape[2:])
    kern = jnp.flip(kern, axis=tuple(range(2, 2 + nd)))
    return jax.lax.conv_general_dilated(
        x,
        kern,
        (1,) * nd,
        pads,
        lhs_dilation=(s,) * nd,
        dimension_numbers=dn,
        feature_group_count=g,
    )


def torch_layer(tfn, tx, tw, tg, s, p, op, g):
    """PyTorch's forward and forward+backward (y, dx, dw) of one layer, as closures."""
    import torch

    ta, tb = tx.clone().requires_grad_(True), tw.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            return (tfn(tx, tw, None, s, p, op, g),)

    def fb():
        y = tfn(ta, tb, None, s, p, op, g)
        return (y.detach(), *torch.autograd.grad(y, (ta, tb), tg))

    return fwd, fb


def _implementations(c: Case, modes, methods, with_lax=True):
    """({(name, mode): callable returning arrays}, {mode: reference arrays}, tolerance)."""
    import torch

    n, c_in, spatial, c_out, k, s, p, g = c.shape
    op, cl, d = c.output_padding, c.channels_last, c.dilation
    nd = len(spatial)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, *spatial), dtype=np.float32)
    if c.regular:
        w = rng.standard_normal((c_out, c_in // g, *(k,) * nd), dtype=np.float32) / math.sqrt(
            c_in // g * k**nd
        )
        out_shape = ct.conv_output_shape(x.shape, w.shape, s, p, d, g)
        F = torch.nn.functional
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[nd]

        def tfn(x, w, b, s, p, op, g):  # (op is 0: the transposed call's signature)
            return conv(x, w, b, s, p, d, g)
    else:
        w = rng.standard_normal((c_in, c_out // g, *(k,) * nd), dtype=np.float32) / math.sqrt(
            c_in * k**nd / s**nd
        )
        out_shape = ct.conv_transpose_output_shape(x.shape, w.shape, s, p, op, groups=g)
        tfn = {
            1: torch.nn.functional.conv_transpose1d,
            2: torch.nn.functional.conv_transpose2d,
            3: torch.nn.functional.conv_transpose3d,
        }[nd]
    gy = rng.standard_normal(out_shape, dtype=np.float32)
    tdtype = torch.bfloat16 if c.dtype == "bfloat16" else torch.float32
    tx, tw, tg = (torch.from_numpy(a).to(tdtype) for a in (x, w, gy))
    if c.dtype != "float32":  # both frameworks and the reference see the same values
        x, w, gy = (t.float().numpy() for t in (tx, tw, tg))

    # reference: PyTorch float32, NC layout
    a = torch.from_numpy(x).requires_grad_(True)
    b = torch.from_numpy(w).requires_grad_(True)
    y = tfn(a, b, None, s, p, op, g)
    dx, dw = torch.autograd.grad(y, (a, b), torch.from_numpy(gy))
    ref = {"fwd": [y.detach().numpy()], "fb": [y.detach().numpy(), dx.numpy(), dw.numpy()]}
    if cl:
        ref = {
            m: [np.moveaxis(r, 1, -1) if i < 2 else r for i, r in enumerate(v)]
            for m, v in ref.items()
        }
    tol = 5e-2 if c.dtype == "bfloat16" else 1e-4

    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(nd) if cl else None
    if fmt is not None:
        tx, tw, tg = (t.contiguous(memory_format=fmt) for t in (tx, tw, tg))
    torch_fwd, torch_fb = torch_layer(tfn, tx, tw, tg, s, p, op, g)

    def to_ref_layout(outputs):  # PyTorch's (y, dx, dw) in the reference's layout
        out = [t.detach().float().numpy() for t in outputs]
        return [np.moveaxis(v, 1, -1) if cl and i < 2 else v for i, v in enumerate(out)]

    impls = {}
    if "fwd" in modes:
        impls[("PyTorch", "fwd")] = torch_fwd
    if "fb" in modes:
        impls[("PyTorch", "fb")] = torch_fb
    jdtype = jnp.bfloat16 if c.dtype == "bfloat16" else jnp.float32
    move = (lambda v: np.moveaxis(v, 1, -1)) if cl else (lambda v: v)
    jx, jw, jg = jnp.asarray(move(x), jdtype), jnp.asarray(w, jdtype), jnp.asarray(move(gy), jdtype)

    def add_jax(name, f):
        fwd = jax.jit(f)
        fb = jax.jit(_fwd_bwd(f))
        if "fwd" in modes:
            impls[(name, "fwd")] = lambda: (fwd(jx, jw),)
        if "fb" in modes:
            impls[(name, "fb")] = lambda: fb(jx, jw, jg)

    def call(x, w, m):
        if m == XLA:  # "auto" as without the oneDNN backend (traced inside the switch)
            with _onednn.switched_off():
                return call(x, w, "auto")
        if c.regular:
            return ct.conv(x, w, None, s, p, d, g, channels_last=cl, method=m)
        return ct.conv_transpose(x, w, None, s, p, op, groups=g, channels_last=cl, method=m)

    for m in methods:
        add_jax(m, lambda x, w, m=m: call(x, w, m))
    if with_lax and c.regular:
        add_jax("jax.lax", lambda x, w: _lax_conv(x, w, s=s, p=p, d=d, g=g, channels_last=cl))
    elif with_lax:
        add_jax(
            "jax.lax",
            lambda x, w: _lax_transpose(x, w, nd=nd, k=k, s=s, p=p, op=op, g=g, channels_last=cl),
        )
    return impls, ref, tol, to_ref_layout


def _block(values):
    for v in values:
        if hasattr(v, "block_until_ready"):
            v.block_until_ready()
    return values


#: A pseudo-method of ``--methods``: ``"auto"`` with oneDNN's CPU backend switched off (the
#: XLA forms alone), to compare the two backends in one run.
XLA = "xla"
NOT_APPLICABLE = "n/a"
WRONG = "wrong"


def bench_shape(c: Case, modes, methods, rounds, with_lax=True, log=print):
    """{(impl, mode): median ms, or "n/a" / "wrong"} for one layer."""
    impls, ref, tol, to_ref_layout = _implementations(c, modes, methods, with_lax)
    results = dict.fromkeys(impls)  # keeps the column order
    for key, f in list(impls.items()):  # warm-up (compile) and check against PyTorch
        t0 = time.perf_counter()
        try:
            out = _block(f())
        except (ValueError, NotImplementedError) as e:
            if key[0] == "PyTorch":
                raise
            log(f"  {c.name} {key[0]:>10} {key[1]:>3}: n/a ({type(e).__name__}: {e})")
            results[key] = NOT_APPLICABLE
            del impls[key]
            continue
        warm = time.perf_counter() - t0
        if key[0] == "PyTorch":
            out = to_ref_layout(out)
        err = max(
            float(np.abs(np.asarray(o, np.float32) - r).max() / (np.abs(r).max() + 1e-30))
            for o, r in zip(out, ref[key[1]], strict=True)
        )
        if err > tol:
            log(f"  {c.name} {key[0]:>10} {key[1]:>3}: WRONG, relative error {err:.2e} > {tol}")
            results[key] = WRONG
            del impls[key]
            continue
        log(
            f"  {c.name} {key[0]:>10} {key[1]:>3}: first call {warm * 1e3:8.1f} ms, "
            f"relative error {err:.1e}"
        )
    times = {key: [] for key in impls}
    # A new (seeded) order every round: with a fixed rotation the same implementation
    # followed PyTorch's call in almost every round (auto's forward, 30-60% slower there
    # than the identical explicit method on some shapes); a shuffle spreads whatever one
    # call leaves behind (busy threads, evicted caches) over all of them.
    shuffle = random.Random(0).shuffle
    for _ in range(rounds):
        order = list(impls)
        shuffle(order)
        for key in order:
            t0 = time.perf_counter()
            _block(impls[key]())
            times[key].append(time.perf_counter() - t0)
    results.update({key: statistics.median(v) * 1e3 for key, v in times.items()})
    return results


def _geo(values):
    values = [v for v in values if isinstance(v, float)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def table(results, modes, names, peak, header=""):
    """Markdown: per mode, the machine header then one row per layer."""
    lines = []
    for mode in modes:
        title = "forward" if mode == "fwd" else "forward + backward (grad w.r.t. input and weight)"
        cols = list(
            dict.fromkeys(
                k[0] for r in results.values() for k in r if k[1] == mode and k[0] != "PyTorch"
            )
        )
        explicit = [col for col in cols if col not in ("auto", "jax.lax")]
        lines.append(f"\n### {title}: milliseconds (time / PyTorch time)\n")
        if header:
            lines.append(header + "\n")
        lines.append(
            "| shape | PyTorch ms | "
            + " | ".join(cols)
            + f" | best method / PyTorch | auto % of matmul peak | auto > {FLAG_ABOVE} |"
        )
        lines.append("|---|---" + "|---" * len(cols) + "|---|---|---|")
        ratios = {col: {} for col in cols}
        for name in names:
            res = results[name]
            torch_ms = res.get(("PyTorch", mode))
            cells = []
            for col in cols:
                ms = res.get((col, mode), NOT_APPLICABLE)
                if isinstance(ms, float) and isinstance(torch_ms, float):
                    ratios[col][name] = ms / torch_ms
                    cells.append(f"{ms:.1f} ({ms / torch_ms:.2f})")
                else:
                    cells.append(ms)
            best = min(
                ((ratios[col][name], col) for col in explicit if name in ratios[col]), default=None
            )
            auto = ratios["auto"].get(name) if "auto" in ratios else None
            flops = _flops(case(name).shape, case(name).regular) * (3 if mode == "fb" else 1)
            frac = (
                f"{100 * flops / (res[('auto', mode)] * 1e-3) / (peak * 1e9):.0f}%"
                if auto is not None
                else ""
            )
            flag = "**yes**" if auto is not None and auto > FLAG_ABOVE else ""
            torch_cell = f"{torch_ms:.1f}" if isinstance(torch_ms, float) else str(torch_ms)
            lines.append(
                f"| {name} | {torch_cell} | "
                + " | ".join(cells)
                + f" | {f'{best[1]} {best[0]:.2f}' if best else ''} | {frac} | {flag} |"
            )
        geo_cells = []
        for col in cols:
            missing = len(names) - len(ratios[col])
            more = f" ({len(ratios[col])} shapes)" if missing else ""
            geo_cells.append(
                f"**{_geo(list(ratios[col].values())):.2f}**{more}"
                if ratios[col]
                else NOT_APPLICABLE
            )
        best_all = [
            min((ratios[col][n] for col in explicit if n in ratios[col]), default=None)
            for n in names
        ]
        lines.append(
            "| **geometric mean of ratios** | 1 | "
            + " | ".join(geo_cells)
            + f" | {f'**{_geo(best_all):.2f}**' if any(best_all) else ''} | | |"
        )
        if "auto" in ratios:
            auto = ratios["auto"]
            groups = {
                "channels-first float32": [
                    n for n in names if not case(n).channels_last and case(n).dtype == "float32"
                ],
                "channels-last": [n for n in names if case(n).channels_last],
                "bfloat16": [n for n in names if case(n).dtype == "bfloat16"],
            }
            parts = [
                f"{label} {_geo([auto[n] for n in group if n in auto]):.2f} "
                f"({sum(n in auto for n in group)} shapes)"
                for label, group in groups.items()
                if any(n in auto for n in group)
            ]
            lines.append("\nauto / PyTorch, geometric mean: " + "; ".join(parts) + ".")
            above = [f"{n} {auto[n]:.2f}" for n in names if auto.get(n, 0) > FLAG_ABOVE]
            lines.append(
                f"Shapes where auto / PyTorch > {FLAG_ABOVE}: "
                + (", ".join(above) if above else "none")
                + "."
            )
            if "jax.lax" in ratios:
                common = [n for n in names if n in auto and n in ratios["jax.lax"]]
                speedup = _geo([ratios["jax.lax"][n] / auto[n] for n in common])
                lines.append(f"jax.lax time / auto time: {speedup:.2f} (geometric mean).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset of shapes, 5 rounds")
    parser.add_argument(
        "--shapes",
        default=None,
        help="comma-separated names: a base shape ("
        + ",".join(SHAPES)
        + ") optionally followed by _cl and/or _bf16",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="run the channels-last (_cl) variant of every selected shape",
    )
    parser.add_argument(
        "--bfloat16",
        action="store_true",
        help="run the bfloat16 (_bf16) variant of every selected shape",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated values of convt_jax's method= argument",
    )
    parser.add_argument("--modes", default="fwd,fb")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="PyTorch threads (default: the CPUs this process may use)",
    )
    parser.add_argument("--no-lax", action="store_true")
    parser.add_argument("--list", action="store_true", help="list the shapes and exit")
    parser.add_argument("--out", default=None, help="also write the Markdown tables here")
    args = parser.parse_args(argv)
    if args.list:
        for name in SUITE:
            c = case(name)
            n, c_in, spatial, c_out, k, s, p, g = c.shape
            print(
                f"{name:16} N={n} C_in={c_in} {'x'.join(map(str, spatial))} -> C_out={c_out} "
                f"k={k} s={s} p={p} op={c.output_padding} groups={g} "
                f"{'channels-last ' if c.channels_last else ''}{c.dtype}"
                f"{f' dilation={c.dilation}' if c.regular else ''}: "
                f"{DESCRIPTION.get(c.base) or DESCRIPTION_REGULAR.get(c.base, '')}"
            )
        return 0
    import torch

    names = args.shapes.split(",") if args.shapes else list(QUICK if args.quick else SUITE)
    if args.channels_last:
        names = [
            n
            if case(n).channels_last
            else (n[:-5] + "_cl_bf16" if n.endswith("_bf16") else n + "_cl")
            for n in names
        ]
    if args.bfloat16:
        names = [n if case(n).dtype == "bfloat16" else n + "_bf16" for n in names]
    try:
        [case(n) for n in names]
    except ValueError as e:
        parser.error(str(e))
    modes = args.modes.split(",")
    methods = args.methods.split(",")
    rounds = args.rounds or (5 if args.quick else 7)
    torch.set_num_threads(args.threads or _machine.cores()[0])
    start = _machine.matmul_rates()
    print(_machine.header(start), file=sys.stderr, flush=True)
    results = {}
    for name in names:
        results[name] = bench_shape(
            case(name),
            modes,
            methods,
            rounds,
            not args.no_lax,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
    end = _machine.matmul_rates()
    header = (
        _machine.header(start, end) + f"\n\nMedian of {rounds} interleaved rounds (a new "
        "shuffled order each round) after warm-up; every result checked against PyTorch "
        "(float32 reference)."
    )
    text = table(results, modes, names, start[0], header).lstrip("\n")
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
