"""The GPU check in one command: correctness against PyTorch CUDA and speed against cuDNN.

    python -m benchmarks.device                       # on a machine with a GPU, ~2-4 minutes
    python -m benchmarks.device --out gpu.md --rounds 30
    python -m benchmarks.device --dry                 # CPU, tiny shapes: checks the script

For every layer of the benchmark suite (``benchmarks.run.SHAPES``, and the channels-last
variants of ``benchmarks.run.CHANNELS_LAST``) it

1. checks convt_jax's forward and its gradients with respect to input and weight
   (``method="auto"``, which on GPU lowers to XLA's convolutions, i.e. cuDNN) against
   PyTorch's ``conv_transposeNd`` on the same GPU (relative error <= 1e-3);
2. times the forward and the forward+backward of convt_jax, of PyTorch (cuDNN) and of
   ``jax.lax.conv_transpose`` (for grouped layers the lhs-dilated
   ``conv_general_dilated``, as in ``benchmarks.run``), each the median over the rounds,
   the three run in turn on the same inputs in every round;

and writes a Markdown table (default ``benchmarks/device_results.md``) headed by the
GPU, the CUDA / cuDNN / JAX / PyTorch versions and the matmul TFLOP/s measured in the run.
TF32 is off in both frameworks (``torch.backends.*.allow_tf32 = False``,
``jax.default_matmul_precision("highest")``), so both compute in float32.

``--dry`` runs the same code on the CPU with every layer shrunk (batch 1, small spatial
sizes, at most 16 channels) and 2 rounds: the test suite runs it so the script keeps
working on machines without a GPU; its timings mean nothing.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import convt_jax as ct

from . import _machine
from .run import CHANNELS_LAST, OUTPUT_PADDING, SHAPES, _fwd_bwd, _lax_transpose, torch_layer

TOL = 1e-3


def _shrink(shape):
    """The layer with batch 1, at most 6 rows per axis and 16 channels (groups kept in kind)."""
    n, c_in, spatial, c_out, k, s, p, g = shape
    c_in2 = min(c_in, 16)
    if g == c_in:  # depthwise stays depthwise
        g2, c_out2 = c_in2, c_in2 * (c_out // c_in)
    elif g > 1:  # grouped stays grouped
        g2, c_out2 = 4, 16
    else:
        g2, c_out2 = 1, min(c_out, 16)
    return (1, c_in2, tuple(min(v, 6) for v in spatial), c_out2, k, s, p, g2)


def _layers(names, dry: bool):
    for name in names:
        base, cl = (name[:-3], True) if name.endswith("_cl") else (name, False)
        shape = SHAPES[base]
        yield name, (_shrink(shape) if dry else shape), OUTPUT_PADDING.get(base, 0), cl


def _sync_torch(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_layer(torch, device, shape, op: int, cl: bool, rounds: int):
    """{(impl, mode): median ms}, and the worst relative error of convt_jax's results."""
    n, c_in, spatial, c_out, k, s, p, g = shape
    nd = len(spatial)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, *spatial), dtype=np.float32)
    w = rng.standard_normal((c_in, c_out // g, *(k,) * nd), dtype=np.float32) / math.sqrt(
        c_in * k**nd / s**nd
    )
    gy = rng.standard_normal(
        ct.conv_transpose_output_shape(x.shape, w.shape, s, p, op, groups=g), dtype=np.float32
    )
    tfn = {
        1: torch.nn.functional.conv_transpose1d,
        2: torch.nn.functional.conv_transpose2d,
        3: torch.nn.functional.conv_transpose3d,
    }[nd]
    fmt = {2: torch.channels_last, 3: torch.channels_last_3d}.get(nd) if cl else None
    tx, tw, tg = (torch.from_numpy(a).to(device) for a in (x, w, gy))
    if fmt is not None:
        tx, tw, tg = (t.contiguous(memory_format=fmt) for t in (tx, tw, tg))
    torch_fwd, torch_fb = torch_layer(tfn, tx, tw, tg, s, p, op, g)

    move = (lambda v: np.moveaxis(v, 1, -1)) if cl else (lambda v: v)
    jx, jw, jg = jnp.asarray(move(x)), jnp.asarray(w), jnp.asarray(move(gy))
    funcs = {
        "convt_jax": lambda x, w: ct.conv_transpose(
            x, w, None, s, p, op, groups=g, channels_last=cl
        ),
        "jax.lax": lambda x, w: _lax_transpose(
            x, w, nd=nd, k=k, s=s, p=p, op=op, g=g, channels_last=cl
        ),
    }
    impls = {("PyTorch", "fwd"): torch_fwd, ("PyTorch", "fb"): torch_fb}
    for name, f in funcs.items():
        fwd, fb = jax.jit(f), jax.jit(_fwd_bwd(f))
        impls[(name, "fwd")] = lambda fwd=fwd: (fwd(jx, jw),)
        impls[(name, "fb")] = lambda fb=fb: fb(jx, jw, jg)

    def run(key):
        out = impls[key]()
        if key[0] == "PyTorch":
            _sync_torch(torch, device)
        else:
            jax.block_until_ready(out)
        return out

    # Correctness (and warm-up): convt_jax and jax.lax against PyTorch on this device.
    ref = {
        mode: [t.detach().float().cpu().numpy() for t in run(("PyTorch", mode))]
        for mode in ("fwd", "fb")
    }
    ref = {
        m: [np.moveaxis(v, 1, -1) if cl and i < 2 else v for i, v in enumerate(r)]
        for m, r in ref.items()
    }
    errors = {}
    for name in funcs:
        for mode in ("fwd", "fb"):
            out = [np.asarray(o) for o in run((name, mode))]
            errors[(name, mode)] = max(
                float(np.abs(o - r).max() / (np.abs(r).max() + 1e-30))
                for o, r in zip(out, ref[mode], strict=True)
            )
    times = {key: [] for key in impls}
    for _ in range(rounds):
        for key in impls:
            t0 = time.perf_counter()
            run(key)
            times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(v) * 1e3 for key, v in times.items()}, errors


# The data-parallel check: one layer (benchmarks.run's name) per op.
DATA_PARALLEL = {"conv_transpose": "dcgan2", "conv": "conv_k3s1"}


def _markers(text: str) -> dict[str, int]:
    """What a compiled program computes its convolutions with: XLA's convolutions (on GPU
    cuDNN custom calls), im2col matrix multiplies, oneDNN calls, all-gathers."""
    return {
        "convolutions": text.count("convolution(") + text.count("cudnn$conv"),
        "dots": text.count(" dot(") + text.count("cublas"),
        "oneDNN": text.count("convt_jax_onednn_"),
        "all-gathers": text.count("all-gather("),
    }


def bench_data_parallel(op: str, dry: bool, rounds: int) -> dict:
    """Forward + backward of one layer with its batch split over every device (a mesh of
    all of them, Auto and Explicit axes) against the same layer at the per-device batch on
    one device: times, the compiled programs' convolutions, and the error against the
    unsplit result.  With one device the mesh has one device: that checks the sharded
    call's program, not scaling."""
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    from .run import REGULAR

    devices = jax.devices()
    d = len(devices)
    rng = np.random.default_rng(0)
    if op == "conv_transpose":
        n, c_in, spatial, c_out, k, s, p, g = SHAPES[DATA_PARALLEL[op]]
        if dry:
            n, c_in, spatial, c_out = _shrink((n, c_in, spatial, c_out, k, s, p, g))[:4]
        w_shape = (c_in, c_out // g, *(k,) * len(spatial))

        def layer(x, w):
            return ct.conv_transpose(x, w, None, s, p, groups=g)
    else:
        n, c_in, spatial, c_out, k, s, p, g, dil = REGULAR[DATA_PARALLEL[op]]
        if dry:
            n, c_in, c_out = 1, min(c_in, 16), min(c_out, 16)
            spatial = tuple(min(v, 6) for v in spatial)
        w_shape = (c_out, c_in // g, *(k,) * len(spatial))

        def layer(x, w):
            return ct.conv(x, w, None, s, p, dil, g)

    x = rng.standard_normal((n * d, c_in, *spatial), dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32) / math.sqrt(math.prod(w_shape[1:]))
    gy = rng.standard_normal(jax.eval_shape(layer, x, w).shape, dtype=np.float32)
    f = jax.jit(_fwd_bwd(layer))
    want = [np.asarray(v) for v in f(x, w, gy)]
    one = jax.device_put((x[:n], w, gy[:n]), devices[0])
    programs = {"one device, per-device batch": (f.lower(*one).compile(), one)}
    for kind in ("Auto", "Explicit"):
        mesh = jax.make_mesh((d,), ("data",), axis_types=(getattr(AxisType, kind),))
        batch, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
        args = (jax.device_put(x, batch), jax.device_put(w, rep), jax.device_put(gy, batch))
        compiled = f.lower(*args).compile()
        got = compiled(*args)
        err = max(
            float(np.abs(np.asarray(a) - b).max() / (np.abs(b).max() + 1e-30))
            for a, b in zip(got, want, strict=True)
        )
        programs[f"batch over {d} device(s), {kind} axes"] = (compiled, args, err)
    times: dict[str, list[float]] = {k: [] for k in programs}
    for _ in range(rounds + 1):  # the first round warms up
        for key, (compiled, args, *_rest) in programs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times[key].append(time.perf_counter() - t0)
    return {
        key: (
            statistics.median(times[key][1:]) * 1e3,
            _markers(compiled.as_text()),
            rest[0] if rest else None,
        )
        for key, (compiled, args, *rest) in programs.items()
    }


def data_parallel_table(dry: bool, rounds: int) -> tuple[list[str], list[str]]:
    """The data-parallel section's lines, and its mismatches."""
    lines = [
        "",
        "## Data parallel",
        "",
        f"Forward + backward with the batch split over all {jax.device_count()} device(s) "
        "(`python -m benchmarks.device`, same run): ms, and what the compiled program "
        "computes with (XLA convolutions incl. cuDNN calls / matrix multiplies / oneDNN "
        "calls / all-gathers).",
        "",
        "| op (layer) | program | ms | convolutions / dots / oneDNN / all-gathers | "
        "max rel. error |",
        "|---|---|---|---|---|",
    ]
    bad = []
    for op, name in DATA_PARALLEL.items():
        for key, (ms, marks, err) in bench_data_parallel(op, dry, rounds).items():
            cells = " / ".join(str(v) for v in marks.values())
            err_cell = "" if err is None else f"{err:.1e}"
            lines.append(f"| {op} ({name}) | {key} | {ms:.3f} | {cells} | {err_cell} |")
            if err is not None and err > TOL:
                bad.append(f"data parallel {op}: relative error {err:.1e}")
    return lines, bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dry",
        action="store_true",
        help="CPU, tiny shapes, 2 rounds: check the script, not the GPU",
    )
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 20)")
    parser.add_argument("--shapes", default=None, help="comma-separated suite names")
    parser.add_argument("--out", default="benchmarks/device_results.md")
    args = parser.parse_args(argv)
    import torch

    names = (
        args.shapes.split(",") if args.shapes else [*SHAPES, *(f"{n}_cl" for n in CHANNELS_LAST)]
    )
    if args.dry:
        device, rounds = torch.device("cpu"), args.rounds or 2
    else:
        if jax.default_backend() not in ("gpu", "cuda", "rocm") or not torch.cuda.is_available():
            print(
                f"no GPU: JAX's default backend is {jax.default_backend()!r} and "
                f"torch.cuda.is_available() is {torch.cuda.is_available()}; on a machine "
                "without one, run with --dry",
                file=sys.stderr,
            )
            return 2
        device, rounds = torch.device("cuda"), args.rounds or 20
        torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    t_start = time.perf_counter()
    rows, bad = [], []
    with jax.default_matmul_precision("highest"):
        n = 256 if args.dry else 8192  # XLA's matmul runs on the default backend
        jax_tf = _machine.xla_matmul_gflops(n) / 1e3
        torch_tf = _machine.torch_matmul_gflops(n, device=device.type) / 1e3
        for name, shape, op, cl in _layers(names, args.dry):
            ms, errors = bench_layer(torch, device, shape, op, cl, rounds)
            worst = max(errors.values())
            if errors[("convt_jax", "fwd")] > TOL or errors[("convt_jax", "fb")] > TOL:
                bad.append(f"{name}: convt_jax relative error {worst:.1e}")
            rows.append((name, shape, ms, errors))
            print(
                f"{name}: " + ", ".join(f"{k[0]} {k[1]} {v:.2f} ms" for k, v in ms.items()),
                flush=True,
            )
    kind = jax.devices()[0].device_kind
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    lines = [
        "# "
        + (
            "Dry run (CPU, shrunk layers: timings mean nothing)"
            if args.dry
            else "GPU check: convt_jax against PyTorch (cuDNN) and jax.lax"
        ),
        "",
        "Command: `python -m benchmarks.device" + (" --dry" if args.dry else "") + "`",
        "",
        f"Device: {kind}; jax {jax.__version__} ({jax.default_backend()}), torch "
        f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {cudnn}); Python "
        f"{platform.python_version()}; float32 matmul {jax_tf:.1f} TFLOP/s (JAX), "
        f"{torch_tf:.1f} TFLOP/s (PyTorch); TF32 off; median of {rounds} rounds; "
        f"{time.perf_counter() - t_start:.0f} s in all.",
        "",
        "| layer | PyTorch fwd ms | convt_jax fwd | jax.lax fwd | PyTorch f+b ms | "
        "convt_jax f+b | jax.lax f+b | max rel. error (convt_jax) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = {
        k: []
        for k in (("convt_jax", "fwd"), ("jax.lax", "fwd"), ("convt_jax", "fb"), ("jax.lax", "fb"))
    }
    for name, _, ms, errors in rows:
        cells = [name]
        for mode in ("fwd", "fb"):
            base = ms[("PyTorch", mode)]
            cells.append(f"{base:.3f}")
            for impl in ("convt_jax", "jax.lax"):
                r = ms[(impl, mode)] / base
                ratios[(impl, mode)].append(r)
                cells.append(f"{ms[(impl, mode)]:.3f} ({r:.2f})")
        cells.append(f"{max(errors[('convt_jax', 'fwd')], errors[('convt_jax', 'fb')]):.1e}")
        lines.append("| " + " | ".join(cells) + " |")

    def geo(v):
        return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")

    lines += [
        "",
        "Geometric mean of time / PyTorch time: "
        + "; ".join(
            f"{impl} {'forward' if mode == 'fwd' else 'forward+backward'} {geo(v):.2f}"
            for (impl, mode), v in ratios.items()
        )
        + ".",
        "",
        ("All results match PyTorch." if not bad else "MISMATCHES: " + "; ".join(bad)),
    ]
    with jax.default_matmul_precision("highest"):
        dp_lines, dp_bad = data_parallel_table(args.dry, rounds)
    lines += dp_lines
    if dp_bad:
        bad += dp_bad
        lines += ["", "MISMATCHES: " + "; ".join(dp_bad)]
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as fh:
        fh.write(text)
    print(text)
    print(f"wrote {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
