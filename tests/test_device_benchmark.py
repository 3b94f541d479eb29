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
    env = dict(os.environ, JAX_PLATFORMS="cpu")
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
        for line in text.splitlines()
        if line.startswith("| ") and "ms" not in line and not line.startswith("|---")
    ]
    assert [r.split(" | ")[0][2:] for r in rows] == shapes.split(",")
    assert "Geometric mean of time / PyTorch time: convt_jax forward" in text


def test_without_a_gpu_it_says_so():
    proc = _run("--shapes", "dcgan1")
    assert proc.returncode == 2
    assert "no GPU" in proc.stderr and "--dry" in proc.stderr
