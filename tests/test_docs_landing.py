"""The docs' landing page (docs/index.md): its example runs and prints what the page says,
its install line names real extras, and its figure comes from the performance notebook.

The page's example is a plain script (copied and run as it is), not a doctest, so
tests/test_docs.py (which runs the `>>>` examples of every page) does not see it: each
```python block runs here, in order, in one fresh interpreter, and where a ```text block
follows it, that block is what the script must print.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "index.md"
NOTEBOOK = ROOT / "notebooks" / "04_performance.ipynb"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SEPARATOR = "----- end of block -----"

# Runs the blocks (a JSON list on stdin) one after the other in one namespace, as a
# reader pasting them into one session would, and marks the end of each one's output.
_RUNNER = f"""
import json, sys
namespace = {{"__name__": "__main__"}}
for i, code in enumerate(json.loads(sys.stdin.read())):
    exec(compile(code, f"docs/index.md, python block {{i + 1}}", "exec"), namespace)
    print({SEPARATOR!r}, flush=True)
"""

pytestmark = pytest.mark.skipif(not PAGE.is_file(), reason="no docs/ here (an sdist)")


def _blocks():
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(PAGE.read_text(encoding="utf-8"))]


def _examples():
    """(code, expected output or None) for each python block: the text block right after."""
    blocks = _blocks()
    examples = []
    for i, (lang, body) in enumerate(blocks):
        if lang == "python":
            after = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
            examples.append((body, after[1] if after[0] == "text" else None))
    return examples


def _lines(text):
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_examples_run_and_print_what_the_page_shows():
    examples = _examples()
    assert examples, "docs/index.md has no ```python example"
    assert any(expected for _, expected in examples), "no example shows its output"
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps([code for code, _ in examples]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = proc.stdout.split(SEPARATOR + "\n")
    assert len(outputs) == len(examples) + 1 and not outputs[-1].strip(), proc.stdout
    for (code, expected), printed in zip(examples, outputs, strict=False):
        if expected is not None:
            assert _lines(printed) == _lines(expected), (code, printed)


def test_the_example_is_the_first_example_the_issue_asked_for():
    # PyTorch's layout and arguments, the functional form and a layer, shapes printed.
    code = "\n".join(code for code, _ in _examples())
    call = re.search(r"ct\.conv_transpose2d\((.*?)\)\n", code, re.S)
    assert call, code
    for argument in ("stride=", "padding=", "output_padding=", "groups="):
        assert argument in call.group(1), argument
    assert "ct.nn.ConvTranspose2d(" in code
    assert "print(" in code
    assert len(code.strip().splitlines()) <= 15  # a first example, not a tutorial


def test_the_install_lines_name_the_package_and_real_extras():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    text = PAGE.read_text(encoding="utf-8")
    bash = [body.strip() for lang, body in _blocks() if lang == "bash"]
    assert "pip install convt_jax" in bash
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(project["optional-dependencies"])
    named = {
        e.strip() for group in re.findall(r"convt_jax\[([^\]]+)\]", text) for e in group.split(",")
    }
    assert {"onednn", "flax"} <= named, named
    assert named <= extras, named - extras


def test_the_page_gets_the_performance_notebooks_summary_plot():
    # docs/hooks/performance_plots.py replaces the marker with the notebook's first PNG
    # output (its caption names the machine, date and commit of the plotted tables).
    hook = (ROOT / "docs" / "hooks" / "performance_plots.py").read_text(encoding="utf-8")
    marker = re.search(r'LANDING_MARKER = "(.*?)"', hook).group(1)
    assert marker in PAGE.read_text(encoding="utf-8")
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    first = next(
        c for c in cells if any("image/png" in o.get("data", {}) for o in c.get("outputs", []))
    )
    caption = "".join(
        "".join(o["data"]["text/markdown"])
        for o in first["outputs"]
        if "text/markdown" in o.get("data", {})
    )
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", caption), caption  # a date
    assert re.search(r"\bcommit [0-9a-f]{7,40}\b", caption), caption  # a commit
    assert "-core" in caption, caption  # a machine
