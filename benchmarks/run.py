"""Benchmark convt_jax against PyTorch (CPU, 2 threads) and jax.lax.conv_transpose.

    python -m benchmarks.run                 # every shape, forward and forward+backward
    python -m benchmarks.run --quick         # fewer shapes and rounds
    python -m benchmarks.run --shapes dcgan1,unet3d --rounds 9 --out table.md

Every implementation runs once per round, in turn, on the same inputs (the
machines are shared and noisy: ratios from one run are what count); each
figure is the median over the rounds after warm-up.  Every result is
checked against PyTorch before it is timed.  "f+b" is the forward plus the
gradients with respect to input and weight.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import convt_jax as ct  # noqa: E402
from convt_jax import _args, _lowering, _primitive  # noqa: E402

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
}
QUICK = ("dcgan1", "dcgan4", "unet1", "s1k3", "depthwise", "hifigan", "vnet3d")
METHODS = ("auto", "dilated", "subpixel", "matmul", "depthwise")


def _flops(shape) -> float:
    n, c_in, spatial, c_out, k, _, _, g = shape
    return 2.0 * n * c_in * math.prod(spatial) * (c_out // g) * k ** len(spatial)


def matmul_gflops() -> float:
    a = jnp.ones((2048, 2048), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, a).block_until_ready()
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        f(a, a).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * 2048 ** 3 / statistics.median(times) / 1e9


def _fwd_bwd(f):
    """y, dx, dw together (returning y keeps XLA from dropping the forward pass)."""
    def fb(x, w, gy):
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(gy))
    return fb


def _implementations(shape, modes, methods, with_lax=True):
    """{(name, mode): callable returning arrays} plus the torch reference values."""
    import torch

    n, c_in, spatial, c_out, k, s, p, g = shape
    nd = len(spatial)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, *spatial), dtype=np.float32)
    w = (rng.standard_normal((c_in, c_out // g, *(k,) * nd), dtype=np.float32)
         / math.sqrt(c_in * k ** nd / s ** nd))
    out_shape = ct.conv_transpose_output_shape(x.shape, w.shape, s, p, groups=g)
    gy = rng.standard_normal(out_shape, dtype=np.float32)
    tfn = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
           3: torch.nn.functional.conv_transpose3d}[nd]
    tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)

    def torch_fwd():
        with torch.no_grad():
            return (tfn(tx, tw, None, s, p, 0, g),)

    def torch_fb():
        a = tx.clone().requires_grad_(True)
        b = tw.clone().requires_grad_(True)
        y = tfn(a, b, None, s, p, 0, g)
        return (y.detach(), *torch.autograd.grad(y, (a, b), tg))

    impls = {}
    if "fwd" in modes:
        impls[("PyTorch", "fwd")] = torch_fwd
    if "fb" in modes:
        impls[("PyTorch", "fb")] = torch_fb
    jx, jw, jg = jnp.asarray(x), jnp.asarray(w), jnp.asarray(gy)

    def add_jax(name, f):
        fwd = jax.jit(f)
        fb = jax.jit(_fwd_bwd(f))
        if "fwd" in modes:
            impls[(name, "fwd")] = lambda: (fwd(jx, jw),)
        if "fb" in modes:
            impls[(name, "fb")] = lambda: fb(jx, jw, jg)

    for m in methods:
        if "/" in m:  # "forward/dx/dw": a lowering with chosen backward forms (tuning only)
            config = _args.parse(x.shape, w.shape, None, s, p, 0, g, 1, None, False).config
            add_jax(m, lambda x, w, m=m, c=config: _primitive.conv_transpose_batched(
                x, w, c, tuple(m.split("/"))))
        else:
            add_jax(m, lambda x, w, m=m: ct.conv_transpose(x, w, None, s, p, groups=g, method=m))
    if with_lax:
        spec = "DHW"[3 - nd:]
        dn = ("NC" + spec, "OI" + spec, "NC" + spec)
        if g == 1:
            add_jax("jax.lax", lambda x, w: jax.lax.conv_transpose(
                x, w, (s,) * nd, [(k - 1 - p, k - 1 - p)] * nd, dimension_numbers=dn,
                transpose_kernel=True))
        else:  # jax.lax.conv_transpose has no groups: the lhs-dilated conv, as Equinox does
            config = _args.parse(x.shape, w.shape, None, s, p, 0, g, 1, None, False).config
            add_jax("jax.lax", lambda x, w: _lowering.dilated(x, w, config))
        if "fb" in modes:
            # Issue 3's yardstick: JAX's own autodiff of the core lhs-dilated lowering.
            config = _args.parse(x.shape, w.shape, None, s, p, 0, g, 1, None, False).config
            f = lambda x, w: _lowering.dilated(x, w, config)  # noqa: E731
            fb = jax.jit(_fwd_bwd(f))
            impls[("autodiff(dilated)", "fb")] = lambda: fb(jx, jw, jg)
    return impls


def _block(values):
    for v in values:
        if hasattr(v, "block_until_ready"):
            v.block_until_ready()
    return values


def bench_shape(name, shape, modes, methods, rounds, with_lax=True, log=print):
    impls = _implementations(shape, modes, methods, with_lax)
    ref = {mode: [np.asarray(v.detach().numpy()) for v in impls[("PyTorch", mode)]()]
           for mode in modes}
    times = {key: [] for key in impls}
    errors = {}
    for key, f in impls.items():            # warm-up (compile) and check against PyTorch
        t0 = time.perf_counter()
        out = _block(f())
        warm = time.perf_counter() - t0
        if key[0] != "PyTorch":
            errors[key] = max(float(np.abs(np.asarray(o) - r).max() / (np.abs(r).max() + 1e-30))
                              for o, r in zip(out, ref[key[1]]))
            if errors[key] > 1e-4:
                raise AssertionError(f"{name} {key}: relative error {errors[key]:.2e}")
        log(f"  {name} {key[0]:>18} {key[1]:>3}: first call {warm * 1e3:8.1f} ms")
    for _ in range(rounds):
        for key, f in impls.items():
            t0 = time.perf_counter()
            _block(f())
            times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(v) * 1e3 for key, v in times.items()}, errors


def _geo(values):
    values = [v for v in values if v is not None]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def table(results, modes, names, peak):
    lines = []
    for mode in modes:
        title = "forward" if mode == "fwd" else "forward + backward (grad w.r.t. input and weight)"
        impl_names = [k[0] for k in next(iter(results.values())) if k[1] == mode]
        cols = [i for i in impl_names if i != "PyTorch"]
        lines.append(f"\n### {title}: milliseconds (time / PyTorch time)\n")
        lines.append("| shape | PyTorch ms | " + " | ".join(cols) + " | auto % of matmul peak |")
        lines.append("|---|---" + "|---" * len(cols) + "|---|")
        ratios = {c: [] for c in cols}
        for name in names:
            res = results[name]
            torch_ms = res[("PyTorch", mode)]
            cells = []
            for c in cols:
                ms = res[(c, mode)]
                ratios[c].append(ms / torch_ms)
                cells.append(f"{ms:.1f} ({ms / torch_ms:.2f})")
            flops = _flops(SHAPES[name]) * (3 if mode == "fb" else 1)
            frac = flops / (res[("auto", mode)] * 1e-3) / (peak * 1e9) if ("auto", mode) in res \
                else float("nan")
            lines.append(f"| {name} | {torch_ms:.1f} | " + " | ".join(cells) +
                         f" | {100 * frac:.0f}% |")
        lines.append("| **geometric mean of ratios** | 1 | " + " | ".join(
            f"**{_geo(ratios[c]):.2f}**" for c in cols) + " | |")
        if "jax.lax" in cols and "auto" in cols:
            speedup = _geo([a / b for a, b in zip(ratios["jax.lax"], ratios["auto"])])
            lines.append(f"\nauto is {speedup:.1f}x faster than jax.lax (geometric mean).")
        if "autodiff(dilated)" in cols and "dilated" in cols:
            hand = _geo([a / b for a, b in zip(ratios["autodiff(dilated)"], ratios["dilated"])])
            best = _geo([a / b for a, b in zip(ratios["autodiff(dilated)"], ratios["auto"])])
            lines.append(f"Hand-written rules vs JAX autodiff of the lhs-dilated lowering: "
                         f"{hand:.1f}x (same forward) and {best:.1f}x (auto), geometric mean.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shapes", default=None, help="comma-separated subset of " +
                        ",".join(SHAPES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--modes", default="fwd,fb")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--no-lax", action="store_true")
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    names = args.shapes.split(",") if args.shapes else list(QUICK if args.quick else SHAPES)
    modes = args.modes.split(",")
    methods = args.methods.split(",")
    rounds = args.rounds or (5 if args.quick else 7)
    peak = matmul_gflops()
    header = (f"jax {jax.__version__} ({jax.default_backend()}, {jax.devices()[0].device_kind}), "
              f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"{os.cpu_count()} CPUs; XLA fp32 matmul {peak:.0f} GFLOP/s; median of {rounds} "
              f"interleaved rounds after warm-up; every result checked against PyTorch.")
    print(header, file=sys.stderr)
    results = {}
    for name in names:
        results[name], _ = bench_shape(name, SHAPES[name], modes, methods, rounds,
                                       not args.no_lax,
                                       log=lambda s: print(s, file=sys.stderr, flush=True))
    text = header + "\n" + table(results, modes, names, peak)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
