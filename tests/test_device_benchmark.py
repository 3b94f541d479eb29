"""benchmarks/device.py, the one-command GPU check, in its dry mode (CPU, shrunk layers).

On a machine with a GPU, ``python -m benchmarks.device`` checks convt_jax against
PyTorch CUDA and times it against cuDNN and jax.lax; here the same code runs on the
CPU so that the script keeps working where no GPU is lent.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args):
    # Four simulated devices, so that the data-parallel section splits its batch.
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags.strip())
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.device", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_dry_run_checks_and_writes_the_table(tmp_path):
    out = tmp_path / "device.md"
    shapes = "dcgan1,group8,depthwise_cl,hifigan,vnet3d,k3s2op1_cl"
    proc = _run("--dry", "--shapes", shapes, "--out", str(out))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Dry run")
    assert "All results match PyTorch." in text
    rows = [
        line
        for line in text.split("## Data parallel")[0].splitlines()
        if line.startswith("| ") and "ms" not in line and not line.startswith("|---")
    ]
    assert [r.split(" | ")[0][2:] for r in rows] == shapes.split(",")
    assert "Geometric mean of time / PyTorch time: convt_jax forward" in text
    # Data parallel over the 4 devices: the one-device program's convolutions / oneDNN
    # calls on each, nothing gathered, the unsplit result.
    section = text.split("## Data parallel", 1)[1]
    rows = [r.split(" | ") for r in section.splitlines() if r.startswith("| conv")]
    assert len(rows) == 6, section
    for op in ("conv_transpose", "conv"):
        mine = [r for r in rows if r[0] == f"| {op} (" + r[0].split("(")[1]]
        one = next(r for r in mine if r[1].startswith("one device"))
        convs, dots, onednn, gathers = map(int, one[3].split(" / "))
        assert convs + onednn == 3 and gathers == 0, one
        split = [r for r in mine if r[1].startswith("batch over 4 device(s)")]
        assert len(split) == 2, mine
        for r in split:
            c, _, o, g = map(int, r[3].split(" / "))
            assert (c, o, g) == (convs, onednn, 0), r
            assert float(r[4].rstrip(" |")) <= 1e-3, r


def test_without_a_gpu_it_says_so():
    proc = _run("--shapes", "dcgan1")
    assert proc.returncode == 2
    assert "no GPU" in proc.stderr and "--dry" in proc.stderr
