"""Partitioned programs: every device runs the one-device forms (a partitioning rule).

XLA's SPMD partitioner splits a program compiled for several devices (``jax.jit`` over a
mesh with Auto axes; the insides of a primitive on Explicit axes) op by op.  Left to it,
convt_jax's three primitives would have to lower to convolution-free forms (im2col GEMMs:
the partitioner mis-partitions convolutions, ``_methods.partitioned``), and on the CPU
they could never call oneDNN.  Instead each primitive lowers, in a partitioned program,
to ``jax.experimental.custom_partitioning`` around its one-device function, with

* a **sharding rule** (Shardy) in einsum notation, and ``infer_sharding_from_operands``
  (GSPMD), that say how the shardings of the operands carry to the result: the batch
  axis, the channels by groups (``(g i)``, ``(g o)``), each spatial axis whose output is
  ``stride x`` its input (the output rows as ``(h s)``: device ``j``'s block of output
  rows is the one its block of input rows makes); and
* a **partition callback** that decides, from the shardings the partitioner chose, which
  splits run per device (:func:`decide`) and returns the per-device function: the
  primitive itself on each device's block (so it lowers to the one-device forms: oneDNN
  on the CPU, XLA's convolutions on the accelerators), a halo exchange of a few rows for
  a split spatial axis (``_halo.local_forward``), and a ``psum`` where the map sums over
  a split axis.  Whatever cannot run per device is resharded (gathered) by the
  partitioner before the call.

Splits that run per device, with the transposed convolution ``y = F(x, w)``, ``x`` of
shape ``(N, C_in, *L)``, ``w`` of ``(C_in, C_out / g, *K)``:

=============  ==================================  ==============================
split          arrays split                        summed over devices (psum)
=============  ==================================  ==============================
batch          ``x``, ``y`` on N                   ``dw``
"groups"       channels of ``x``, ``y``, ``w`` by  nothing
               whole groups (``groups > 1``)
"out"          ``w`` axis 1, ``y``'s channels      ``dx``
               (``groups == 1``)
"in"           ``w`` axis 0, ``x``'s channels      ``y``
               (``groups == 1``)
rows           one spatial axis of ``x`` and ``y``  ``dw``
               (``L_out = s L``; halo exchange)
=============  ==================================  ==============================

The three maps are computed from one per-device forward (:func:`_local_forward`): ``dx``
and ``dw`` are its transposes (``jax.linear_transpose``; a halo's ``ppermute`` transposes
to the reverse exchange), so a gradient never needs its own geometry.

Not used (the convolution-free forms instead) where no rule can be attached: programs
for ``jax.export`` (a partitioning callback cannot be serialized), ``shard_map`` with some
axes left Auto, a jit whose shardings carry no mesh, and JAX releases without
``custom_partitioning`` sharding rules (:data:`convt_jax._compat.HAS_PARTITIONING_RULES`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
from jax.interpreters import mlir
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import _compat, _halo, _primitive
from . import _geometry as geo
from ._geometry import Config

# The three maps, each named by what it computes; its operands and result by role:
# "x" the transposed convolution's input, "w" its weight, "y" its output.
ROLES = {
    "forward": (("x", "w"), "y"),
    "input_grad": (("y", "w"), "x"),
    "weight_grad": (("y", "x"), "w"),
}


class Split(NamedTuple):
    """Which mesh axes split what, per device (each a tuple of mesh axis names)."""

    batch: tuple = ()
    channels: tuple = ()
    mode: str | None = None  # "groups", "out" or "in" (see the module docstring)
    rows: tuple = ()
    row_axis: int | None = None  # the spatial axis (0-based) split by ``rows``

    def used(self) -> set:
        return set(self.batch) | set(self.channels) | set(self.rows)


def _names(entry) -> tuple:
    return () if entry is None else (entry if isinstance(entry, tuple) else (entry,))


def _entry(names: tuple):
    return None if not names else names[0] if len(names) == 1 else names


def _size(mesh, names: tuple) -> int:
    return math.prod(mesh.shape[a] for a in names)


def _layout(config: Config, ndim: int) -> tuple[int, tuple[int, ...]]:
    """The channel axis and the spatial axes of a batched activation."""
    return geo.channel_axis(config, ndim), geo.spatial_axes(config, ndim)


def specs(config: Config, split: Split, ndim: int) -> dict[str, tuple]:
    """The partition specs of ``x``, ``w`` and ``y`` that ``split`` runs per device."""
    c_ax, s_axes = _layout(config, ndim)
    ch = _entry(split.channels)
    x: list[Any] = [None] * ndim
    y: list[Any] = [None] * ndim
    w: list[Any] = [None] * ndim
    x[0] = y[0] = _entry(split.batch)
    if split.mode in ("groups", "in"):
        x[c_ax] = ch
        w[0] = ch
    if split.mode in ("groups", "out"):
        y[c_ax] = ch
    if split.mode == "out":
        w[1] = ch
    if split.row_axis is not None:
        x[s_axes[split.row_axis]] = y[s_axes[split.row_axis]] = _entry(split.rows)
    return {"x": tuple(x), "w": tuple(w), "y": tuple(y)}


def decide(
    kind: str, config: Config, mesh, shapes: dict[str, tuple], given: dict[str, tuple]
) -> Split:
    """The splits of ``kind``'s operands (``given``: role -> padded spec, operands only)
    that run per device; anything else is gathered.  ``shapes``: role -> global shape."""
    x_shape, w_shape = shapes["x"], shapes["w"]
    ndim = len(x_shape)
    c_ax, s_axes = _layout(config, ndim)
    operands, _ = ROLES[kind]
    acts = [r for r in operands if r != "w"]  # the operands with a batch axis

    def first(values):
        return next((v for v in values if v), ())

    def usable(names, taken) -> bool:
        return bool(names) and not set(names) & taken and _size(mesh, names) > 1

    taken: set = set()
    batch = first(_names(given[r][0]) for r in acts)
    if usable(batch, taken) and x_shape[0] % _size(mesh, batch) == 0:
        taken |= set(batch)
    else:
        batch = ()

    # Channels: the mode that needs no collective for this map first.
    w_spec = given.get("w", (None,) * ndim)
    cand: list[tuple[str, tuple]] = []
    if config.groups > 1:
        for r in acts:
            cand.append(("groups", _names(given[r][c_ax])))
        cand.append(("groups", _names(w_spec[0])))
    else:
        out_first = kind in ("forward", "weight_grad")
        outs = [_names(given[r][c_ax]) for r in acts if r == "y"] + [_names(w_spec[1])]
        ins = [_names(given[r][c_ax]) for r in acts if r == "x"] + [_names(w_spec[0])]
        pairs = [("out", n) for n in outs], [("in", n) for n in ins]
        cand = (pairs[0] + pairs[1]) if out_first else (pairs[1] + pairs[0])
    channels: tuple = ()
    mode = None
    for m, names in cand:
        if not usable(names, taken):
            continue
        n = _size(mesh, names)
        total = {"groups": config.groups, "out": w_shape[1], "in": w_shape[0]}[m]
        if total % n == 0:
            channels, mode = names, m
            taken |= set(names)
            break

    rows: tuple = ()
    row_axis = None
    for i, a in enumerate(s_axes):
        names = first(_names(given[r][a]) for r in acts)
        if not usable(names, taken):
            continue
        if _halo.rows_fit(config, i, x_shape[a], w_shape[2 + i], _size(mesh, names)):
            rows, row_axis = names, i
            break
    return Split(batch, channels, mode, rows, row_axis)


def _local_config(config: Config, split: Split, mesh) -> Config:
    if split.mode == "groups":
        return config._replace(groups=config.groups // _size(mesh, split.channels))
    return config


def _local_shape(shape: tuple, spec: tuple, mesh) -> tuple:
    return tuple(n // _size(mesh, _names(e)) for n, e in zip(shape, spec, strict=True))


def _local_forward(xb, wb, config: Config, split: Split, mesh, method) -> jax.Array:
    local = _local_config(config, split, mesh)
    if split.row_axis is None:
        return _primitive.conv_transpose_batched(xb, wb, local, method)
    axis = geo.spatial_axes(config, xb.ndim)[split.row_axis]
    n = _size(mesh, split.rows)
    return _halo.local_forward(xb, wb, local, method, axis, split.row_axis, split.rows, n)


def _psum(a, names: tuple):
    return jax.lax.psum(a, _entry(names)) if names else a


def per_device(kind: str, config: Config, split: Split, mesh, method, shapes) -> Callable:
    """The function each device runs on its blocks of ``kind``'s operands."""
    sp = specs(config, split, len(shapes["x"]))
    x_local = _local_shape(shapes["x"], sp["x"], mesh)
    rows_direct = split.row_axis is not None and _halo.cotangent_rows_fit(
        config,
        split.row_axis,
        shapes["x"][geo.spatial_axes(config, len(shapes["x"]))[split.row_axis]],
        shapes["w"][2 + split.row_axis],
        _size(mesh, split.rows),
    )
    w_local = _local_shape(shapes["w"], sp["w"], mesh)

    def forward(xb, wb):
        y = _local_forward(xb, wb, config, split, mesh, method)
        return _psum(y, split.channels if split.mode == "in" else ())

    def input_grad(gb, wb):
        if split.row_axis is not None and rows_direct:
            # Each device only its own rows of dx, from a halo of the cotangent.
            local = _local_config(config, split, mesh)
            axis = geo.spatial_axes(config, gb.ndim)[split.row_axis]
            n = _size(mesh, split.rows)
            dx = _halo.local_input_grad(
                gb, wb, x_local, local, method, axis, split.row_axis, split.rows, n
            )
            return _psum(dx, split.channels if split.mode == "out" else ())
        t = jax.linear_transpose(
            lambda xb: _local_forward(xb, wb, config, split, mesh, method),
            jax.ShapeDtypeStruct(x_local, gb.dtype),
        )
        (dx,) = t(gb)
        return _psum(dx, split.channels if split.mode == "out" else ())

    def weight_grad(gb, xb):
        t = jax.linear_transpose(
            lambda wb: _local_forward(xb, wb, config, split, mesh, method),
            jax.ShapeDtypeStruct(w_local, gb.dtype),
        )
        (dw,) = t(gb)
        return _psum(dw, split.batch + split.rows)

    return {"forward": forward, "input_grad": input_grad, "weight_grad": weight_grad}[kind]


# --- the sharding rule (Shardy) ----------------------------------------------------------------


def _factors(config: Config, shapes: dict[str, tuple]) -> tuple[dict[str, str], dict[str, int]]:
    """Each role's einsum operand string, and the sizes of the factors that need one.

    Shardy rejects a factor of size 1 inside a compound one, so a compound keeps only its
    factors larger than 1 (a depthwise layer's channels are ``g`` alone)."""
    x_shape, w_shape = shapes["x"], shapes["w"]
    ndim = len(x_shape)
    c_ax, s_axes = _layout(config, ndim)
    sizes: dict[str, int] = {}

    def compound(*factors: tuple[str, int], alone: str) -> str:
        kept = [(f, n) for f, n in factors if n > 1]
        if len(kept) < 2:
            return kept[0][0] if kept else alone
        sizes.update(kept)
        return "(" + " ".join(f for f, _ in kept) + ")"

    g = config.groups
    c_in, c_out_g = w_shape[0] // g, w_shape[1]
    x_ch = compound(("g", g), ("i", c_in), alone="i")
    y_ch = compound(("g", g), ("o", c_out_g), alone="o")
    x = ["b"] + [""] * (ndim - 1)
    y = ["b"] + [""] * (ndim - 1)
    x[c_ax], y[c_ax] = x_ch, y_ch
    # The weight's axis 1 is the output channels of one group: y's factor "o" (alone when
    # groups == 1, inside y's compound otherwise; its own factor when that dropped it).
    w = [x_ch, "o" if g == 1 or c_out_g > 1 else "o1"]
    for i, a in enumerate(s_axes):
        w.append(f"k{i}")
        x[a] = f"h{i}"
        s = config.stride[i]
        kernel = w_shape[2 + i]
        length = x_shape[a]
        if geo.output_length(length, kernel, s, config.dilation[i], config.crops[i]) == s * length:
            y[a] = compound((f"h{i}", length), (f"s{i}", s), alone=f"h{i}")
        else:
            y[a] = f"u{i}"
    # Sizes only for the factors that never make a whole dimension (Shardy's rule).
    whole = {f for dims in (x, w, y) for f in dims if not f.startswith("(")}
    sizes = {f: n for f, n in sizes.items() if f not in whole}
    return {"x": " ".join(x), "w": " ".join(w), "y": " ".join(y)}, sizes


# --- custom_partitioning: one per map ------------------------------------------------------------


def _global_shapes(kind: str, config: Config, operand_shapes, result_shape) -> dict[str, tuple]:
    operands, result = ROLES[kind]
    shapes = dict(zip(operands, map(tuple, operand_shapes), strict=True))
    shapes[result] = tuple(result_shape)
    return shapes


def _spec_of(sharding, mesh, shape: tuple) -> tuple:
    """The partition spec (padded to the rank) on ``mesh`` that ``sharding`` (the
    partitioner's, as a ``GSPMDSharding``) is equivalent to; ``None`` on every axis where
    none is found.  The callbacks take the shardings undecoded (``decode_shardings=False``)
    because JAX's decoding rejects an uneven split (a mesh axis that does not divide the
    dimension), which the partitioner makes and which :func:`decide` does not use.

    Found with public ``Sharding`` methods: ``shard_shape`` says how many ways each
    dimension is split, which leaves a few candidate specs (the ordered sets of mesh axes
    with that product), and ``is_equivalent_to`` picks the one."""
    ndim = len(shape)
    spec = getattr(sharding, "spec", None)
    if spec is not None:  # a NamedSharding already
        return tuple(spec) + (None,) * (ndim - len(spec))
    none = (None,) * ndim
    try:
        shard = sharding.shard_shape(tuple(shape))
    except (ValueError, TypeError, NotImplementedError):
        return none
    names = [a for a in mesh.axis_names if mesh.shape[a] > 1]
    per_dim: list[list[tuple]] = []
    for n, b in zip(shape, shard, strict=True):
        ways = -(-n // b) if b else 1
        if ways == 1:
            per_dim.append([()])
            continue
        per_dim.append(
            [
                c
                for r in range(1, len(names) + 1)
                for c in itertools.permutations(names, r)
                if _size(mesh, c) == ways
            ]
        )
    for combo in itertools.product(*per_dim):
        used = [a for c in combo for a in c]
        if len(used) != len(set(used)):
            continue
        cand = tuple(_entry(c) for c in combo)
        try:
            if sharding.is_equivalent_to(NamedSharding(mesh, P(*cand)), ndim):
                return cand
        except (ValueError, TypeError):
            continue
    return none


def _make(kind: str):
    operands, result = ROLES[kind]

    def fallback(a, b, config, method, forms, shape):
        # Where the rule does not apply (one device, a fully manual context): the
        # partitioned program's own forms.
        return _primitive.RUN[kind](a, b, config=config, method=forms, shape=shape)

    cp = _compat.custom_partitioning(fallback, static_argnums=(2, 3, 4, 5))

    def analyse(config, mesh, arg_infos, result_info):
        shapes = _global_shapes(kind, config, [a.shape for a in arg_infos], result_info.shape)
        given = {
            r: _spec_of(a.sharding, mesh, tuple(a.shape))
            for r, a in zip(operands, arg_infos, strict=True)
        }
        split = decide(kind, config, mesh, shapes, given)
        return shapes, split, specs(config, split, len(shapes["x"]))

    def infer(config, method, forms, shape, mesh, arg_infos, result_info):
        _, _, sp = analyse(config, mesh, arg_infos, result_info)
        return NamedSharding(mesh, P(*sp[result]))

    def partition(config, method, forms, shape, mesh, arg_infos, result_info):
        shapes, split, sp = analyse(config, mesh, arg_infos, result_info)
        fn = per_device(kind, config, split, mesh, method, shapes)
        args = tuple(NamedSharding(mesh, P(*sp[r])) for r in operands)
        return mesh, fn, NamedSharding(mesh, P(*sp[result])), args

    def rule(config, method, forms, shape, mesh, operand_types, result_types):
        shapes = _global_shapes(
            kind,
            config,
            [t.shape for t in operand_types],
            result_types[0].shape,
        )
        strings, sizes = _factors(config, shapes)
        text = ", ".join(strings[r] for r in operands) + " -> " + strings[result]
        return text, sizes

    _compat.def_partition(cp, partition, infer, rule)
    return cp


_RULES: dict[str, Any] = {}


def applies(ctx) -> bool:
    """Whether a partitioned program's lowering ``ctx`` takes the per-device rule."""
    return (
        _primitive.PARTITIONING_RULES
        and _compat.is_partitioned(ctx)
        and not _compat.is_exporting(ctx)
        and _compat.partitioner_sees_mesh(ctx)
    )


def lower(kind: str, ctx, a, b, *, config: Config, method, forms, shape: Sequence[int]):
    """Lower ``kind`` in a partitioned program: the one-device ``method`` per device (the
    partition callback), ``forms`` (the convolution-free ones) where the rule is not used."""
    if kind not in _RULES:
        _RULES[kind] = _make(kind)
    cp = _RULES[kind]
    shape = tuple(shape)

    def fn(a, b):
        return cp(a, b, config, tuple(method), tuple(forms), shape)

    return mlir.lower_fun(fn, multiple_results=False)(ctx, a, b)
