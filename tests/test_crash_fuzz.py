"""Compile-and-run fuzz of valid configurations, each batch of cases in a child process.

An XLA compile-time abort (a failed ``CHECK`` in an HLO pass) kills the
Python interpreter, so a fuzz that compiles in the pytest process would
take the whole run down instead of failing one test.  Here every batch of
cases runs in ``tests/crash_fuzz_child.py``, which prints ``START <case>``
before and ``DONE <result>`` after each case.  When the child dies, the case
it last started is recorded as an abort (with the child's last stderr lines)
and the cases after it run in a fresh child, so one abort hides no other.

The cases are valid configurations drawn deterministically from a seed,
biased to the corners where XLA's convolution passes are fragile: 1-3
spatial axes, size-1 and tiny spatial axes, kernels larger than the input,
stride and dilation together, output padding, asymmetric ``(lo, hi)``
padding, groups and depthwise, both layouts and every ``method``.  Each
case is the forward and ``jax.vjp`` gradients of input, weight and bias
(every ``VMAP_EVERY``-th case also both again under ``jax.vmap``), all in
one ``jax.jit`` program, compared with PyTorch in float64.  An explicit
method that does not apply may raise the registry's ``ValueError``; any
other exception, a wrong number, and above all an abort fail the test.

Every other drawn case is a regular convolution (``convt_jax.conv`` or
``conv1d/2d/3d``, computed by the transposed convolution's maps) instead:
the same corners plus every padding spelling (``(lo, hi)`` pairs, per-axis
ints, one int, ``"same"``, ``"valid"``), every ``padding_mode`` and unbatched
inputs, in float64 or float32 (always for ``method="onednn"``: oneDNN's
kernels, on by default, never see float64), against
``torch.nn.functional.conv{1,2,3}d`` in float64 on the same inputs, its
shape against ``conv_output_shape``.  The budget is split, not doubled:
``N_CASES`` in all.

``pytest --slow`` (or ``HYPOTHESIS_PROFILE=dev``) runs ten times as many
cases, like the argument fuzz of tests/test_fuzz.py; ``CONVT_JAX_CRASH_FUZZ_CASES=N``
sets the number directly.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from convt_jax import _args, _methods
from convt_jax._geometry import Config, crop_from_padding

CHILD = Path(__file__).with_name("crash_fuzz_child.py")
METHODS = _methods.METHODS  # every method of the registry, "auto" first
_SCALE = max(1, settings().max_examples // 60)
# About 0.6 s a case on a quiet 2-core machine (one small jit program each, compiled and
# run, PyTorch's reference included), plus the children's start-up: the default fits in
# about two minutes; --slow runs ten times as many.
N_CASES = int(os.environ.get("CONVT_JAX_CRASH_FUZZ_CASES", 160 * _SCALE))
PER_CHILD = 60
VMAP_EVERY = 4  # every 4th case also runs under jax.vmap
REFUSED_SHARE = 0.1  # cases drawn whatever the method can compute
SEED = 20261129
CHILD_TIMEOUT_S = 900
# The drawn cases are split between the two operations (the budget is N_CASES in all):
# every other case is a regular convolution (``convt_jax.conv*``, drawn from its own stream
# seeded SEED + 1, so the transposed cases are the same draws as before the split).
CONV_EVERY = 2
# A regular-convolution case runs in float32 (oneDNN's kernels where they apply: float64
# never reaches them) with this probability per method, else in float64.
FLOAT32_SHARE = {"onednn": 1.0, "auto": 0.5}
FLOAT32_SHARE_OTHERS = 0.2
PADDING_MODES = _args.PADDING_MODES

# Configurations that aborted XLA:CPU (jaxlib 0.10.2): always run, before the drawn ones.
# The class: an lhs-dilated convolution with an axis of kernel size 2, lhs dilation 2, no
# kernel dilation and zero padding (a transposed-convolution axis with K = s = 2, d = 1,
# padding 1, output_padding 0) and an input length other than 2 on it, whose other axes
# hold a kernel larger than the input, so that XLA swaps the operands.
REGRESSIONS = [
    # conv_transpose3d(ones((1, 2, 3, 4, 1)), ones((2, 2, 2, 3, 4)), None, 2, 1,
    # dilation=(1, 2, 2)), as first reported.
    dict(
        nd=3,
        batch=1,
        c_in=2,
        c_out=2,
        groups=1,
        spatial=[3, 4, 1],
        kernel=[2, 3, 4],
        stride=[2, 2, 2],
        dilation=[1, 2, 2],
        pads=[[1, 1]] * 3,
        output_padding=[0, 0, 0],
        channels_last=False,
        bias=False,
        method=m,
        seed=0,
    )
    for m in METHODS
] + [
    # The smallest public form: conv_transpose2d(x (1, 1, 3, 2), w (1, 1, 2, 3),
    # stride=(2, 1), padding=(1, 0)).
    dict(
        nd=2,
        batch=1,
        c_in=1,
        c_out=1,
        groups=1,
        spatial=[3, 2],
        kernel=[2, 3],
        stride=[2, 1],
        dilation=[1, 1],
        pads=[[1, 1], [0, 0]],
        output_padding=[0, 0],
        channels_last=False,
        bias=False,
        method=m,
        seed=0,
    )
    for m in METHODS
]


def _out_length(n, k, s, d, lo, hi, a):
    return (n - 1) * s - lo - hi + d * (k - 1) + a + 1


def _applies(case: dict) -> bool:
    """Whether the registry says the case's method can compute its configuration."""
    if case["method"] == "auto":
        return True
    config = Config(
        stride=tuple(case["stride"]),
        dilation=tuple(case["dilation"]),
        crops=tuple(
            crop_from_padding(tuple(p), a)
            for p, a in zip(case["pads"], case["output_padding"], strict=True)
        ),
        groups=case["groups"],
        channels_last=case["channels_last"],
        flip=False,
        precision=None,
        preferred_element_type=None,
    )
    x_shape = (case["batch"], case["c_in"], *case["spatial"])
    w_shape = (case["c_in"], case["c_out"] // case["groups"], *case["kernel"])
    return _methods.reasons(config, x_shape, w_shape)[case["method"]] is None


def draw_case(r: random.Random, method: str) -> dict:
    """One valid configuration (SPEC §3 rules) that ``method`` can compute (one in
    ``REFUSED_SHARE`` it may not: the refusal is tested too), biased to small and
    degenerate axes."""
    refused_ok = r.random() < REFUSED_SHARE
    while True:
        case = _draw_any(r, method)
        if refused_ok or _applies(case):
            return case


def _draw_any(r: random.Random, method: str) -> dict:
    while True:
        nd = r.choice((1, 1, 2, 2, 2, 3, 3))
        kind = r.choice(("dense", "dense", "grouped", "depthwise"))
        if kind == "dense":
            groups, c_in, c_out = 1, r.randint(1, 3), r.randint(1, 3)
        elif kind == "grouped":
            groups = r.randint(2, 3)
            c_in, c_out = groups * r.randint(1, 2), groups * r.randint(1, 2)
        else:
            groups = c_in = r.randint(2, 3)
            c_out = c_in * r.randint(1, 2)
        big = {1: 7, 2: 5, 3: 4}[nd]
        spatial, kernel, stride, dilation, pads, opad = [], [], [], [], [], []
        for _ in range(nd):
            n = r.choice((1, 1, 2, 3, r.randint(1, big)))
            s = r.choice((1, 1, 2, 2, 3, r.randint(1, 5)))
            # K == s (the usual upsampling layer) often; else small, or larger than the input.
            k = s if r.random() < 0.3 else r.choice((1, 2, 3, r.randint(1, big + 1)))
            d = r.choice((1, 1, 2, 3, r.randint(1, 4)))
            if r.random() < 0.25:
                # Crop the dilated kernel's whole reach (lax padding d*(K - 1) - lo near 0):
                # the padding XLA's convolution rewrites treat as a special case.
                lo = d * (k - 1) + r.choice((0, 0, -1, 1))
                hi = lo if r.random() < 0.6 else d * (k - 1) + r.choice((0, -1, 1))
                lo, hi = max(lo, 0), max(hi, 0)
            else:
                lo = r.choice((0, 0, 1, r.randint(0, 4)))
                hi = lo if r.random() < 0.6 else r.randint(0, 4)
            a = r.randint(0, max(s, d) - 1) if r.random() < 0.4 else 0
            spatial.append(n), kernel.append(k), stride.append(s), dilation.append(d)
            pads.append([lo, hi]), opad.append(a)
        if r.random() < 0.25:
            # A non-overlapping upsampling axis (K == s, d == 1) cropped by its whole reach:
            # a convolution axis XLA's rewrites treat as a special case.
            a0 = r.randrange(nd)
            kernel[a0] = stride[a0] = r.choice((2, 2, 3))
            dilation[a0], pads[a0], opad[a0] = 1, [kernel[a0] - 1] * 2, 0
        lengths = [
            _out_length(*v, lo, hi, a)
            for v, (lo, hi), a in zip(
                zip(spatial, kernel, stride, dilation, strict=True), pads, opad, strict=True
            )
        ]
        if all(o >= 1 for o in lengths) and all(o <= 64 for o in lengths):
            return dict(
                nd=nd,
                batch=r.randint(1, 2),
                c_in=c_in,
                c_out=c_out,
                groups=groups,
                spatial=spatial,
                kernel=kernel,
                stride=stride,
                dilation=dilation,
                pads=pads,
                output_padding=opad,
                channels_last=r.random() < 0.5,
                bias=r.random() < 0.5,
                method=method,
                seed=r.randint(0, 2**31),
            )


def padding_value(padding):
    """A case's ``padding`` (JSON) as the public functions take it: lists become tuples."""
    if isinstance(padding, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in padding)
    return padding


def _conv_bound(case: dict):
    """``convt_jax.conv``'s argument checks on the case's shapes (a ``ValueError`` if the
    case is not a valid call): its ``ConvBound``."""
    cl = case["channels_last"]
    lead = (case["batch"],) if case["batched"] else ()
    spatial = tuple(case["spatial"])
    x_shape = lead + (spatial + (case["c_in"],) if cl else (case["c_in"], *spatial))
    w_shape = (case["c_out"], case["c_in"] // case["groups"], *case["kernel"])
    bound = _args.parse_conv(
        x_shape,
        w_shape,
        (case["c_out"],) if case["bias"] else None,
        tuple(case["stride"]),
        padding_value(case["padding"]),
        tuple(case["dilation"]),
        case["groups"],
        cl,
        None,
        None,
        case["padding_mode"],
    )
    return bound, w_shape


def _conv_applies(case: dict) -> bool:
    """Whether the registry says the case's method can compute this regular convolution
    (the transposed convolution whose input gradient it is, as ``convt_jax._conv._conv``
    asks)."""
    if case["method"] == "auto":
        return True
    bound, w_shape = _conv_bound(case)
    config = bound.config
    if bound.padding_mode != "zeros" and any(lo or hi for lo, hi in bound.padding):
        # The input is padded with the mode; the convolution then has no zero padding.
        config = config._replace(
            crops=tuple(
                (0, hi - p_hi)
                for (_, hi), (_, p_hi) in zip(config.crops, bound.padding, strict=True)
            )
        )
    out = bound.out_shape if bound.batched else (1, *bound.out_shape)
    return _methods.reasons(config, out, w_shape)[case["method"]] is None


def draw_conv_case(r: random.Random, method: str) -> dict:
    """One valid regular convolution (``convt_jax.conv*``) that ``method`` can compute (one
    in ``REFUSED_SHARE`` it may not), biased like :func:`draw_case` to small and degenerate
    axes: every padding spelling (pairs, per-axis ints, one int, ``"same"``, ``"valid"``),
    every padding mode, unbatched inputs, float32 (oneDNN) and float64."""
    refused_ok = r.random() < REFUSED_SHARE
    while True:
        case = _draw_any_conv(r, method)
        if refused_ok or _conv_applies(case):
            return case


def _draw_any_conv(r: random.Random, method: str) -> dict:
    while True:
        nd = r.choice((1, 1, 2, 2, 2, 3, 3))
        kind = r.choice(("dense", "dense", "grouped", "depthwise"))
        if kind == "dense":
            groups, c_in, c_out = 1, r.randint(1, 3), r.randint(1, 3)
        elif kind == "grouped":
            groups = r.randint(2, 3)
            c_in, c_out = groups * r.randint(1, 2), groups * r.randint(1, 2)
        else:
            groups = c_in = r.randint(2, 3)
            c_out = c_in * r.randint(1, 2)
        big = {1: 9, 2: 6, 3: 4}[nd]
        form = r.choice(("pairs", "pairs", "ints", "int", "same", "valid"))
        mode = r.choice(("zeros", "zeros", "zeros") + PADDING_MODES[1:])
        p_int = r.choice((0, 1, 2, r.randint(0, 4)))
        spatial, kernel, stride, dilation, pads = [], [], [], [], []
        for _ in range(nd):
            n = r.choice((1, 1, 2, 3, r.randint(1, big)))
            s = 1 if form == "same" else r.choice((1, 1, 2, 2, 3, r.randint(1, 5)))
            # A kernel as long as the input (one output position) often; else small, or
            # longer than the input (the padding makes up the difference).
            k = n if r.random() < 0.2 else r.choice((1, 2, 3, r.randint(1, big + 1)))
            d = r.choice((1, 1, 2, 3, r.randint(1, 4)))
            reach = d * (k - 1)
            if form == "same":
                lo, hi = reach // 2, reach - reach // 2
            elif form == "valid":
                lo = hi = 0
            elif form == "int":
                lo = hi = p_int
            elif r.random() < 0.25:
                # Padding the dilated kernel's whole reach (as many outputs as inputs at
                # stride 1, or one more or fewer).
                lo = max(0, reach + r.choice((0, 0, -1, 1)))
                same_hi = form == "ints" or r.random() < 0.6
                hi = lo if same_hi else max(0, reach + r.choice((0, -1, 1)))
            else:
                lo = r.choice((0, 0, 1, r.randint(0, 4)))
                hi = lo if form == "ints" or r.random() < 0.6 else r.randint(0, 4)
            spatial.append(n), kernel.append(k), stride.append(s), dilation.append(d)
            pads.append([lo, hi])
        axes = list(zip(spatial, kernel, stride, dilation, pads, strict=True))
        if any(n + lo + hi < d * (k - 1) + 1 for n, k, s, d, (lo, hi) in axes):
            continue  # the dilated kernel is longer than the padded input
        if mode == "reflect" and any(max(p) >= n for n, *_, p in axes):
            continue  # a reflection cannot reach further than the input
        if mode == "circular" and any(max(p) > n for n, *_, p in axes):
            continue  # nor can the padding wrap around more than once
        if form in ("same", "valid"):
            padding = form
        elif form == "int":
            padding = p_int
        elif form == "ints":
            padding = [lo for lo, _ in pads]
        else:
            padding = pads
        f32 = r.random() < FLOAT32_SHARE.get(method, FLOAT32_SHARE_OTHERS)
        return dict(
            op="conv",
            nd=nd,
            batched=r.random() < 0.85,
            batch=r.randint(1, 2),
            c_in=c_in,
            c_out=c_out,
            groups=groups,
            spatial=spatial,
            kernel=kernel,
            stride=stride,
            dilation=dilation,
            padding=padding,
            pads=pads,
            padding_mode=mode,
            channels_last=r.random() < 0.5,
            bias=r.random() < 0.5,
            dtype="float32" if f32 else "float64",
            method=method,
            seed=r.randint(0, 2**31),
        )


def draw_cases(n: int, seed: int = SEED) -> list[dict]:
    """``n`` cases: every ``CONV_EVERY``-th a regular convolution, the others transposed
    ones; each operation cycles through every method and also runs every ``VMAP_EVERY``-th
    of its cases under ``jax.vmap``."""
    r, r_conv = random.Random(seed), random.Random(seed + 1)
    cases, counts = [], {"conv_transpose": 0, "conv": 0}
    for i in range(n):
        op = "conv" if i % CONV_EVERY == CONV_EVERY - 1 else "conv_transpose"
        j = counts[op]
        counts[op] += 1
        method = METHODS[j % len(METHODS)]
        case = draw_conv_case(r_conv, method) if op == "conv" else draw_case(r, method)
        cases.append(dict(case, op=op, vmap=j % VMAP_EVERY == 0))
    return cases


def run_in_children(cases: list[dict], timeout: float = CHILD_TIMEOUT_S):
    """Run ``cases`` in as many children as aborts need; ``(results, aborts)``.

    ``results`` are the children's ``DONE`` records; ``aborts`` are
    ``(case, returncode, stderr tail)`` for each case a child died in.
    """
    results, aborts = [], []
    todo = list(cases)
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    while todo:
        proc = subprocess.run(
            [sys.executable, str(CHILD)],
            input=json.dumps(todo),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(CHILD.parent.parent),
        )
        started, done = None, 0
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                started = json.loads(line[6:])
            elif line.startswith("DONE "):
                results.append(json.loads(line[5:]))
                started, done = None, done + 1
        if proc.returncode == 0 and done == len(todo):
            break
        tail = "\n".join(proc.stderr.strip().splitlines()[:6])
        if started is None:  # died outside a case (import error, ...): nothing to resume
            aborts.append((None, proc.returncode, proc.stderr[-2000:]))
            break
        aborts.append((started, proc.returncode, tail))
        todo = todo[done + 1 :]
    return results, aborts


def _describe(case) -> str:
    if case is None:
        return "(no case)"
    return json.dumps(case, sort_keys=True)


def _check(cases):
    results, aborts = run_in_children(cases)
    failures = [f"ABORT (rc {rc}) in case {_describe(c)}\n    {tail}" for c, rc, tail in aborts]
    for res in results:
        status, method = res["status"], res["case"]["method"]
        # An explicit method may refuse a configuration it cannot compute (the registry's
        # ValueError, convt_jax/_methods.py); "auto" and "dilated" compute every valid one.
        refusal = f"ValueError: method={method!r} cannot compute this configuration: "
        if status == "ok" or (
            status == "rejected"
            and method not in ("auto", "dilated")
            and res["detail"].startswith(refusal)
        ):
            continue
        failures.append(f"{status.upper()} in case {_describe(res['case'])}: {res['detail']}")
    ran = len(results) + len(aborts)
    assert ran == len(cases), f"{ran} of {len(cases)} cases accounted for"
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)


@pytest.mark.slow  # child processes, 10 s of a worker
def test_regressions():
    """Configurations that aborted XLA:CPU before, every method."""
    _check(REGRESSIONS)


# Second-order derivatives: JAX transposes the hand-written dx rule (a strided convolution)
# into an lhs-dilated one, which aborted XLA:CPU on an axis with K = s = 2, d = 1, padding 1.
SECOND_ORDER = """
import jax, jax.numpy as jnp, numpy as np, torch
jax.config.update("jax_enable_x64", True)
import convt_jax as ct
rng = np.random.default_rng(0)
x, w = rng.standard_normal((1, 1, 3, 2)), rng.standard_normal((1, 1, 2, 3))
for method in ("dilated", "auto"):
    f = lambda x, w: ct.conv_transpose2d(x, w, None, (2, 1), (1, 0), method=method)
    y, vjp = jax.vjp(f, x, w)
    g = rng.standard_normal(y.shape)
    # d/dg of sum(dx * v) is the transpose of the dx rule applied to v
    v = rng.standard_normal(x.shape)
    got = jax.jit(jax.grad(lambda g: jnp.sum(vjp(g)[0] * v)))(g)
    tx = torch.tensor(x); tw = torch.tensor(w)
    want = torch.nn.functional.conv_transpose2d(torch.tensor(v), tw, None, (2, 1), (1, 0))
    assert np.allclose(got, want.numpy(), atol=1e-12), (method, got, want)
    hess = jax.jit(jax.hessian(lambda x: jnp.sum(f(x, w) ** 2)))(x)
    assert hess.shape == x.shape * 2 and np.isfinite(hess).all()
print("OK")
"""


@pytest.mark.slow  # a child process, 5 s of a worker
def test_second_order_derivatives_compile():
    """jax.hessian and the gradient of a vjp with respect to the cotangent, in a child: no
    abort, and d/dg <dx(g), v> is the transposed convolution of v (PyTorch)."""
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run(
        [sys.executable, "-c", SECOND_ORDER],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        env=env,
        cwd=str(CHILD.parent.parent),
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), (
        f"child exited {proc.returncode}:\n{proc.stderr[-2000:]}"
    )


@pytest.mark.slow  # the drawn cases: CI's slow tier; the regressions run in the default one
@pytest.mark.long
@pytest.mark.parametrize("chunk", range(-(-N_CASES // PER_CHILD)))
def test_crash_fuzz(chunk):
    """Cases ``chunk*PER_CHILD ...`` of the seeded draw: no abort, no error, PyTorch's numbers."""
    cases = draw_cases(N_CASES)[chunk * PER_CHILD : (chunk + 1) * PER_CHILD]
    print(
        f"crash fuzz: cases {chunk * PER_CHILD}..{chunk * PER_CHILD + len(cases) - 1} "
        f"of {N_CASES} (seed {SEED})"
    )
    _check(cases)


def test_draw_is_valid_and_covers_the_corners():
    """The draw is deterministic and reaches the configurations it is meant to stress."""
    everything = draw_cases(N_CASES)
    assert everything == draw_cases(N_CASES)
    cases = [c for c in everything if c["op"] == "conv_transpose"]
    convs = [c for c in everything if c["op"] == "conv"]
    assert abs(len(convs) - len(everything) / CONV_EVERY) < 1
    axes = [
        (n, k, s, d, tuple(p), a)
        for c in cases
        for n, k, s, d, p, a in zip(
            c["spatial"],
            c["kernel"],
            c["stride"],
            c["dilation"],
            c["pads"],
            c["output_padding"],
            strict=True,
        )
    ]
    assert all(
        _out_length(n, k, s, d, lo, hi, a) >= 1 and a < max(s, d)
        for n, k, s, d, (lo, hi), a in axes
    )
    assert any(n == 1 and s > 1 and d > 1 for n, k, s, d, _, _ in axes)
    assert any(k > n for n, k, *_ in axes)
    assert any(k == s > 1 for n, k, s, *_ in axes)
    assert any(lo != hi for *_, (lo, hi), _ in axes)
    assert any(a > 0 for *_, a in axes)
    assert any(c["groups"] == c["c_in"] > 1 for c in cases)
    assert any(1 < c["groups"] < c["c_in"] for c in cases)
    assert {c["nd"] for c in cases} == {1, 2, 3}
    assert {c["method"] for c in cases} == set(METHODS)
    assert {c["channels_last"] for c in cases} == {False, True}
    assert {c["vmap"] for c in cases} == {False, True}

    # The regular convolutions: valid calls (convt_jax's own checks accept them, with the
    # output size of PyTorch's formula), and the corners.
    conv_axes = []
    for c in convs:
        bound, _ = _conv_bound(c)
        assert [list(p) for p in bound.padding] == c["pads"]
        axes = list(
            zip(c["spatial"], c["kernel"], c["stride"], c["dilation"], c["pads"], strict=True)
        )
        out = [(n + lo + hi - d * (k - 1) - 1) // s + 1 for n, k, s, d, (lo, hi) in axes]
        first = len(bound.out_shape) - c["nd"] - (1 if c["channels_last"] else 0)
        assert list(bound.out_shape[first : first + c["nd"]]) == out and min(out) >= 1
        conv_axes += axes
    assert any(n == 1 and s > 1 and d > 1 for n, k, s, d, _ in conv_axes)
    assert any(k > n for n, k, *_ in conv_axes)
    assert any(lo != hi for *_, (lo, hi) in conv_axes)
    assert {type(c["padding"]).__name__ for c in convs} == {"str", "int", "list"}
    assert {c["padding"] for c in convs if isinstance(c["padding"], str)} == {"same", "valid"}
    assert {c["padding_mode"] for c in convs} == set(PADDING_MODES)
    assert any(c["groups"] == c["c_in"] > 1 for c in convs)
    assert any(1 < c["groups"] < c["c_in"] for c in convs)
    assert {c["nd"] for c in convs} == {1, 2, 3}
    assert {c["method"] for c in convs} == set(METHODS)
    assert {c["dtype"] for c in convs} == {"float32", "float64"}
    assert {c["dtype"] for c in convs if c["method"] == "onednn"} == {"float32"}
    for key in ("channels_last", "batched", "bias", "vmap"):
        assert {c[key] for c in convs} == {False, True}, key
