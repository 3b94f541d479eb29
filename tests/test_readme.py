"""The README's examples run and print what it says; .ci/run runs Quick start command (2)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_RUNNER = r"""
import doctest, pathlib, re, sys
text = pathlib.Path(sys.argv[1]).read_text()
blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if ">>>" in b]
parser, runner = doctest.DocTestParser(), doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
# One doctest for all blocks: later examples use names defined in earlier ones.
runner.run(parser.get_doctest("\n".join(blocks), {}, "README", "README.md", 0))
res = runner.summarize(verbose=False)
print(f"attempted={res.attempted} failed={res.failed}")
sys.exit(1 if res.failed or not res.attempted else 0)
"""


def test_readme_examples_run():
    # A fresh interpreter: the examples are written for JAX's default (float32) mode.
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int(re.search(r"attempted=(\d+)", proc.stdout).group(1)) >= 10


def test_quick_start_has_two_single_command_bash_blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    assert all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert "python -m convt_jax" in blocks[0] and "pytest" in blocks[1]
    assert "[test]" in blocks[1]


def test_ci_runs_quick_start_command_two_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and "eval" in ci
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    second = re.findall(r"```bash\n(.*?)```", section, re.S)[1].strip()
    proc = subprocess.run(
        [
            "awk",
            r"/^## Quick start/{q=1} q&&/^```bash/{n++; if(n==2){getline; print; exit}}",
            str(ROOT / "README.md"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.stdout.strip() == second


@pytest.mark.slow
def test_main_demo_runs(tmp_path):
    # The training part needs the `demo` extra (optax, tqdm, Pillow).
    for module in ("optax", "tqdm"):
        pytest.importorskip(module)
    Image = pytest.importorskip("PIL.Image")
    png = tmp_path / "demo.png"
    proc = subprocess.run(
        [sys.executable, "-m", "convt_jax", "--png", str(png)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3.25" in proc.stdout and "-3.5" in proc.stdout
    # The training part: the loss falls and the PNG is written where it says.
    before, after = map(
        float,
        re.search(
            r"mean squared error: ([\d.]+) before training, ([\d.]+) after", proc.stdout
        ).groups(),
    )
    assert after < 0.1 * before
    assert f"wrote {png}" in proc.stdout
    # A valid 8-bit grayscale PNG, wider than tall (12 targets above 12 reconstructions).
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.load()
        assert im.format == "PNG" and im.mode == "L"
        width, height = im.size
    assert width > height > 0
