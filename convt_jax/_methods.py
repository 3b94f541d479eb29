"""Which lowering and which backward forms compute a call: the one place that decides.

Three registries, each entry a :class:`Form`: the function, a predicate that
says whether it can compute a configuration (``None``) or why not (a short
reason), and the form to use instead where it cannot (only for configurations
the batching rule makes internally, e.g. ``vmap`` over the weight turning
``groups=1`` into ``groups=B``; a public call with an explicit method that
cannot apply is rejected by the validation).

* :data:`FORWARD`: the lowerings of :mod:`._lowering`;
* :data:`INPUT_GRADS` / :data:`WEIGHT_GRADS`: the backward forms of
  :mod:`._gradients` for ``dx`` and ``dw``: ``"conv"`` (strided convolution /
  zero-free correlation), ``"matmul"`` (im2col of the cotangent times the
  weight / the input; ``groups == 1`` or depthwise) and ``"phase"`` (the
  cotangent read as phases; ``groups == 1``, no dilation).

:func:`resolve` maps ``method`` to ``(forward, dx form, dw form)``; it is the
hook a measured choice plugs into.  ``"auto"`` uses the rule below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax

from . import _gradients, _lowering
from ._geometry import Config, channel_axis, has_phases, spatial_shape

Shape = Sequence[int]
Predicate = Callable[[Config, Shape, Shape], "str | None"]


class Form(NamedTuple):
    fn: Callable[..., jax.Array]
    unsupported: Predicate        # None when the form applies, else why not
    fallback: str | None          # the form to use where it does not


def _always(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    return None


def _phases(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    if has_phases(config):
        return None
    return (f"an axis has both stride > 1 and dilation > 1 (stride={config.stride}, "
            f"dilation={config.dilation}), which has no phase decomposition")


def _dense_no_dilation(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    if config.groups != 1:
        return f"it needs groups == 1 (got groups={config.groups})"
    if any(d > 1 for d in config.dilation):
        return f"it needs dilation == 1 on every axis (got dilation={config.dilation})"
    return None


def _depthwise(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    c_in = w_shape[0]
    if not (config.groups == c_in and config.groups > 1):
        return f"it needs groups == C_in > 1 (got groups={config.groups}, C_in={c_in})"
    return _phases(config, x_shape, w_shape)


def _dense_or_depthwise(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    if config.groups in (1, w_shape[0]):
        return None
    return f"it needs groups == 1 or groups == C_in (got groups={config.groups})"


FORWARD: dict[str, Form] = {
    "dilated": Form(_lowering.dilated, _always, None),
    "subpixel": Form(_lowering.subpixel, _phases, "dilated"),
    "matmul": Form(_lowering.matmul, _dense_no_dilation, "subpixel"),
    "depthwise": Form(_lowering.depthwise, _depthwise, "subpixel"),
}
INPUT_GRADS: dict[str, Form] = {
    "conv": Form(_gradients.input_grad, _always, None),
    "matmul": Form(_gradients.input_grad_matmul, _dense_or_depthwise, "conv"),
    "phase": Form(_gradients.input_grad_phase, _dense_no_dilation, "matmul"),
}
WEIGHT_GRADS: dict[str, Form] = {
    "conv": Form(_gradients.weight_grad, _always, None),
    "matmul": Form(_gradients.weight_grad_matmul, _dense_or_depthwise, "conv"),
    "phase": Form(_gradients.weight_grad_phase, _dense_no_dilation, "matmul"),
}
METHODS = ("auto",) + tuple(FORWARD)


def reasons(config: Config, x_shape: Shape, w_shape: Shape) -> dict[str, str | None]:
    """Every method mapped to ``None`` (it can compute the configuration) or why it cannot."""
    out: dict[str, str | None] = {"auto": None}
    for name, form in FORWARD.items():
        out[name] = form.unsupported(config, x_shape, w_shape)
    return out


def usable(table: dict[str, Form], name: str, config: Config, x_shape: Shape,
           w_shape: Shape) -> str:
    """``name``, or the first form of its fallback chain that applies."""
    while table[name].unsupported(config, x_shape, w_shape) is not None:
        name = table[name].fallback
    return name


def resolve(method: str, config: Config, x_shape: Shape, w_shape: Shape,
            dtype: Any = None) -> tuple[str, str, str]:
    """``(forward lowering, dx form, dw form)`` for a batched input shape and a weight shape.

    An explicit method gives that lowering with the matrix-multiply backward
    forms where they apply (``"dilated"``: the convolution forms); ``"auto"``
    gives :func:`auto`'s choice.  Every returned form applies to the
    configuration.  ``dtype`` is the computation dtype (unused by the rule).
    """
    if method == "auto":
        fwd, dx, dw = auto(config, x_shape, w_shape)
    elif method == "dilated":
        fwd, dx, dw = "dilated", "conv", "conv"
    else:
        fwd, dx, dw = method, "matmul", "matmul"
    return (usable(FORWARD, fwd, config, x_shape, w_shape),
            usable(INPUT_GRADS, dx, config, x_shape, w_shape),
            usable(WEIGHT_GRADS, dw, config, x_shape, w_shape))


def auto(config: Config, x_shape: Shape, w_shape: Shape) -> tuple[str, str, str]:
    """The measured rule behind ``method="auto"`` (forms not yet checked for applicability).

    The CPU rule, from ``python -m benchmarks.run`` (forward lowerings and
    backward forms timed side by side; see benchmarks/RESULTS.md); on GPU
    and TPU, XLA lowers lhs-dilated convolutions to the vendor's
    backward-data convolution, so ``auto`` keeps the core lowering there with
    the convolution-form gradients:

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
    if jax.default_backend() != "cpu":
        return ("dilated", "conv", "conv")
    if not has_phases(config):
        return ("dilated", "conv", "conv")
    if _depthwise(config, x_shape, w_shape) is None:
        return ("depthwise", "matmul", "matmul")
    if config.groups != 1:
        return ("subpixel", "conv", "conv")
    nd = config.ndim
    c_in, c_out = w_shape[0], w_shape[1]
    kernel = tuple(w_shape[2:])
    spatial = spatial_shape(config, x_shape)
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


# --- running a resolved method (the primitive's impl, lowering and transposes) ------------------

def forward(name: str, x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Run lowering ``name`` (or its fallback, for a configuration made by ``vmap``)."""
    return FORWARD[usable(FORWARD, name, config, x.shape, w.shape)].fn(x, w, config)


def input_grad(name: str, g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Run dx form ``name`` (or its fallback) on the cotangent ``g``."""
    return INPUT_GRADS[usable(INPUT_GRADS, name, config, g.shape, w.shape)].fn(g, w, config)


def weight_grad(name: str, g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """Run dw form ``name`` (or its fallback) on the cotangent ``g`` and the input ``x``."""
    c_ax = channel_axis(config)
    w_shape = (x.shape[c_ax], g.shape[c_ax] // config.groups)
    return WEIGHT_GRADS[usable(WEIGHT_GRADS, name, config, x.shape, w_shape)].fn(g, x, config)
