"""pyproject.toml: the extras, the dependency groups and the Quick start agree.

Whether each extra resolves on the oldest and the newest supported JAX is checked by
.ci/run's dry runs (pip install --dry-run), which need the package index.
"""

from __future__ import annotations

import pathlib
import re

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")

ROOT = pathlib.Path(__file__).resolve().parents[1]

CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = CONFIG["project"]["optional-dependencies"]
GROUPS = CONFIG["dependency-groups"]


def _group(name: str) -> list[str]:
    out = []
    for item in GROUPS[name]:
        out += _group(item["include-group"]) if isinstance(item, dict) else [item]
    return out


def _pins(reqs: list[str]) -> dict[str, Requirement]:
    return {(r := Requirement(s)).name.lower(): r for s in reqs}


def test_tools_are_groups_not_extras():
    # Test, notebook, example, lint and docs tools are not part of the package's metadata.
    assert set(EXTRAS) == {"flax", "demo", "onednn"}
    assert {"test", "notebooks", "examples", "lint", "docs", "release", "dev"} <= set(GROUPS)


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_test_group_pins_satisfy_the_extras(extra):
    # The test suite runs what the extras admit: each pin of the test group for a package
    # an extra requires lies in that extra's range (markers included).
    test = _pins(_group("test"))
    for name, req in _pins(EXTRAS[extra]).items():
        assert name in test, f"the test group lacks {req} (extra {extra!r})"
        pinned = test[name]
        assert str(pinned.marker) == str(req.marker), (pinned, req)
        (version,) = [s.version for s in pinned.specifier if s.operator == "=="]
        assert req.specifier.contains(version, prereleases=True), (pinned, req)


def test_extras_have_lower_bounds_only():
    # An upper bound or a pin in an extra must name the breakage it avoids; none does yet,
    # except the onednn extra, which installs one exact oneDNN release.
    for extra in ("flax", "demo"):
        for req in map(Requirement, EXTRAS[extra]):
            assert all(s.operator == ">=" for s in req.specifier), req


def test_dev_group_includes_every_other_group():
    included = {item["include-group"] for item in GROUPS["dev"] if isinstance(item, dict)}
    assert included == set(GROUPS) - {"dev"}


def test_quick_start_installs_every_extra_and_the_test_group():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    second = re.findall(r"```bash\n(.*?)```", section, re.S)[1]
    m = re.search(r'-e "\.\[([\w,]+)\]"', second)
    assert m and set(m.group(1).split(",")) == set(EXTRAS), second
    assert "--group test" in second and '"pip>=25.1"' in second


def test_pre_commit_hooks_use_the_lint_groups_pins():
    # .pre-commit-config.yaml installs its hooks' tools itself: the same versions.
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    hooks = set(re.findall(r'additional_dependencies: \["([^"]+)"\]', config))
    assert hooks and hooks <= set(GROUPS["lint"]), (hooks, GROUPS["lint"])
