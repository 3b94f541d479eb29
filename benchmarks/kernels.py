"""oneDNN's own execution times of the kernels convt_jax and PyTorch run, side by side.

    python -m benchmarks.kernels --shapes dcgan3,unet2 --channels-last --modes fwd
    python -m benchmarks.kernels --models dcgan,pix2pix --rounds 5 --out k.md
    python -m benchmarks.kernels --shapes k3s2op1 --modes fb --detail   # every primitive

On the CPU, PyTorch computes every transposed convolution shown here with oneDNN (its own
copy, built into libtorch), and convt_jax's ``auto`` with oneDNN too where the backend
is in use (``convt_jax.backend_info()``).  A wall-clock ratio then mixes two things: the
kernels (which oneDNN version, which implementation it picked) and what surrounds them
(dispatch, the other layers of a model).  This benchmark separates them: it runs both
sides, alternating, in a child process with ``ONEDNN_VERBOSE=1``, which makes oneDNN print
the name, layouts and execution time of every primitive it runs, and adds those times up
per call (a layer's forward or forward+backward; a model's training step).  The wall
time of the same calls is printed beside them.

* ``--shapes``: the layers of ``benchmarks.run`` (the same names, values and
  ``output_padding``).
* ``--models``: one training step of the models of ``benchmarks.models``, every
  convolution ported to convt_jax.  The convolution primitives are counted on both sides:
  oneDNN's ``convolution`` and ``deconvolution`` primitives and the ``reorder`` primitives
  around them.  convt_jax computes all three maps of both of its convolutions with
  oneDNN's ``convolution`` primitives (a transposed convolution is the adjoint of a
  regular one); PyTorch computes its transposed layers with ``deconvolution`` primitives
  and its regular ones with ``convolution`` primitives.  Other primitives (an sgemm that
  XLA:CPU may call for a dot) are left out.

Times are medians over the rounds; verbose mode adds a little time to every primitive on
both sides.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import math
import os
import statistics
import subprocess
import sys
import time

_MARK = "convt_jax-benchmark-round"
# The primitive kinds of a convolution (either kind) and the reorders around them.
_CONVOLUTIONS = ("convolution", "deconvolution")
_COUNTED = (*_CONVOLUTIONS, "reorder")


def _child(argv: list[str]) -> int:
    """Run both sides of one case in this process, alternating, and print a mark before
    each timed call and the call's wall time after it (oneDNN prints its lines between)."""
    kind, name, mode, rounds = argv[0], argv[1], argv[2], int(argv[3])
    import jax

    libc = ctypes.CDLL(None)
    calls = {}
    if kind == "shape":
        from . import run

        impls, _, _, _ = run._implementations(run.case(name), [mode], ["auto"], with_lax=False)
        for side, key in (("convt_jax", "auto"), ("PyTorch", "PyTorch")):
            calls[side] = lambda f=impls[(key, mode)]: run._block(f())
    else:
        import jax.numpy as jnp

        from . import models

        model = models.models(False)[name]
        params = models.init(model)
        inputs, target = models._data(model, params)
        jp = {k: jnp.asarray(v) for k, v in params.items()}
        jt, jx = jnp.asarray(target), [jnp.asarray(x) for x in inputs]
        step = models.jax_step(model, "convt_jax", "auto")
        calls["convt_jax"] = lambda: jax.block_until_ready(step(jp, jt, *jx))
        calls["PyTorch"] = models.torch_step(model, "PyTorch", params, target, inputs)
    for call in calls.values():
        for _ in range(3):
            call()
    sides = list(calls)
    for i in range(rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            libc.fflush(None)  # oneDNN's lines so far go out before the mark
            os.write(1, f"{_MARK} {side}\n".encode())
            t0 = time.perf_counter()
            calls[side]()
            wall = time.perf_counter() - t0
            libc.fflush(None)
            os.write(1, f"{_MARK} {side} wall {wall * 1e3:.4f}\n".encode())
    return 0


def _calls(out: str) -> dict[str, tuple[list[dict[tuple[str, ...], float]], list[float]]]:
    """{side: (per timed call {(kind, propagation, problem, implementation): ms}, the
    calls' wall ms)}, read off the child's output: the marks and oneDNN's verbose lines."""
    sides: dict[str, tuple[list[dict[tuple[str, ...], float]], list[float]]] = {}
    current: dict[tuple[str, ...], float] | None = None
    for line in out.splitlines():
        if line.startswith(_MARK):
            words = line.split()
            calls, walls = sides.setdefault(words[1], ([], []))
            if len(words) > 2 and words[2] == "wall":
                walls.append(float(words[3]))
                calls.append(current if current is not None else {})
                current = None
            else:
                current = collections.defaultdict(float)
            continue
        if current is None or not line.startswith("onednn_verbose") or ",exec," not in line:
            continue
        parts = line.split(",")
        # oneDNN >= 3.3 writes "onednn_verbose,v1,primitive,exec,cpu,KIND,IMPL,PROP,..."
        # and older versions "onednn_verbose,exec,cpu,KIND,IMPL,PROP,..."; the problem and
        # the time are the last two fields in both.
        at = parts.index("exec")
        kind, impl, prop = parts[at + 2], parts[at + 3], parts[at + 4]
        current[(kind, prop if kind != "reorder" else "", parts[-2], impl)] += float(parts[-1])
    return sides


def _parse(out: str) -> dict[str, tuple[list[dict[str, float]], list[float], set[str]]]:
    """{side: (per timed call {primitive kind: ms}, the calls' wall ms, the kernels' names)}."""
    result = {}
    for side, (calls, walls) in _calls(out).items():
        per_kind = []
        for call in calls:
            kinds: dict[str, float] = collections.defaultdict(float)
            for (kind, _, _, _), ms in call.items():
                kinds[kind] += ms
            per_kind.append(kinds)
        impls = {impl for call in calls for (kind, _, _, impl) in call if kind != "reorder"}
        result[side] = (per_kind, walls, impls)
    return result


def _primitives(out: str) -> dict[str, dict[tuple[str, ...], float]]:
    """{side: {(kind, propagation, problem, implementation): median ms per call}}: which
    primitive takes the time (``--detail``)."""
    result = {}
    for side, (calls, _) in _calls(out).items():
        keys = {k for c in calls for k in c}
        result[side] = {k: statistics.median(c.get(k, 0.0) for c in calls) for k in keys}
    return result


def measure(kind: str, name: str, mode: str, rounds: int) -> dict[str, dict]:
    """{side: {"kernels": {primitive kind: median ms}, "total": the convolutions'
    median oneDNN ms (with their reorders), "wall": median ms, "impls": names}}."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.kernels", "--child", kind, name, mode, str(rounds)],
        env=dict(os.environ, ONEDNN_VERBOSE="1"),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {name} failed:\n{proc.stderr[-2000:]}")
    out = {}
    for side, (per_call, walls, impls) in _parse(proc.stdout).items():
        kinds = sorted({k for r in per_call for k in r})
        out[side] = {
            "kernels": {k: statistics.median(r.get(k, 0.0) for r in per_call) for k in kinds},
            # the convolutions' share: their primitives and the reorders around them (other
            # primitives: e.g. the sgemm that XLA:CPU's dots may call)
            "total": statistics.median(_total(r) for r in per_call),
            "wall": statistics.median(walls),
            "impls": impls,
        }
    for side, prims in _primitives(proc.stdout).items():
        out[side]["primitives"] = prims
    return out


def _total(call: dict[str, float]) -> float:
    """A call's convolution time: its convolution primitives of either kind and the reorders
    around them, ms (other primitives left out)."""
    return sum(call.get(k, 0.0) for k in _COUNTED)


def _geo(values: list[float]) -> float:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="", help="names of benchmarks.run's shapes")
    ap.add_argument("--channels-last", action="store_true", help="their _cl variants")
    ap.add_argument("--modes", default="fwd", help="fwd and/or fb (forward+backward)")
    ap.add_argument("--models", default="", help="names of benchmarks.models' models")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument(
        "--detail", action="store_true", help="also list every primitive's time, both sides"
    )
    ap.add_argument("--out", default=None, help="also write the Markdown tables here")
    args = ap.parse_args(argv)
    import convt_jax as ct

    from . import _machine

    info = ct.backend_info()
    lines = [
        _machine.header(_machine.matmul_rates()),
        "",
        f"convt_jax backend: {info.backend} ({info.reason}); "
        f"PyTorch {_torch_version()} with its own oneDNN.  Medians of {args.rounds} rounds; "
        "ms per call; oneDNN = the sum of oneDNN's verbose execution times.",
        "",
    ]
    print("\n".join(lines), flush=True)
    tables = []
    shapes = [s for s in args.shapes.split(",") if s]
    if args.channels_last:
        shapes = [s if s.endswith("_cl") else s + "_cl" for s in shapes]
    for mode in [m for m in args.modes.split(",") if m] if shapes else []:
        rows = [
            f"### {'forward' if mode == 'fwd' else 'forward+backward'}",
            "",
            "| shape | convt_jax oneDNN | PyTorch oneDNN | oneDNN ratio | convt_jax wall | "
            "PyTorch wall | wall ratio | convt_jax kernel | PyTorch kernel |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        ratios, walls = [], []
        details: list[str] = []
        for name in shapes:
            r = measure("shape", name, mode, args.rounds)
            a, b = r["convt_jax"], r["PyTorch"]
            ratios.append(a["total"] / b["total"])
            walls.append(a["wall"] / b["wall"])
            rows.append(
                f"| {name} | {a['total']:.2f} | {b['total']:.2f} | {ratios[-1]:.2f} | "
                f"{a['wall']:.2f} | {b['wall']:.2f} | {walls[-1]:.2f} | "
                f"{' '.join(sorted(a['impls'])) or 'XLA'} | {' '.join(sorted(b['impls']))} |"
            )
            print(rows[-1], flush=True)
            if args.detail:
                details.append(_detail_table(f"{name}, {mode}", r))
        rows.append(
            f"| **geometric mean** | | | **{_geo(ratios):.2f}** | | | **{_geo(walls):.2f}** | | |"
        )
        tables.append("\n".join(rows))
        print(rows[-1], flush=True)
        tables.extend(details)
    models = [m for m in args.models.split(",") if m]
    if models:
        rows = [
            "### one training step",
            "",
            "| model | convt_jax convolutions | convt_jax reorders | PyTorch convolutions | "
            "PyTorch reorders | convolution ratio | with reorders | "
            "convt_jax step | PyTorch step | step ratio |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        model_details: list[str] = []
        for name in models:
            r = measure("model", name, "step", args.rounds)
            a, b = r["convt_jax"], r["PyTorch"]
            ad, bd = (sum(x["kernels"].get(k, 0.0) for k in _CONVOLUTIONS) for x in (a, b))
            ar, br = (x["kernels"].get("reorder", 0.0) for x in (a, b))
            rows.append(
                f"| {name} | {ad:.1f} | {ar:.1f} | {bd:.1f} | {br:.1f} | "
                f"{ad / bd if bd else float('nan'):.2f} | "
                f"{a['total'] / (bd + br) if bd + br else float('nan'):.2f} | "
                f"{a['wall']:.1f} | {b['wall']:.1f} | {a['wall'] / b['wall']:.2f} |"
            )
            print(rows[-1], flush=True)
            if args.detail:
                model_details.append(_detail_table(f"{name}, one step", r))
        tables.append("\n".join(rows))
        tables.extend(model_details)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n" + "\n\n".join(tables) + "\n")
    return 0


def _detail_table(title: str, r: dict[str, dict]) -> str:
    """Every primitive of one case, both sides, largest first."""
    rows = [
        f"#### {title}: every primitive",
        "",
        "| side | primitive | propagation | problem | implementation | ms per call |",
        "|---|---|---|---|---|---|",
    ]
    items = [(ms, side, key) for side in r for key, ms in r[side]["primitives"].items()]
    for ms, side, (kind, prop, problem, impl) in sorted(items, reverse=True):
        rows.append(f"| {side} | {kind} | {prop} | {problem} | {impl} | {ms:.2f} |")
    text = "\n".join(rows)
    print(text, flush=True)
    return text


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    sys.exit(main())
