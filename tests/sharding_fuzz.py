"""Sharded equals unsharded: a random-configuration fuzz on 8 simulated CPU devices.

Run as a child process by ``tests/test_sharding_fuzz.py`` (JAX fixes its device
count when it starts, and an XLA abort must end one child, not the test run):

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharding_fuzz.py SEED...

Each seed makes one case (:func:`make_case`): a random transposed convolution
(``ct.conv_transpose``: 1-3 spatial axes, both layouts, dense / grouped / depthwise,
stride, dilation, padding, output_padding, padding modes, every ``method``) or, every
third seed (``seed % 3 == 2``), a random regular convolution (``ct.conv`` or
``ct.conv1d/2d/3d``: the same, with the padding as an int, ints, ``(lo, hi)`` pairs,
``"valid"`` or ``"same"``, and no output_padding), and a random split of its operands
over a 4 x 2 mesh (batch, output channels, input channels / groups, a spatial axis, and
pairs of those; some splits leave a mesh axis unused), run with ``Auto`` mesh axes,
``Explicit`` ones, or inside ``shard_map`` (batch split, the weight's gradient summed
with ``psum``).  The weight's axes differ between the two: ``(C_in, C_out // groups,
*K)`` for the transposed convolution, ``(C_out, C_in // groups, *K)`` for the regular
one (:func:`_specs` splits each by what its axes mean).  The forward ``y`` and the
gradients ``dx``, ``dw`` and ``db`` of one jitted ``jax.vjp`` are compared with the
same computation on one device, to within a tolerance times the largest value (at
least 1): in float64 (1e-9), or, a quarter of the seeds (``seed % 8 in (2, 5)``), in
float32 (1e-5) with the method mostly ``"auto"`` or ``"onednn"``: on the CPU float64
never reaches oneDNN's kernels, float32 runs them on each device's block.  Which op
and dtype a seed gets depends on the seed alone, and a float64 transposed seed draws
the case it drew before the regular convolution was added.

Before running a case the child prints ``CASE <seed> <description>`` and flushes, so
if XLA aborts the process the parent still knows which configuration did it; after,
``OK <seed>`` or ``DIFF <seed> <what differs>``.
"""

from __future__ import annotations

import json
import random
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import convt_jax as ct  # noqa: E402
from convt_jax import _compat  # noqa: E402

MESH_SHAPE = (4, 2)
MESH_AXES = ("a", "b")
METHODS = ("auto", "dilated", "subpixel", "matmul", "depthwise", "grouped")
SPLITS = ("batch", "out", "in", "spatial")
RTOL = 1e-9
RTOL_FLOAT32 = 1e-5


def make_case(seed: int) -> dict:
    """A random configuration that the library accepts (sampled again until it does)."""
    op = "conv" if seed % 3 == 2 else "conv_transpose"
    dtype = "float32" if seed % 8 in (2, 5) else "float64"
    r = random.Random(seed)
    # float32's method from a stream of its own: the other draws stay the seed's.
    r32 = random.Random(f"float32 {seed}")
    while True:
        case = _sample(r) if op == "conv_transpose" else _sample_conv(r)
        case["op"], case["dtype"] = op, dtype
        if dtype == "float32":
            # Mostly the methods that run oneDNN's kernels (float32 is what they take).
            case["method"] = r32.choice(("auto", "auto", "onednn", case["method"]))
        try:
            _check_accepted(case)
        except ValueError:
            continue
        case["seed"] = seed
        return case


def _sample(r: random.Random) -> dict:
    nd = r.choice((1, 1, 2, 2, 2, 3))
    kind = r.choice(("dense", "dense", "grouped", "depthwise"))
    c_in = 8
    groups = {"dense": 1, "grouped": r.choice((2, 4)), "depthwise": c_in}[kind]
    c_out = groups * r.choice((1, 2)) if kind != "dense" else r.choice((4, 8))
    kmax = 3 if nd == 3 else 4
    kernel = [r.randint(1, kmax) for _ in range(nd)]
    stride = [r.choice((1, 2, 2, 3)) for _ in range(nd)]
    dilation = [r.choice((1, 1, 2)) for _ in range(nd)]
    padding = [r.randint(0, d * (k - 1)) for k, d in zip(kernel, dilation, strict=True)]
    output_padding = [r.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation, strict=True)]
    length = [r.choice((4, 8)) if nd < 3 else 4 for _ in range(nd)]
    mode = r.choice(("zeros",) * 5 + ("reflect", "replicate", "circular"))
    placement = _placement(r)
    # The weight's split for "out": its output channels (axis 1) or, grouped, whole
    # groups of its input channels (axis 0).
    out_axis = r.choice((0, 1)) if groups > 1 else 1
    mesh_kind, placement = _mesh_kind(r, placement)
    return dict(
        nd=nd,
        channels_last=r.random() < 0.5,
        c_in=c_in,
        c_out=c_out,
        groups=groups,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        padding=padding,
        output_padding=output_padding,
        padding_mode=mode,
        length=length,
        batch=8,
        method=r.choice(METHODS),
        placement=placement,
        out_axis=out_axis,
        mesh_kind=mesh_kind,
        bias=r.random() < 0.5,
    )


def _placement(r: random.Random) -> dict:
    """Up to two of the splits, each on its own mesh axis; sometimes one axis stays unused."""
    n_splits = r.choice((1, 1, 2, 2, 2))
    splits = r.sample(SPLITS, n_splits)
    axes = list(MESH_AXES)
    r.shuffle(axes)
    placement = {s: axes[i] for i, s in enumerate(splits)}
    if r.random() < 0.2 and len(splits) == 1:
        placement[splits[0]] = tuple(MESH_AXES)  # one split over the whole mesh
    return placement


def _mesh_kind(r: random.Random, placement: dict) -> tuple[str, dict]:
    """Auto, Explicit or shard_map (which splits the batch alone)."""
    mesh_kind = r.choice(("auto", "auto", "explicit", "shard_map"))
    if mesh_kind == "explicit" and not _compat.HAS_EXPLICIT_AXES:
        mesh_kind = "auto"  # convt_jax runs on Explicit axes from jax 0.7
    if mesh_kind == "shard_map" and not hasattr(jax, "shard_map"):
        mesh_kind = "auto"  # public from jax 0.6
    if mesh_kind == "shard_map":
        placement = {"batch": placement.get("batch", "a")}
        if r.random() < 0.5:
            placement["batch"] = tuple(MESH_AXES)
    return mesh_kind, placement


def _sample_conv(r: random.Random) -> dict:
    """A regular convolution: ``ct.conv`` or ``ct.conv{nd}d``, weight ``(C_out, C_in //
    groups, *K)``, the padding in each of its spellings."""
    nd = r.choice((1, 1, 2, 2, 2, 3))
    kind = r.choice(("dense", "dense", "grouped", "depthwise"))
    c_in = 8
    groups = {"dense": 1, "grouped": r.choice((2, 4)), "depthwise": c_in}[kind]
    c_out = groups * r.choice((1, 2)) if kind != "dense" else r.choice((4, 8))
    kmax = 3 if nd == 3 else 4
    kernel = [r.randint(1, kmax) for _ in range(nd)]
    dilation = [r.choice((1, 1, 2)) for _ in range(nd)]
    spelling = r.choice(("int", "ints", "ints", "pairs", "pairs", "same", "valid"))
    # "same" needs stride 1 (PyTorch's rule); a padding may reach past the kernel by one.
    stride = [1] * nd if spelling == "same" else [r.choice((1, 1, 2, 3)) for _ in range(nd)]
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    padding: object
    if spelling == "int":
        padding = r.randint(0, min(reach))
    elif spelling == "ints":
        padding = [r.randint(0, e) for e in reach]
    elif spelling == "pairs":
        padding = [[r.randint(0, e), r.randint(0, e)] for e in reach]
    else:
        padding = spelling
    length = [r.choice((4, 8)) if nd < 3 else 4 for _ in range(nd)]
    mode = r.choice(("zeros",) * 5 + ("reflect", "replicate", "circular"))
    placement = _placement(r)
    # The weight's split for "in" (with the input's channels): its input channels per
    # group (axis 1) or, grouped, whole groups of its output channels (axis 0).
    in_axis = r.choice((0, 1)) if groups > 1 else 1
    mesh_kind, placement = _mesh_kind(r, placement)
    return dict(
        nd=nd,
        fn=r.choice(("conv", f"conv{nd}d")),
        channels_last=r.random() < 0.5,
        c_in=c_in,
        c_out=c_out,
        groups=groups,
        kernel=kernel,
        stride=stride,
        dilation=dilation,
        padding=padding,
        padding_mode=mode,
        length=length,
        batch=8,
        method=r.choice(METHODS),
        placement=placement,
        in_axis=in_axis,
        mesh_kind=mesh_kind,
        bias=r.random() < 0.5,
    )


def _shapes(case: dict):
    nd, cl = case["nd"], case["channels_last"]
    x = (
        (case["batch"], *case["length"], case["c_in"])
        if cl
        else (case["batch"], case["c_in"], *case["length"])
    )
    if case["op"] == "conv":
        w = (case["c_out"], case["c_in"] // case["groups"], *case["kernel"])
    else:
        w = (case["c_in"], case["c_out"] // case["groups"], *case["kernel"])
    return x, w, nd


def _call(case: dict, x, w, b):
    if case["op"] == "conv":
        padding = case["padding"]
        if isinstance(padding, list):  # JSON's lists: ints or (lo, hi) pairs per axis
            padding = tuple(tuple(p) if isinstance(p, list) else p for p in padding)
        return getattr(ct, case["fn"])(
            x,
            w,
            b,
            stride=tuple(case["stride"]),
            padding=padding,
            dilation=tuple(case["dilation"]),
            groups=case["groups"],
            channels_last=case["channels_last"],
            padding_mode=case["padding_mode"],
            method=case["method"],
        )
    return ct.conv_transpose(
        x,
        w,
        b,
        stride=tuple(case["stride"]),
        padding=tuple(case["padding"]),
        output_padding=tuple(case["output_padding"]),
        groups=case["groups"],
        dilation=tuple(case["dilation"]),
        channels_last=case["channels_last"],
        padding_mode=case["padding_mode"],
        method=case["method"],
    )


def _check_accepted(case: dict) -> None:
    xs, ws, _ = _shapes(case)
    b = jax.ShapeDtypeStruct((case["c_out"],), jnp.float64) if case["bias"] else None
    out = jax.eval_shape(
        lambda x, w, b: _call(case, x, w, b),
        jax.ShapeDtypeStruct(xs, jnp.float64),
        jax.ShapeDtypeStruct(ws, jnp.float64),
        b,
    )
    if any(d < 1 for d in out.shape):
        raise ValueError("empty output")
    _specs(case, xs, ws)  # raises ValueError when a split does not divide


def _size(entry) -> int:
    names = entry if isinstance(entry, tuple) else (entry,)
    return int(np.prod([MESH_SHAPE[MESH_AXES.index(a)] for a in names]))


def _specs(case: dict, xs, ws):
    """PartitionSpecs of x and w (the bias follows the weight's output channels).

    "out" splits the output channels: the transposed convolution's weight on axis 1
    (``out_axis``; grouped also axis 0, whole groups), the regular one's on axis 0.
    "in" splits the input's channels and the weight's: the transposed convolution's
    axis 0, the regular one's axis 1 (``in_axis``; grouped also axis 0, whole groups)."""
    nd, cl, conv = case["nd"], case["channels_last"], case["op"] == "conv"
    x_spec, w_spec = [None] * (nd + 2), [None] * (nd + 2)
    c_ax = nd + 1 if cl else 1
    for split, entry in case["placement"].items():
        if split == "batch":
            dims = [(x_spec, 0, xs[0])]
        elif split == "out":
            a = 0 if conv else case["out_axis"]
            dims = [(w_spec, a, ws[a])]
        elif split == "in":
            a = case["in_axis"] if conv else 0
            dims = [(x_spec, c_ax, xs[c_ax]), (w_spec, a, ws[a])]
        else:
            a = 1 if cl else 2
            dims = [(x_spec, a, xs[a])]
        for spec, d, n in dims:
            if n % _size(entry):
                raise ValueError(f"{split} split does not divide {n}")
            if conv and spec[d] is not None:  # (the transposed cases keep their old draws)
                raise ValueError(f"{split} split on an axis already split")
            spec[d] = entry
    return P(*x_spec), P(*w_spec)


def describe(case: dict) -> str:
    keys = (
        "op",
        "dtype",
        "nd",
        "fn",
        "channels_last",
        "c_in",
        "c_out",
        "groups",
        "kernel",
        "stride",
        "dilation",
        "padding",
        "output_padding",
        "padding_mode",
        "length",
        "method",
        "mesh_kind",
        "placement",
        "out_axis",
        "in_axis",
        "bias",
    )
    return json.dumps({k: case[k] for k in keys if k in case})


def _mesh(kind: str):
    if _compat.AxisType is None:
        return jax.make_mesh(MESH_SHAPE, MESH_AXES)
    t = _compat.AxisType.Explicit if kind == "explicit" else _compat.AxisType.Auto
    return jax.make_mesh(MESH_SHAPE, MESH_AXES, axis_types=(t,) * 2)


def _vjp_fn(case: dict, cot):
    def fn(x, w, b):
        y, pull = jax.vjp(lambda x, w, b: _call(case, x, w, b), x, w, b)
        return (y, *pull(cot))

    return fn


def run_case(case: dict) -> str | None:
    """None when the sharded results equal the one-device ones, else what differs."""
    xs, ws, _ = _shapes(case)
    rng = np.random.default_rng(case["seed"])
    dtype = np.dtype(case["dtype"])
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal((case["c_out"],)) if case["bias"] else np.zeros((case["c_out"],))
    b = b.astype(dtype)
    y_shape = jax.eval_shape(lambda x, w, b: _call(case, x, w, b), x, w, b).shape
    cot = rng.standard_normal(y_shape).astype(dtype)
    fn = _vjp_fn(case, cot)
    dev0 = jax.devices()[0]
    ref = jax.jit(fn)(*jax.device_put((x, w, b), dev0))
    mesh = _mesh(case["mesh_kind"])
    x_spec, w_spec = _specs(case, xs, ws)
    if case["mesh_kind"] == "shard_map":
        got = _run_shard_map(case, mesh, x_spec, x, w, b, cot)
    else:
        if case["op"] == "conv":
            b_spec = P(w_spec[0])
        else:
            b_spec = P(w_spec[1]) if case["groups"] == 1 or case["out_axis"] == 1 else P()
            if case["groups"] > 1 and case["out_axis"] == 1:
                b_spec = P()
        xa = jax.device_put(x, NamedSharding(mesh, x_spec))
        wa = jax.device_put(w, NamedSharding(mesh, w_spec))
        ba = jax.device_put(b, NamedSharding(mesh, b_spec))
        got = jax.jit(fn)(xa, wa, ba)
    rtol = RTOL_FLOAT32 if dtype == np.float32 else RTOL
    return "; ".join(_differences(ref, got, rtol)) or None


def _differences(ref, got, rtol: float = RTOL) -> list[str]:
    """What differs between the one-device ``(y, dx, dw, db)`` and the sharded one
    (``rtol`` times the largest value of each, at least 1)."""
    bad = []
    for name, r, g in zip(("y", "dx", "dw", "db"), ref, got, strict=True):
        r, g = np.asarray(r), np.asarray(g)
        if r.shape != g.shape:
            bad.append(f"{name} shape {g.shape} != {r.shape}")
            continue
        err = float(np.max(np.abs(r - g), initial=0.0))
        scale = max(1.0, float(np.max(np.abs(r), initial=0.0)))
        if not err <= rtol * scale:
            bad.append(f"{name} max|diff| {err:.3g} (scale {scale:.3g})")
    return bad


def _run_shard_map(case, mesh, x_spec, x, w, b, cot):
    """Data parallel per-device code: each device's batch block, the weight replicated."""
    entry = case["placement"]["batch"]
    cot_spec = P(entry)

    def per_device(x, w, b, cot):
        y, pull = jax.vjp(lambda x, w, b: _call(case, x, w, b), x, w, b)
        # The weight and bias are replicated: the transpose of JAX's cast of them to
        # vary over the batch axes already sums their cotangents over the devices.
        return (y, *pull(cot))

    f = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(x_spec, P(), P(), cot_spec),
        out_specs=(cot_spec, x_spec, P(), P()),
    )
    return jax.jit(f)(x, w, b, cot)


# --- halo exchange (Explicit mesh axes, a spatial split visible in the types) ---------------

# (ndim, channels_last, kernel, stride, padding, output_padding, dilation): layers whose
# output blocks line up with the input blocks (L_out = s * L).
HALO_CASES = [
    (1, False, 8, 4, 2, 0, 1),
    (1, True, 3, 1, 2, 0, 2),
    (2, False, 4, 2, 1, 0, 1),
    (2, True, 3, 2, 1, 1, 1),
    (2, False, 3, 1, 1, 0, 1),
    (3, False, 4, 2, 1, 0, 1),
]


def _collectives(hlo: str) -> dict[str, int]:
    import re

    return {
        op: len(re.findall(rf" {op}(?:-start)?\(", hlo))
        for op in ("all-gather", "all-to-all", "collective-permute", "all-reduce")
    }


def _explicit_step(f, x, w, b, axis_names, x_spec, w_spec, y_spec):
    """``(y, dx, dw, db)`` of ``f`` on one device and on a 2 x 4 Explicit mesh with the
    given specs (the bias follows ``w_spec``'s output channels or is replicated), the
    sharded results, their counted collectives, and the output's wanted sharding."""
    rng = np.random.default_rng(2)
    gy = rng.standard_normal(jax.eval_shape(f, x, w, b).shape)

    def step(x, w, b, gy):
        y, pull = jax.vjp(f, x, w, b)
        return (y, *pull(gy))

    ref = jax.jit(step)(*jax.device_put((x, w, b, gy), jax.devices()[0]))
    mesh = jax.make_mesh((2, 4), axis_names, axis_types=(_compat.AxisType.Explicit,) * 2)
    b_spec = (
        P(w_spec[1])
        if len(w_spec) > 1 and w_spec[1] is not None
        else P(w_spec[0])
        if len(w_spec) and w_spec[0] is not None
        else P()
    )
    y_split = NamedSharding(mesh, y_spec)
    args = (
        jax.device_put(x, NamedSharding(mesh, x_spec)),
        jax.device_put(w, NamedSharding(mesh, w_spec)),
        jax.device_put(b, NamedSharding(mesh, b_spec)),
        jax.device_put(gy, y_split),
    )
    compiled = jax.jit(step).lower(*args).compile()
    return ref, compiled(*args), _collectives(compiled.as_text()), y_split


def check_halo(case) -> str | None:
    """Batch over "data", the first spatial axis over "space" (2 x 4, Explicit axes): the
    forward and the gradients equal one device's, the compiled program exchanges halos
    (collective-permutes, none when no halo is needed) and gathers nothing, and y and dx
    stay split like x."""
    nd, cl, k, s, p, op, d = case
    rng = np.random.default_rng(0)
    length = 16 if nd < 3 else 8
    xs = (4, *(length,) * nd, 6) if cl else (4, 6, *(length,) * nd)
    x, w, b = (
        rng.standard_normal(xs),
        rng.standard_normal((6, 4, *(k,) * nd)),
        rng.standard_normal(4),
    )
    spec = [None] * (nd + 2)
    spec[0], spec[1 if cl else 2] = "data", "space"

    def f(x, w, b):
        return ct.conv_transpose(x, w, b, s, p, op, dilation=d, channels_last=cl)

    ref, got, found, split = _explicit_step(f, x, w, b, ("data", "space"), P(*spec), P(), P(*spec))
    bad = []
    if found["all-gather"] or found["all-to-all"]:
        bad.append(f"gathers: {found}")
    halo = max(0, (d * (k - 1) - p) // s) + max(0, (p - 1) // s + 1)
    if halo and not found["collective-permute"]:
        bad.append(f"no halo exchange: {found}")
    bad += _differences(ref, got)
    for name, a in (("y", got[0]), ("dx", got[1])):
        if not a.sharding.is_equivalent_to(split, a.ndim):
            bad.append(f"{name} comes out as {a.sharding.spec}, not split like x")
    return "; ".join(bad) or None


def main(seeds: list[int]) -> int:
    assert jax.device_count() >= 8, "needs XLA_FLAGS=--xla_force_host_platform_device_count=8"
    for seed in seeds:
        case = make_case(seed)
        print(f"CASE {seed} {describe(case)}", flush=True)
        try:
            diff = run_case(case)
        except Exception as e:  # a raised error is a failure of the case, not of the run
            diff = f"raised {type(e).__name__}: {str(e)[:400]}"
        print(f"OK {seed}" if diff is None else f"DIFF {seed} {diff}", flush=True)
    return 0


# (ndim, channels_last, groups, C_out): output channels (groups == 1) or whole groups split.
CHANNEL_CASES = [
    (1, False, 1, 16),
    (2, True, 1, 8),
    (2, False, 4, 16),
    (2, True, 8, 16),
    (3, False, 1, 8),
]


def check_channels(case) -> str | None:
    """Batch over "data", the weight's output channels (whole groups, with the input's
    channels, when grouped) over "model" (2 x 4, Explicit axes): the results equal one
    device's, nothing is gathered, and y comes out split over (data, model)."""
    nd, cl, groups, c_out = case
    rng = np.random.default_rng(1)
    c_in, length = 8, (6 if nd < 3 else 4)
    xs = (4, *(length,) * nd, c_in) if cl else (4, c_in, *(length,) * nd)
    x, w, b = (
        rng.standard_normal(xs),
        rng.standard_normal((c_in, c_out // groups, *(4,) * nd)),
        rng.standard_normal(c_out),
    )
    c_ax = nd + 1 if cl else 1
    x_spec = [None] * (nd + 2)
    x_spec[0] = "data"
    if groups > 1:
        x_spec[c_ax] = "model"
    w_spec = P("model") if groups > 1 else P(None, "model")

    def f(x, w, b):
        return ct.conv_transpose(x, w, b, 2, 1, groups=groups, channels_last=cl)

    y_spec = [None] * (nd + 2)
    y_spec[0], y_spec[c_ax] = "data", "model"
    ref, got, found, y_split = _explicit_step(
        f, x, w, b, ("data", "model"), P(*x_spec), w_spec, P(*y_spec)
    )
    bad = []
    if found["all-gather"] or found["all-to-all"]:
        bad.append(f"gathers: {found}")
    bad += _differences(ref, got)
    if not got[0].sharding.is_equivalent_to(y_split, got[0].ndim):
        bad.append(f"y comes out as {got[0].sharding.spec}, not split over (data, model)")
    return "; ".join(bad) or None


def main_halo() -> int:
    cases = [(check_halo, c) for c in HALO_CASES] + [(check_channels, c) for c in CHANNEL_CASES]
    for i, (check, case) in enumerate(cases):
        print(f"CASE {i} {check.__name__} {json.dumps(case)}", flush=True)
        try:
            diff = check(case)
        except Exception as e:
            diff = f"raised {type(e).__name__}: {str(e)[:400]}"
        print(f"OK {i}" if diff is None else f"DIFF {i} {diff}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["halo"]:
        raise SystemExit(main_halo())
    raise SystemExit(main([int(s) for s in sys.argv[1:]]))
