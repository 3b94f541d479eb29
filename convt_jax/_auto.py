"""Which lowering and which backward form to use: ``method="auto"`` and its fallbacks.

The rule comes from ``benchmarks/run.py`` on XLA:CPU (2 cores), recorded in
``benchmarks/RESULTS.md``; on GPU and TPU, XLA lowers lhs-dilated
convolutions to the vendor's backward-data convolution, so ``auto`` keeps
the core lowering there with the convolution-form gradients.
"""

from __future__ import annotations

import math

import jax

from . import _lowering
from ._args import Config

METHODS = ("auto", "dilated", "subpixel", "matmul", "depthwise")


def check(method) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method={method!r} must be one of {METHODS}")
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {METHODS}")
    return method


def resolve(method: str, config: Config, x_shape, w_shape) -> tuple[str, str, str]:
    """``(forward lowering, dx form, dw form)`` for a batched input shape and a weight shape.

    The CPU rule, from ``python -m benchmarks.run`` (forward lowerings and
    backward forms timed side by side; see benchmarks/RESULTS.md):

    * depthwise (``groups == C_in``): the elementwise lowering (a grouped
      convolution with 128 groups runs 2x-10x slower than PyTorch), with the
      elementwise backward;
    * an axis with stride > 1 *and* dilation > 1: the core lowering;
    * forward: one matrix multiply (``"matmul"``) when ``C_in >= 512`` or
      ``C_out <= 8`` (2-D), where the phase convolution is slow, else the
      phase convolution (``"subpixel"``, best for 1-D, 3-D and mid-size 2-D);
    * backward: the phase forms (one matrix multiply each over the
      cotangent's phases) for ``K == s``, and for dw in 3-D (dx there by the
      strided convolution, which needs no extra memory); im2col + matrix multiplies
      for small or narrow 2-D layers; the strided-convolution forms for 1-D,
      stride 1 and the rest (XLA's convolutions are fast there).
    """
    c_in = w_shape[0]
    if method == "dilated":
        return ("dilated", "conv", "conv")
    if method != "auto":
        return (method, "matmul", "matmul")
    if jax.default_backend() != "cpu":
        return ("dilated", "conv", "conv")
    if not _lowering.subpixel_supported(config):
        return ("dilated", "conv", "conv")
    if _lowering.depthwise_supported(config, c_in):
        return ("depthwise", "matmul", "matmul")
    if config.groups != 1:
        return ("subpixel", "conv", "conv")
    nd = config.ndim
    kernel = tuple(w_shape[2:])
    c_out = w_shape[1]
    spatial = x_shape[1:-1] if config.channels_last else x_shape[2:]
    forward = "matmul" if nd == 2 and (c_in >= 512 or c_out <= 8) else "subpixel"
    strided = any(s > 1 for s in config.stride)
    if strided and nd >= 2 and kernel == config.stride:
        return (forward, "phase", "phase")
    if strided and nd == 3:
        # dx by phases would be as fast but holds M^3 shifted copies of the cotangent's
        # phases (2.5x PyTorch's peak memory on the 3-D U-Net decoder); the strided
        # convolution needs none (benchmarks/memory.py).
        return (forward, "conv", "phase")
    if strided and nd >= 2 and (math.prod(spatial) <= 64 or c_out <= 8):
        return (forward, "matmul", "matmul")
    return (forward, "conv", "conv")
