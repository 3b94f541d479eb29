"""The training loop shared by ``python -m convt_jax`` and examples/train_decoder.py.

A shortened run of each trains (the loss falls), the demo's PNG is a valid
image of the trained reconstructions, the example trains with the demo's
loop, and the demo says how to install its extra when it is missing.
"""

from __future__ import annotations

import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import convt_jax as ct

pytest.importorskip("optax")
pytest.importorskip("tqdm")
Image = pytest.importorskip("PIL.Image")

from convt_jax import _demo  # noqa: E402  (needs the demo extra)

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "train_decoder.py"


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("train_decoder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_trains_with_the_demo_loop(example):
    # One loop, not two: the example's train() goes through the demo's fit().
    assert example.fit is _demo.fit
    source = EXAMPLE.read_text()
    assert "optax.adam(" not in source and "jax.value_and_grad(" not in source


@pytest.mark.slow
def test_short_training_run_lowers_the_loss(example, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "reconstructions.png"
    result = example.train(steps=150, progress=False, png=str(png))
    losses = np.asarray(result.losses)
    assert len(losses) == 150 and np.isfinite(losses).all()
    assert losses[-10:].mean() < 0.4 * losses[:10].mean()
    # Better than always predicting the mean digit (MSE 0.073) on held-out digits.
    assert result.test_loss < 0.05
    with Image.open(png) as im:
        im.verify()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The trained model is a pytree holding convt_jax layers.
    assert isinstance(result.params["up1"], ct.nn.ConvTranspose2d)
    assert result.params["up2"].weight.shape == (16, 1, 4, 4)


def test_fit_minimises_a_least_squares_problem():
    # The shared loop on a problem with a known answer: fit w in y = x @ w.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3)).astype(np.float32)
    w_true = np.array([1.5, -2.0, 0.5], np.float32)
    data = np.concatenate([x, (x @ w_true)[:, None]], axis=1)

    def loss(params, batch):
        return ((batch[:, :3] @ params["w"] - batch[:, 3]) ** 2).mean()

    result = _demo.fit(
        loss,
        {"w": np.zeros(3, np.float32)},
        data,
        steps=300,
        batch_size=32,
        learning_rate=0.05,
        progress=False,
    )
    assert len(result.losses) == 300 and result.seconds > 0
    assert result.losses[-1] < 1e-3 * result.losses[0]
    np.testing.assert_allclose(np.asarray(result.params["w"]), w_true, atol=0.02)


@pytest.mark.slow
def test_demo_training_lowers_the_loss_and_writes_a_png(tmp_path):
    png = tmp_path / "demo.png"
    result = _demo.train(steps=300, progress=False, png=png)
    losses = np.asarray(result.losses)
    assert len(losses) == 300 and np.isfinite(losses).all()
    assert losses[-20:].mean() < 0.2 * losses[:20].mean()
    assert result.loss_after < 0.2 * result.loss_before
    assert result.png == str(png.resolve())
    # A valid PNG: 12 held-out images above their reconstructions, each 16x16 shown at
    # 64x64 with 4-pixel borders, 8-bit grayscale.
    with Image.open(png) as im:
        assert im.format == "PNG" and im.mode == "L"
        assert im.size == (4 + 12 * (64 + 4), 4 + 2 * (64 + 4))
        pixels = np.asarray(im, dtype=np.float64) / 255
    top = [pixels[4:68, 4 + 68 * i : 68 + 68 * i] for i in range(12)]
    bottom = [pixels[72:136, 4 + 68 * i : 68 + 68 * i] for i in range(12)]
    # Each reconstruction is closer to its own target than to the other targets.
    for i, rec in enumerate(bottom):
        errors = [np.mean((rec - target) ** 2) for target in top]
        assert int(np.argmin(errors)) == i, errors


@pytest.mark.slow  # a fresh virtual environment, 5 s of a worker
def test_demo_without_its_extra_says_how_to_install_it(tmp_path):
    # optax missing: the examples still run, the training is skipped with the install
    # command, and no PNG is written.
    png = tmp_path / "demo.png"
    code = (
        "import sys; sys.modules['optax'] = None\n"
        f"from convt_jax.__main__ import main; main(['--png', {str(png)!r}])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "3.25" in proc.stdout and "done in" in proc.stdout
    assert 'pip install "convt_jax[demo]"' in proc.stderr and "'optax'" in proc.stderr
    assert "held-out mean squared error" not in proc.stdout
    assert not png.exists()


@pytest.mark.parametrize("module", ["optax", "tqdm", "PIL"])
def test_demo_module_names_the_missing_dependency(module):
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "try:\n    import convt_jax._demo\n"
        "except ImportError as err:\n    print(err)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"({module!r} is not installed)" in proc.stdout
    assert 'pip install "convt_jax[demo]"' in proc.stdout
