"""Several hosts: two JAX processes, one global mesh, training steps checked against one device.

    python examples/multihost.py

starts two processes on this machine (4 simulated CPU devices each, a coordinator on
localhost, CPU collectives over gloo), which together act as two hosts of one
8-device mesh; each is this same script in worker mode:

    python examples/multihost.py --worker --process-id 0 --num-processes 2 \\
        --coordinator localhost:12355
    python examples/multihost.py --worker --process-id 1 --num-processes 2 \\
        --coordinator localhost:12355

On real hosts run the worker command on every host with the coordinator's address
(on Cloud TPU, SLURM or Open MPI, ``jax.distributed.initialize()`` finds it itself).

Every process runs three jitted training steps (loss, gradients, an SGD update) of
``ct.nn`` layers on global arrays, each host feeding only its own rows of the batch
(``jax.make_array_from_callback``), and checks the loss and gradients against the
same step computed on one of its own devices:

1. data parallel: a two-layer decoder, the batch split over all 8 devices;
2. grouped: a grouped layer (``groups=4``) with the batch over one mesh axis and the
   weight's input channels (whole groups) over the other;
3. spatially split: a 1-D layer whose input is split along its length over 8 devices.

Each worker prints ``process I: <step> OK max|diff| ... N collectives`` (counted in the
compiled program) and exits non-zero on a mismatch or a program without collectives; the
launcher exits non-zero if either worker does.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys

LOCAL_DEVICES = 4
TOL = 1e-9


def launch(num_processes: int = 2, timeout: float = 600.0) -> int:
    """Start ``num_processes`` workers on localhost; their combined exit status."""
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={LOCAL_DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    # Each worker's output is collected on its own and printed whole, so the two
    # processes' lines never interleave.
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                "--process-id",
                str(i),
                "--num-processes",
                str(num_processes),
                "--coordinator",
                f"localhost:{port}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(num_processes)
    ]
    status = 0
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            sys.stderr.write(err)
            sys.stdout.write(out)
            sys.stdout.flush()
            status |= p.returncode
    except subprocess.TimeoutExpired:
        status = 1
        print(f"the workers did not finish in {timeout:.0f} s", file=sys.stderr)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return status


def worker(process_id: int, num_processes: int, coordinator: str) -> int:
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import convt_jax as ct

    n_dev = jax.device_count()
    assert jax.local_device_count() == LOCAL_DEVICES, jax.local_devices()
    auto = getattr(jax.sharding, "AxisType", None)

    def mesh(shape, names):
        if auto is None:
            return jax.make_mesh(shape, names)
        return jax.make_mesh(shape, names, axis_types=(auto.Auto,) * len(shape))

    def global_array(value: np.ndarray, sharding):
        # Every process holds the same NumPy data here; a real job loads only its rows.
        return jax.make_array_from_callback(value.shape, sharding, lambda idx: value[idx])

    def local(tree):
        # A replicated global array -> this process's copy, as NumPy.
        return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)

    def step_fn(loss_fn):
        def step(layers, x, target):
            loss, grads = jax.value_and_grad(loss_fn)(layers, x, target)
            new = jax.tree.map(lambda p, g: p - 0.1 * g, layers, grads)
            return loss, grads, new

        return step

    def check(name, loss_fn, layers, x, target, x_spec, layer_specs, m):
        """The sharded step against the same step on one local device."""
        step = jax.jit(step_fn(loss_fn))
        dev = jax.local_devices()[0]
        want = step(*jax.device_put((layers, x, target), dev))
        placed_layers = jax.tree.map(
            lambda a, s: global_array(np.asarray(a), NamedSharding(m, s)), layers, layer_specs
        )
        xs = global_array(x, NamedSharding(m, x_spec))
        ts = global_array(target, NamedSharding(m, x_spec if target.ndim == x.ndim else P()))
        replicated = NamedSharding(m, P())
        sharded_step = jax.jit(step_fn(loss_fn), out_shardings=replicated)
        hlo = sharded_step.lower(placed_layers, xs, ts).compile().as_text()
        collectives = sum(
            hlo.count(f" {op}(")
            for op in (
                "all-reduce",
                "all-gather",
                "collective-permute",
                "all-to-all",
                "reduce-scatter",
            )
        )
        got = sharded_step(placed_layers, xs, ts)
        diffs = jax.tree.leaves(
            jax.tree.map(
                lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0)),
                local(want),
                local(got),
            )
        )
        worst = max(diffs)
        ok = worst <= TOL * max(1.0, float(np.abs(np.asarray(want[0]))))
        print(
            f"process {process_id}: {name} {'OK' if ok else 'MISMATCH'} "
            f"max|diff| {worst:.3g} over {n_dev} devices, {collectives} collectives",
            flush=True,
        )
        return ok and collectives > 0  # it really ran split

    rng = np.random.default_rng(0)
    keys = jax.random.split(jax.random.key(0), 4)
    results = []

    # 1. Data parallel: the batch over all devices, the layers replicated.
    decoder = {
        "up1": ct.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, key=keys[0]),
        "up2": ct.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1, key=keys[1]),
    }

    def decoder_loss(layers, x, target):
        return jnp.mean((layers["up2"](jax.nn.relu(layers["up1"](x))) - target) ** 2)

    x = rng.standard_normal((n_dev, 8, 4, 4))
    target = rng.standard_normal((n_dev, 2, 16, 16))
    specs = jax.tree.map(lambda _: P(), decoder)
    results.append(
        check(
            "data parallel",
            decoder_loss,
            decoder,
            x,
            target,
            P("data"),
            specs,
            mesh((n_dev,), ("data",)),
        )
    )

    # 2. Grouped: batch over "data", the weight's input channels (whole groups) over "model".
    grouped = ct.nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1, groups=4, key=keys[2])

    def grouped_loss(layer, x, target):
        return jnp.mean((layer(x) - target) ** 2)

    x = rng.standard_normal((4, 8, 6, 6))
    target = rng.standard_normal((4, 8, 12, 12))
    specs = jax.tree.map(lambda a: P("model") if a.ndim == 4 else P(), grouped)
    results.append(
        check(
            "grouped",
            grouped_loss,
            grouped,
            x,
            target,
            P("data", "model"),
            specs,
            mesh((n_dev // 2, 2), ("data", "model")),
        )
    )

    # 3. Spatially split: a 1-D layer, the input's length over all devices.
    audio = ct.nn.ConvTranspose1d(4, 4, 8, stride=4, padding=2, key=keys[3])
    x = rng.standard_normal((2, 4, 8 * n_dev))
    target = rng.standard_normal((2, 4, 32 * n_dev))
    specs = jax.tree.map(lambda _: P(), audio)
    results.append(
        check(
            "spatially split",
            grouped_loss,
            audio,
            x,
            target,
            P(None, None, "space"),
            specs,
            mesh((n_dev,), ("space",)),
        )
    )

    jax.distributed.shutdown()
    return 0 if all(results) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="run as one of the processes")
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--coordinator", default="localhost:12355")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.process_id, args.num_processes, args.coordinator)
    return launch(args.num_processes)


if __name__ == "__main__":
    raise SystemExit(main())
