"""Explicit per-device code with ``jax.shard_map``: data parallel and spatial parallel.

    python examples/shard_map_example.py

``jax.jit`` with sharded inputs lets XLA's partitioner decide the
communication (see docs/scaling.md).  ``jax.shard_map`` is for
when you want to write it yourself: the function runs once per device on
that device's block, and you place every collective.  This example does
two things and checks both against the one-device result:

1. **Data parallel training step.**  Each device runs
   ``ct.conv_transpose2d`` on its slice of the batch; the loss is summed over
   devices with ``jax.lax.psum``, so ``jax.grad`` gives every device the
   gradient of the *global* loss (JAX sums the replicated weight's
   per-device cotangents for you).
2. **Spatial parallel transposed convolution with a hand-written halo
   exchange.**  The image height is split over the devices.  Output row
   ``o`` needs input rows ``(o + lo - k) / s`` for every tap ``k``, so each
   device borrows ``halo_lo`` rows from its upper neighbour and ``halo_hi``
   from its lower one (``jax.lax.ppermute``; the first and last device
   receive zeros, which is exactly the zero padding), then runs an ordinary
   ``ct.conv_transpose2d`` whose asymmetric ``padding`` crops the borrowed
   rows' contributions away.  Its gradients (``ppermute`` transposes to the
   reverse exchange) equal the global ones too.

Started as a script it simulates 8 CPU devices (``XLA_FLAGS`` must be set
before JAX initialises); imported, it uses whatever devices JAX has.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "jax" not in sys.modules:
    _flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in _flags:
        os.environ["XLA_FLAGS"] = f"{_flags} --xla_force_host_platform_device_count=8".strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import convt_jax as ct  # noqa: E402

STRIDE, PADDING = 2, 1  # with a 4x4 kernel: output = 2 x input (DCGAN, U-Net)


# --- 1. data parallel ---------------------------------------------------------------------


def data_parallel_loss_and_grads(mesh, w, b, x, target):
    """Global mean-squared-error loss and its gradients, batch split over ``mesh``'s axis."""
    axis = mesh.axis_names[0]
    count = target.size  # global number of output elements

    def per_device(w, b, x, target):  # x, target: this device's batch slice
        def loss(w, b):
            y = ct.conv_transpose2d(x, w, b, stride=STRIDE, padding=PADDING)
            return jax.lax.psum(jnp.sum((y - target) ** 2), axis) / count

        return jax.value_and_grad(loss, argnums=(0, 1))(w, b)

    f = jax.shard_map(
        per_device, mesh=mesh, in_specs=(P(), P(), P(axis), P(axis)), out_specs=(P(), (P(), P()))
    )
    return jax.jit(f)(w, b, x, target)


# --- 2. spatial parallel with a halo exchange ---------------------------------------------


def halo_sizes(kernel: int, stride: int, padding: int, dilation: int = 1) -> tuple[int, int]:
    """Rows a device needs from its upper and lower neighbours.

    Output row ``o`` reads input rows ``i = (o + lo - d*k) / s``, ``0 <= k < K``.
    A device owning input rows ``[p*l, (p+1)*l)`` produces output rows
    ``[s*p*l, s*(p+1)*l)`` (the output is ``s`` times the input), which read
    rows ``p*l - halo_lo ... (p+1)*l - 1 + halo_hi``.
    """
    lo = padding
    if not 0 <= lo <= dilation * (kernel - 1):
        raise ValueError(f"padding={padding} must be in [0, dilation*(kernel-1)]")
    return (dilation * (kernel - 1) - lo) // stride, (lo - 1) // stride + 1


def spatial_parallel_conv_transpose2d(mesh, x, w, b, *, stride=STRIDE, padding=PADDING):
    """``ct.conv_transpose2d(x, w, b, stride, padding)`` with the height split over ``mesh``.

    Needs a layer whose output height is ``stride`` times its input height
    (``kernel - 2*padding == stride``) and at least ``halo`` rows per device.
    """
    axis = mesh.axis_names[0]
    devices = mesh.shape[axis]
    kernel = w.shape[2]
    if kernel - 2 * padding != stride:
        raise ValueError("the output height must be stride x the input height")
    halo_lo, halo_hi = halo_sizes(kernel, stride, padding)
    rows = x.shape[2] // devices
    if x.shape[2] % devices or rows < max(halo_lo, halo_hi):
        raise ValueError(
            f"height {x.shape[2]} must split into >= {max(halo_lo, halo_hi)} "
            f"rows on each of {devices} devices"
        )
    # The local problem sees halo_lo + rows + halo_hi input rows; crop its output to
    # the s*rows rows this device owns.
    crop_lo = stride * halo_lo + padding
    crop_hi = (halo_hi - 1) * stride + kernel - padding
    down = [(i, i + 1) for i in range(devices - 1)]  # my last rows -> next device
    up = [(i + 1, i) for i in range(devices - 1)]  # my first rows -> previous device

    def per_device(x, w, b):
        parts = [x]
        if halo_lo:
            parts.insert(0, jax.lax.ppermute(x[:, :, rows - halo_lo :], axis, down))
        if halo_hi:
            parts.append(jax.lax.ppermute(x[:, :, :halo_hi], axis, up))
        x_ext = jnp.concatenate(parts, axis=2)
        return ct.conv_transpose2d(
            x_ext, w, b, stride=stride, padding=((crop_lo, crop_hi), (padding, padding))
        )

    f = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(P(None, None, axis), P(), P()),
        out_specs=P(None, None, axis),
    )
    return f(x, w, b)


# --- run and compare with one device ------------------------------------------------------


def main(verbose: bool = True) -> dict[str, float]:
    """Run both examples on all devices; return each result's error relative to one device.

    The error is ``max |sharded - one device| / max |one device|``.
    """
    devices = len(jax.devices())
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    mesh = jax.make_mesh((devices,), ("d",))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2 * devices, 8, 2 * devices, 6)), dtype)
    w = jnp.asarray(rng.standard_normal((8, 4, 4, 4)) / 8, dtype)
    b = jnp.asarray(rng.standard_normal(4), dtype)
    target = jnp.asarray(rng.standard_normal((2 * devices, 4, 4 * devices, 12)), dtype)
    put = lambda a, *spec: jax.device_put(a, NamedSharding(mesh, P(*spec)))  # noqa: E731
    errors = {}

    def rel(got, want):
        return float(jnp.abs(got - want).max() / jnp.abs(want).max())

    # 1. data parallel
    loss, (dw, db) = data_parallel_loss_and_grads(
        mesh, put(w), put(b), put(x, "d"), put(target, "d")
    )

    def global_loss(w, b):
        return jnp.mean((ct.conv_transpose2d(x, w, b, STRIDE, PADDING) - target) ** 2)

    want_loss, (want_dw, want_db) = jax.value_and_grad(global_loss, argnums=(0, 1))(w, b)
    errors["data parallel: loss"] = rel(loss, want_loss)
    errors["data parallel: dw"] = rel(dw, want_dw)
    errors["data parallel: db"] = rel(db, want_db)

    # 2. spatial parallel, forward and gradients
    sharded = jax.jit(lambda x, w, b: spatial_parallel_conv_transpose2d(mesh, x, w, b))
    y, vjp = jax.vjp(sharded, put(x, None, None, "d"), put(w), put(b))
    want_y, want_vjp = jax.vjp(
        lambda x, w, b: ct.conv_transpose2d(x, w, b, STRIDE, PADDING), x, w, b
    )
    gy = jnp.asarray(rng.standard_normal(want_y.shape), dtype)
    errors["spatial parallel: y"] = rel(y, want_y)
    for name, got, want in zip(
        ("dx", "dw", "db"), vjp(put(gy, None, None, "d")), want_vjp(gy), strict=True
    ):
        errors[f"spatial parallel: {name}"] = rel(got, want)
    if verbose:
        print(f"{devices} devices, {np.dtype(dtype).name}; y is split as {y.sharding.spec}")
        for name, err in errors.items():
            print(f"  {name:<24} relative error vs one device {err:.1e}")
    return errors


if __name__ == "__main__":
    main()
