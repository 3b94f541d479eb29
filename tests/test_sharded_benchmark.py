"""benchmarks/sharded.py in its dry mode: every split on 8 simulated devices, checked
against one device, and the table written (the timings mean nothing)."""

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
def test_dry_run_checks_every_split_and_writes_the_table(tmp_path):
    out = tmp_path / "sharded.md"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.sharded", "--dry", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(ROOT))
    from benchmarks.sharded import DEVICE_COUNTS, LAYOUTS

    lines = out.read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| layout")]
    assert [r.split(" | ")[0][2:] for r in rows] == list(LAYOUTS)
    for row in rows:
        cells = row.strip("| ").split(" | ")[2:]
        assert len(cells) == 2 * len(DEVICE_COUNTS) - 1, row
        times, memory = cells[: len(DEVICE_COUNTS)], cells[len(DEVICE_COUNTS) :]
        assert all(re.fullmatch(r"\d+\.\d \(\d+\.\d\dx\)", c) for c in times), row
        assert all(c.split(" ")[1] == "MiB" for c in memory), row
