"""Child process of tests/test_crash_fuzz.py: compile and run fuzz cases, one JSON line each.

Usage: ``python tests/crash_fuzz_child.py [CASES.json]`` (a JSON list of cases;
stdin when no file is given).  For every case it prints ``START <case>``,
then runs, as one ``jax.jit``-compiled program, the forward, ``jax.vjp``
gradients with respect to the input, the weight and the bias, and the same
under ``jax.vmap`` over a stacked pair of inputs and weights; compares all
of it with PyTorch in float64; and prints ``DONE <result>`` (flushed).  An
XLA abort kills this process between the two lines, so the parent knows
which case did it.  Results: ``status`` is ``"ok"``, ``"rejected"`` (a
``ValueError``: accepted for an explicit method) or ``"mismatch"`` /
``"error"`` with a ``detail``.

A case is a dict: ``nd, batch, c_in, c_out, groups, spatial, kernel, stride,
dilation, pads`` (``(lo, hi)`` per axis), ``output_padding, channels_last,
bias, method, seed`` and optionally ``vmap`` (default true: also run under
``jax.vmap``).  ``DONE`` records carry the case's wall time ``seconds``.

A case with ``"op": "conv"`` is a regular convolution (``convt_jax.conv*``;
:func:`prepare_conv`): ``weight`` in its ``(C_out, C_in // groups, *kernel)``
layout, ``padding`` as the call takes it (JSON lists for tuples) with ``pads``
its ``(lo, hi)`` per axis, and ``padding_mode``, ``batched`` and ``dtype``
(``"float64"`` or ``"float32"``) instead of ``output_padding``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import convt_jax as ct  # noqa: E402

torch.set_num_threads(1)
F = torch.nn.functional
TORCH_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CT_CONV = {1: ct.conv1d, 2: ct.conv2d, 3: ct.conv3d}
RTOL = 1e-9
# A float32 case (a regular convolution's) against PyTorch's float64 numbers of the same
# float32 inputs: float32 sums of at most a few hundred terms (measured: at most 5e-7 of the
# scale over 140 drawn float32 cases).
RTOL_FLOAT32 = 2e-5


def _padding_arg(pads):
    if all(lo == hi for lo, hi in pads):
        return tuple(lo for lo, _ in pads)
    return tuple(tuple(p) for p in pads)


def torch_vjp(case, x, w, b, g):
    """PyTorch's forward and gradients (channels-first, float64); asymmetric pads by a crop.

    The cropped / zero-extended result of the unpadded transposed
    convolution is what ``(lo, hi)`` padding means (SPEC §1); the crop is
    differentiated by autograd too.
    """
    fn = TORCH_FN[case["nd"]]
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    pads, opad = case["pads"], case["output_padding"]
    stride, dilation = case["stride"], case["dilation"]
    if all(lo == hi for lo, hi in pads) and all(
        a < max(s, d) for a, s, d in zip(opad, stride, dilation, strict=True)
    ):
        y = fn(
            tx,
            tw,
            tb,
            stride=tuple(stride),
            padding=tuple(lo for lo, _ in pads),
            output_padding=tuple(opad),
            groups=case["groups"],
            dilation=tuple(dilation),
        )
    else:
        y = fn(
            tx,
            tw,
            None,
            stride=tuple(stride),
            padding=0,
            groups=case["groups"],
            dilation=tuple(dilation),
        )
        widths = []
        index = [slice(None), slice(None)]
        for (lo, hi), a, size in zip(pads, opad, y.shape[2:], strict=True):
            end = hi - a
            widths.append(max(0, -end))
            index.append(slice(lo, size + max(0, -end) - max(0, end)))
        flat = []
        for wd in reversed(widths):
            flat += [0, wd]
        y = F.pad(y, flat)[tuple(index)]
        if tb is not None:
            y = y + tb.reshape((1, -1) + (1,) * case["nd"])
    y.backward(torch.from_numpy(g))
    return (
        y.detach().numpy(),
        tx.grad.numpy(),
        tw.grad.numpy(),
        None if tb is None else tb.grad.numpy(),
    )


def _to_layout(a, channels_last):
    return np.moveaxis(a, 1, -1) if channels_last else a


def _close(name, got, want, rtol=RTOL):
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"{name}: shape {got.shape} != PyTorch {want.shape}"
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    err = float(np.abs(got - want).max(initial=0.0))
    if not err <= rtol * scale:
        return f"{name}: max abs error {err:.3g} (scale {scale:.3g})"
    return None


def _vjp_program(f, with_vmap):
    """The forward and ``jax.vjp`` gradients of ``f(x, w, b)``, and (``with_vmap``) those
    of input and weight again under ``jax.vmap`` over stacked pairs, as one function."""

    def program(x, w, b, g, xb, wb, gb):
        y, vjp = jax.vjp(f, x, w, b)
        dx, dw, db = vjp(g)
        if not with_vmap:
            return y, dx, dw, db

        def one(x, w, g):
            y, vjp = jax.vjp(lambda x, w: f(x, w, b), x, w)
            return (y, *vjp(g))

        yv, dxv, dwv = jax.vmap(one)(xb, wb, gb)
        return y, dx, dw, db, yv, dxv, dwv

    return program


def prepare(case):
    """``(program, args, check)``: the case as one traceable function, its arguments, and
    ``check(outputs) -> problems`` comparing its outputs with PyTorch."""
    if case.get("op", "conv_transpose") == "conv":
        return prepare_conv(case)
    cl = case["channels_last"]
    rng = np.random.default_rng(case["seed"])
    shape_x = (case["batch"], case["c_in"], *case["spatial"])
    shape_w = (case["c_in"], case["c_out"] // case["groups"], *case["kernel"])
    xs = rng.standard_normal((2, *shape_x))
    ws = rng.standard_normal((2, *shape_w))
    b = rng.standard_normal(case["c_out"]) if case["bias"] else None
    gs = rng.standard_normal((2, *output_shape(case)))
    kw = dict(
        stride=tuple(case["stride"]),
        padding=_padding_arg(case["pads"]),
        output_padding=tuple(case["output_padding"]),
        groups=case["groups"],
        dilation=tuple(case["dilation"]),
        channels_last=cl,
        method=case["method"],
    )
    # Stacked pairs for vmap: (2, N, C, *S), or (2, N, *S, C) channels-last.
    xin = np.moveaxis(xs, 2, -1) if cl else xs
    gin = np.moveaxis(gs, 2, -1) if cl else gs

    def f(x, w, b):
        return ct.conv_transpose(x, w, b, **kw)

    program = _vjp_program(f, case.get("vmap", True))

    def check(outputs):
        y, dx, dw, db, *batched = outputs
        want = [torch_vjp(case, xs[i], ws[i], b, gs[i]) for i in range(2 if batched else 1)]
        ty, tdx, tdw, tdb = want[0]
        problems = [
            _close("y", y, _to_layout(ty, cl)),
            _close("dx", dx, _to_layout(tdx, cl)),
            _close("dw", dw, tdw),
        ]
        if b is not None:
            problems.append(_close("db", db, tdb))
        if not batched:
            return [p for p in problems if p]
        yv, dxv, dwv = batched
        for i in range(2):
            ty, tdx, tdw, _ = want[i]
            problems.append(_close(f"vmap y[{i}]", yv[i], _to_layout(ty, cl)))
            problems.append(_close(f"vmap dx[{i}]", dxv[i], _to_layout(tdx, cl)))
            problems.append(_close(f"vmap dw[{i}]", dwv[i], tdw))
        return [p for p in problems if p]

    bj = None if b is None else jnp.asarray(b)
    return program, (xin[0], ws[0], bj, gin[0], xin, ws, gin), check


def _padding_value(padding):
    """A case's ``padding`` (JSON) as the public functions take it: lists become tuples."""
    if isinstance(padding, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in padding)
    return padding


def torch_conv_vjp(case, x, w, b, g):
    """PyTorch's forward and gradients of a regular convolution (batched, channels-first,
    float64): ``F.conv{1,2,3}d`` with its own ``padding`` where it has the case's (zeros:
    one int, symmetric ints, ``"same"``, ``"valid"``), else the input padded by ``F.pad``
    with the mode first, as ``torch.nn.Conv*d`` does, and convolved without padding."""
    fn = TORCH_CONV[case["nd"]]
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    mode, padding, pads = case["padding_mode"], case["padding"], case["pads"]
    kw = dict(stride=tuple(case["stride"]), dilation=tuple(case["dilation"]), groups=case["groups"])
    if mode == "zeros" and (isinstance(padding, (str, int)) or all(lo == hi for lo, hi in pads)):
        torch_padding = padding if isinstance(padding, (str, int)) else tuple(lo for lo, _ in pads)
        y = fn(tx, tw, tb, padding=torch_padding, **kw)
    else:
        flat = [v for lo, hi in reversed(pads) for v in (lo, hi)]
        xp = F.pad(tx, flat, mode="constant" if mode == "zeros" else mode)
        y = fn(xp, tw, tb, padding=0, **kw)
    y.backward(torch.from_numpy(g))
    return (
        y.detach().numpy(),
        tx.grad.numpy(),
        tw.grad.numpy(),
        None if tb is None else tb.grad.numpy(),
    )


def prepare_conv(case):
    """:func:`prepare` for a regular convolution (``"op": "conv"``): ``convt_jax.conv`` (or
    ``conv1d/2d/3d``) in the case's ``dtype``, batched or not, against PyTorch in float64 on
    the same (rounded) inputs, and the output shape against ``conv_output_shape``."""
    cl, batched, nd = case["channels_last"], case["batched"], case["nd"]
    dtype = np.dtype(case["dtype"])
    rtol = RTOL_FLOAT32 if dtype == np.float32 else RTOL
    rng = np.random.default_rng(case["seed"])
    # PyTorch's shapes (batched, channels first); an unbatched case uses the first sample.
    shape_x = (case["batch"] if batched else 1, case["c_in"], *case["spatial"])
    shape_w = (case["c_out"], case["c_in"] // case["groups"], *case["kernel"])
    settings = dict(
        stride=tuple(case["stride"]),
        padding=_padding_value(case["padding"]),
        dilation=tuple(case["dilation"]),
        groups=case["groups"],
    )
    shape_y = ct.conv_output_shape(shape_x, shape_w, **settings)
    xs = rng.standard_normal((2, *shape_x)).astype(dtype)
    ws = rng.standard_normal((2, *shape_w)).astype(dtype)
    b = rng.standard_normal(case["c_out"]).astype(dtype) if case["bias"] else None
    gs = rng.standard_normal((2, *shape_y)).astype(dtype)

    def layout(a):
        """A batched channels-first array as the call takes or gives it."""
        a = a if batched else a[0]
        return np.moveaxis(a, 1 if batched else 0, -1) if cl else a

    xin = np.stack([layout(a) for a in xs])
    gin = np.stack([layout(a) for a in gs])
    kw = dict(settings, padding_mode=case["padding_mode"], channels_last=cl, method=case["method"])
    fn = CT_CONV[nd] if case["seed"] % 2 else ct.conv

    def f(x, w, b):
        return fn(x, w, b, **kw)

    program = _vjp_program(f, case.get("vmap", True))

    def check(outputs):
        y, dx, dw, db, *batched_out = outputs
        f64 = np.float64
        b64 = None if b is None else b.astype(f64)
        want = [
            torch_conv_vjp(case, xs[i].astype(f64), ws[i].astype(f64), b64, gs[i].astype(f64))
            for i in range(2 if batched_out else 1)
        ]
        problems = []
        shape = ct.conv_output_shape(xin[0].shape, shape_w, **settings, channels_last=cl)
        if tuple(y.shape) != tuple(shape):
            problems.append(f"y: shape {tuple(y.shape)} != conv_output_shape {tuple(shape)}")
        if y.dtype != dtype:
            problems.append(f"y: dtype {y.dtype} != {dtype}")
        ty, tdx, tdw, tdb = want[0]
        problems += [
            _close("y", y, layout(ty), rtol),
            _close("dx", dx, layout(tdx), rtol),
            _close("dw", dw, tdw, rtol),
        ]
        if b is not None:
            problems.append(_close("db", db, tdb, rtol))
        if batched_out:
            yv, dxv, dwv = batched_out
            for i in range(2):
                ty, tdx, tdw, _ = want[i]
                problems.append(_close(f"vmap y[{i}]", yv[i], layout(ty), rtol))
                problems.append(_close(f"vmap dx[{i}]", dxv[i], layout(tdx), rtol))
                problems.append(_close(f"vmap dw[{i}]", dwv[i], tdw, rtol))
        return [p for p in problems if p]

    bj = None if b is None else jnp.asarray(b)
    return program, (xin[0], ws[0], bj, gin[0], xin, ws, gin), check


def run_group(cases):
    """Compile the cases' programs as one ``jax.jit`` program and run it; one result per case.

    ``--group 1`` (the default) gives each case its own program, so an abort names its
    case; larger groups measured no faster on XLA:CPU (compile time grows with the
    program).
    """
    prepared = []
    results = [None] * len(cases)
    for i, case in enumerate(cases):
        try:
            prepared.append((i, *prepare(case)))
        except ValueError as e:
            results[i] = {"status": "rejected", "detail": f"ValueError: {e}"[:500]}

    args = [a for _, _, a, _ in prepared]
    try:
        outs = jax.device_get(
            jax.jit(lambda *a: [p(*x) for (_, p, _, _), x in zip(prepared, a, strict=True)])(*args)
        )
    except Exception:
        if len(cases) == 1:
            raise
        # One case's error (an explicit method refusing, ...) must not hide the others.
        return [run_group([c])[0] for c in cases]
    for (i, _, _, check), out in zip(prepared, outs, strict=True):
        problems = check(out)
        results[i] = (
            {"status": "mismatch", "detail": "; ".join(problems)} if problems else {"status": "ok"}
        )
    return results


def output_shape(case):
    """Channels-first output shape from SPEC §1's length formula."""
    out = [
        (n - 1) * s - lo - hi + d * (k - 1) + a + 1
        for n, k, s, d, (lo, hi), a in zip(
            case["spatial"],
            case["kernel"],
            case["stride"],
            case["dilation"],
            case["pads"],
            case["output_padding"],
            strict=True,
        )
    ]
    return (case["batch"], case["c_out"], *out)


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="?", help="JSON file with a list of cases (default: stdin)")
    parser.add_argument(
        "--group", type=int, default=1, help="cases compiled together as one program (default 1)"
    )
    opts = parser.parse_args(argv[1:])
    text = open(opts.cases).read() if opts.cases else sys.stdin.read()
    cases = json.loads(text)
    for start in range(0, len(cases), opts.group):
        group = cases[start : start + opts.group]
        t0 = time.perf_counter()
        for case in group:
            print("START " + json.dumps(case, sort_keys=True), flush=True)
        try:
            results = run_group(group)
        except ValueError as e:
            results = [{"status": "rejected", "detail": f"ValueError: {e}"[:500]}]
        except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the test
            results = [
                {
                    "status": "error",
                    "detail": f"{type(e).__name__}: {e}"[:500]
                    + " | "
                    + traceback.format_exc(limit=3)[-600:],
                }
            ]
        seconds = round((time.perf_counter() - t0) / len(group), 3)
        for case, result in zip(group, results, strict=True):
            print(
                "DONE " + json.dumps({"case": case, "seconds": seconds, **result}, sort_keys=True),
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv)
