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

Anything else (Auto mesh axes, whose shardings the trace cannot see; other layouts of
the split) goes to the partitioner with convolution-free forms (see ``_methods``).
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
    s, d, (lo, hi) = config.stride[i], config.dilation[i], config.crops[i]
    if devices < 2 or length % devices:
        return None
    if geo.output_length(length, kernel, s, d, (lo, hi)) != s * length:
        return None
    b = length // devices
    halo_lo = max(0, (d * (kernel - 1) - lo) // s)
    halo_hi = max(0, (lo - 1) // s + 1)
    if halo_lo > b or halo_hi > b:
        return None
    y_spec = [None] * x.ndim
    y_spec[0] = x_spec[0]
    y_spec[axis] = entry
    return Plan(axis, i, entry, devices, halo_lo, halo_hi, mesh, x_spec, tuple(y_spec))


def run(x: jax.Array, w: jax.Array, config: Config, resolve, p: Plan) -> jax.Array:
    """The transposed convolution of batched ``x`` by halo exchange (see the module).

    ``resolve(config, x_shape, w_shape)`` gives the resolved method for a device's
    local problem; ``_primitive.conv_transpose_batched`` runs it.
    """
    names = _names(p.entry)
    axis_name = names[0] if len(names) == 1 else names
    n = p.devices
    i = p.spatial
    s, d = config.stride[i], config.dilation[i]
    lo = config.crops[i][0]
    kernel = w.shape[2 + i]

    def per_device(xb, w):
        b = xb.shape[p.axis]
        parts = []
        if p.halo_lo:
            # My left halo is my left neighbour's last rows: j sends to j + 1.
            rows = jax.lax.slice_in_dim(xb, b - p.halo_lo, b, axis=p.axis)
            parts.append(jax.lax.ppermute(rows, axis_name, [(j, j + 1) for j in range(n - 1)]))
        parts.append(xb)
        if p.halo_hi:
            rows = jax.lax.slice_in_dim(xb, 0, p.halo_hi, axis=p.axis)
            parts.append(jax.lax.ppermute(rows, axis_name, [(j + 1, j) for j in range(n - 1)]))
        xe = jnp.concatenate(parts, axis=p.axis) if len(parts) > 1 else xb
        full = geo.full_length(xe.shape[p.axis], kernel, s, d)
        crop_lo = lo + s * p.halo_lo
        crops = list(config.crops)
        crops[i] = (crop_lo, full - crop_lo - s * b)
        local = config._replace(crops=tuple(crops))
        return _primitive.conv_transpose_batched(xe, w, local, resolve(local, xe.shape, w.shape))

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
