"""The training part of ``python -m convt_jax``: a tiny decoder learns to draw 16x16 shapes.

Built on the ``demo`` extra (``pip install "convt_jax[demo]"``): optax for Adam,
tqdm for the progress bar and Pillow for the PNG. The images are drawn with
NumPy.

The model is an autoencoder whose decoder is two ``convt_jax.nn.ConvTranspose2d``
layers (4x4 -> 8x8 -> 16x16, ``kernel_size=4, stride=2, padding=1``, the DCGAN
block), both ICNR-initialised so they start without checkerboard artifacts.

:func:`fit` is the training loop (``jax.value_and_grad`` + ``optax.adam`` under
``jax.jit``, random minibatches, a tqdm bar); ``examples/train_decoder.py``
trains its digits autoencoder with the same function.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import nn

INSTALL_HINT = 'pip install "convt_jax[demo]"'

try:
    import optax
    from PIL import Image
    from tqdm.auto import tqdm
except ImportError as err:
    missing = (err.name or "one of them").partition(".")[0]
    raise ImportError(
        f"the training demo needs optax, tqdm and Pillow ({missing!r} is not "
        f"installed); install them with: {INSTALL_HINT}"
    ) from err

SIZE = 16
LATENT = 16
KINDS = ("blob", "ring", "bar", "box")


# ------------------------------------------------------------------------------------
# The training loop (shared with examples/train_decoder.py).
# ------------------------------------------------------------------------------------


class FitResult(NamedTuple):
    params: Any
    losses: list[float]  # training-batch loss, one per step
    seconds: float  # wall time of the loop, compilation included


def fit(
    loss_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    data: jax.Array,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int = 0,
    progress: bool = True,
    desc: str = "training",
    log_every: int = 50,
) -> FitResult:
    """Minimise ``loss_fn(params, batch)`` with ``optax.adam`` on random minibatches of ``data``.

    One compiled step (``jax.value_and_grad`` + ``optax.adam`` under ``jax.jit``)
    per iteration; each step's batch is ``batch_size`` rows of ``data`` drawn
    with replacement from ``jax.random.key(seed + 1)``. ``params`` is any
    pytree (dicts of arrays and ``convt_jax.nn`` layers included).

    Args:
      loss_fn: ``(params, batch) -> scalar``.
      params: the initial parameters.
      data: the training set, examples along axis 0.
      steps: number of optimisation steps.
      batch_size: examples per step.
      learning_rate: Adam's learning rate.
      seed: seeds the batches.
      progress: show a tqdm progress bar with the running loss.
      desc: the progress bar's label.
      log_every: refresh the bar's loss every this many steps.

    Returns:
      A :class:`FitResult`: the trained parameters, the per-step losses and
      the wall time of the loop.
    """
    opt = optax.adam(learning_rate)
    state = opt.init(params)
    data = jnp.asarray(data)

    @jax.jit
    def step(params, state, data, key):
        idx = jax.random.randint(key, (batch_size,), 0, data.shape[0])
        loss, grads = jax.value_and_grad(loss_fn)(params, data[idx])
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    keys = jax.random.split(jax.random.key(seed + 1), steps)
    losses = []
    start = time.perf_counter()
    with tqdm(total=steps, desc=desc, unit="step", disable=not progress) as bar:
        bar.set_postfix_str("compiling the training step")
        for i in range(steps):
            params, state, loss = step(params, state, data, keys[i])
            losses.append(loss)
            if i % log_every == 0 or i == steps - 1:
                bar.set_postfix_str(f"loss {float(loss):.4f}", refresh=False)
            bar.update(1)
    losses = [float(v) for v in jax.device_get(losses)]
    return FitResult(params, losses, time.perf_counter() - start)


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
    r = np.sqrt(dx**2 + dy**2)
    width = 0.06 * size
    blob = np.exp(-(r**2) / (2 * u(0.08 * size, 0.18 * size) ** 2))
    ring = np.exp(-((r - u(0.15 * size, 0.3 * size)) ** 2) / (2 * width**2))
    angle = u(0, np.pi)
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    bar = np.exp(-(across**2) / (2 * width**2)) * np.clip(
        u(0.25 * size, 0.4 * size) - np.abs(along) + 0.5, 0, 1
    )
    cheb = np.maximum(np.abs(dx), np.abs(dy))
    box = np.exp(-((cheb - u(0.12 * size, 0.28 * size)) ** 2) / (2 * width**2))
    kind = (np.arange(n) % len(KINDS))[:, None, None]
    images = np.choose(kind, [blob, ring, bar, box])
    return np.clip(images, 0, 1).astype(np.float32)[:, None]


# ------------------------------------------------------------------------------------
# Model: dense encoder, dense + two transposed convolutions as the decoder.
# ------------------------------------------------------------------------------------


def _dense(rng: np.random.Generator, n_in: int, n_out: int) -> dict[str, jax.Array]:
    bound = 1 / math.sqrt(n_in)  # PyTorch's nn.Linear default
    return {
        "w": jnp.asarray(rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)),
        "b": jnp.zeros(n_out, jnp.float32),
    }


def _decoder_layers(key: jax.Array) -> dict[str, nn.ConvTranspose2d]:
    k = jax.random.split(key, 4)
    up1 = nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1, key=k[0])
    up2 = nn.ConvTranspose2d(16, 1, kernel_size=4, stride=2, padding=1, key=k[1])
    # ICNR: start as nearest-neighbour upsampling + a convolution (no checkerboard).
    return {
        "up1": up1.replace(weight=nn.init.icnr(k[2], up1.weight.shape, stride=2)),
        "up2": up2.replace(weight=nn.init.icnr(k[3], up2.weight.shape, stride=2)),
    }


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
        "up1": layers["up1"],  # (N, 32, 4, 4) -> (N, 16, 8, 8)
        "up2": layers["up2"],  # (N, 16, 8, 8) -> (N, 1, 16, 16)
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
# The picture: rows of images, upscaled, written with Pillow.
# ------------------------------------------------------------------------------------


def image_grid(rows: Sequence[np.ndarray], scale: int = 4, gap: int = 4) -> np.ndarray:
    """Rows of ``(n, H, W)`` images in ``[0, 1]`` -> one ``uint8`` picture, upscaled ``scale``x.

    Tiles are ``H * scale`` by ``W * scale`` pixels (nearest neighbour), with
    ``gap`` grey pixels around and between them.
    """
    n, h, w = np.shape(rows[0])
    th, tw = h * scale, w * scale
    out = np.full((gap + len(rows) * (th + gap), gap + n * (tw + gap)), 160, np.uint8)
    for r, images in enumerate(rows):
        for i, img in enumerate(np.asarray(images)):
            tile = np.repeat(np.repeat(np.clip(img, 0, 1), scale, 0), scale, 1)
            y, x = gap + r * (th + gap), gap + i * (tw + gap)
            out[y : y + th, x : x + tw] = np.round(255 * tile).astype(np.uint8)
    return out


def save_png(path: str | os.PathLike, rows: Sequence[np.ndarray], scale: int = 4) -> str:
    """Write :func:`image_grid` of ``rows`` as an 8-bit grayscale PNG; returns its absolute path."""
    Image.fromarray(image_grid(rows, scale)).save(path, format="PNG")
    return os.path.abspath(path)


# ------------------------------------------------------------------------------------
# The run.
# ------------------------------------------------------------------------------------


class DemoResult(NamedTuple):
    params: dict[str, Any]
    loss_before: float  # held-out MSE of the untrained model
    loss_after: float  # held-out MSE after training
    losses: list[float]  # training-batch loss per step
    seconds: float  # wall time of the training loop, compilation included
    png: str | None


def train(
    steps: int = 800,
    *,
    batch_size: int = 64,
    learning_rate: float = 5e-3,
    seed: int = 0,
    png: str | os.PathLike | None = None,
    progress: bool = True,
) -> DemoResult:
    """Train the autoencoder on synthetic shapes with :func:`fit`; optionally write a PNG.

    The PNG shows 12 held-out images (top row) above the trained model's
    reconstructions of them (bottom row), each 64x64 pixels.
    """
    data = make_images(2048 + 256, seed=seed)
    train_x, test_x = jnp.asarray(data[:2048]), jnp.asarray(data[2048:])
    shown = test_x[:12]
    params = init_model(seed)

    @jax.jit
    def evaluate(params, test_x):
        return loss_fn(params, test_x), reconstruct(params, test_x[: len(shown)])

    loss_before, _ = evaluate(params, test_x)
    result = fit(
        loss_fn,
        params,
        train_x,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        progress=progress,
        desc="training the decoder",
        log_every=25,
    )
    loss_after, after_images = evaluate(result.params, test_x)
    if png is not None:
        png = save_png(png, [np.asarray(im)[:, 0] for im in (shown, after_images)])
    return DemoResult(
        result.params, float(loss_before), float(loss_after), result.losses, result.seconds, png
    )


def run(
    steps: int = 800, png: str | os.PathLike | None = "convt_jax_demo.png", seed: int = 0
) -> DemoResult:
    """``python -m convt_jax``'s training: train, print the losses and where the PNG went."""
    print(
        f"\nTraining a small autoencoder on synthetic 16x16 blobs, rings, bars and boxes: "
        f"the decoder is two ConvTranspose2d layers (4x4 -> 8x8 -> 16x16, k=4, s=2, p=1, "
        f"ICNR init), the optimiser optax.adam under jax.jit, {steps} steps of 64 images.",
        flush=True,
    )
    result = train(steps, seed=seed, png=png)
    n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(result.params))
    print(
        f"held-out mean squared error: {result.loss_before:.4f} before training, "
        f"{result.loss_after:.4f} after ({n_params:,} parameters, {result.seconds:.1f} s "
        f"including compilation)"
    )
    if result.png is not None:
        print(
            f"wrote {result.png}\n  (top row: 12 held-out images; bottom row: the trained "
            "model's reconstructions)"
        )
    return result
