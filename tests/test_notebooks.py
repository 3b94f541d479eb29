"""The notebooks: committed with outputs, in step with notebooks/src/, and they run.

Each notebook is re-executed top to bottom (a temporary copy, in a fresh
``python3`` kernel started in notebooks/) with nbclient; any cell that raises
fails the test. ``python notebooks/build.py`` rebuilds and re-executes them.
"""

from __future__ import annotations

import importlib.util
import pathlib
import shutil

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
SOURCES = sorted((NOTEBOOK_DIR / "src").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
TIMEOUT = 300  # seconds per cell; each notebook runs in well under 2 minutes on 2 cores
# What each notebook imports beyond the package (all in the `test` extra).
REQUIRES = {
    "01": ("matplotlib",),
    "02": ("matplotlib", "optax", "sklearn"),
    "03": ("matplotlib", "torch", "flax"),
    "04": ("matplotlib", "torch"),
}
# The notebooks whose training loops run long enough that XLA's optimised code pays for its
# compile time: their kernels compile optimised (tests/conftest.py, optimized_children).
TRAINS = ("02",)


def _build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOK_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    assert names == [
        "01_transposed_convolution_explained",
        "02_training_a_decoder",
        "03_porting_from_pytorch",
        "04_performance",
    ]
    assert [p.stem for p in SOURCES] == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_matches_its_source_and_has_outputs(path):
    committed = nbformat.read(path, as_version=4)
    built = _build().build(NOTEBOOK_DIR / "src" / f"{path.stem}.py")
    assert [(c.cell_type, c.source) for c in committed.cells] == [
        (c.cell_type, c.source) for c in built.cells
    ], f"{path.name} is out of date: run `python notebooks/build.py {path.stem[:2]}`"
    assert committed.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in committed.cells if c.cell_type == "code"]
    # Executed top to bottom, in order, without errors, so it renders with its results.
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure"
    markdown = [c for c in committed.cells if c.cell_type == "markdown"]
    assert markdown and markdown[0].source.startswith("# ")


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, request):
    for module in REQUIRES.get(path.stem[:2], ()):
        pytest.importorskip(module)
    if path.stem[:2] in TRAINS:
        request.getfixturevalue("optimized_children")
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # Raises nbclient's CellExecutionError (with the cell and traceback) on the first error.
    _build().execute(nb, cwd=NOTEBOOK_DIR, timeout=TIMEOUT)
    nbformat.write(nb, copy)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert any("image/png" in o.get("data", {}) for c in code for o in c.outputs)
