"""Per-device programs where the split is visible: halo exchange, channel parallelism.

With Explicit mesh axes the input's type says which mesh axes split which array axes.
When one spatial axis of the input is split (over a mesh axis, or a tuple of them), the
weight is replicated, the channels are not split, and every device's block of the output
lines up with its block of the input (``L_out = s * L`` on that axis: the "output =
stride x input" layers of decoders, ``k4 s2 p1``, ``k2 s2 p0``, ``k3 s2 p1 op1``, ``k3 s1
p1``), each device computes its own output block from its input block and a halo of a
few rows borrowed from its neighbours (``jax.lax.ppermute``), inside ``jax.shard_map``:

* device ``j`` owns input rows ``[b j, b (j + 1))`` and output rows ``[s b j, s b (j + 1))``;
  output row ``o`` reads input rows ``i = (o + lo - d k) / s``, so it needs
  ``hl = floor((d (K - 1) - lo) / s)`` rows from the left neighbour and
  ``hh = floor((lo - 1) / s) + 1`` from the right one (zeros at the ends of the axis,
  which is exactly the absence of rows there);
* the local transposed convolution of the ``hl + b + hh`` rows, cropped by
  ``lo + s hl`` at the start and whatever is left past ``s b`` rows at the end, is the
  device's block of the output.

Only neighbouring blocks are exchanged (collective-permutes of ``hl`` and ``hh`` rows);
nothing is gathered.  The gradients follow by JAX's transposes: ``ppermute`` transposes
to the reverse exchange, and the replicated weight's gradient is summed over the devices
by the transpose of its cast to vary over the manual axes.  Per device the program is
not partitioned, so it runs the one-device forms (``method`` and ``auto`` as usual).

Channel (model) parallelism, :func:`channel_plan`: with the weight's output channels
split (``groups == 1``: its axis 1), or whole groups split (its axis 0, and the input's
channels the same way), and no spatial axis split, each device computes its own output
channels from its own weight block in ``shard_map``: no collective in the forward; ``dx``
of a dense layer is summed over the devices by the transpose of the input's cast to vary.

Data parallelism, :func:`batch_plan`: the input split on its batch axis alone and the
weight replicated: each device runs the one-device forms on its block of the batch in
``shard_map`` (nothing exchanged in the forward; ``dw`` summed over the batch's mesh
axes).  The regular convolution (``_conv``) uses it too.

Anything else (Auto mesh axes, whose shardings the trace cannot see; other layouts of
the split) goes to the partitioner, which runs the one-device forms per device through
the primitives' partitioning rule (``_partition``), or convolution-free forms where no
rule can be attached (an exported program; see ``_methods``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from . import _compat, _primitive
from . import _geometry as geo
from ._geometry import Config


class Plan(NamedTuple):
    axis: int  # the split array axis of the (batched) input
    spatial: int  # its index among the spatial axes
    entry: object  # the mesh axis name, or tuple of names, that splits it
    devices: int  # how many blocks
    halo_lo: int  # rows from the left neighbour
    halo_hi: int  # rows from the right neighbour
    mesh: Any  # a jax.sharding.Mesh or AbstractMesh
    x_spec: tuple
    y_spec: tuple


def _names(entry) -> tuple:
    return () if entry is None else (entry if isinstance(entry, tuple) else (entry,))


def _explicit_specs(x, w):
    """``(mesh, explicit axis names, x's spec, w's spec)`` (specs padded to full rank) when
    both types carry shardings on a mesh with Explicit axes outside ``shard_map``; else
    None."""
    if not hasattr(jax, "shard_map") or not _compat.HAS_EXPLICIT_AXES:
        return None
    xa, wa = _compat.typeof(x), _compat.typeof(w)
    sx, sw = _compat.aval_sharding(xa), _compat.aval_sharding(wa)
    if sx is None or sw is None or _compat.varying_axes(xa) or _compat.varying_axes(wa):
        return None
    explicit = set(_compat.explicit_axes(sx.mesh))
    if not explicit:
        return None
    return (
        sx.mesh,
        explicit,
        tuple(sx.spec) + (None,) * (x.ndim - len(sx.spec)),
        tuple(sw.spec) + (None,) * (w.ndim - len(sw.spec)),
    )


def plan(config: Config, x, w) -> Plan | None:
    """The halo-exchange plan for batched ``x`` and ``w`` (tracers), or None."""
    found = _explicit_specs(x, w)
    if found is None:
        return None
    mesh, explicit, x_spec, w_spec = found
    if any(e is not None for e in w_spec):
        return None  # a split weight: the partitioner's
    c_ax = geo.channel_axis(config)
    s_axes = [a for a in range(1, x.ndim) if a != c_ax]
    split = [a for a in s_axes if x_spec[a] is not None]
    if len(split) != 1 or x_spec[c_ax] is not None:
        return None
    axis = split[0]
    entry = x_spec[axis]
    if not set(_names(entry)) <= explicit:
        return None
    devices = _primitive._axis_size(mesh, entry)
    i = s_axes.index(axis)
    length, kernel = x.shape[axis], w.shape[2 + i]
    if not rows_fit(config, i, length, kernel, devices):
        return None
    y_spec = [None] * x.ndim
    y_spec[0] = x_spec[0]
    y_spec[axis] = entry
    return Plan(axis, i, entry, devices, *halo_rows(config, i, kernel), mesh, x_spec, tuple(y_spec))


def rows_fit(config: Config, i: int, length: int, kernel: int, devices: int) -> bool:
    """Whether spatial axis ``i`` (``length`` input rows) split ``devices`` ways runs by
    halo exchange: equal blocks, ``L_out = s * L`` and halos no longer than a block."""
    s, d = config.stride[i], config.dilation[i]
    if devices < 2 or length % devices:
        return False
    if geo.output_length(length, kernel, s, d, config.crops[i]) != s * length:
        return False
    b = length // devices
    return max(halo_rows(config, i, kernel)) <= b


def halo_rows(config: Config, i: int, kernel: int) -> tuple[int, int]:
    """The input rows a device borrows from its left and right neighbours on spatial
    axis ``i`` (the module docstring's ``hl`` and ``hh``)."""
    s, d, lo = config.stride[i], config.dilation[i], config.crops[i][0]
    return max(0, (d * (kernel - 1) - lo) // s), max(0, (lo - 1) // s + 1)


def _exchange(a, lo: int, hi: int, axis: int, entry, n: int):
    """``a`` (one device's block, split ``n`` ways over mesh ``entry`` on ``axis``)
    extended by its left neighbour's last ``lo`` rows and its right neighbour's first
    ``hi`` rows (zeros at the ends of the axis)."""
    names = _names(entry)
    axis_name = names[0] if len(names) == 1 else names
    length = a.shape[axis]
    parts = []
    if lo:
        # My left halo is my left neighbour's last rows: j sends to j + 1.
        rows = jax.lax.slice_in_dim(a, length - lo, length, axis=axis)
        parts.append(jax.lax.ppermute(rows, axis_name, [(j, j + 1) for j in range(n - 1)]))
    parts.append(a)
    if hi:
        rows = jax.lax.slice_in_dim(a, 0, hi, axis=axis)
        parts.append(jax.lax.ppermute(rows, axis_name, [(j + 1, j) for j in range(n - 1)]))
    return jnp.concatenate(parts, axis=axis) if len(parts) > 1 else a


def local_forward(xb, wb, config: Config, method: Any, axis: int, i: int, entry, n: int):
    """One device's block of the output, inside a per-device program (``shard_map`` or a
    partitioner's callback): the input block ``xb`` (split ``n`` ways over mesh ``entry``
    on array axis ``axis``, spatial axis ``i``) extended by its halo rows from the
    neighbours, then the transposed convolution cropped to this device's output rows.

    ``method`` is a resolved method, or a callable ``(config, x_shape, w_shape) ->``
    resolved method for the local problem."""
    kernel = wb.shape[2 + i]
    s, d, lo = config.stride[i], config.dilation[i], config.crops[i][0]
    halo_lo, halo_hi = halo_rows(config, i, kernel)
    b = xb.shape[axis]
    xe = _exchange(xb, halo_lo, halo_hi, axis, entry, n)
    full = geo.full_length(xe.shape[axis], kernel, s, d)
    crop_lo = lo + s * halo_lo
    crops = list(config.crops)
    crops[i] = (crop_lo, full - crop_lo - s * b)
    local = config._replace(crops=tuple(crops))
    forms: Any = method(local, xe.shape, wb.shape) if callable(method) else method
    return _primitive.conv_transpose_batched(xe, wb, local, forms)


def cotangent_halo_rows(config: Config, i: int, kernel: int) -> tuple[int, int]:
    """The cotangent rows (rows of ``y``) a device borrows from its left and right
    neighbours to compute ``dx`` of its own input rows on spatial axis ``i``:
    ``dx[i] = sum_k g[s i + d k - lo] w[k]`` reaches ``lo`` rows before its block and
    ``d (K - 1) - lo - s + 1`` past it."""
    s, d, lo = config.stride[i], config.dilation[i], config.crops[i][0]
    return max(0, lo), max(0, d * (kernel - 1) - lo - s + 1)


def cotangent_rows_fit(config: Config, i: int, length: int, kernel: int, devices: int) -> bool:
    """Whether ``dx`` by a cotangent halo applies: the rows split as for the forward
    (:func:`rows_fit`) and the cotangent's halos no longer than a block of ``y``."""
    if not rows_fit(config, i, length, kernel, devices):
        return False
    block = config.stride[i] * (length // devices)
    return max(cotangent_halo_rows(config, i, kernel)) <= block


def local_input_grad(
    gb, wb, x_shape: tuple, config: Config, method: Any, axis: int, i: int, entry, n: int
):
    """One device's block of ``dx`` from its block of the cotangent ``gb`` (``y``'s rows,
    split like the input's, see :func:`local_forward`) and the cotangent rows its own input
    rows reach in its neighbours' blocks: the neighbours' ``dx`` contributions are never
    computed, so each device does only its own rows' work.  ``x_shape``: the device's
    block of the input."""
    kernel = wb.shape[2 + i]
    s, d, lo = config.stride[i], config.dilation[i], config.crops[i][0]
    g_lo, g_hi = cotangent_halo_rows(config, i, kernel)
    b = gb.shape[axis] // s
    ge = _exchange(gb, g_lo, g_hi, axis, entry, n)
    # The local problem: b input rows whose output, cropped by lo - g_lo at the start,
    # is the extended cotangent's rows (the end cropped, or extended, to match).
    full = geo.full_length(b, kernel, s, d)
    crop_lo = lo - g_lo
    crops = list(config.crops)
    crops[i] = (crop_lo, full - crop_lo - ge.shape[axis])
    local = config._replace(crops=tuple(crops))
    return _primitive.input_grad_batched(ge, wb, local, method, tuple(x_shape))


def run(x: jax.Array, w: jax.Array, config: Config, resolve, p: Plan) -> jax.Array:
    """The transposed convolution of batched ``x`` by halo exchange (see the module).

    ``resolve(config, x_shape, w_shape)`` gives the resolved method for a device's
    local problem; ``_primitive.conv_transpose_batched`` runs it.
    """

    def per_device(xb, w):
        return local_forward(xb, w, config, resolve, p.axis, p.spatial, p.entry, p.devices)

    fn = jax.shard_map(
        per_device, mesh=p.mesh, in_specs=(P(*p.x_spec), P()), out_specs=P(*p.y_spec)
    )
    return fn(x, w)


class ChannelPlan(NamedTuple):
    entry: object  # the mesh axis name, or tuple of names, that splits the channels
    devices: int
    by_groups: bool  # whole groups (weight axis 0) rather than output channels (axis 1)
    mesh: Any  # a jax.sharding.Mesh or AbstractMesh
    x_spec: tuple
    w_spec: tuple
    y_spec: tuple


def channel_plan(config: Config, x, w) -> ChannelPlan | None:
    """The channel-parallel plan for batched ``x`` and ``w`` (tracers), or None."""
    found = _explicit_specs(x, w)
    if found is None:
        return None
    mesh, explicit, x_spec, w_spec = found
    c_ax = geo.channel_axis(config)
    if any(x_spec[a] is not None for a in range(1, x.ndim) if a != c_ax):
        return None  # a spatial split: the halo plan's
    if any(e is not None for e in w_spec[2:]):
        return None
    if w_spec[0] is None and w_spec[1] is not None and config.groups == 1 and x_spec[c_ax] is None:
        entry, by_groups = w_spec[1], False
    elif (
        w_spec[1] is None
        and w_spec[0] is not None
        and config.groups > 1
        and x_spec[c_ax] == w_spec[0]
    ):
        entry, by_groups = w_spec[0], True
    else:
        return None
    names = set(_names(entry))
    if not names <= explicit or names & set(_names(x_spec[0])):
        return None
    devices = _primitive._axis_size(mesh, entry)
    if (
        devices < 2
        or (by_groups and config.groups % devices)
        or (not by_groups and w.shape[1] % devices)
    ):
        return None
    y_spec = [None] * x.ndim
    y_spec[0], y_spec[c_ax] = x_spec[0], entry
    return ChannelPlan(entry, devices, by_groups, mesh, x_spec, w_spec, tuple(y_spec))


def run_channels(x: jax.Array, w: jax.Array, config: Config, resolve, p: ChannelPlan) -> jax.Array:
    """The transposed convolution of batched ``x``, each device its own output channels."""
    local = config._replace(groups=config.groups // p.devices) if p.by_groups else config

    def per_device(xb, wb):
        return _primitive.conv_transpose_batched(xb, wb, local, resolve(local, xb.shape, wb.shape))

    fn = jax.shard_map(
        per_device, mesh=p.mesh, in_specs=(P(*p.x_spec), P(*p.w_spec)), out_specs=P(*p.y_spec)
    )
    return fn(x, w)


class BatchPlan(NamedTuple):
    mesh: Any  # a jax.sharding.Mesh or AbstractMesh
    x_spec: tuple  # the batch entry, then None on every other axis


def batch_plan(x, w) -> BatchPlan | None:
    """Data parallelism visible in the types: the batched ``x`` split on its batch axis
    alone (over Explicit mesh axes, evenly), the weight replicated; else None."""
    found = _explicit_specs(x, w)
    if found is None:
        return None
    mesh, explicit, x_spec, w_spec = found
    names = _names(x_spec[0])
    if not names or any(e is not None for e in x_spec[1:]) or any(e is not None for e in w_spec):
        return None
    n = _primitive._axis_size(mesh, x_spec[0])
    if not set(names) <= explicit or n < 2 or x.shape[0] % n:
        return None
    return BatchPlan(mesh, x_spec)


def run_batch(fn, x: jax.Array, w: jax.Array, p: BatchPlan) -> jax.Array:
    """``fn(x_block, w)`` on each device's block of the batch, in ``shard_map``: the
    one-device forms per device; the weight's gradient is summed over the batch's mesh
    axes by the transpose of its cast to vary (``_primitive._same_varying``)."""
    spec = P(*p.x_spec)
    return jax.shard_map(fn, mesh=p.mesh, in_specs=(spec, P()), out_specs=spec)(x, w)
