"""Shared fixtures: float64 on, hypothesis profiles, PyTorch reference helpers."""

from __future__ import annotations

import os

import jax

# CONVT_JAX_TEST_X64=0 keeps JAX's default (x64 off): tests/test_dtypes_x64off.py runs the
# dtype tests a second time that way, in a child process.
if os.environ.get("CONVT_JAX_TEST_X64", "1") != "0":
    jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "slow",
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow, and load the 'slow' hypothesis profile: ten "
        "times the examples of the 'ci' profile (the argument fuzz of tests/test_fuzz.py "
        "and the crash fuzz scale with it), still derandomized",
    )


def pytest_collection_modifyitems(config, items):
    # The default run (CI's) leaves out the tests marked slow; `--slow` runs them, and an
    # explicit `-m` expression decides for itself.
    if config.getoption("--slow") or config.option.markexpr:
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config):
    # Before collection, so modules that size their example counts from the
    # loaded profile at import (tests/test_fuzz.py) see it.
    if config.getoption("--slow"):
        settings.load_profile("slow")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def xla_forms():
    """The test sees the XLA forms only: oneDNN's CPU backend (when it is in use) switched
    off, for tests of the XLA rule and of programs made of XLA's own ops."""
    from convt_jax import _onednn

    with _onednn.switched_off():
        yield
