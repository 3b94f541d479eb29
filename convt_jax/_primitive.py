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
* **Abstract eval** from the shared shape arithmetic (:mod:`._geometry`).
* **Lowering** via ``mlir.lower_fun`` of the chosen lowering, so XLA sees
  ordinary convolutions (or oneDNN calls), and ``impl`` is the same function
  under ``jax.jit``; in a partitioned program, through the partitioning rule
  of ``_partition`` (each device runs that lowering on its block).
* **Sharding** (see "Sharding" below): with ``Explicit`` mesh axes the
  primitive's type carries an output sharding and its insides run with those
  axes ``Auto``; inside ``shard_map`` operands are cast to vary over the same
  manual axes.

The primitive works on batched arrays in the configuration's layout, with
``x`` and ``w`` in one dtype; the public functions handle unbatched input,
dtype promotion and the bias (whose cotangent, the sum over batch and
spatial axes, is what JAX's transpose of the broadcast add gives; the tests check it).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.interpreters import ad, batching, mlir
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import _compat, _geometry, _methods, _partition
from ._compat import Primitive
from ._geometry import Config

conv_transpose_p = Primitive("convt_jax_conv_transpose")

# ``method`` is (forward lowering, dx form, dw form): names in the registries of
# :mod:`._methods`, which also runs them; optionally followed by the three forms for the
# accelerators (``cuda``, ``rocm``, ``tpu``, any other platform), which ``"auto"`` sets to
# XLA's convolutions.  Each lowering rule picks the forms of the platform it lowers for
# (``_platform_forms``), so a program exported or compiled for another platform than the
# tracing host's, or for several at once, carries each platform's own.


def _run(x, w, *, config: Config, method: tuple[str, str, str]):
    return _methods.forward(method[0], x, w, config).astype(x.dtype)


def _abstract_eval(x, w, *, config: Config, method: tuple[str, str, str]):
    shape = _geometry.output_shape(config, x.shape, w.shape)
    vx, vw = _compat.varying_axes(x), _compat.varying_axes(w)
    if vx != vw:
        raise ValueError(
            f"conv_transpose operands vary over different manual mesh axes "
            f"(input {sorted(vx, key=str)}, weight {sorted(vw, key=str)}); "
            "bind through convt_jax._primitive.conv_transpose_batched, which casts them"
        )
    return x.update(shape=shape, weak_type=False, sharding=_out_sharding(x, w, config, shape))


# --- Sharding ------------------------------------------------------------------------------
#
# Auto mesh axes (jit with NamedSharding inputs on an Auto mesh): the lowering sees a
# partitioned program and goes through the partitioning rule (``_partition``), which
# tells the SPMD partitioner how the splits carry and runs the one-device forms per device.
#
# Explicit mesh axes (the default of ``jax.make_mesh``): shardings are part of the
# types, so (1) the abstract eval gives the output a sharding (below); (2) the lowering
# and the two transposes run their ops with the explicit axes switched to Auto (JAX's
# per-op sharding rules reject, e.g., the reshapes of the phase interleave), and the
# result is annotated / resharded to the type's sharding, exactly like
# ``jax.sharding.auto_axes``.
#
# Manual axes (``shard_map``): per-device code; x and w are cast to vary over the same
# axes (as JAX's own binary ops do), so the weight's cotangent of a replicated weight is
# summed over the devices by the transpose of that cast.


def _axis_size(mesh, entry) -> int:
    if entry is None:
        return 1
    names = entry if isinstance(entry, tuple) else (entry,)
    return math.prod(mesh.shape[a] for a in names)


def _out_sharding(x, w, config: Config, shape):
    """The output's sharding in the type: batch (and divisible spatial) axes follow the
    input, channels follow the weight's output channels (``groups == 1``) or its input
    channels (``groups`` a multiple of the shard count); everything else replicated."""
    if _compat.aval_sharding(x) is None:  # a JAX whose types carry no sharding
        return None
    _compat.require_explicit_axes(_explicit_axes(x, w))
    mesh = x.sharding.mesh
    nd = config.ndim
    x_spec = tuple(x.sharding.spec) + (None,) * (x.ndim - len(x.sharding.spec))
    w_spec = tuple(w.sharding.spec) + (None,) * (w.ndim - len(w.sharding.spec))
    c_ax = _channel_axis(config)
    s_axes = [a for a in range(1, nd + 2) if a != c_ax]
    spec = [None] * len(shape)
    spec[0] = x_spec[0]
    for a in s_axes:
        e = x_spec[a]
        if e is not None and shape[a] % _axis_size(mesh, e) == 0:
            spec[a] = e
    if config.groups == 1:
        c = w_spec[1]
    else:
        c = (
            w_spec[0]
            if w_spec[0] is not None and config.groups % _axis_size(mesh, w_spec[0]) == 0
            else None
        )
    if c is not None and shape[c_ax] % _axis_size(mesh, c) == 0:

        def names(e):
            return set() if e is None else set(e if isinstance(e, tuple) else (e,))

        used = set().union(*(names(e) for e in spec))
        if not names(c) & used:
            spec[c_ax] = c
    return _compat.with_spec(x.sharding, P(*spec))


def _explicit_axes(*avals) -> tuple:
    for a in avals:
        axes = _compat.explicit_axes(getattr(_compat.aval_sharding(a), "mesh", None))
        if axes:
            return axes
    return ()


def _without_explicit_axes(fn, out_aval, *avals):
    """``fn`` run with the explicit mesh axes Auto, its result resharded to ``out_aval``'s."""
    axes = _explicit_axes(out_aval, *avals)
    if not axes:
        return fn
    return _compat.auto_axes(fn, axes, out_aval.sharding)


def with_auto_axes(fn, y: jax.Array) -> jax.Array:
    """``fn(y)`` (a reshaping of the output, e.g. a padding mode's fold) run with the
    Explicit mesh axes of ``y``'s type switched to Auto; the result keeps ``y``'s split of
    every axis that still divides evenly.  Without Explicit axes, just ``fn(y)``."""
    aval = _compat.typeof(y)
    axes = _explicit_axes(aval)
    if not axes:
        return fn(y)
    out = jax.eval_shape(fn, jax.ShapeDtypeStruct(y.shape, y.dtype))
    mesh = aval.sharding.mesh
    spec = tuple(aval.sharding.spec) + (None,) * (y.ndim - len(aval.sharding.spec))
    spec = [
        e if e is not None and n % _axis_size(mesh, e) == 0 else None
        for e, n in zip(spec, out.shape, strict=True)
    ]
    return _compat.auto_axes(fn, axes, _compat.with_spec(aval.sharding, P(*spec)))(y)


def _transpose_x(g, x, w, *, config: Config, method: tuple[str, str, str]):
    x_aval = x.aval
    fn = _without_explicit_axes(
        lambda g, w: input_grad_batched(g, w, config, method, tuple(x_aval.shape)),
        x_aval,
        _compat.typeof(g),
        _compat.typeof(w),
    )
    return fn(g, w)


def _transpose_w(g, x, w, *, config: Config, method: tuple[str, str, str]):
    w_aval = w.aval
    fn = _without_explicit_axes(
        lambda g, x: weight_grad_batched(g, x, config, method, tuple(w_aval.shape)),
        w_aval,
        _compat.typeof(g),
        _compat.typeof(x),
    )
    return fn(g, x)


def _channel_axis(config: Config) -> int:
    return _geometry.channel_axis(config)


def _fold_batch(a, bd):
    """The vmapped axis ``bd`` of an activation folded into its batch axis (vmap-major),
    and the vmapped and batch sizes (for :func:`_unfold_batch`; either may be 0)."""
    a = jnp.moveaxis(a, bd, 0)
    b, n = a.shape[:2]
    return a.reshape(b * n, *a.shape[2:]), (b, n)


def _unfold_batch(y, sizes: tuple[int, int]):
    return y.reshape(*sizes, *y.shape[1:])


def _fold_channels(a, bd, config: Config):
    """The vmapped axis ``bd`` of an activation folded into its channels (vmap-major)."""
    c_ax = _channel_axis(config)
    a = jnp.moveaxis(a, bd, c_ax)
    s = list(a.shape)
    return a.reshape(s[:c_ax] + [s[c_ax] * s[c_ax + 1]] + s[c_ax + 2 :])


def _unfold_channels(a, b: int, config: Config):
    c_ax = _channel_axis(config)
    s = list(a.shape)
    a = a.reshape(s[:c_ax] + [b, s[c_ax] // b] + s[c_ax + 1 :])
    return jnp.moveaxis(a, c_ax, 0)


def _fold_weight(w, bd):
    w = jnp.moveaxis(w, bd, 0)
    return w.reshape(w.shape[0] * w.shape[1], *w.shape[2:])


def _batch_rule(args, dims, *, config: Config, method: tuple[str, str, str]):
    x, w = args
    bx, bw = dims
    c_ax = _channel_axis(config)
    g = config.groups
    if bw is None:
        # Fold the vmapped axis into the batch axis.
        x, sizes = _fold_batch(x, bx)
        return _unfold_batch(conv_transpose_p.bind(x, w, config=config, method=method), sizes), 0
    if bx is not None:
        # Both mapped: b independent problems side by side as b*g groups.
        b = w.shape[bw]
        y = conv_transpose_p.bind(
            _fold_channels(x, bx, config),
            _fold_weight(w, bw),
            config=config._replace(groups=b * g),
            method=method,
        )
        return _unfold_channels(y, b, config), 0
    # Only the weight mapped: fold into the output channels, per group j [w_0 | w_1 | ...].
    w = jnp.moveaxis(w, bw, 0)
    b, c_in, c_out_g, *kernel = w.shape
    wb = w.reshape(b, g, c_in // g, c_out_g, *kernel)
    wb = jnp.moveaxis(wb, 0, 2).reshape(c_in, b * c_out_g, *kernel)
    y = conv_transpose_p.bind(x, wb, config=config, method=method)
    shape = list(y.shape)
    y = y.reshape(shape[:c_ax] + [g, b, c_out_g] + shape[c_ax + 1 :])
    y = jnp.moveaxis(y, c_ax + 1, 0)
    return y.reshape(b, *shape[:c_ax], g * c_out_g, *shape[c_ax + 1 :]), 0


@functools.partial(jax.jit, static_argnames=("config", "method"))
def _impl(x, w, *, config: Config, method: tuple[str, str, str]):
    return _run(x, w, config=config, method=method)


conv_transpose_p.def_impl(_impl)
conv_transpose_p.def_abstract_eval(_abstract_eval)
ad.defbilinear(conv_transpose_p, _transpose_x, _transpose_w)
batching.primitive_batchers[conv_transpose_p] = _batch_rule


def _run_shaped(x, w, *, config: Config, method: tuple[str, str, str], shape):
    return _run(x, w, config=config, method=method)


def _platform_forms(
    ctx, method: tuple[str, ...], platform: str | None, config: Config, x_shape, w_shape
) -> tuple[str, str, str]:
    """The three forms for the platform being lowered for (``"cpu"``, or ``None`` for any
    other), made convolution-free when the program is partitioned; oneDNN's forms (a CPU
    FFI call) only on the CPU and never in an exported program."""
    chosen = method[3:6] if platform != "cpu" and len(method) == 6 else method[:3]
    forms: tuple[str, str, str] = (chosen[0], chosen[1], chosen[2])
    if platform != "cpu":
        forms = _methods.without_onednn(forms, config, x_shape, w_shape, _methods.ACCELERATOR_FORMS)
    elif _compat.is_exporting(ctx):
        forms = _methods.without_onednn(forms, config, x_shape, w_shape)
    if _compat.is_partitioned(ctx):
        forms = _methods.partitioned(forms, config, x_shape, w_shape)
    return forms


def _lower_forms(kind: str, ctx, a, b, config: Config, method, forms, shape):
    """Lower map ``kind`` with the platform's ``forms``; in a partitioned program that can
    carry a partitioning rule, the one-device ``method`` per device instead (``_partition``)."""
    if shape is None:
        shape = ctx.avals_out[0].shape
    if _partition.applies(ctx):
        return _partition.lower(
            kind, ctx, a, b, config=config, method=method, forms=forms, shape=shape
        )
    return _LOWER_RUN[kind](ctx, a, b, config=config, method=forms, shape=shape)


def _lowering(ctx, x, w, *, config: Config, method: tuple[str, ...], platform: str | None):
    original = method
    method = _platform_forms(
        ctx, method, platform, config, ctx.avals_in[0].shape, ctx.avals_in[1].shape
    )
    axes = _explicit_axes(*ctx.avals_in)
    if not axes:
        return _lower_forms("forward", ctx, x, w, config, original, method, None)
    # Lower the insides with the explicit axes Auto (no per-op sharding rules or
    # constraints: the partitioner propagates), then pin the result to its type.
    mesh = _compat.auto_mesh(ctx.avals_in[0].sharding.mesh, axes)
    avals_in = [a.update(sharding=NamedSharding(mesh, P())) for a in ctx.avals_in]
    avals_out = [a.update(sharding=NamedSharding(mesh, P())) for a in ctx.avals_out]
    with _compat.use_abstract_mesh(mesh):
        (out,) = _lower_forms(
            "forward",
            ctx.replace(avals_in=avals_in, avals_out=avals_out),
            x,
            w,
            config,
            original,
            method,
            None,
        )
    return [_compat.lower_with_sharding_in_types(ctx, out, ctx.avals_out[0])]


# The CPU forms on "cpu"; the accelerator forms everywhere else (a platform-specific rule
# and a default one: a multi-platform export gets a branch for each).
mlir.register_lowering(
    conv_transpose_p, functools.partial(_lowering, platform="cpu"), platform="cpu"
)
mlir.register_lowering(conv_transpose_p, functools.partial(_lowering, platform=None))


def _same_varying(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inside ``shard_map``: the operand that varies over fewer manual axes cast (
    ``jax.lax.pcast``; ``pvary`` on older JAX) to vary like the other."""
    va, vb = _compat.varying_axes(_compat.typeof(a)), _compat.varying_axes(_compat.typeof(b))
    if va != vb:
        if vb - va:
            a = _compat.vary_over(a, tuple(sorted(vb - va, key=str)))
        if va - vb:
            b = _compat.vary_over(b, tuple(sorted(va - vb, key=str)))
    return a, b


def conv_transpose_batched(
    x: jax.Array,
    w: jax.Array,
    config: Config,
    method: tuple[str, str, str] = ("dilated", "conv", "conv"),
) -> jax.Array:
    """Bind the primitive: batched ``x`` in the config's layout, ``w`` of the same dtype.

    ``method`` is ``(forward lowering, dx form, dw form)``, already resolved
    (:func:`convt_jax._methods.resolve`).  Inside ``shard_map`` the operands are cast to
    vary over the same manual axes (:func:`_same_varying`).
    """
    x, w = _same_varying(x, w)
    return conv_transpose_p.bind(x, w, config=config, method=method)


# --- the gradient primitives ---------------------------------------------------------------
#
# ``dx = input_grad_p(g, w)`` and ``dw = weight_grad_p(g, x)`` are primitives too, so that
# their form, like the forward's, is chosen where the program is lowered: a partitioned
# program gets convolution-free forms (see ``_methods.partitioned``).  With ``F(x, w)`` the
# transposed convolution, ``<g, F(x, w)> = <dx(g, w), x> = <dw(g, x), w>``, so the three
# bilinear maps transpose into each other:
#
#   dx(g, w):  g -> F(ct, w),  w -> dw(g, ct)
#   dw(g, x):  g -> F(x, ct),  x -> dx(g, ct)
#
# and gradients of any order stay inside the three primitives.  ``shape`` is the result's
# shape (the input's for dx, the weight's for dw).

input_grad_p = Primitive("convt_jax_conv_transpose_input_grad")
weight_grad_p = Primitive("convt_jax_conv_transpose_weight_grad")


def input_grad_batched(
    g: jax.Array, w: jax.Array, config: Config, method: tuple[str, str, str], shape: tuple[int, ...]
) -> jax.Array:
    """``dx`` of the batched primitive for the cotangent ``g`` (``shape``: the input's)."""
    g, w = _same_varying(g, w)
    return input_grad_p.bind(g, w, config=config, method=method, shape=tuple(shape))


def weight_grad_batched(
    g: jax.Array, x: jax.Array, config: Config, method: tuple[str, str, str], shape: tuple[int, ...]
) -> jax.Array:
    """``dw`` of the batched primitive for the cotangent ``g`` (``shape``: the weight's)."""
    g, x = _same_varying(g, x)
    return weight_grad_p.bind(g, x, config=config, method=method, shape=tuple(shape))


def _run_input_grad(g, w, *, config: Config, method: tuple[str, str, str], shape):
    return _methods.input_grad(method[1], g, w, config).astype(g.dtype)


def _run_weight_grad(g, x, *, config: Config, method: tuple[str, str, str], shape):
    return _methods.weight_grad(method[2], g, x, config).astype(g.dtype)


def _grad_abstract_eval(g, a, *, config: Config, method: tuple[str, str, str], shape):
    vg, va = _compat.varying_axes(g), _compat.varying_axes(a)
    if vg != va:
        raise ValueError(
            f"conv_transpose gradient operands vary over different manual mesh axes "
            f"({sorted(vg, key=str)}, {sorted(va, key=str)})"
        )
    # Bound with Auto mesh axes only (the transposes run under ``_without_explicit_axes``).
    sharding = _compat.aval_sharding(g)
    if sharding is not None:
        sharding = _compat.with_spec(sharding, P())
    return g.update(shape=tuple(shape), weak_type=False, sharding=sharding)


def _grad_lowering(kind: str, run, shapes, platform: str | None):
    lower = mlir.lower_fun(run, multiple_results=False)

    def rule(ctx, g, a, *, config: Config, method: tuple[str, ...], shape):
        forms = _platform_forms(ctx, method, platform, config, *shapes(ctx.avals_in, shape))
        if _partition.applies(ctx):
            return _partition.lower(
                kind, ctx, g, a, config=config, method=method, forms=forms, shape=shape
            )
        return lower(ctx, g, a, config=config, method=forms, shape=shape)

    return rule


def _input_grad_transpose_g(ct, g, w, *, config, method, shape):
    return conv_transpose_batched(ct, w, config, method)


def _input_grad_transpose_w(ct, g, w, *, config, method, shape):
    return weight_grad_batched(g, ct, config, method, tuple(w.aval.shape))


def _weight_grad_transpose_g(ct, g, x, *, config, method, shape):
    return conv_transpose_batched(x, ct, config, method)


def _weight_grad_transpose_x(ct, g, x, *, config, method, shape):
    return input_grad_batched(g, ct, config, method, tuple(x.aval.shape))


def _broadcast_unmapped(args, dims):
    size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)
    return (
        [
            a if d is not None else jnp.broadcast_to(a[None], (size, *a.shape))
            for a, d in zip(args, dims, strict=True)
        ],
        [d if d is not None else 0 for d in dims],
        size,
    )


def _input_grad_batch_rule(args, dims, *, config: Config, method, shape):
    (g, w), (bg, bw) = args, dims
    if bw is None:
        # Fold the vmapped axis of the cotangent into the batch axis.
        g, sizes = _fold_batch(g, bg)
        dx = input_grad_batched(g, w, config, method, (g.shape[0], *shape[1:]))
        return _unfold_batch(dx, sizes), 0
    # Otherwise b independent problems side by side as b * groups groups.
    (g, w), (bg, bw), b = _broadcast_unmapped((g, w), (bg, bw))
    c_ax = _channel_axis(config)
    folded = list(shape)
    folded[c_ax] *= b
    dx = input_grad_batched(
        _fold_channels(g, bg, config),
        _fold_weight(w, bw),
        config._replace(groups=b * config.groups),
        method,
        tuple(folded),
    )
    return _unfold_channels(dx, b, config), 0


def _weight_grad_batch_rule(args, dims, *, config: Config, method, shape):
    # dw sums over the batch axis, so a vmapped axis goes into the groups, never the batch.
    (g, x), (bg, bx), b = _broadcast_unmapped(args, dims)
    dw = weight_grad_batched(
        _fold_channels(g, bg, config),
        _fold_channels(x, bx, config),
        config._replace(groups=b * config.groups),
        method,
        (b * shape[0], *shape[1:]),
    )
    return dw.reshape(b, *shape), 0


for _p, _run_fn, _shapes, _tg, _ta, _batch in (
    (
        input_grad_p,
        _run_input_grad,
        lambda avals, shape: (shape, avals[1].shape),
        _input_grad_transpose_g,
        _input_grad_transpose_w,
        _input_grad_batch_rule,
    ),
    (
        weight_grad_p,
        _run_weight_grad,
        lambda avals, shape: (avals[1].shape, shape),
        _weight_grad_transpose_g,
        _weight_grad_transpose_x,
        _weight_grad_batch_rule,
    ),
):
    _p.def_impl(jax.jit(_run_fn, static_argnames=("config", "method", "shape")))
    _p.def_abstract_eval(_grad_abstract_eval)
    ad.defbilinear(_p, _tg, _ta)
    batching.primitive_batchers[_p] = _batch
    _kind = "input_grad" if _p is input_grad_p else "weight_grad"
    mlir.register_lowering(_p, _grad_lowering(_kind, _run_fn, _shapes, "cpu"), platform="cpu")
    mlir.register_lowering(_p, _grad_lowering(_kind, _run_fn, _shapes, None))

# Partitioned programs lower the three maps through a partitioning rule (``_partition``),
# whose lowering needs the program's devices and mesh.
PARTITIONING_RULES = _compat.HAS_PARTITIONING_RULES and _compat.require_devices_during_lowering(
    conv_transpose_p, input_grad_p, weight_grad_p
)

# The three maps' one-device functions by name (``_partition``'s fallback), and lowered.
RUN = {
    "forward": _run_shaped,
    "input_grad": _run_input_grad,
    "weight_grad": _run_weight_grad,
}
_LOWER_RUN = {k: mlir.lower_fun(f, multiple_results=False) for k, f in RUN.items()}
