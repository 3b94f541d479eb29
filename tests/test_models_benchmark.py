"""benchmarks/models.py: the float64 re-check of a whole-model training step.

A float32 step that differs from PyTorch's by more than ``MISMATCH`` is run again in
float64 on both sides, where a correct step agrees to rounding (~1e-15).  That only holds
if both float64 steps are float64 throughout: PyTorch's loss once cast the output to
float32 (``y.float()``, meant for the bfloat16 autocast step), which left a float32
rounding of the output in the float64 loss and every gradient (4e-8 relative) and flagged
correct steps as mismatches.  A tiny HiFi-GAN (dilated convolutions, stride-2 transposed
layers, leaky ReLU, tanh) keeps the check cheap.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
models = pytest.importorskip(
    "benchmarks.models", reason="benchmarks/ is not in this tree (the sdist leaves it out)"
)
pytest.importorskip("torch")

TINY = models.Model(
    "hifigan",
    models.hifigan,
    ((1, 8, 4),),
    {"ch": 8, "rates": (2, 2), "kernels": (4, 4), "rb_kernels": (3,), "rb_dilations": (1, 3)},
    "",
)


@pytest.mark.parametrize("kind", ["convt_jax", "jax.lax"])
def test_float64_recheck_agrees_to_rounding(kind):
    params = models.init(TINY)
    inputs, target = models._data(TINY, params)
    err = models._float64_error(TINY, kind, "PyTorch", "auto", params, inputs, target)
    assert err < 1e-10, err


def test_torch_step_keeps_the_target_dtype():
    """PyTorch's float64 step: a float64 loss equal to the float64 forward's (not the
    output rounded to float32 first)."""
    import torch

    params = {k: v.astype(np.float64) for k, v in models.init(TINY).items()}
    inputs, target = models._data(TINY, params)
    inputs, target = [x.astype(np.float64) for x in inputs], target.astype(np.float64)
    loss, grads = models.torch_step(TINY, "PyTorch", params, target, inputs)()
    assert loss.dtype == torch.float64
    assert all(g.dtype == torch.float64 for g in grads.values())
    tp = {k: torch.from_numpy(v) for k, v in params.items()}
    ops, x = models.TorchOps("PyTorch"), torch.from_numpy(inputs[0])
    y = TINY.fn(ops, models.Params(tp), x, **TINY.kwargs)
    expected = np.mean(np.square(y.numpy() - target))
    assert abs(loss.item() - expected) <= 1e-14 * expected
