"""Sharded transposed convolutions: runs tests/sharded_cases.py on 8 simulated CPU devices.

JAX fixes its device count when it initialises (here, in conftest.py), so
the sharded checks run in one subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``: data, channel and
spatial parallelism for 1-, 2- and 3-D and every ``method`` (forward and
gradients against one device, collectives read from the compiled HLO), the regular
convolution's splits with each padding mode,
Explicit mesh axes, an optax training step of ``ct.nn`` layers, and
examples/shard_map_example.py.  See tests/sharded_cases.py.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEVICES = "--xla_force_host_platform_device_count=8"


@pytest.mark.slow
@pytest.mark.long
def test_sharded_cases_on_8_simulated_devices():
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "tests" / "sharded_cases.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=-ra",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    # It really ran (a missing device flag would skip every case instead); the only skips
    # allowed are of features this JAX lacks (see tests/sharded_cases.py).
    assert " passed" in out, out[-3000:]
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert all("this JAX has no" in line for line in skips), "\n".join(skips)
    if hasattr(jax.sharding, "auto_axes") and hasattr(jax, "shard_map"):
        assert "skipped" not in out, out[-3000:]
