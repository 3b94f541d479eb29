"""examples/port_hifigan.py: the HiFi-GAN generator ported from PyTorch (weight norm) matches."""

from __future__ import annotations

import importlib.util
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location(
        "port_hifigan", ROOT / "examples" / "port_hifigan.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("api", ["parametrizations", "hooks"])
def test_port_matches_pytorch_and_writes_a_wav(example, tmp_path, capsys, api):
    out = tmp_path / "vocoded.wav"
    frames = 6
    result = example.main(
        [
            "--channels",
            "32",
            "--frames",
            str(frames),
            "--out",
            str(out),
            "--weight-norm",
            api,
            "--atol",
            "1e-5",
        ]
    )
    printed = capsys.readouterr().out
    assert "max |PyTorch - JAX|" in printed and "78 weight-normed convolutions" in printed
    assert result["max_abs_diff"] <= 1e-5
    hop = int(np.prod(example.V1["upsample_rates"]))
    assert result["samples"] == frames * hop
    with wave.open(str(out), "rb") as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 22050)
        pcm = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    assert pcm.size == frames * hop
    assert pcm.std() > 0  # not silence


def test_state_dict_keys_are_weight_normed(example):
    import torch

    torch.manual_seed(0)
    h = dict(example.V1, upsample_initial_channel=16)
    model = example.build_torch_generator(h, "hooks")
    sd = model.state_dict()
    assert "ups.0.weight_g" in sd and "ups.0.weight" not in sd
    port = example.port_from_state_dict(sd, h)
    ups = port["ups"]
    assert [u.stride for u in ups] == [(8,), (8,), (2,), (2,)]
    assert [u.kernel_size for u in ups] == [(16,), (16,), (4,), (4,)]
    # the upsampler holds exactly PyTorch's folded weight
    np.testing.assert_allclose(
        ups[0].weight, model.ups[0].weight.detach().numpy(), rtol=1e-6, atol=1e-7
    )


def test_bad_arguments(example):
    with pytest.raises(SystemExit):
        example.main(["--channels", "24"])
    with pytest.raises(SystemExit):
        example.main(["--frames", "0"])
