"""The machine a benchmark ran on: CPU model, vector extensions, cores, matmul speed.

Ratios to PyTorch move a lot from one CPU kind to another (oneDNN and XLA
use different kernels for different vector extensions), so every table the
benchmarks print starts with these lines.  The fp32 matrix-multiply rate of
XLA and of PyTorch, measured in the same process, also shows how busy a
shared machine was: it is measured at the start and again at the end.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import time

_VECTOR = re.compile(r"^(avx\w*|amx\w*|fma|f16c|sse4_2)$")


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _cpuinfo_first(key: str) -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                name, sep, value = line.partition(":")
                if sep and name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_model() -> str:
    """lscpu's "Model name" (falls back to /proc/cpuinfo, then the platform)."""
    return (
        _lscpu().get("Model name")
        or _cpuinfo_first("model name")
        or platform.processor()
        or platform.machine()
        or "unknown CPU"
    )


def vector_extensions() -> list[str]:
    """The SIMD flags of /proc/cpuinfo that matter for these kernels (avx*, amx*, fma...)."""
    flags = _cpuinfo_first("flags").split()
    return sorted({f for f in flags if _VECTOR.match(f)})


def cores() -> tuple[int, int]:
    """(CPUs this process may run on, CPUs lscpu reports for the machine)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        total = int(_lscpu().get("CPU(s)", ""))
    except ValueError:
        total = os.cpu_count() or usable
    return usable, total


def _median_seconds(f, reps: int) -> float:
    f()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def xla_matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    """fp32 n x n ``jnp.dot`` under ``jax.jit``, GFLOP/s, median of ``reps``."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(jnp.dot)
    return 2 * n**3 / _median_seconds(lambda: f(a, a).block_until_ready(), reps) / 1e9


def torch_matmul_gflops(n: int = 2048, reps: int = 5, device: str = "cpu") -> float:
    """fp32 n x n ``torch.mm`` (current thread setting), GFLOP/s, median of ``reps``; on a
    CUDA ``device`` each call is synchronised."""
    import torch

    a = torch.ones((n, n), dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

    def mm():
        torch.mm(a, a)
        sync()

    with torch.no_grad():
        return 2 * n**3 / _median_seconds(mm, reps) / 1e9


def matmul_rates() -> tuple[float, float]:
    """(XLA, PyTorch) fp32 2048x2048 matmul GFLOP/s."""
    return xla_matmul_gflops(), torch_matmul_gflops()


def header(start: tuple[float, float], end: tuple[float, float] | None = None) -> str:
    """Two lines naming the software and the machine, for the top of every table.

    ``start`` and ``end`` are :func:`matmul_rates` at the start and the end of the run.
    """
    import jax
    import torch

    usable, total = cores()
    ext = " ".join(vector_extensions()) or "none reported"
    rate = (
        f"XLA {start[0]:.0f} GFLOP/s, PyTorch {start[1]:.0f} GFLOP/s"
        if end is None
        else f"XLA {start[0]:.0f} / {end[0]:.0f} GFLOP/s, PyTorch {start[1]:.0f} / "
        f"{end[1]:.0f} GFLOP/s (start / end of the run)"
    )
    import convt_jax as ct

    info = ct.backend_info()
    return (
        f"jax {jax.__version__} ({jax.default_backend()}, {jax.devices()[0].device_kind}), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); convt_jax CPU "
        f"backend: {info.backend} ({info.reason})\n\n"
        f"CPU: {cpu_model()}; {usable} CPUs usable of {total}; vector extensions: {ext}; "
        f"fp32 2048x2048 matmul: {rate}."
    )
