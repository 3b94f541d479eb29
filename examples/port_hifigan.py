"""Port the HiFi-GAN V1 vocoder generator from PyTorch (weight norm) to JAX, and vocode.

The generator of HiFi-GAN (Kong et al. 2020, config V1: upsample rates 8, 8, 2, 2;
upsample kernels 16, 16, 4, 4; 512 initial channels; residual block type 1 with
kernels 3, 7, 11 and dilations 1, 3, 5) is defined here in PyTorch, as in the
original code, with every convolution under weight norm. Its state dict (what a
checkpoint holds: ``weight_g`` / ``weight_v`` or
``parametrizations.weight.original0`` / ``original1``) is loaded into a JAX
port whose four upsamplers are ``ct.nn.ConvTranspose1d`` layers
(``load_state_dict`` folds weight norm exactly as PyTorch does) and whose plain
convolutions are ``jax.lax`` convolutions with the folded weights. The two
are run on the same synthetic mel spectrogram and compared, and the JAX
waveform is written as a 16-bit WAV with the standard library's ``wave``.

Without ``--checkpoint`` the weights are PyTorch's random initialisation, so
the "audio" is noise shaped by the mel bands; pass a trained HiFi-GAN V1
generator checkpoint (``torch.save``'d state dict, or a dict with a
``"generator"`` entry) to hear speech.

    python examples/port_hifigan.py --frames 32 --out hifigan.wav
    python examples/port_hifigan.py --channels 32 --frames 8     # small and fast
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
import wave
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import convt_jax as ct
from convt_jax.nn._torch import fold_weight_norm

V1 = dict(
    upsample_rates=(8, 8, 2, 2),
    upsample_kernel_sizes=(16, 16, 4, 4),
    upsample_initial_channel=512,
    resblock_kernel_sizes=(3, 7, 11),
    resblock_dilation_sizes=((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    num_mels=80,
    sampling_rate=22050,
)
LRELU_SLOPE = 0.1


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


# --- the PyTorch original -------------------------------------------------------------


def build_torch_generator(h: dict[str, Any], weight_norm_api: str = "parametrizations"):
    """HiFi-GAN's ``Generator`` with ``ResBlock1``, every convolution weight-normed."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def wn(module):
        if weight_norm_api == "parametrizations":
            return nn.utils.parametrizations.weight_norm(module)
        with warnings.catch_warnings():  # deprecated, but what old checkpoints use
            warnings.simplefilter("ignore")
            return nn.utils.weight_norm(module)

    class ResBlock1(nn.Module):
        def __init__(self, channels, kernel_size, dilation):
            super().__init__()
            self.convs1 = nn.ModuleList(
                [
                    wn(
                        nn.Conv1d(
                            channels,
                            channels,
                            kernel_size,
                            1,
                            dilation=d,
                            padding=get_padding(kernel_size, d),
                        )
                    )
                    for d in dilation
                ]
            )
            self.convs2 = nn.ModuleList(
                [
                    wn(
                        nn.Conv1d(
                            channels,
                            channels,
                            kernel_size,
                            1,
                            dilation=1,
                            padding=get_padding(kernel_size, 1),
                        )
                    )
                    for _ in dilation
                ]
            )

        def forward(self, x):
            for c1, c2 in zip(self.convs1, self.convs2, strict=True):
                xt = c1(F.leaky_relu(x, LRELU_SLOPE))
                xt = c2(F.leaky_relu(xt, LRELU_SLOPE))
                x = xt + x
            return x

    class Generator(nn.Module):
        def __init__(self, h):
            super().__init__()
            self.num_kernels = len(h["resblock_kernel_sizes"])
            self.num_upsamples = len(h["upsample_rates"])
            ch0 = h["upsample_initial_channel"]
            self.conv_pre = wn(nn.Conv1d(h["num_mels"], ch0, 7, 1, padding=3))
            self.ups = nn.ModuleList()
            for i, (u, k) in enumerate(
                zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True)
            ):
                self.ups.append(
                    wn(
                        nn.ConvTranspose1d(
                            ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2
                        )
                    )
                )
            self.resblocks = nn.ModuleList()
            for i in range(len(self.ups)):
                ch = ch0 // 2 ** (i + 1)
                for k, d in zip(
                    h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True
                ):
                    self.resblocks.append(ResBlock1(ch, k, d))
            self.conv_post = wn(nn.Conv1d(ch, 1, 7, 1, padding=3))

        def forward(self, x):
            x = self.conv_pre(x)
            for i in range(self.num_upsamples):
                x = self.ups[i](F.leaky_relu(x, LRELU_SLOPE))
                xs = None
                for j in range(self.num_kernels):
                    r = self.resblocks[i * self.num_kernels + j](x)
                    xs = r if xs is None else xs + r
                x = xs / self.num_kernels
            x = self.conv_post(F.leaky_relu(x))  # PyTorch's default slope, 0.01
            return torch.tanh(x)

    return Generator(h).eval()


# --- the JAX port ---------------------------------------------------------------------


def layer_state(state_dict: dict[str, Any], prefix: str) -> dict[str, Any]:
    """One layer's entries of a model's state dict, with the prefix removed."""
    return {k.removeprefix(prefix): v for k, v in state_dict.items() if k.startswith(prefix)}


@dataclasses.dataclass(frozen=True)
class Conv1d:
    """``torch.nn.Conv1d`` (stride 1, symmetric zero padding) as a pytree: weights are leaves."""

    weight: jax.Array  # (C_out, C_in, K)
    bias: jax.Array  # (C_out,)
    dilation: int = dataclasses.field(default=1, metadata=dict(static=True))
    padding: int = dataclasses.field(default=0, metadata=dict(static=True))

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.lax.conv_general_dilated(
            x,
            self.weight,
            (1,),
            [(self.padding, self.padding)],
            rhs_dilation=(self.dilation,),
            dimension_numbers=("NCH", "OIH", "NCH"),
            precision=jax.lax.Precision.HIGHEST,
        )
        return y + self.bias[None, :, None]


jax.tree_util.register_dataclass(
    Conv1d, data_fields=["weight", "bias"], meta_fields=["dilation", "padding"]
)


def _conv(state_dict, prefix, dilation=1, padding=0):
    sd = fold_weight_norm(layer_state(state_dict, prefix))
    return Conv1d(jnp.asarray(sd["weight"]), jnp.asarray(sd["bias"]), dilation, padding)


def port_from_state_dict(state_dict: dict[str, Any], h: dict[str, Any]) -> dict[str, Any]:
    """The JAX generator (a pytree) from the PyTorch generator's state dict.

    The upsamplers are ``ct.nn.ConvTranspose1d`` layers loaded with
    ``load_state_dict`` (weight norm folded as PyTorch computes it); the plain
    convolutions keep their folded weights for ``jax.lax``.
    """
    state_dict = {
        k: v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
        for k, v in state_dict.items()
    }
    ch0 = h["upsample_initial_channel"]
    port: dict[str, Any] = {
        "conv_pre": _conv(state_dict, "conv_pre.", padding=3),
        "ups": [],
        "resblocks": [],
    }
    for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"], strict=True)):
        up = ct.nn.ConvTranspose1d(
            ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2, key=jax.random.key(i)
        )
        port["ups"].append(
            up.load_state_dict(fold_weight_norm(layer_state(state_dict, f"ups.{i}.")))
        )
    n = 0
    for _ in range(len(h["upsample_rates"])):
        for k, dils in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"], strict=True):
            p = f"resblocks.{n}."
            port["resblocks"].append(
                [
                    (
                        _conv(state_dict, f"{p}convs1.{j}.", d, get_padding(k, d)),
                        _conv(state_dict, f"{p}convs2.{j}.", 1, get_padding(k, 1)),
                    )
                    for j, d in enumerate(dils)
                ]
            )
            n += 1
    port["conv_post"] = _conv(state_dict, "conv_post.", padding=3)
    return port


def generator(port: dict[str, Any], mel: jax.Array, num_kernels: int) -> jax.Array:
    """HiFi-GAN's ``Generator.forward`` on ``(N, num_mels, frames)``."""
    x = port["conv_pre"](mel)
    for i, up in enumerate(port["ups"]):
        x = up(jax.nn.leaky_relu(x, LRELU_SLOPE))
        xs = 0.0
        for block in port["resblocks"][i * num_kernels : (i + 1) * num_kernels]:
            r = x
            for c1, c2 in block:
                rt = c1(jax.nn.leaky_relu(r, LRELU_SLOPE))
                rt = c2(jax.nn.leaky_relu(rt, LRELU_SLOPE))
                r = rt + r
            xs = xs + r
        x = xs / num_kernels
    x = port["conv_post"](jax.nn.leaky_relu(x, 0.01))
    return jnp.tanh(x)


_generator_jit = jax.jit(generator, static_argnums=2)


# --- the demo -------------------------------------------------------------------------


def synthetic_mel(frames: int, num_mels: int = 80, seed: int = 0) -> np.ndarray:
    """A log-mel-like spectrogram: a few gliding formant-like bands over a noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[None, :]
    m = np.arange(num_mels)[:, None]
    mel = np.full((num_mels, frames), -9.0)
    for centre, swing, period in ((8, 3, 16), (22, 6, 24), (40, 8, 32), (60, 5, 12)):
        c = centre + swing * np.sin(2 * np.pi * t / period)
        mel = mel + 7.0 * np.exp(-(((m - c) / 2.5) ** 2))
    mel += 0.2 * rng.standard_normal(mel.shape)
    return mel.astype(np.float32)


def write_wav(path: str, audio: np.ndarray, sampling_rate: int) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sampling_rate)
        f.writeframes(pcm.tobytes())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=32, help="mel frames (256 samples each)")
    parser.add_argument("--out", default="hifigan.wav", help="the WAV file to write")
    parser.add_argument(
        "--channels",
        type=int,
        default=V1["upsample_initial_channel"],
        help="initial channels (512 in V1; e.g. 32 for a quick run)",
    )
    parser.add_argument(
        "--weight-norm",
        choices=("parametrizations", "hooks"),
        default="parametrizations",
        help="torch.nn.utils.parametrizations.weight_norm (original0/1 keys) "
        "or the older torch.nn.utils.weight_norm (weight_g/weight_v)",
    )
    parser.add_argument(
        "--checkpoint", default=None, help="a trained HiFi-GAN V1 generator state dict (torch.save)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--atol", type=float, default=1e-4, help="largest allowed |PyTorch - JAX| of the waveform"
    )
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames={args.frames} must be >= 1")
    if args.channels < 16 or args.channels % 16:
        parser.error(f"--channels={args.channels} must be a multiple of 16 (halved 4 times)")

    import torch

    h = dict(V1, upsample_initial_channel=args.channels)
    torch.manual_seed(args.seed)
    model = build_torch_generator(h, args.weight_norm)
    if args.checkpoint:
        ckpt = torch.load(args.checkpoint, map_location="cpu")
        model.load_state_dict(ckpt.get("generator", ckpt))
    state_dict = model.state_dict()
    n_wn = sum(k.endswith(("weight_g", "original0")) for k in state_dict)
    print(
        f"PyTorch HiFi-GAN V1 generator: {sum(p.numel() for p in model.parameters()):,} "
        f"parameters, {n_wn} weight-normed convolutions ({args.weight_norm})"
    )

    port = port_from_state_dict(state_dict, h)
    num_kernels = len(h["resblock_kernel_sizes"])

    mel = synthetic_mel(args.frames, h["num_mels"], args.seed)[None]
    with torch.no_grad():
        want = model(torch.as_tensor(mel)).numpy()
    start = time.perf_counter()
    got = np.asarray(_generator_jit(port, jnp.asarray(mel), num_kernels))
    elapsed = time.perf_counter() - start
    diff = float(np.abs(got - want).max())
    print(
        f"mel {mel.shape[1:]} -> waveform {got.shape[-1]} samples "
        f"({got.shape[-1] / h['sampling_rate']:.3f} s at {h['sampling_rate']} Hz); "
        f"JAX (compile + run) {elapsed:.1f} s"
    )
    print(f"max |PyTorch - JAX| = {diff:.3g}")
    if not diff <= args.atol:
        raise SystemExit(
            f"the port does not match PyTorch: max abs diff {diff:.3g} > {args.atol:g}"
        )
    audio = got[0, 0]
    write_wav(args.out, audio, h["sampling_rate"])
    print(f"wrote {args.out} ({audio.size} samples, peak {np.abs(audio).max():.3f})")
    return {"max_abs_diff": diff, "samples": int(audio.size), "out": args.out}


if __name__ == "__main__":
    main()
