"""``python -m convt_jax``: a short, real demonstration of the library.

Prints small worked examples with their correct values, shows what
``jax.lax.conv_transpose`` gives for the same PyTorch-style call, checks a
grouped, dilated, output-padded call against PyTorch when it is installed,
and trains a small decoder for a few seconds, writing a PNG of its
reconstructions (``--png PATH``, default ``convt_jax_demo.png`` in the
current directory). The examples need only the package's own dependencies;
the training needs the ``demo`` extra (optax, tqdm, Pillow:
``pip install "convt_jax[demo]"``) and is skipped, with that advice, without it.

    python -m convt_jax [--png PATH] [--steps N] [--no-train]
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import convt_jax as ct


def _show(title: str, value) -> None:
    text = np.array2string(np.asarray(value), precision=4, suppress_small=True)
    print(f"\n{title}\n{text}")


def examples() -> None:
    """Small worked examples, jax.lax.conv_transpose side by side, PyTorch if installed."""
    print(f"convt_jax {ct.__version__} on jax {jax.__version__} ({jax.default_backend()})")

    x = jnp.array([[[1.0, 2.0, 3.0]]])
    w = jnp.array([[[1.0, 0.5]]])
    _show("1-d, k=2, stride 1 (Lucid example):", ct.conv_transpose1d(x, w))
    _show("1-d, k=2, stride 2:", ct.conv_transpose1d(x, w, stride=2))
    xg = jnp.array([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    wg = jnp.array([[[1.0, 0.5]], [[-1.0, 0.5]]])
    _show(
        "1-d, groups=2 (a widely copied example prints [-4, -3.5, -2, 3] for channel 2; "
        "correct is [-4, -3, -3.5, 3]):",
        ct.conv_transpose1d(xg, wg, groups=2),
    )

    x2 = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    w2 = jnp.array([[[[1.0, 0.5], [0.25, -0.25]]]])
    _show("2-d basic (middle row is [3.25, 5.75, 1.5]):", ct.conv_transpose2d(x2, w2)[0, 0])
    _show(
        "2-d stride 2 (the kernel is applied: first row [1, 0.5, 2, 1]):",
        ct.conv_transpose2d(x2, w2, stride=2)[0, 0],
    )
    print(
        "\n3-d: a 1x1x1 input with a 2x2x2 kernel gives shape",
        ct.conv_transpose3d(jnp.ones((1, 1, 1, 1, 1)), jnp.ones((1, 1, 2, 2, 2)), stride=2).shape,
        "for any stride",
    )
    print(
        "k=4, s=2, p=1, output_padding=1 maps 1x1 to",
        ct.conv_transpose_output_shape((8, 512, 1, 1), (512, 256, 4, 4), 2, 1, 1)[2:],
        "(not 2x2)",
    )

    # The same PyTorch-style call (DCGAN layer: k=4, stride 2, padding 1) through jax.lax.
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.standard_normal((1, 4, 5, 5)), jnp.float32)
    ws = jnp.asarray(rng.standard_normal((4, 3, 4, 4)), jnp.float32)  # (C_in, C_out, kh, kw)
    ours = ct.conv_transpose2d(xs, ws, stride=2, padding=1)
    dn = ("NCHW", "OIHW", "NCHW")
    lax_naive = jax.lax.conv_transpose(
        xs, ws, (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn, transpose_kernel=True
    )
    lax_fixed = jax.lax.conv_transpose(
        xs, ws, (2, 2), ((2, 2), (2, 2)), dimension_numbers=dn, transpose_kernel=True
    )
    print(
        "\nPyTorch-style conv_transpose2d(x, w, stride=2, padding=1) with k=4:", tuple(ours.shape)
    )
    print(
        "  jax.lax.conv_transpose with padding=((1, 1), (1, 1)):",
        tuple(lax_naive.shape),
        "- lax pads the stride-dilated input instead of cropping the output",
    )
    print(
        "  jax.lax.conv_transpose with padding k-1-p = 2 and transpose_kernel=True:",
        tuple(lax_fixed.shape),
        "max |diff| =",
        f"{float(jnp.abs(lax_fixed - ours).max()):.1e}",
    )
    same = ct.conv_transpose2d(xs, ws, stride=2, padding="same")
    lax_same = jax.lax.conv_transpose(
        xs, ws, (2, 2), "SAME", dimension_numbers=dn, transpose_kernel=True
    )
    print(
        "  padding='same' equals jax.lax.conv_transpose(..., 'SAME', transpose_kernel=True):",
        bool(jnp.allclose(same, lax_same, atol=1e-5)),
    )
    print("  groups and output_padding: jax.lax.conv_transpose has neither.")

    try:
        import torch
    except ImportError:
        print("\nPyTorch is not installed: skipping the comparison against it.")
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    w = rng.standard_normal((64, 16, 4, 4)).astype(np.float32) * 0.05
    b = rng.standard_normal(64).astype(np.float32)
    kw_: dict[str, Any] = dict(stride=2, padding=1, output_padding=1)
    t0 = time.perf_counter()
    y = ct.conv_transpose2d(x, w, b, **kw_, groups=4, dilation=2).block_until_ready()
    t1 = time.perf_counter()
    yt = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), 2, 1, 1, 4, 2
    ).numpy()
    print(
        f"\nPyTorch {torch.__version__}: groups=4, dilation=2, stride=2, padding=1, "
        f"output_padding=1 on {x.shape} -> {tuple(y.shape)}; max |diff| = "
        f"{float(np.abs(np.asarray(y) - yt).max()):.2e} (first call incl. compile "
        f"{1e3 * (t1 - t0):.0f} ms)"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the demonstration; ``argv`` as on the command line (default: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        prog="python -m convt_jax",
        description="A short demonstration of convt_jax: small worked examples, "
        "jax.lax.conv_transpose side by side, a check against PyTorch (if "
        "installed) and a small decoder trained for a few seconds.",
    )
    parser.add_argument(
        "--png",
        default="convt_jax_demo.png",
        help="where to write the reconstructions (default: %(default)s)",
    )
    parser.add_argument("--steps", type=int, default=800, help="training steps (default: 800)")
    parser.add_argument("--no-train", action="store_true", help="skip the training demo")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    examples()
    if not args.no_train and args.steps > 0:
        try:
            from . import _demo
        except ImportError as err:
            print(f"\nSkipping the training: {err}", file=sys.stderr)
        else:
            _demo.run(args.steps, png=args.png)
    print(f"\ndone in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
