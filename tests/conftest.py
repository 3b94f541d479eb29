"""Shared fixtures: float64 on, hypothesis profiles, PyTorch reference helpers."""

from __future__ import annotations

import os

# XLA:CPU compiles the tests' thousands of small programs without LLVM's optimisations
# (--xla_backend_optimization_level=0): the default tier took 4:35 -> 3:13 on a 2-core
# AVX-512 EPYC, the slow tier 6:31 -> 5:01 (1,553 and 408 tests), with the same results: the
# arithmetic is IEEE either way (XLA:CPU uses no fast-math by default, and LLVM does not
# reorder floating-point operations without it), and the oneDNN kernels are compiled
# already.  Child processes the tests start inherit it.  .ci/run's stages 4 and 5 run the
# core tests optimised, as users' programs are: CONVT_JAX_TEST_OPTIMIZED=1, or an
# optimisation level of your own in XLA_FLAGS, leaves XLA_FLAGS alone.
UNOPTIMIZED = "--xla_backend_optimization_level=0"


def xla_flags(environ) -> str | None:
    """The XLA_FLAGS the tests run with, or None to leave the variable as it is."""
    flags = environ.get("XLA_FLAGS", "")
    if environ.get("CONVT_JAX_TEST_OPTIMIZED", "0") != "0":
        return None
    if "--xla_backend_optimization_level" in flags:
        return None
    return f"{flags} {UNOPTIMIZED}".strip()


#: XLA_FLAGS as the test run was started with ("" if unset), for `optimized_children`;
#: kept in the environment so that pytest-xdist's workers, started from the changed
#: environment, know it too.
STARTED_WITH = os.environ.setdefault(
    "CONVT_JAX_TEST_STARTED_WITH_XLA_FLAGS", os.environ.get("XLA_FLAGS", "")
)
if (_flags := xla_flags(os.environ)) is not None:
    os.environ["XLA_FLAGS"] = _flags

import jax  # noqa: E402

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
    parser.addoption(
        "--other-jax",
        action="store_true",
        default=False,
        help="a run on another JAX than the default tier's (.ci/run's stages 4 and 5): of "
        "the random-configuration grids in tests/conftest.py's OTHER_JAX_EVERY only every "
        "n-th default-tier parametrization runs, the others are deselected",
    )


# The default tier runs every n-th parametrization of these tests (the first, then every
# n-th in collection order, so that it still spans the parameter list); the others are
# marked slow like a decorator would, so that `-m slow` runs exactly what the default tier
# leaves out.  A test that is slow as a whole carries @pytest.mark.slow in its file.
DEFAULT_TIER_EVERY = {
    "tests/test_conv.py::test_adjoint_identity": 2,
    # every third: the four padding modes rotate through the four configurations
    "tests/test_conv.py::test_padding_modes_match_torch_nn_conv": 3,
    "tests/test_from_torch.py::test_flax_from_torch": 3,
    "tests/test_flax.py::test_nnx_matches_torch_values_and_gradients": 3,
    "tests/test_gradients.py::test_check_grads_each_argument": 5,
    "tests/test_grouped.py::test_grouped_equals_pytorch_and_dilated": 4,
    "tests/test_layouts.py::test_from_equinox_matches_equinox": 3,
    "tests/test_layouts.py::test_from_flax_matches_flax": 3,
    "tests/test_layouts.py::test_from_haiku_matches_haiku": 3,
    "tests/test_layouts.py::test_to_equinox_matches_equinox": 2,
    "tests/test_layouts.py::test_to_flax_matches_flax": 3,
    "tests/test_layouts.py::test_to_haiku_matches_haiku": 2,
    "tests/test_layouts.py::test_to_keras_matches_keras": 3,
    "tests/test_methods.py::test_backward_forms_with_an_empty_batch": 10,
    "tests/test_methods.py::test_grouped_backward_forms_equal_conv_rules": 6,
    "tests/test_methods.py::test_methods_under_vmap_and_second_order": 3,
    "tests/test_nn.py::test_dtype": 2,
    "tests/test_nn.py::test_icnr_has_no_checkerboard": 4,
    "tests/test_nonfinite.py::test_nonfinite_pattern": 3,
    "tests/test_onednn.py::test_half_precision_results_are_the_float32_result_rounded_once": 3,
    # "switch" (no warning) and "no-onednn" (the warning); "no-compiler" in the slow tier
    "tests/test_onednn.py::test_without_the_backend_the_package_runs_on_xla_and_says_why": 2,
    "tests/test_padding_modes.py::test_adjoint_of_torch_padded_conv": 3,
    "tests/test_padding_modes.py::test_transformations": 3,
    "tests/test_port_hifigan.py::test_port_matches_pytorch_and_writes_a_wav": 2,
    "tests/test_reference.py::test_half_precision_sums_in_float32": 4,
    "tests/test_reference.py::test_matches_pytorch_grid": 2,
    "tests/test_reference.py::test_same_matches_lax_conv_transpose": 3,
    "tests/test_robustness.py::test_bit_identical_across_calls_and_between_jit_and_eager": 3,
    "tests/test_robustness.py::test_empty_batch_forward_and_gradients": 3,
    "tests/test_robustness.py::test_extreme_settings_match_pytorch": 3,
    "tests/test_sharding_fuzz.py::test_sharded_equals_unsharded": 4,
    "tests/test_transforms.py::test_check_grads_order2": 3,
    "tests/test_typing.py::test_a_misspelled_setting_is_a_type_error": 2,
}


# `--other-jax` (.ci/run's stages 4 and 5, the core tests on the oldest and the newest JAX)
# runs every n-th of the default tier's parametrizations of these grids of random
# configurations (the first, then every n-th, so that it still spans the seeds: every padding
# spelling, mode and dtype stays in).  What the seeds vary is convt_jax's own geometry, the
# same on every JAX, and the default tier ran every seed on this Python's newest JAX; each
# case that runs still goes through the JAX-dependent parts (the primitive, its lowering and
# transposes, the oneDNN FFI call).  A grid whose parameters alternate (a product whose
# last axis every n-th would fix) does not belong here.
OTHER_JAX_EVERY = {
    "tests/test_conv.py::test_adjoint_identity": 2,
    "tests/test_conv.py::test_values_and_gradients_match_pytorch_float64": 2,
    "tests/test_onednn.py::test_half_precision_results_are_the_float32_result_rounded_once": 2,
    "tests/test_onednn.py::test_values_equal_pytorch_forward_dx_dw": 2,
}


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the marks added here
def pytest_collection_modifyitems(config, items):
    seen: dict[str, int] = {}
    for item in items:
        base = item.nodeid.split("[", 1)[0]
        every = DEFAULT_TIER_EVERY.get(base)
        if every is None or not hasattr(item, "callspec"):
            continue
        index = seen[base] = seen.get(base, -1) + 1
        if index % every:
            item.add_marker(pytest.mark.slow)
    if config.getoption("--other-jax"):
        seen, thinned = {}, []
        for item in items:
            base = item.nodeid.split("[", 1)[0]
            every = OTHER_JAX_EVERY.get(base)
            if every is None or not hasattr(item, "callspec") or item.get_closest_marker("slow"):
                continue
            index = seen[base] = seen.get(base, -1) + 1
            if index % every:
                thinned.append(item)
        if thinned:
            config.hook.pytest_deselected(items=thinned)
            drop = set(thinned)
            items[:] = [item for item in items if item not in drop]
    # The default tier (README's command, the first pytest run of .ci/run) deselects the
    # tests marked slow; `-m slow` runs only them (.ci/run's second run), `--slow` runs
    # everything, and any other explicit `-m` expression decides for itself.
    if not (config.getoption("--slow") or config.option.markexpr):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    # The tests marked long first, in their collection order, then the others in theirs:
    # pytest-xdist hands the tests out in this order, and a long test handed out last keeps
    # one worker busy alone at the end (the 8-device sharded cases, 100 s, ended the slow
    # tier 65 s after the other worker had run out of tests).  The same order in every
    # worker, as xdist requires (a stable sort on the mark alone).
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def optimized_children(monkeypatch):
    """The child processes the test starts compile with XLA's default optimisation (the
    XLA_FLAGS the run was started with): for a long training loop, whose optimised code
    pays for its longer compile (notebook 02 trained in 76 s unoptimised, 33 s optimised).
    """
    if not STARTED_WITH:
        monkeypatch.delenv("XLA_FLAGS", raising=False)
    else:
        monkeypatch.setenv("XLA_FLAGS", STARTED_WITH)


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
