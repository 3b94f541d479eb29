"""Peak memory of forward+backward on the 3-D benchmark shapes: convt_jax vs PyTorch.

    python -m benchmarks.memory

convt_jax: XLA's buffer assignment for the compiled forward+backward
(``compiled.memory_analysis()``: arguments + outputs + temporaries), which is
exactly what the executable allocates.  PyTorch (eager, no compiler): the
growth of the process's peak resident set over its resident set just before
the call, in a fresh subprocess with the inputs already allocated.  Both
count inputs, the output y, dx and dw.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .run import SHAPES

SHAPES_3D = ("vnet3d", "unet3d")

_TORCH = r"""
import json, resource, sys
import numpy as np, torch
torch.set_num_threads(2)
n, c_in, spatial, c_out, k, s, p, g = json.loads(sys.argv[1])
nd = len(spatial)
fn = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
      3: torch.nn.functional.conv_transpose3d}[nd]
x = torch.randn(n, c_in, *spatial, requires_grad=True)
w = torch.randn(c_in, c_out // g, *(k,) * nd, requires_grad=True)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = rss()
y = fn(x, w, None, s, p, 0, g)
dx, dw = torch.autograd.grad(y, (x, w), torch.ones_like(y))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
args = (x.numel() + w.numel()) * 4
print(json.dumps({"peak_bytes": max(peak - before, 0) + args}))
"""


def jax_bytes(shape, method="auto") -> int:
    import jax
    import jax.numpy as jnp

    import convt_jax as ct

    n, c_in, spatial, c_out, k, s, p, g = shape
    nd = len(spatial)
    x = jax.ShapeDtypeStruct((n, c_in, *spatial), jnp.float32)
    w = jax.ShapeDtypeStruct((c_in, c_out // g, *(k,) * nd), jnp.float32)

    def fb(x, w):
        f = lambda x, w: ct.conv_transpose(x, w, None, s, p, groups=g, method=method)  # noqa
        y, vjp = jax.vjp(f, x, w)
        return (y, *vjp(jnp.ones_like(y)))

    mem = jax.jit(fb).lower(x, w).compile().memory_analysis()
    return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)


def torch_bytes(shape) -> int:
    n, c_in, spatial, c_out, k, s, p, g = shape
    out = subprocess.run(
        [sys.executable, "-c", _TORCH, json.dumps([n, c_in, list(spatial), c_out, k, s, p, g])],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["peak_bytes"]


def main() -> int:
    print("| shape | PyTorch peak MiB | convt_jax auto MiB | ratio | dilated MiB |")
    print("|---|---|---|---|---|")
    for name in SHAPES_3D:
        shape = SHAPES[name]
        t = torch_bytes(shape)
        a = jax_bytes(shape, "auto")
        d = jax_bytes(shape, "dilated")
        print(f"| {name} | {t / 2**20:.0f} | {a / 2**20:.0f} | {a / t:.2f} | {d / 2**20:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
