"""Build the notebooks from their sources in notebooks/src/ and execute them (outputs saved).

Each ``notebooks/src/NN_name.py`` is a notebook in the "percent" format: cells
start with a line ``# %%`` (code) or ``# %% [markdown]`` (Markdown, every line
prefixed with ``# ``); IPython magics are written commented (``# %matplotlib
inline``). This script turns each into ``notebooks/NN_name.ipynb``, executes
it top to bottom with nbclient in a fresh ``python3`` kernel (working
directory notebooks/, the repository on ``PYTHONPATH``) and saves it with its
outputs, so the notebooks render with their figures on GitHub::

    python notebooks/build.py                 # all notebooks
    python notebooks/build.py 01 03           # those whose name starts with 01 or 03
    python notebooks/build.py --no-execute    # rebuild the cells only (drops outputs)

tests/test_notebooks.py re-executes the committed notebooks and checks that
their cells match these sources.

Needs ``nbformat``, ``nbclient`` and ``ipykernel`` (the ``notebooks`` extra).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = HERE / "src"
TIMEOUT = 300  # seconds per cell
KERNEL = "python3"


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``(cell_type, source)`` pairs of a percent-format script."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
            cells.append((kind, []))
        elif cells:
            kind, lines = cells[-1]
            if kind == "markdown":
                line = line[2:] if line.startswith("# ") else line.lstrip("#")
            elif line.startswith("# %"):  # a commented IPython magic: "# %matplotlib inline"
                line = line[2:]
            lines.append(line)
    out = []
    for kind, lines in cells:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if lines:
            out.append((kind, "\n".join(lines)))
    return out


def build(source: pathlib.Path) -> nbformat.NotebookNode:
    """The notebook (without outputs) for one percent-format source."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, text in parse_cells(source.read_text()):
        cell = (
            nbformat.v4.new_markdown_cell(text)
            if kind == "markdown"
            else nbformat.v4.new_code_cell(text)
        )
        nb.cells.append(cell)
    # Stable cell ids, so a rebuild does not rewrite every cell of the file.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{source.stem[:2]}-{i:03d}"
    return nb


def execute(
    nb: nbformat.NotebookNode, cwd: pathlib.Path = HERE, timeout: int = TIMEOUT
) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel (raises ``CellExecutionError`` on the first error).

    The kernel starts in ``cwd`` with the repository first on ``PYTHONPATH``, so the
    checkout's ``convt_jax`` is the one imported, installed or not.
    """
    from nbclient import NotebookClient

    path = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    client = NotebookClient(
        nb, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}}
    )
    client.execute(env=env)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="name prefixes, e.g. 01 03")
    parser.add_argument("--no-execute", action="store_true")
    args = parser.parse_args(argv)
    sources = sorted(SRC.glob("[0-9][0-9]_*.py"))
    if args.only:
        sources = [s for s in sources if any(s.stem.startswith(p) for p in args.only)]
    for source in sources:
        nb = build(source)
        target = HERE / f"{source.stem}.ipynb"
        start = time.perf_counter()
        if not args.no_execute:
            execute(nb)
            # Execution metadata (timestamps) only makes diffs noisy.
            for cell in nb.cells:
                cell.metadata.pop("execution", None)
        nbformat.write(nb, target)
        print(
            f"{target.relative_to(ROOT)}: {len(nb.cells)} cells"
            + ("" if args.no_execute else f", executed in {time.perf_counter() - start:.1f} s"),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
