"""tests/conftest.py's tiers (what the default tier deselects, the long tests first) and the
unoptimised XLA:CPU code the tests compile."""

import os
import types

import conftest
import pytest


class _Item:
    def __init__(self, nodeid, *marks):
        self.nodeid = nodeid
        self.marks = set(marks)

    def get_closest_marker(self, name):
        return name if name in self.marks else None

    def add_marker(self, mark):
        self.marks.add(mark.name)

    def __repr__(self):
        return self.nodeid


def _config(markexpr="", slow=False):
    deselected = []
    config = types.SimpleNamespace(
        getoption=lambda name: {"--slow": slow, "--other-jax": False}[name],
        option=types.SimpleNamespace(markexpr=markexpr),
        hook=types.SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)),
    )
    return config, deselected


def _items():
    return [
        _Item("tests/test_a.py::test_short"),
        _Item("tests/test_a.py::test_slow", "slow"),
        _Item("tests/test_b.py::test_long_slow", "slow", "long"),
        _Item("tests/test_b.py::test_other"),
        _Item("tests/test_c.py::test_long", "long"),
        _Item("tests/test_c.py::test_last"),
    ]


def test_default_tier_deselects_slow_and_runs_long_tests_first():
    config, deselected = _config()
    items = _items()
    conftest.pytest_collection_modifyitems(config, items)
    assert [i.nodeid.split("::")[1] for i in items] == [
        "test_long",
        "test_short",
        "test_other",
        "test_last",
    ]
    assert [i.nodeid.split("::")[1] for i in deselected] == ["test_slow", "test_long_slow"]


@pytest.mark.parametrize("markexpr, slow", [("slow", False), ("", True)])
def test_slow_runs_keep_every_test_long_ones_first(markexpr, slow):
    # `-m slow`: pytest's own mark plugin deselects after this hook; `--slow`: nothing is.
    config, deselected = _config(markexpr, slow)
    items = _items()
    conftest.pytest_collection_modifyitems(config, items)
    assert deselected == []
    assert [i.nodeid.split("::")[1] for i in items] == [
        "test_long_slow",
        "test_long",
        "test_short",
        "test_slow",
        "test_other",
        "test_last",
    ]


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, conftest.UNOPTIMIZED),
        (
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"},
            f"--xla_force_host_platform_device_count=8 {conftest.UNOPTIMIZED}",
        ),
        ({"CONVT_JAX_TEST_OPTIMIZED": "1"}, None),
        ({"XLA_FLAGS": "--xla_backend_optimization_level=3"}, None),
        ({"CONVT_JAX_TEST_OPTIMIZED": "0"}, conftest.UNOPTIMIZED),
    ],
)
def test_xla_flags(environ, expected):
    assert conftest.xla_flags(environ) == expected


def test_this_run_compiles_as_the_environment_says():
    # This process's XLA_FLAGS (set by tests/conftest.py before JAX started): the flag is in
    # unless .ci/run's optimised stages asked for XLA's default.
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("CONVT_JAX_TEST_OPTIMIZED", "0") != "0":
        assert conftest.UNOPTIMIZED not in flags
    else:
        assert "--xla_backend_optimization_level" in flags


def test_optimized_children_get_the_flags_the_run_started_with(optimized_children):
    assert os.environ.get("XLA_FLAGS", "") == conftest.STARTED_WITH
    # (in this worker too: pytest-xdist started it from the changed environment)
    assert conftest.UNOPTIMIZED not in conftest.STARTED_WITH
