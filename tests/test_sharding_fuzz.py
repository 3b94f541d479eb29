"""Sharded equals unsharded: tests/sharding_fuzz.py's random cases, in child processes.

Each case is a random transposed convolution or (every third seed) a random regular
convolution, in float64 or (a quarter of the seeds) float32, and a random split of its
operands over 8 simulated CPU devices (see tests/sharding_fuzz.py); the sharded forward
and gradients must equal the one-device ones.  The cases run in child processes, a batch
of seeds per child: JAX fixes its device count when it starts, and XLA's SPMD partitioner
can abort the process on a convolution it mis-partitions.  When a child dies, the case it was
running (its last ``CASE`` line) is reported with its configuration and the rest of
the batch runs in a fresh child, so one abort fails one case, not the run.

Default tier: seeds 0-15 (tests/conftest.py's DEFAULT_TIER_EVERY); ``-m slow`` (CI's slow
tier): seeds 16-63; ``--slow`` (or ``HYPOTHESIS_PROFILE=dev``): all 640, ten times the
cases like the other fuzz tests (seeds 64-639 took 5.6 minutes of worker time on a 2-core
Xeon: too long for CI).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import pytest
from hypothesis import settings
from sharding_fuzz import CHANNEL_CASES, HALO_CASES

from convt_jax._compat import HAS_EXPLICIT_AXES

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHILD = ROOT / "tests" / "sharding_fuzz.py"
PER_CHILD = 16
DEFAULT_CASES = 64
# 640 with --slow (the 'slow' hypothesis profile, tests/conftest.py), like the crash fuzz
SLOW_CASES = DEFAULT_CASES * max(1, settings().max_examples // 60)


def _env() -> dict:
    env = dict(os.environ)
    flag = "--xla_force_host_platform_device_count=8"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_seeds(seeds: list[int], mode: tuple[str, ...] = ()) -> tuple[list[str], int]:
    """Run ``seeds`` in children until each has a result; the failures and the count run.

    ``mode`` (``("halo",)``) runs the child's fixed halo-exchange cases instead, numbered
    like seeds; a crash then ends the run (their numbers are not arguments)."""
    failures, done, todo = [], 0, list(seeds)
    while todo:
        args = list(mode) or [str(s) for s in todo]
        proc = subprocess.run(
            [sys.executable, str(CHILD), *args],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        running, finished = {}, set()
        for line in proc.stdout.splitlines():
            word, _, rest = line.partition(" ")
            seed, _, detail = rest.partition(" ")
            if word == "CASE":
                running[int(seed)] = detail
            elif word in ("OK", "DIFF"):
                finished.add(int(seed))
                done += 1
                if word == "DIFF":
                    failures.append(f"seed {seed}: {detail}\n    case {running[int(seed)]}")
        crashed = [s for s in running if s not in finished]
        if proc.returncode != 0 or crashed:
            if not crashed:  # died before its first case: nothing to blame a case for
                raise AssertionError(
                    f"the fuzz child failed (rc {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
                )
            seed = crashed[0]
            done += 1
            failures.append(
                f"seed {seed}: the process died (rc {proc.returncode}): "
                f"{proc.stderr.strip().splitlines()[-1:]}\n"
                f"    case {running[seed]}"
            )
            finished.add(seed)
        todo = [s for s in todo if s not in finished]
        if mode and todo and crashed:
            failures.append(f"cases {todo} not run after the crash")
            break
    return failures, done


def _batches(total: int) -> list[list[int]]:
    return [list(range(i, min(i + PER_CHILD, total))) for i in range(0, total, PER_CHILD)]


def _check(seeds: list[int]) -> None:
    failures, done = run_seeds(seeds)
    assert done == len(seeds), f"{done} of {len(seeds)} cases ran"
    assert not failures, f"{len(failures)} of {len(seeds)} sharded cases differ:\n" + "\n".join(
        failures
    )


@pytest.mark.parametrize("seeds", _batches(DEFAULT_CASES), ids=lambda s: f"seeds{s[0]}-{s[-1]}")
def test_sharded_equals_unsharded(seeds):
    _check(seeds)


@pytest.mark.slow
@pytest.mark.parametrize(
    "seeds",
    _batches(SLOW_CASES)[DEFAULT_CASES // PER_CHILD :],
    ids=lambda s: f"seeds{s[0]}-{s[-1]}",
)
def test_sharded_equals_unsharded_slow(seeds):
    _check(seeds)


@pytest.mark.slow
@pytest.mark.skipif(
    not (HAS_EXPLICIT_AXES and hasattr(jax, "shard_map")),
    reason="this JAX has no Explicit mesh axes for convt_jax (needs 0.7)",
)
def test_visible_splits_run_per_device_without_gathers():
    """With Explicit mesh axes a split is visible in the types: a spatial split exchanges
    halos (collective-permute) and a channel split computes each device's channels, the
    compiled forward + backward gathers nothing, and the results equal one device's
    (tests/sharding_fuzz.py's check_halo and check_channels)."""
    count = len(HALO_CASES) + len(CHANNEL_CASES)
    failures, done = run_seeds(list(range(count)), mode=("halo",))
    assert done == count and not failures, "\n".join(failures)


def test_a_crashing_child_fails_one_case(monkeypatch, tmp_path):
    """The harness itself: a child that aborts mid-batch names the case and goes on."""
    fake = tmp_path / "child.py"
    fake.write_text(
        "import os, sys\n"
        "for s in sys.argv[1:]:\n"
        "    print(f'CASE {s} {{\"seed\": {s}}}', flush=True)\n"
        "    if s == '2':\n"
        "        os.abort()\n"
        "    print(f'OK {s}' if s != '4' else f'DIFF {s} dw wrong', flush=True)\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "CHILD", fake)
    failures, done = run_seeds([1, 2, 3, 4, 5])
    assert done == 5
    assert len(failures) == 2
    assert failures[0].startswith("seed 2: the process died")
    assert '"seed": 2' in failures[0]
    assert failures[1].startswith("seed 4: dw wrong")
