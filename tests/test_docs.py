"""The examples of the README and of the documentation pages run and print what they say;
.ci/run runs Quick start command (2); the built site shows every ``>>>`` example as code."""

from __future__ import annotations

import html.parser
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_RUNNER = r"""
import doctest, pathlib, re, sys
path = pathlib.Path(sys.argv[1])
text = path.read_text()
blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if ">>>" in b]
parser = doctest.DocTestParser()
runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
# One doctest per file: later examples use names defined in earlier ones.
runner.run(parser.get_doctest("\n".join(blocks), {}, path.name, str(path), 0))
res = runner.summarize(verbose=False)
print(f"attempted={res.attempted} failed={res.failed}")
sys.exit(1 if res.failed or not res.attempted else 0)
"""

# The least number of examples each file must run: a file whose examples went missing
# (a renamed fence, a page split) fails here instead of passing with nothing run.
# Pages without `>>>` examples are not listed.
MIN_EXAMPLES = {
    "README.md": 5,
    "docs/getting-started.md": 5,
    "docs/semantics.md": 25,
    "docs/layers.md": 25,
    "docs/frameworks.md": 25,
    "docs/padding-modes.md": 4,
}


def _files_with_examples():
    files = ["README.md"]
    if DOCS.is_dir():  # a checkout; the sdist ships README.md and tests/ only
        files += sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md"))
    return [f for f in files if re.search(r"```python\n[^`]*>>>", (ROOT / f).read_text())]


def _run(rel):
    # A fresh interpreter per file: the examples are written for JAX's default
    # (float32) mode, and no file may lean on names another defines.
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(ROOT / rel)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(re.search(r"attempted=(\d+)", proc.stdout).group(1))


@pytest.mark.parametrize("rel", _files_with_examples())
def test_examples_run(rel):
    attempted = _run(rel)
    assert attempted >= MIN_EXAMPLES.get(rel, 1), (rel, attempted)


def test_every_page_with_a_minimum_has_its_examples():
    if not DOCS.is_dir():
        pytest.skip("no docs/ here (an sdist)")
    assert set(MIN_EXAMPLES) <= set(_files_with_examples())


def test_quick_start_has_two_single_command_bash_blocks():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    assert all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert "python -m convt_jax" in blocks[0] and "pytest" in blocks[1]
    assert "--group test" in blocks[1]


def test_getting_started_repeats_the_quick_start_commands():
    if not DOCS.is_dir():
        pytest.skip("no docs/ here (an sdist)")
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    page = (DOCS / "getting-started.md").read_text()
    for command in re.findall(r"```bash\n(.*?)```", section, re.S):
        assert command in page, command


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
@pytest.mark.long
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


# --- the built site ---------------------------------------------------------------------

# What `mkdocs build` needs besides this package: the docs dependency group of
# pyproject.toml (mkdocs, its theme, mkdocstrings' Python handler, mkdocs-jupyter).
_DOCS_MODULES = (
    "mkdocs",
    "material",
    "mkdocstrings",
    "mkdocstrings_handlers.python",
    "mkdocs_jupyter",
)
API_PAGES = ["convt_jax", "nn", "init", "layouts", "flax", "linen", "typing"]


class _Prompts(html.parser.HTMLParser):
    """A page's ``>>>`` prompts: those in ``<pre>``/``<code>`` (code) and those outside
    (text), and the blockquotes nested in blockquotes (what Markdown makes of ``>>>``)."""

    def __init__(self) -> None:
        super().__init__()  # convert_charrefs: "&gt;&gt;&gt;" arrives as ">>>"
        self.depth = {"pre": 0, "code": 0, "blockquote": 0}
        self.in_code = self.in_text = self.nested_blockquotes = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.depth:
            if tag == "blockquote" and self.depth[tag]:
                self.nested_blockquotes += 1
            self.depth[tag] += 1

    def handle_endtag(self, tag):
        if tag in self.depth and self.depth[tag]:
            self.depth[tag] -= 1

    def handle_data(self, data):
        n = data.count(">>>")
        if self.depth["pre"] or self.depth["code"]:
            self.in_code += n
        else:
            self.in_text += n


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not DOCS.is_dir():
        pytest.skip("no docs/ here (an sdist)")
    missing = [m for m in _DOCS_MODULES if not _importable(m)]
    if missing:
        pytest.skip(
            f"the docs dependency group is not installed (no {', '.join(missing)}): "
            "pip install --group docs"
        )
    out = tmp_path_factory.mktemp("site")
    # Not --quiet: it hides warnings from mkdocs' counter, so --strict passed a build with
    # 60 griffe warnings (an `Args:` section on a linen dataclass without a signature).
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def _prompts(page: pathlib.Path) -> _Prompts:
    parser = _Prompts()
    parser.feed(page.read_text(encoding="utf-8"))
    parser.close()
    return parser


def test_site_shows_every_prompt_as_code(site):
    # A docstring example outside Google style's "Examples:" section (or a Markdown
    # page's `>>>` outside a fence) is Markdown: its prompts become text or, more often,
    # three nested blockquotes run together into one paragraph.
    pages = sorted(site.rglob("*.html"))
    assert pages
    bad = []
    for page in pages:
        prompts = _prompts(page)
        if prompts.in_text or prompts.nested_blockquotes:
            rel = page.relative_to(site)
            bad.append(
                f"{rel}: {prompts.in_text} '>>>' outside <pre>/<code>, "
                f"{prompts.nested_blockquotes} nested <blockquote>"
            )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", API_PAGES)
def test_api_page_shows_its_examples_as_code(site, name):
    # Each API page documents objects with docstring examples: they are there, as code.
    assert _prompts(site / "api" / name / "index.html").in_code > 0
