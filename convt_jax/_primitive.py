"""The ``conv_transpose`` primitive: one JAX primitive with hand-written gradients.

Why a primitive.  ``y = conv_transpose(x, w)`` is bilinear in ``(x, w)``.
We want JAX's reverse mode to use our own cotangent rules
(:mod:`._gradients`: a strided convolution for ``dx`` and a zero-free
correlation for ``dw``, instead of the lhs-dilated weight-gradient
convolution that autodiff of the lowering produces), while forward mode,
``vmap``, ``jacfwd``, ``hessian``, ``linearize``, ``checkpoint`` and higher
orders keep working.  With jax 0.10 the alternatives fall short:
``jax.custom_vjp`` has no forward mode; ``jax.custom_jvp`` +
``jax.custom_derivatives.linear_call`` transposes correctly but
``linear_call`` has no batching rule, so ``vmap``/``jacfwd``/``hessian``
fail.  A primitive gives full control and is sound:

* **JVP** (``ad.defbilinear``): ``dy = prim(dx, w) + prim(x, dw)``, the exact
  derivative of a bilinear map; it binds the same primitive, so forward
  mode of any order works.
* **Transpose**: the two linear maps ``x -> prim(x, w)`` and ``w -> prim(x,
  w)`` are transposed by :func:`._gradients.input_grad` and
  :func:`._gradients.weight_grad`, each a ``lax.conv_general_dilated`` with
  its own JAX rules, so gradients of gradients compose.
* **Batching**: a vmapped input folds into the batch axis, a vmapped weight
  into the output channels, both together into the groups; no loop.
* **Abstract eval** from the shared shape arithmetic (:mod:`._shapes`).
* **Lowering** via ``mlir.lower_fun`` of the chosen lowering, so XLA (and
  its SPMD partitioner) sees ordinary convolutions, and ``impl`` is the same
  function under ``jax.jit``.

The primitive works on batched arrays in the configuration's layout, with
``x`` and ``w`` in one dtype; the public functions handle unbatched input,
dtype promotion and the bias (whose cotangent, the sum over batch and
spatial axes, is what JAX's transpose of the broadcast add gives:
:func:`._gradients.bias_grad` states it and the tests check it).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from . import _gradients, _lowering, _shapes
from ._args import Config

conv_transpose_p = Primitive("convt_jax_conv_transpose")

LOWERINGS = {
    "dilated": _lowering.dilated,
    "subpixel": _lowering.subpixel,
    "matmul": _lowering.matmul,
    "depthwise": _lowering.depthwise,
}
# Backward forms, chosen separately for dx and dw: "conv" = strided
# convolution (dx) and zero-free correlation (dw); "matmul" = im2col of the
# cotangent times the weight / the input (groups == 1, or depthwise
# elementwise).  ``method`` is (forward lowering, dx form, dw form).
INPUT_GRADS = {"conv": _gradients.input_grad, "matmul": _gradients.input_grad_matmul}
WEIGHT_GRADS = {"conv": _gradients.weight_grad, "matmul": _gradients.weight_grad_matmul}


def _run(x, w, *, config: Config, method: tuple[str, str, str]):
    return LOWERINGS[method[0]](x, w, config).astype(x.dtype)


def _abstract_eval(x, w, *, config: Config, method: tuple[str, str, str]):
    nd = config.ndim
    if config.channels_last:
        n, *spatial, _ = x.shape
    else:
        n, _, *spatial = x.shape
    out = _shapes.output_spatial_shape(spatial, w.shape[2:], config.stride, config.dilation,
                                       config.crops)
    c_out = w.shape[1] * config.groups
    shape = (n, *out, c_out) if config.channels_last else (n, c_out, *out)
    assert len(shape) == nd + 2
    return jax.core.ShapedArray(shape, x.dtype)


def _transpose_x(g, x, w, *, config: Config, method: tuple[str, str, str]):
    return INPUT_GRADS[method[1]](g, w, config)


def _transpose_w(g, x, w, *, config: Config, method: tuple[str, str, str]):
    return WEIGHT_GRADS[method[2]](g, x, config)


def _channel_axis(config: Config) -> int:
    return config.ndim + 1 if config.channels_last else 1


def _batch_rule(args, dims, *, config: Config, method: tuple[str, str, str]):
    x, w = args
    bx, bw = dims
    c_ax = _channel_axis(config)
    g = config.groups
    if bw is None:
        # Fold the vmapped axis into the batch axis.
        x = jnp.moveaxis(x, bx, 0)
        b, n = x.shape[:2]
        y = conv_transpose_p.bind(x.reshape(b * n, *x.shape[2:]), w, config=config,
                                  method=method)
        return y.reshape(b, n, *y.shape[1:]), 0
    w = jnp.moveaxis(w, bw, 0)
    b, c_in, c_out_g, *kernel = w.shape
    if bx is None:
        # Fold into the output channels: per group j, [w_0 | w_1 | ...] side by side.
        wb = w.reshape(b, g, c_in // g, c_out_g, *kernel)
        wb = jnp.moveaxis(wb, 0, 2).reshape(c_in, b * c_out_g, *kernel)
        y = conv_transpose_p.bind(x, wb, config=config, method=method)
        shape = list(y.shape)
        y = y.reshape(shape[:c_ax] + [g, b, c_out_g] + shape[c_ax + 1:])
        y = jnp.moveaxis(y, c_ax + 1, 0)
        return y.reshape(b, *shape[:c_ax], g * c_out_g, *shape[c_ax + 1:]), 0
    # Both mapped: b independent problems side by side as b*g groups.
    x = jnp.moveaxis(x, bx, 0)
    x = jnp.moveaxis(x, 0, c_ax)                       # (N, ..., b, C_in, ...) at the channel axis
    xs = list(x.shape)
    x = x.reshape(xs[:c_ax] + [b * c_in] + xs[c_ax + 2:])
    y = conv_transpose_p.bind(x, w.reshape(b * c_in, c_out_g, *kernel),
                              config=config._replace(groups=b * g), method=method)
    ys = list(y.shape)
    y = y.reshape(ys[:c_ax] + [b, g * c_out_g] + ys[c_ax + 1:])
    return jnp.moveaxis(y, c_ax, 0), 0


@functools.partial(jax.jit, static_argnames=("config", "method"))
def _impl(x, w, *, config: Config, method: tuple[str, str, str]):
    return _run(x, w, config=config, method=method)


conv_transpose_p.def_impl(_impl)
conv_transpose_p.def_abstract_eval(_abstract_eval)
ad.defbilinear(conv_transpose_p, _transpose_x, _transpose_w)
batching.primitive_batchers[conv_transpose_p] = _batch_rule
mlir.register_lowering(conv_transpose_p, mlir.lower_fun(_run, multiple_results=False))


def conv_transpose_batched(x: jax.Array, w: jax.Array, config: Config,
                           method: tuple[str, str, str] = ("dilated", "conv", "conv")) -> jax.Array:
    """Bind the primitive: batched ``x`` in the config's layout, ``w`` of the same dtype.

    ``method`` is ``(forward lowering, dx form, dw form)``, already resolved
    (:func:`convt_jax._auto.resolve`).
    """
    return conv_transpose_p.bind(x, w, config=config, method=method)
