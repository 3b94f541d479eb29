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
  cotangent read as phases, the group as a batch axis; no dilation) and ``"grouped"``
  (im2col of the cotangent times the weight / the input with the group as
  the batch axis of one matrix multiply, :mod:`._grouped`; ``groups > 1``).

:func:`resolve` maps ``method`` to ``(forward, dx form, dw form)``.
``"auto"`` uses the fixed rule :func:`auto`; with autotuning on
(:func:`convt_jax.autotune`) each of the three is then replaced by the form
measured fastest on this machine among those that apply (:func:`_tuned`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from . import _geometry as geo
from . import _gradients, _grouped, _lowering, _onednn, _tune
from ._geometry import Config, has_phases

Shape = Sequence[int]
Predicate = Callable[[Config, Shape, Shape], "str | None"]


class Form(NamedTuple):
    fn: Callable[..., jax.Array]
    unsupported: Predicate  # None when the form applies, else why not
    fallback: str | None  # the form to use where it does not


def _always(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    return None


def _phases(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    if has_phases(config):
        return None
    return (
        f"an axis has both stride > 1 and dilation > 1 (stride={config.stride}, "
        f"dilation={config.dilation}), which has no phase decomposition"
    )


def _dense_no_dilation(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    if config.groups != 1:
        return f"it needs groups == 1 (got groups={config.groups})"
    return _no_dilation(config, x_shape, w_shape)


def _no_dilation(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
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


def _multi_group(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    if config.groups > 1:
        return None
    return f"it needs groups > 1 (got groups={config.groups})"


def _grouped_phases(config: Config, x_shape: Shape, w_shape: Shape) -> str | None:
    return _multi_group(config, x_shape, w_shape) or _phases(config, x_shape, w_shape)


# The fallbacks matter only for configurations the batching rule makes: ``vmap`` over
# both the input and the weight of a ``groups == 1`` layer binds ``groups == B``, which
# the group-batched forms compute without XLA's grouped convolution.
FORWARD: dict[str, Form] = {
    "dilated": Form(_lowering.dilated, _always, None),
    "subpixel": Form(_lowering.subpixel, _phases, "dilated"),
    "matmul": Form(_lowering.matmul, _dense_no_dilation, "grouped"),
    "depthwise": Form(_lowering.depthwise, _depthwise, "subpixel"),
    "grouped": Form(_grouped.forward, _grouped_phases, "subpixel"),
    "onednn": Form(_onednn.forward, _onednn.unsupported, "dilated"),
}
INPUT_GRADS: dict[str, Form] = {
    "conv": Form(_gradients.input_grad, _always, None),
    "matmul": Form(_gradients.input_grad_matmul, _dense_or_depthwise, "grouped"),
    "phase": Form(_gradients.input_grad_phase, _no_dilation, "matmul"),
    "grouped": Form(_grouped.input_grad, _multi_group, "conv"),
    "onednn": Form(_onednn.input_grad, _onednn.unsupported, "conv"),
}
WEIGHT_GRADS: dict[str, Form] = {
    "conv": Form(_gradients.weight_grad, _always, None),
    "matmul": Form(_gradients.weight_grad_matmul, _dense_or_depthwise, "grouped"),
    "phase": Form(_gradients.weight_grad_phase, _no_dilation, "matmul"),
    "grouped": Form(_grouped.weight_grad, _multi_group, "conv"),
    "onednn": Form(_onednn.weight_grad, _onednn.unsupported, "conv"),
}
METHODS = ("auto",) + tuple(FORWARD)
# The backward forms an explicit forward method runs with (others: "matmul").
_BACKWARD_OF = {
    "dilated": ("conv", "conv"),
    "grouped": ("grouped", "grouped"),
    "onednn": ("onednn", "onednn"),
}
#: The forms that call oneDNN through the FFI (:mod:`._onednn`): CPU only, float32 and the
#: 16-bit floats, never in a partitioned or exported program.
ONEDNN = "onednn"


def reasons(config: Config, x_shape: Shape, w_shape: Shape) -> dict[str, str | None]:
    """Every method mapped to ``None`` (it can compute the configuration) or why it cannot."""
    out: dict[str, str | None] = {"auto": None}
    for name, form in FORWARD.items():
        out[name] = form.unsupported(config, x_shape, w_shape)
    return out


def usable(
    table: dict[str, Form], name: str, config: Config, x_shape: Shape, w_shape: Shape
) -> str:
    """``name``, or the first form of its fallback chain that applies."""
    while table[name].unsupported(config, x_shape, w_shape) is not None:
        fallback = table[name].fallback
        if fallback is None:  # the chains end in forms that always apply
            raise ValueError(f"no form of {sorted(table)} applies ({name!r}: {config})")
        name = fallback
    return name


def resolve(
    method: str,
    config: Config,
    x_shape: Shape,
    w_shape: Shape,
    dtype: Any = None,
    *,
    tune: bool = True,
) -> tuple[str, str, str]:
    """``(forward lowering, dx form, dw form)`` for a batched input shape and a weight shape.

    An explicit method gives that lowering with the matrix-multiply backward
    forms where they apply (``"dilated"``: the convolution forms;
    ``"grouped"``: the group-batched forms; ``"onednn"``: oneDNN's) and is never
    tuned; ``"auto"`` gives oneDNN's kernels where they apply (:mod:`._onednn`),
    else :func:`auto`'s choice, or, with autotuning on (``tune``) and ``dtype``
    given, the forms measured fastest on this machine (:func:`_tuned`).  Every
    returned form applies to the configuration.  ``dtype`` is the computation
    dtype (part of the tuning key; oneDNN's forms need float32 or a 16-bit float:
    for other dtypes they are replaced by :func:`auto`'s).
    """
    if method == "auto":
        fwd, dx, dw = auto(config, x_shape, w_shape)
        if _onednn_applies(config, x_shape, w_shape, dtype):
            fwd = dx = dw = ONEDNN
    else:
        fwd = method
        dx, dw = _BACKWARD_OF.get(method, ("matmul", "matmul"))
    if dtype is not None and not _onednn.supports_dtype(dtype):
        fwd, dx, dw = without_onednn((fwd, dx, dw), config, x_shape, w_shape)
    chosen = (
        usable(FORWARD, fwd, config, x_shape, w_shape),
        usable(INPUT_GRADS, dx, config, x_shape, w_shape),
        usable(WEIGHT_GRADS, dw, config, x_shape, w_shape),
    )
    if method == "auto" and tune and dtype is not None and _tune.enabled():
        chosen = _tuned(
            config,
            tuple(int(d) for d in x_shape),
            tuple(int(d) for d in w_shape),
            np.dtype(dtype),
            chosen,
        )
    return chosen


def _onednn_applies(config: Config, x_shape: Shape, w_shape: Shape, dtype: Any) -> bool:
    if dtype is not None and not _onednn.supports_dtype(dtype):
        return False
    return _onednn.unsupported(config, x_shape, w_shape) is None


def without_onednn(
    forms: Sequence[str],
    config: Config,
    x_shape: Shape,
    w_shape: Shape,
    replacement: Sequence[str] | None = None,
) -> tuple[str, str, str]:
    """``forms`` with each oneDNN form replaced by ``replacement``'s (default: the XLA rule's,
    :func:`auto`), for a dtype oneDNN has no kernels for, an exported program or another
    platform than the CPU."""
    forms = tuple(forms[:3])
    if ONEDNN not in forms:
        return forms  # type: ignore[return-value]
    xla = tuple(replacement) if replacement is not None else auto(config, x_shape, w_shape)
    return tuple(  # type: ignore[return-value]
        usable(table, x if f == ONEDNN else f, config, x_shape, w_shape)
        for table, f, x in zip((FORWARD, INPUT_GRADS, WEIGHT_GRADS), forms, xla, strict=True)
    )


#: What ``"auto"`` runs on the accelerators (GPU, TPU): the core lowering, which XLA lowers
#: to the vendor's backward-data convolution (cuDNN, the TPU's convolution units), and the
#: convolution-form gradients.
ACCELERATOR_FORMS = ("dilated", "conv", "conv")


def _applicable(
    table: dict[str, Form], config: Config, x_shape: Shape, w_shape: Shape
) -> list[str]:
    return [
        name for name, form in table.items() if form.unsupported(config, x_shape, w_shape) is None
    ]


def _run_forward(
    fn: Callable[..., jax.Array], config: Config, x: jax.Array, w: jax.Array
) -> jax.Array:
    return fn(x, w, config).astype(x.dtype)  # as the primitive's impl does


def _run_grad(
    fn: Callable[..., jax.Array], config: Config, g: jax.Array, a: jax.Array
) -> jax.Array:
    return fn(g, a, config)


def _tuned(
    config: Config,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    dtype: np.dtype,
    rule: tuple[str, str, str],
) -> tuple[str, str, str]:
    """``rule`` with each part replaced by the form measured fastest here (:func:`_tune.choose`).

    Each part is timed on its own: the forward lowerings as functions of
    ``(x, w)``, the dx forms of ``(g, w)`` and the dw forms of ``(g, x)``,
    ``g`` of the output's shape and dtype; the candidates are the forms that
    apply to the configuration, the rule's pick is the default (kept unless
    another is ``_tune.MARGIN`` faster).  The key is the configuration, the
    shapes and the dtype; :mod:`._tune` adds the machine and the versions.
    """
    key = (config, x_shape, w_shape, str(dtype))
    xs, ws = jax.ShapeDtypeStruct(x_shape, dtype), jax.ShapeDtypeStruct(w_shape, dtype)
    # oneDNN's forms are candidates where the tuner times (the default backend) is the CPU.
    onednn = jax.default_backend() == "cpu" and _onednn.supports_dtype(dtype)

    def applicable(table: dict[str, Form]) -> list[str]:
        names = _applicable(table, config, x_shape, w_shape)
        return [n for n in names if n != ONEDNN or onednn]

    fwd_fns = {
        n: functools.partial(_run_forward, FORWARD[n].fn, config) for n in applicable(FORWARD)
    }
    fwd = _tune.choose("forward", key, fwd_fns, (xs, ws), rule[0])
    gs = jax.eval_shape(fwd_fns[rule[0]], xs, ws)  # the cotangent: the output's shape, dtype
    dx_fns = {
        n: functools.partial(_run_grad, INPUT_GRADS[n].fn, config) for n in applicable(INPUT_GRADS)
    }
    dx = _tune.choose("dx", key, dx_fns, (gs, ws), rule[1])
    dw_fns = {
        n: functools.partial(_run_grad, WEIGHT_GRADS[n].fn, config)
        for n in applicable(WEIGHT_GRADS)
    }
    dw = _tune.choose("dw", key, dw_fns, (gs, xs), rule[2])
    return fwd, dx, dw


def auto(config: Config, x_shape: Shape, w_shape: Shape) -> tuple[str, str, str]:
    """The measured rule behind ``method="auto"`` (forms not yet checked for applicability).

    The CPU rule, from ``python -m benchmarks.run`` (forward lowerings and
    backward forms timed side by side; see benchmarks/RESULTS.md).  On GPU
    and TPU, XLA lowers lhs-dilated convolutions to the vendor's
    backward-data convolution, so ``auto`` keeps the core lowering there with
    the convolution-form gradients (:data:`ACCELERATOR_FORMS`, picked by the
    primitive's lowering rule for the platform it lowers for, not here):

    * depthwise (``groups == C_in``): the elementwise lowering (a grouped
      convolution with 128 groups runs 2x-10x slower than PyTorch), with the
      elementwise backward;
    * other grouped layers (``1 < groups < C_in``): the phase convolution
      forward with the phase-form gradients batched over the group (with
      dilation: the group-batched im2col forms of :mod:`._grouped`);
    * an axis with stride > 1 *and* dilation > 1: the core lowering;
    * forward: one matrix multiply (``"matmul"``) when ``C_in >= 512`` or
      ``C_out <= 8`` (2-D) and every kernel axis is a multiple of its stride,
      where the phase convolution is slow, else the phase convolution
      (``"subpixel"``, best for 1-D, 3-D, mid-size 2-D and k3 s2);
    * backward, for layers with ``C_in <= s^d * C_out`` (all but output
      layers to a few channels): the phase forms (one matrix multiply each
      over the cotangent's phases) for strided 3-D layers and for strided
      2-D layers whose kernel is a multiple of the stride and whose phase
      grid adds at most 1/16 of the rows per axis (``L >= 16 (M - 1)``;
      always when ``K == s``); im2col + matrix multiplies for the other
      strided 2-D layers (3-D: dx by the strided convolution, dw in the
      phases); the strided-convolution forms for 1-D and stride 1 (XLA's
      convolutions are fast there: conv1d 184 ms against 200 for im2col;
      stride 1 also needs no K^d-times buffer).
    """
    if not has_phases(config):
        return ("dilated", "conv", "conv")
    if _depthwise(config, x_shape, w_shape) is None:
        return ("depthwise", "matmul", "matmul")
    if config.groups != 1:
        # 1 < groups < C_in.  The gradients through XLA:CPU's grouped convolutions
        # (feature_group_count for dx, batch_group_count for dw) ran 6x-73x PyTorch's
        # forward+backward; the group as the batch axis of one matrix multiply is far
        # faster, and in the phases (M^d shifted copies of x for dw, not prod(K) slices of
        # the cotangent) dw ran 2x-5x faster again than by im2col (group4/8/32: 28/23/17 ms
        # against 68/70/54; dx 37-51 against 55-68; the whole jitted forward+backward
        # 99/95/76 ms against 115/107/85); with dilation, im2col (:mod:`._grouped`).
        # The forward is the other way round: the phase convolution with
        # feature_group_count ran 0.64x-0.72x PyTorch (4 and 8 groups), the group-batched
        # GEMM + col2im 1.3x-1.6x; even at 32 groups (1.59 against 1.63).  (python -m
        # benchmarks.run --shapes group4,group8,group32 --rounds 5 and the forms timed one
        # by one, 2 shared cores of an AMD EPYC without AVX-512.)
        return ("subpixel", "phase", "phase")
    nd = config.ndim
    c_in, c_out = w_shape[0], w_shape[1]
    kernel = tuple(w_shape[2:])
    # A kernel that is not a multiple of the stride (k3 s2 output_padding=1, the doubling
    # layer of ResNet-style decoders) gives the phases zero taps: "matmul" then multiplies
    # (M*s / K)^2 = 1.8x the products and its col2im buffer grows alike, and ran 2.2x-2.5x
    # slower than "subpixel" with C_in = 512 (k3s2op1w: 1.96 against 0.79 PyTorch's time,
    # channels-last 1.90 against 1.09; python -m benchmarks.run --shapes
    # k3s2op1w,k3s2op1w_cl --methods auto,subpixel --rounds 3, 2 shared AMD EPYC cores).
    aligned = all(k % s == 0 for k, s in zip(kernel, config.stride, strict=True))
    forward = "matmul" if nd == 2 and aligned and (c_in >= 512 or c_out <= 8) else "subpixel"
    strided = any(s > 1 for s in config.stride)
    spatial = geo.spatial_shape(config, x_shape)
    m = geo.phase_counts(kernel, config.stride)
    # The phase forms compute on the cotangent's phase grid, L + M - 1 rows per axis
    # for L input rows: no extra rows when K == s, at most 1/16 more when L >= 16 (M - 1).
    small_grid = all(ln >= 16 * (mm - 1) for ln, mm in zip(spatial, m, strict=True))
    # Phase dx sums its taps on the output side when C_in <= s^d * C_out (every decoder
    # layer but an image/volume output layer, see _gradients.input_grad_phase).
    output_side = _gradients.phase_dx_sums_on_output_side(c_in, c_out, config.stride)
    if strided and nd == 3:
        # dx and dw in the phases: one matrix multiply each, no shifted copies of the
        # cotangent (dx sums the tap blocks on the output side).  A/B of the whole jitted
        # forward+backward, one process, 9 shuffled rounds, 2 shared cores of an AMD EPYC
        # without AVX-512 (ms and compiled temporary MiB, dx by the strided convolution ->
        # phases): unet3d 534 / 173 -> 342 / 176, wide3d 94 / 21 -> 85 / 21.  With few
        # output channels dx by phases would stack M^3 shifted copies of the cotangent's
        # phases; the strided convolution needs none.
        return (forward, "phase" if output_side else "conv", "phase")
    if strided and nd == 2 and aligned and small_grid and output_side:
        # Same A/B, matmul/matmul -> phase/phase (three runs for the first two): dcgan3
        # 262 / 247 / 243 -> 216 / 217 / 212 ms (temporaries 132 -> 91 MiB), wide2d 344 /
        # 338 -> 298 / 318; 16x16 at batch 8 (128 -> 64) 16.9 -> 17.8, 32x32 at batch 1
        # (1024 -> 256) 311 -> 308; K == s (unet1) 108 -> 104.  With 8x8 inputs (1.27x
        # the rows) 197 -> 199 (dcgan2), 22.7 -> 23.5 (batch 8) and 110 -> 143 (batch 1,
        # 1024 -> 512); 4x4 (dcgan1) 180 -> 206: those keep im2col.  An RGB output layer
        # (dcgan4, C_in = 64 > 4 * 3) ran 66 -> 170 with the output-side sum.
        return (forward, "phase", "phase")
    if strided and nd == 2:
        # Strided 2-D, otherwise (k3 s2 and other kernels that are not a multiple of the
        # stride; small inputs): im2col + matrix multiply for both gradients (k3s2op1:
        # 80 ms against 108 for the phases, whose taps are then zero-padded).  A/B of the
        # whole jitted forward+backward in one process, 9 shuffled rounds, 2 shared cores
        # of an AMD EPYC without AVX-512 (ms, conv/conv -> matmul/matmul): dcgan3 330 -> 258,
        # dcgan3_cl 304 -> 243, k3s2op1 96 -> 61, wide2d 448 -> 377, dcgan1 203 -> 177.
        # (On 2026-11-21's quieter machine of the same kind the convolution forms had read
        # 20% faster on dcgan3: where the two disagree, autotuning measures the machine at
        # hand.)  The im2col buffer is (K/s)^2 times the cotangent (4x for k4 s2).  Stride 1
        # keeps the convolutions: im2col was only 9-12% faster there (s1k3 125 -> 110 ms,
        # s1k3_cl 125 -> 114) and its buffer is K^2 = 9 times the cotangent.
        return (forward, "matmul", "matmul")
    return (forward, "conv", "conv")


# --- partitioned programs --------------------------------------------------------------------
#
# XLA's SPMD partitioner mis-partitions convolutions in several ways (jaxlib 0.10.2; see
# docs/scaling.md, "Known, upstream"): a weight gradient multiplied by the size of an unused mesh
# axis, the batch-grouped convolution of a grouped weight gradient under a batch split, a
# feature-grouped convolution with its channels split, spatial splits of strided or
# dilated convolutions (wrong values, or a process abort).  Its partitioning of dot_general,
# slices, pads, reshapes and elementwise ops is right in every case we tried.  A partitioned
# program (jit over several devices, with Auto or Explicit mesh axes) normally hands the
# partitioner no convolution at all: each primitive lowers through its partitioning rule
# (``_partition``) and runs the one-device forms per device.  Where that rule cannot be
# attached (an exported program, shard_map with some axes left Auto, a jit without a mesh,
# a JAX without sharding rules), every form that contains a convolution is replaced by
# one that contains none (below).


def _forward_adjoint(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """The forward as the adjoint of the convolution-free ``dx`` (any configuration).

    ``y = F(x, w)`` is the transpose of ``g -> dx(g, w)``; that transpose of an im2col
    (strided slices) times a matrix is a matrix multiply and pads: no convolution.  Used
    under partitioning for layers without a phase decomposition.
    """
    dx_name = _safe_grad_name(config, (w.shape[0],), "conv")
    y_shape = geo.output_shape(config, x.shape, w.shape)
    fn = INPUT_GRADS[dx_name].fn
    transpose = jax.linear_transpose(
        lambda g: fn(g, w, config), jax.ShapeDtypeStruct(y_shape, x.dtype)
    )
    return transpose(x)[0]


# Forward forms used only in partitioned programs (not names a user can pass as ``method``):
# the group-batched GEMM + col2im for any ``groups`` (1 included; needs phases), and the
# adjoint form above.
_PARTITIONED_FORWARD: dict[str, Callable[..., jax.Array]] = {
    "grouped_any": _grouped.forward,
    "adjoint": _forward_adjoint,
}
# The forms that contain no convolution.
_CONV_FREE_FORWARD = ("matmul", "depthwise", "grouped") + tuple(_PARTITIONED_FORWARD)
_CONV_FREE_GRADS = ("matmul", "phase", "grouped")


def _safe_grad_name(config: Config, w_shape: Shape, name: str) -> str:
    if name in _CONV_FREE_GRADS:
        return name
    return "matmul" if config.groups in (1, w_shape[0]) else "grouped"


def partitioned(
    method: tuple[str, str, str], config: Config, x_shape: Shape, w_shape: Shape
) -> tuple[str, str, str]:
    """``method`` (resolved) with every form that contains a convolution replaced by a
    convolution-free one, for a program that XLA's SPMD partitioner splits."""
    fwd, dx, dw = method[:3]
    if fwd not in _CONV_FREE_FORWARD:
        if _dense_no_dilation(config, x_shape, w_shape) is None:
            fwd = "matmul"
        elif _depthwise(config, x_shape, w_shape) is None:
            fwd = "depthwise"
        elif has_phases(config):
            fwd = "grouped_any"
        else:
            fwd = "adjoint"
    return (fwd, _safe_grad_name(config, w_shape, dx), _safe_grad_name(config, w_shape, dw))


# --- running a resolved method (the primitive's impl, lowering and transposes) ------------------


def forward(name: str, x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Run lowering ``name`` (or its fallback, for a configuration made by ``vmap``)."""
    if name in _PARTITIONED_FORWARD:
        return _PARTITIONED_FORWARD[name](x, w, config)
    return FORWARD[usable(FORWARD, name, config, x.shape, w.shape)].fn(x, w, config)


def input_grad(name: str, g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """Run dx form ``name`` (or its fallback) on the cotangent ``g``."""
    x_shape = _onednn.input_shape(config, g.shape, w.shape)
    return INPUT_GRADS[usable(INPUT_GRADS, name, config, x_shape, w.shape)].fn(g, w, config)


def weight_grad(name: str, g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """Run dw form ``name`` (or its fallback) on the cotangent ``g`` and the input ``x``."""
    w_shape = _onednn.weight_shape(config, g.shape, x.shape)
    return WEIGHT_GRADS[usable(WEIGHT_GRADS, name, config, x.shape, w_shape)].fn(g, x, config)
