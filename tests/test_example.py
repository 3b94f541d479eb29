"""The training example (examples/train_decoder.py) trains: a shortened run's loss falls."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest

import convt_jax as ct

pytest.importorskip("optax")
pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_decoder.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_decoder", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_short_training_run_lowers_the_loss(example, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "reconstructions.png"
    result = example.train(steps=150, progress=False, png=str(png))
    losses = np.asarray(result.losses)
    assert len(losses) == 150 and np.isfinite(losses).all()
    assert losses[-10:].mean() < 0.4 * losses[:10].mean()
    # Better than always predicting the mean digit (MSE 0.073) on held-out digits.
    assert result.test_loss < 0.05
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The trained model is a pytree holding convt_jax layers.
    assert isinstance(result.params["up1"], ct.nn.ConvTranspose2d)
    assert result.params["up2"].weight.shape == (16, 1, 4, 4)
