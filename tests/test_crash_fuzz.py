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

from convt_jax import _methods
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


def draw_cases(n: int, seed: int = SEED) -> list[dict]:
    r = random.Random(seed)
    return [
        dict(draw_case(r, METHODS[i % len(METHODS)]), vmap=i % VMAP_EVERY == 0) for i in range(n)
    ]


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
    cases = draw_cases(N_CASES)
    assert cases == draw_cases(N_CASES)
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
