"""Several hosts on one machine: examples/multihost.py's two JAX processes.

The example starts two processes (4 simulated CPU devices each, a localhost
coordinator, CPU collectives over gloo) that act as two hosts of one 8-device
mesh, and each checks a data-parallel, a grouped and a spatially split training
step of ``ct.nn`` layers against the same step on one device.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.long
def test_two_processes_train_like_one_device():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "multihost.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    lines = re.findall(
        r"^process (\d): (.+?) OK max\|diff\| \S+ over 8 devices, (\d+) "
        r"collectives$",
        proc.stdout,
        re.M,
    )
    steps = {(p, step) for p, step, n in lines if int(n) > 0}
    assert steps == {
        (p, s) for p in "01" for s in ("data parallel", "grouped", "spatially split")
    }, out[-8000:]
