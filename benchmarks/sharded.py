"""Time a sharded transposed convolution (forward + backward) on 1, 2, 4 and 8 devices.

    python -m benchmarks.sharded                 # the table below, 7 rounds
    python -m benchmarks.sharded --rounds 3 --out table.md
    python -m benchmarks.sharded --dry           # a tiny layer, 1 round: checks the script

Runs on simulated CPU devices: this module sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before it imports
JAX (so run it as its own process).  Simulated devices share the machine's
cores, so on a small machine the table shows the *overhead* of partitioning
(collectives, halo exchanges, smaller per-device kernels), not a speed-up;
on real accelerators each device has its own compute.

Each row is one way of splitting one layer (DCGAN-like: k=4, s=2, p=1,
float32) on Auto or Explicit mesh axes: the function computes ``y``, ``dx`` and
``dw`` in one ``jax.jit`` program (``jax.vjp``), checked against the one-device
result before it is timed.  Every figure is the median over the rounds; in each
round every device count runs once, in turn (the machines are shared and noisy).
Beside the times, one device's temporary memory (``memory_analysis()``) against
its 1/D share of the one-device program's.
"""

from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import AxisType, Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import convt_jax as ct  # noqa: E402
from benchmarks import _machine  # noqa: E402

DEVICE_COUNTS = (1, 2, 4, 8)
_AUTO, _EXPLICIT = AxisType.Auto, AxisType.Explicit
# name: (what, method, x spec, w spec, gy spec, mesh axis type)
LAYOUTS = {
    "data (Auto)": ("batch split, weight replicated", "auto", P("d"), P(), P("d"), _AUTO),
    "data (Explicit)": ("batch split, weight replicated", "auto", P("d"), P(), P("d"), _EXPLICIT),
    "data, dilated (Auto)": (
        "batch split; the accelerators' forms pinned",
        "dilated",
        P("d"),
        P(),
        P("d"),
        _AUTO,
    ),
    "channel (Auto)": (
        "weight's output channels split",
        "auto",
        P(),
        P(None, "d"),
        P(None, "d"),
        _AUTO,
    ),
    "channel (Explicit)": (
        "weight's output channels split",
        "auto",
        P(),
        P(None, "d"),
        P(None, "d"),
        _EXPLICIT,
    ),
    "channel, dilated (Auto)": (
        "output channels split; the accelerators' forms pinned",
        "dilated",
        P(),
        P(None, "d"),
        P(None, "d"),
        _AUTO,
    ),
    "rows (Auto)": (
        "image rows split; halo exchange",
        "auto",
        P(None, None, "d"),
        P(),
        P(None, None, "d"),
        _AUTO,
    ),
    "rows (Explicit)": (
        "image rows split; halo exchange",
        "auto",
        P(None, None, "d"),
        P(),
        P(None, None, "d"),
        _EXPLICIT,
    ),
    "rows, dilated (Auto)": (
        "image rows split; the accelerators' forms pinned",
        "dilated",
        P(None, None, "d"),
        P(),
        P(None, None, "d"),
        _AUTO,
    ),
}
# Every split runs the one-device forms on each device (docs/scaling.md, "Per device"):
# oneDNN's kernels for "auto" on the CPU, XLA's convolutions for "dilated".
# (N, C_in, H, W, C_out, kernel, stride, padding)
SHAPE = (32, 64, 16, 16, 64, 4, 2, 1)
DRY_SHAPE = (8, 16, 8, 8, 16, 4, 2, 1)  # --dry: the same splits, small enough for the tests


def _fwd_bwd(method, stride, padding):
    def run(x, w, gy):
        y, vjp = jax.vjp(
            lambda x, w: ct.conv_transpose2d(x, w, None, stride, padding, method=method), x, w
        )
        return (y, *vjp(gy))

    return run


def _arrays():
    n, c_in, h, w_, c_out, k, s, p = SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, h, w_), dtype=np.float32)
    w = rng.standard_normal((c_in, c_out, k, k), dtype=np.float32) / np.sqrt(c_in * k * k)
    out = ct.conv_transpose_output_shape(x.shape, w.shape, s, p)
    gy = rng.standard_normal(out, dtype=np.float32)
    return x, w, gy


def _block(values):
    for v in values:
        v.block_until_ready()


def _temp_bytes(compiled) -> float:
    """Temporary memory of one device's program (``memory_analysis()``), or NaN."""
    try:
        return float(compiled.memory_analysis().temp_size_in_bytes)
    except (AttributeError, TypeError, NotImplementedError):
        return float("nan")


def bench(rounds: int, log=print) -> tuple[dict, dict]:
    """({layout: {devices: median seconds}}, {layout: {devices: per-device temporary
    bytes}}), every result checked against one device."""
    x, w, gy = _arrays()
    _, _, _, _, _, _, s, p = SHAPE
    want = jax.jit(_fwd_bwd("dilated", s, p))(x, w, gy)
    runs = {}
    memory: dict[str, dict[int, float]] = {}
    for name, (_, method, xs, ws, gs, kind) in LAYOUTS.items():
        for d in DEVICE_COUNTS:
            mesh = Mesh(np.array(jax.devices()[:d]), ("d",), axis_types=(kind,))
            args = [
                jax.device_put(a, NamedSharding(mesh, spec))
                for a, spec in ((x, xs), (w, ws), (gy, gs))
            ]
            f = jax.jit(_fwd_bwd(method, s, p)).lower(*args).compile()
            memory.setdefault(name, {})[d] = _temp_bytes(f)
            got = f(*args)
            for g, ref in zip(got, want, strict=True):
                err = float(jnp.abs(g - ref).max() / jnp.abs(ref).max())
                assert err < 1e-5, (name, d, err)
            _block(f(*args))  # warm-up
            runs[name, d] = (f, args)
        log(f"  compiled and checked {name}")
    times: dict = {key: [] for key in runs}
    for r in range(rounds):
        for key, (f, args) in runs.items():
            t0 = time.perf_counter()
            _block(f(*args))
            times[key].append(time.perf_counter() - t0)
        log(f"  round {r + 1}/{rounds}")
    out: dict[str, dict[int, float]] = {}
    for (name, d), ts in times.items():
        out.setdefault(name, {})[d] = statistics.median(ts)
    return out, memory


def table(results, memory) -> str:
    n, c_in, h, w_, c_out, k, s, p = SHAPE
    lines = [
        f"Sharded forward + backward (y, dx, dw) of conv_transpose2d, x = ({n}, {c_in}, {h}, "
        f"{w_}) float32, weight ({c_in}, {c_out}, {k}, {k}), stride {s}, padding {p}; "
        f"median ms on D simulated CPU devices (XLA_FLAGS={_FLAG}), "
        f"{os.cpu_count()} cores, jax {jax.__version__}, {_machine.cpu_model()}. "
        "In brackets: time relative to 1 device. Memory: one device's temporary memory "
        "(memory_analysis) relative to its 1/D share of the one-device program's.",
        "",
        "| layout | split | "
        + " | ".join(f"D={d}" for d in DEVICE_COUNTS)
        + " | "
        + " | ".join(f"memory D={d}" for d in DEVICE_COUNTS[1:])
        + " |",
        "|---|---|" + "---|" * (2 * len(DEVICE_COUNTS) - 1),
    ]
    for name, (what, *_rest) in LAYOUTS.items():
        base = results[name][1]
        cells = [
            f"{results[name][d] * 1e3:.1f} ({results[name][d] / base:.2f}x)" for d in DEVICE_COUNTS
        ]
        mem = memory[name]
        # (oneDNN's kernels keep their scratch to themselves: XLA's temporary memory of
        # a program of oneDNN calls can be 0, and then there is no share to compare.)
        cells += [
            f"{mem[d] / 2**20:.1f} MiB"
            + (f" ({mem[d] / (mem[1] / d):.2f}x)" if mem[1] else f" (1 device: {mem[1]:.0f})")
            for d in DEVICE_COUNTS[1:]
        ]
        lines.append(f"| {name} | {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", help="also write the table to this file")
    parser.add_argument(
        "--dry",
        action="store_true",
        help="a tiny layer and 1 round: check the script (the tests run it), not the speed",
    )
    args = parser.parse_args(argv)
    global SHAPE
    if args.dry:
        SHAPE, args.rounds = DRY_SHAPE, 1
    if jax.device_count() < max(DEVICE_COUNTS):
        raise SystemExit(
            f"needs {max(DEVICE_COUNTS)} devices: JAX was initialised before "
            f"XLA_FLAGS={_FLAG} could be set; run `python -m benchmarks.sharded`"
        )
    print(f"{jax.device_count()} {jax.devices()[0].platform} devices", flush=True)
    start = _machine.matmul_rates()
    results, memory = bench(args.rounds, log=lambda m: print(m, flush=True))
    text = _machine.header(start, _machine.matmul_rates()) + "\n\n" + table(results, memory)
    print()
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
