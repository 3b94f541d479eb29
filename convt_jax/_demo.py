"""The training part of ``python -m convt_jax``: a tiny decoder learns to draw 16x16 shapes.

Needs nothing beyond the package's own dependencies (jax, jaxlib, numpy):
the images are drawn with NumPy, the optimiser is a hand-written Adam, the
progress bar is plain text (tqdm's when it is installed) and the PNG is
written with ``zlib`` and ``struct``.

The model is an autoencoder whose decoder is two ``convt_jax.nn.ConvTranspose2d``
layers (4x4 -> 8x8 -> 16x16, ``kernel_size=4, stride=2, padding=1``, the DCGAN
block), both ICNR-initialised so they start without checkerboard artifacts.
"""

from __future__ import annotations

import math
import os
import struct
import sys
import time
import zlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import nn

SIZE = 16
LATENT = 16
KINDS = ("blob", "ring", "bar", "box")


# ------------------------------------------------------------------------------------
# Data: soft blobs, rings, bars and boxes, drawn with NumPy.
# ------------------------------------------------------------------------------------

def make_images(n: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """``n`` synthetic grayscale images ``(n, 1, size, size)`` float32 in ``[0, 1]``.

    Image ``i`` is a ``KINDS[i % 4]``: a Gaussian blob, a ring, a bar at a
    random angle, or the outline of a square, each at a random position and
    scale.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    u = lambda lo, hi: rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)  # noqa: E731
    cx, cy = u(0.3 * size, 0.7 * size), u(0.3 * size, 0.7 * size)
    dx, dy = xx - cx, yy - cy
    r = np.sqrt(dx ** 2 + dy ** 2)
    width = 0.06 * size
    blob = np.exp(-r ** 2 / (2 * u(0.08 * size, 0.18 * size) ** 2))
    ring = np.exp(-(r - u(0.15 * size, 0.3 * size)) ** 2 / (2 * width ** 2))
    angle = u(0, np.pi)
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    bar = (np.exp(-across ** 2 / (2 * width ** 2))
           * np.clip(u(0.25 * size, 0.4 * size) - np.abs(along) + 0.5, 0, 1))
    cheb = np.maximum(np.abs(dx), np.abs(dy))
    box = np.exp(-(cheb - u(0.12 * size, 0.28 * size)) ** 2 / (2 * width ** 2))
    kind = (np.arange(n) % len(KINDS))[:, None, None]
    images = np.choose(kind, [blob, ring, bar, box])
    return np.clip(images, 0, 1).astype(np.float32)[:, None]


# ------------------------------------------------------------------------------------
# Model: dense encoder, dense + two transposed convolutions as the decoder.
# ------------------------------------------------------------------------------------

def _dense(rng: np.random.Generator, n_in: int, n_out: int) -> dict[str, jax.Array]:
    bound = 1 / math.sqrt(n_in)   # PyTorch's nn.Linear default
    return {"w": jnp.asarray(rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)),
            "b": jnp.zeros(n_out, jnp.float32)}


def _decoder_layers(key: jax.Array) -> dict[str, nn.ConvTranspose2d]:
    k = jax.random.split(key, 4)
    up1 = nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1, key=k[0])
    up2 = nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1, key=k[1])
    # ICNR: start as nearest-neighbour upsampling + a convolution (no checkerboard).
    return {"up1": up1.replace(weight=nn.init.icnr(k[2], up1.weight.shape, stride=2)),
            "up2": up2.replace(weight=nn.init.icnr(k[3], up2.weight.shape, stride=2))}


def init_model(seed: int = 0) -> dict[str, Any]:
    """The parameters: a pytree of dicts of arrays and two ``ConvTranspose2d`` layers."""
    rng = np.random.default_rng(seed)
    # One compiled call draws both layers (layers are pytrees, so they can be built
    # under jit); the dense layers are drawn with NumPy.
    layers = jax.jit(_decoder_layers)(jax.random.key(seed))
    return {
        "enc1": _dense(rng, SIZE * SIZE, 128),
        "enc2": _dense(rng, 128, LATENT),
        "dec": _dense(rng, LATENT, 32 * 4 * 4),
        "up1": layers["up1"],   # (N, 32, 4, 4) -> (N, 16, 8, 8)
        "up2": layers["up2"],   # (N, 16, 8, 8) -> (N, 1, 16, 16)
    }


def reconstruct(params: dict[str, Any], x: jax.Array) -> jax.Array:
    """``(N, 1, 16, 16)`` images -> their reconstructions through the 16-number bottleneck."""
    h = x.reshape(x.shape[0], -1)
    h = jax.nn.relu(h @ params["enc1"]["w"] + params["enc1"]["b"])
    z = h @ params["enc2"]["w"] + params["enc2"]["b"]
    h = jax.nn.relu(z @ params["dec"]["w"] + params["dec"]["b"]).reshape(-1, 32, 4, 4)
    h = jax.nn.relu(params["up1"](h))
    return jax.nn.sigmoid(params["up2"](h))


def loss_fn(params: dict[str, Any], x: jax.Array) -> jax.Array:
    """Mean squared error of the reconstructions."""
    return jnp.mean((reconstruct(params, x) - x) ** 2)


# ------------------------------------------------------------------------------------
# Adam, by hand (works on any pytree, convt_jax layers included).
# ------------------------------------------------------------------------------------

class AdamState(NamedTuple):
    step: jax.Array
    mu: Any
    nu: Any


def adam_init(params: Any) -> AdamState:
    zeros = jax.tree_util.tree_map(lambda p: np.zeros(p.shape, p.dtype), params)
    return AdamState(np.zeros((), np.int32), zeros, zeros)


def adam_update(params: Any, grads: Any, state: AdamState, lr: float, b1: float = 0.9,
                b2: float = 0.999, eps: float = 1e-8) -> tuple[Any, AdamState]:
    """One Adam step (Kingma & Ba 2015), bias-corrected; returns ``(params, state)``."""
    t = state.step + 1
    mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
    nu = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, grads)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, mu, nu)
    return params, AdamState(t, mu, nu)


# ------------------------------------------------------------------------------------
# A progress bar: tqdm's if installed, else a line of text.
# ------------------------------------------------------------------------------------

class _TextBar:
    """``[#####.....]  120/400 loss 0.0312`` on stderr, redrawn in place on a terminal."""

    def __init__(self, total: int, desc: str, stream=None):
        self.total, self.desc, self.n, self.postfix = total, desc, 0, ""
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last = -1.0
        self._drawn = 0

    def _line(self) -> str:
        width = 30
        done = int(width * self.n / max(self.total, 1))
        line = (f"{self.desc}: [{'#' * done}{'.' * (width - done)}] {self.n}/{self.total} "
                f"{time.perf_counter() - self.start:4.1f}s {self.postfix}")
        padded = line.ljust(self._drawn)      # blank out the rest of a longer previous line
        self._drawn = len(line)
        return padded

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        if self.tty and (now - self._last > 0.1 or self.n == self.total):
            self.stream.write("\r" + self._line())
            self.stream.flush()
            self._last = now

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        if self.tty:
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self) -> None:
        self.stream.write(("\r" if self.tty else "") + self._line() + "\n")
        self.stream.flush()


def progress_bar(total: int, desc: str):
    """A progress bar with ``update(k)``, ``set_postfix_str(s)`` and ``close()``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _TextBar(total, desc)
    return tqdm(total=total, desc=desc, unit="step", file=sys.stderr)


# ------------------------------------------------------------------------------------
# A PNG writer: 8-bit grayscale, zlib + struct.
# ------------------------------------------------------------------------------------

def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a 2-D ``uint8`` array (0 black, 255 white) as an 8-bit grayscale PNG."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 2:
        raise ValueError(f"image of shape {image.shape} must be 2-D (height, width)")
    height, width = image.shape
    # Each scanline starts with its filter type (0: none).
    raw = np.concatenate([np.zeros((height, 1), np.uint8), image], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                 + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def image_grid(rows: list[np.ndarray], scale: int = 4, gap: int = 4) -> np.ndarray:
    """Rows of ``(n, H, W)`` images in ``[0, 1]`` -> one ``uint8`` picture, upscaled ``scale``x."""
    n, h, w = rows[0].shape
    th, tw = h * scale, w * scale
    out = np.full((gap + len(rows) * (th + gap), gap + n * (tw + gap)), 160, np.uint8)
    for r, images in enumerate(rows):
        for i, img in enumerate(images):
            tile = np.kron(np.clip(img, 0, 1), np.ones((scale, scale)))
            y, x = gap + r * (th + gap), gap + i * (tw + gap)
            out[y:y + th, x:x + tw] = np.round(255 * tile).astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------
# The run.
# ------------------------------------------------------------------------------------

class DemoResult(NamedTuple):
    params: dict[str, Any]
    loss_before: float     # held-out MSE of the untrained model
    loss_after: float      # held-out MSE after training
    losses: list[float]    # training-batch loss per step
    seconds: float         # wall time of the training loop, compilation included
    png: str | None


def train(steps: int = 800, *, batch_size: int = 64, learning_rate: float = 5e-3,
          seed: int = 0, png: str | os.PathLike | None = None,
          progress: bool = True) -> DemoResult:
    """Train the autoencoder on synthetic shapes; optionally write a PNG of its reconstructions.

    The PNG shows 12 held-out images (top row) above the trained model's
    reconstructions of them (bottom row).
    """
    data = make_images(2048 + 256, seed=seed)
    train_x, test_x = jnp.asarray(data[:2048]), jnp.asarray(data[2048:])
    shown = test_x[:12]
    params = init_model(seed)
    state = adam_init(params)

    @jax.jit
    def evaluate(params):
        return loss_fn(params, test_x), reconstruct(params, shown)

    @jax.jit
    def step(params, state, idx):
        loss, grads = jax.value_and_grad(loss_fn)(params, train_x[idx])
        params, state = adam_update(params, grads, state, learning_rate)
        return params, state, loss

    loss_before, _ = evaluate(params)
    batches = np.random.default_rng(seed + 1).integers(0, len(train_x), (steps, batch_size))
    losses = []
    bar = progress_bar(steps, "training the decoder") if progress else None
    start = time.perf_counter()
    if bar is not None:
        bar.set_postfix_str("compiling the training step")
    for i in range(steps):
        params, state, loss = step(params, state, batches[i])
        losses.append(loss)
        if bar is not None:
            if i % 25 == 0 or i == steps - 1:
                bar.set_postfix_str(f"loss {float(loss):.4f}")
            bar.update(1)
    losses = [float(v) for v in jax.device_get(losses)]
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    loss_after, after_images = evaluate(params)
    if png is not None:
        rows = [np.asarray(im)[:, 0] for im in (shown, after_images)]
        write_png(png, image_grid(rows))
        png = os.path.abspath(png)
    return DemoResult(params, float(loss_before), float(loss_after), losses, seconds, png)


def run(steps: int = 800, png: str | os.PathLike | None = "convt_jax_demo.png",
        seed: int = 0) -> DemoResult:
    """Train, print the losses before and after, and where the PNG went (``python -m convt_jax``)."""
    print(f"\nTraining a small autoencoder on synthetic 16x16 blobs, rings, bars and boxes: "
          f"the decoder is two ConvTranspose2d layers (4x4 -> 8x8 -> 16x16, k=4, s=2, p=1, "
          f"ICNR init), the optimiser a hand-written Adam under jax.jit, {steps} steps of "
          f"64 images.")
    result = train(steps, seed=seed, png=png)
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(result.params))
    print(f"held-out mean squared error: {result.loss_before:.4f} before training, "
          f"{result.loss_after:.4f} after ({n_params:,} parameters, {result.seconds:.1f} s "
          f"including compilation)")
    if result.png is not None:
        print(f"wrote {result.png}\n  (top row: 12 held-out images; bottom row: the trained "
              "model's reconstructions)")
    return result
