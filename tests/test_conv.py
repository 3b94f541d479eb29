"""The regular convolution (SPEC §8): PyTorch's ``conv{1,2,3}d``, the adjoint of the
transposed convolution.

Values and gradients against PyTorch in float64 over random configurations, float32 and
the other dtypes, every ``padding_mode`` against ``torch.nn.Conv*d``, the shape helper,
accept / reject parity with PyTorch, the adjoint identity, transformations (jit, grad of
grad, vmap, jvp, hessian), NaN / Inf patterns and the oneDNN lowering on CPU.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads

import convt_jax as ct
from convt_jax import _conv

F = torch.nn.functional
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
OURS = {1: ct.conv1d, 2: ct.conv2d, 3: ct.conv3d}
TOL64 = 1e-10


# --- configurations -----------------------------------------------------------------------


def _config(seed: int) -> dict:
    """A random, valid configuration: rank 1-3, groups (depthwise included), stride,
    dilation, every padding spelling, channels_last, unbatched."""
    r = np.random.default_rng(seed)
    n = int(r.integers(1, 4))
    g = int(r.choice([1, 1, 2, 3]))
    depthwise = bool(r.random() < 0.25)
    c_in = g if depthwise else g * int(r.integers(1, 3))
    c_out = g * int(r.integers(1, 3))
    kernel = tuple(int(k) for k in r.integers(1, 4, n))
    dilation = tuple(int(d) for d in r.integers(1, 3, n))
    kind = ["int", "tuple", "pairs", "same", "valid"][seed % 5]
    stride = (1,) * n if kind == "same" else tuple(int(s) for s in r.integers(1, 4, n))
    if kind == "int":
        padding = int(r.integers(0, 3))
    elif kind == "tuple":
        padding = tuple(int(p) for p in r.integers(0, 3, n))
    elif kind == "pairs":
        padding = tuple((int(lo), int(hi)) for lo, hi in r.integers(0, 3, (n, 2)))
    else:
        padding = kind
    spatial = tuple(
        int(d * (k - 1) + 1 + r.integers(0, 5 if n < 3 else 3))
        for k, d in zip(kernel, dilation, strict=True)
    )
    batched = bool(r.random() < 0.8)
    return dict(
        n=n,
        batch=int(r.integers(1, 3)) if batched else 1,
        c_in=c_in,
        c_out=c_out,
        kernel=kernel,
        spatial=spatial,
        kw=dict(stride=stride, padding=padding, dilation=dilation, groups=g),
        channels_last=bool(r.random() < 0.3),
        batched=batched,
        bias=bool(r.random() < 0.7),
    )


def _arrays(cfg: dict, seed: int = 0, dtype=np.float64):
    r = np.random.default_rng(seed)
    g = cfg["kw"]["groups"]
    x = r.standard_normal((cfg["batch"], cfg["c_in"], *cfg["spatial"])).astype(dtype)
    w = r.standard_normal((cfg["c_out"], cfg["c_in"] // g, *cfg["kernel"])).astype(dtype)
    b = r.standard_normal(cfg["c_out"]).astype(dtype) if cfg["bias"] else None
    return x, w, b


def _to_layout(a: np.ndarray, cfg: dict) -> np.ndarray:
    """A batched channels-first array in the call's layout (channels last, unbatched)."""
    if cfg["channels_last"]:
        a = np.moveaxis(a, 1, -1)
    return a if cfg["batched"] else a[0]


def _from_layout(a, cfg: dict) -> np.ndarray:
    a = np.asarray(a)
    if not cfg["batched"]:
        a = a[None]
    return np.moveaxis(a, -1, 1) if cfg["channels_last"] else a


def _torch_pads(padding, n: int, kernel, dilation):
    """PyTorch's F.pad widths (last axis first) for any of our paddings, or None."""
    if isinstance(padding, str):
        if padding == "valid":
            return None
        pairs = [
            (d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
            for k, d in zip(kernel, dilation, strict=True)
        ]
    elif isinstance(padding, int):
        pairs = [(padding, padding)] * n
    else:
        pairs = [p if isinstance(p, tuple) else (p, p) for p in padding]
    return [v for lo, hi in reversed(pairs) for v in (lo, hi)]


def _torch_conv(cfg, x, w, b, *, padding_mode="zeros"):
    """PyTorch's convolution of channels-first batched float arrays: F.conv after F.pad
    (zeros or the mode), which is what torch.nn.Conv*d does and covers asymmetric pairs."""
    kw = dict(cfg["kw"])
    n = cfg["n"]
    tx = torch.from_numpy(x).requires_grad_()
    tw = torch.from_numpy(w).requires_grad_()
    tb = None if b is None else torch.from_numpy(b).requires_grad_()
    pads = _torch_pads(kw.pop("padding"), n, cfg["kernel"], kw["dilation"])
    xin = tx
    if pads is not None:
        mode = "constant" if padding_mode == "zeros" else padding_mode
        xin = F.pad(tx, pads, mode=mode)
    y = TORCH_CONV[n](xin, tw, tb, padding=0, **kw)
    return y, (tx, tw, tb)


def _check_against_torch(cfg, dtype=np.float64, rtol=TOL64, atol=TOL64, padding_mode="zeros"):
    x, w, b = _arrays(cfg, dtype=dtype)
    ty, leaves = _torch_conv(cfg, x, w, b, padding_mode=padding_mode)
    gy = np.random.default_rng(1).standard_normal(tuple(ty.shape)).astype(dtype)
    (ty * torch.from_numpy(gy)).sum().backward()

    def f(x, w, b):
        return OURS[cfg["n"]](
            x, w, b, **cfg["kw"], channels_last=cfg["channels_last"], padding_mode=padding_mode
        )

    xl = _to_layout(x, cfg)
    y, vjp = jax.vjp(f, xl, w, b)
    assert y.dtype == dtype
    np.testing.assert_allclose(_from_layout(y, cfg), ty.detach().numpy(), rtol=rtol, atol=atol)
    dx, dw, db = vjp(jnp.asarray(_to_layout(gy, cfg)))
    np.testing.assert_allclose(_from_layout(dx, cfg), leaves[0].grad.numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(dw), leaves[1].grad.numpy(), rtol=rtol, atol=atol)
    if b is not None:
        np.testing.assert_allclose(np.asarray(db), leaves[2].grad.numpy(), rtol=rtol, atol=atol)


SEEDS = range(30)


@pytest.mark.parametrize("seed", SEEDS)
def test_values_and_gradients_match_pytorch_float64(seed):
    _check_against_torch(_config(seed))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(30, 100))
def test_values_and_gradients_match_pytorch_float64_many(seed):
    _check_against_torch(_config(seed))


@pytest.mark.parametrize("seed", [0, 3, 7, 12])
def test_float32_matches_pytorch(seed):
    _check_against_torch(_config(seed), dtype=np.float32, rtol=2e-4, atol=2e-4)


def test_random_configurations_cover_the_features():
    cfgs = [_config(s) for s in SEEDS]
    assert {c["n"] for c in cfgs} == {1, 2, 3}
    kinds = {type(c["kw"]["padding"]).__name__ for c in cfgs}
    assert {"int", "tuple", "str"} <= kinds
    assert {c["kw"]["padding"] for c in cfgs if isinstance(c["kw"]["padding"], str)} == {
        "same",
        "valid",
    }
    assert any(c["kw"]["groups"] > 1 and c["c_in"] == c["kw"]["groups"] for c in cfgs)
    assert any(max(c["kw"]["stride"]) > 1 for c in cfgs)
    assert any(max(c["kw"]["dilation"]) > 1 for c in cfgs)
    assert any(c["channels_last"] for c in cfgs) and any(not c["batched"] for c in cfgs)


# --- padding modes ---------------------------------------------------------------------------

MODES = ("zeros", "circular", "reflect", "replicate")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "n, spatial, kernel, stride, padding, dilation, groups",
    [
        (1, (7,), (3,), 2, 2, 1, 1),
        (2, (5, 6), (3, 2), (1, 2), (1, 2), (2, 1), 2),
        (2, (6, 5), (3, 4), 1, "same", 1, 1),
        (3, (4, 3, 5), (2, 2, 3), (2, 1, 1), (1, 0, 2), 1, 1),
    ],
)
def test_padding_modes_match_torch_nn_conv(
    mode, n, spatial, kernel, stride, padding, dilation, groups
):
    """Against torch.nn.Conv{n}d(padding_mode=mode) itself (values and all gradients)."""
    rng = np.random.default_rng(0)
    c_in, c_out = 2 * groups, 2 * groups
    x = rng.standard_normal((2, c_in, *spatial))
    layer = getattr(torch.nn, f"Conv{n}d")(
        c_in,
        c_out,
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=mode,
        dtype=torch.float64,
    )
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    tx = torch.from_numpy(x).requires_grad_()
    ty = layer(tx)
    gy = rng.standard_normal(tuple(ty.shape))
    (ty * torch.from_numpy(gy)).sum().backward()

    def f(x, w, b):
        return ct.conv(x, w, b, stride, padding, dilation, groups, padding_mode=mode)

    y, vjp = jax.vjp(f, x, w, b)
    np.testing.assert_allclose(np.asarray(y), ty.detach().numpy(), rtol=TOL64, atol=TOL64)
    dx, dw, db = vjp(jnp.asarray(gy))
    np.testing.assert_allclose(np.asarray(dx), tx.grad.numpy(), rtol=TOL64, atol=TOL64)
    np.testing.assert_allclose(np.asarray(dw), layer.weight.grad.numpy(), rtol=TOL64, atol=TOL64)
    np.testing.assert_allclose(np.asarray(db), layer.bias.grad.numpy(), rtol=TOL64, atol=TOL64)


@pytest.mark.parametrize("mode", MODES[1:])
def test_padding_modes_with_asymmetric_pairs_channels_last_unbatched(mode):
    cfg = dict(
        n=2,
        batch=1,
        c_in=2,
        c_out=3,
        kernel=(3, 2),
        spatial=(5, 4),
        kw=dict(stride=(2, 1), padding=((2, 0), (1, 3)), dilation=1, groups=1),
        channels_last=True,
        batched=False,
        bias=True,
    )
    _check_against_torch(cfg, padding_mode=mode)


@pytest.mark.parametrize(
    "mode, padding, torch_accepts",
    [
        ("reflect", 4, True),  # < input size 5
        ("reflect", 5, False),
        ("circular", 5, True),  # <= input size
        ("circular", 6, False),
        ("replicate", 9, True),
    ],
)
def test_padding_mode_limits_are_pytorchs(mode, padding, torch_accepts):
    x, w = np.ones((1, 1, 5)), np.ones((1, 1, 3))
    layer = torch.nn.Conv1d(1, 1, 3, padding=padding, padding_mode=mode, bias=False)
    try:
        layer(torch.ones(1, 1, 5))
        accepted = True
    except Exception:
        accepted = False
    assert accepted == torch_accepts
    if torch_accepts:
        assert ct.conv1d(x, w, padding=padding, padding_mode=mode).shape == (1, 1, 3 + 2 * padding)
    else:
        with pytest.raises(ValueError, match="padding_mode"):
            ct.conv1d(x, w, padding=padding, padding_mode=mode)


# --- the shape helper -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_output_shape_matches_pytorch_and_the_operation(seed):
    cfg = _config(seed)
    x, w, b = _arrays(cfg)
    ty, _ = _torch_conv(cfg, x, w, b)
    xl = _to_layout(x, cfg)
    want = _to_layout(np.zeros(tuple(ty.shape)), cfg).shape
    got = ct.conv_output_shape(xl.shape, w.shape, **cfg["kw"], channels_last=cfg["channels_last"])
    assert got == want
    assert (
        jax.eval_shape(
            lambda x: OURS[cfg["n"]](x, w, **cfg["kw"], channels_last=cfg["channels_last"]), xl
        ).shape
        == want
    )


# --- accept / reject parity with PyTorch ------------------------------------------------------

# (description, input shape, weight shape, bias shape, kwargs): each is called on PyTorch's
# F.conv{n}d and ours; PyTorch rejects -> we raise ValueError / TypeError naming the
# argument (the kwarg's name or the array's), PyTorch accepts -> we give its shape.
PARITY = [
    ("plain", (1, 2, 5, 5), (3, 2, 3, 3), None, {}),
    ("unbatched", (2, 5, 5), (3, 2, 3, 3), (3,), {}),
    ("groups divide both", (1, 4, 5), (6, 2, 3), (6,), dict(groups=2)),
    ("depthwise", (2, 3, 6), (6, 1, 2), None, dict(groups=3)),
    ("padding larger than the kernel", (1, 1, 3), (1, 1, 2), None, dict(padding=4)),
    ("kernel as long as the input", (1, 1, 3, 3), (1, 1, 3, 3), None, {}),
    ("kernel longer than the input", (1, 1, 2, 3), (1, 1, 3, 3), None, {}),
    ("dilated kernel longer than the input", (1, 1, 4), (1, 1, 3), None, dict(dilation=2)),
    ("padding fits the dilated kernel", (1, 1, 4), (1, 1, 3), None, dict(dilation=2, padding=1)),
    ("same with stride 1", (1, 1, 4, 5), (2, 1, 2, 3), None, dict(padding="same", dilation=2)),
    ("same with stride 2", (1, 1, 5), (1, 1, 3), None, dict(padding="same", stride=2)),
    (
        "same with stride (1, 2)",
        (1, 1, 5, 5),
        (1, 1, 3, 3),
        None,
        dict(padding="same", stride=(1, 2)),
    ),
    ("valid with stride 2", (1, 1, 5), (1, 1, 3), None, dict(padding="valid", stride=2)),
    ("padding 'SAME'", (1, 1, 5), (1, 1, 3), None, dict(padding="SAME")),
    ("padding 'full'", (1, 1, 5), (1, 1, 3), None, dict(padding="full")),
    ("stride 0", (1, 1, 5), (1, 1, 3), None, dict(stride=0)),
    ("stride -1", (1, 1, 5), (1, 1, 3), None, dict(stride=-1)),
    ("stride float", (1, 1, 5), (1, 1, 3), None, dict(stride=2.0)),
    ("dilation 0", (1, 1, 5, 5), (1, 1, 3, 3), None, dict(dilation=(1, 0))),
    ("padding -1", (1, 1, 5), (1, 1, 3), None, dict(padding=-1)),
    ("groups 0", (1, 2, 5), (2, 2, 3), None, dict(groups=0)),
    ("groups not dividing C_out", (1, 4, 5), (3, 2, 3), None, dict(groups=2)),
    ("C_in mismatch", (1, 3, 5), (3, 2, 3), None, {}),
    ("bias of the wrong size", (1, 2, 5), (3, 2, 3), (2,), {}),
    ("bias of rank 2", (1, 2, 5), (3, 2, 3), (3, 1), {}),
    ("stride of the wrong length", (1, 1, 5, 5), (1, 1, 3, 3), None, dict(stride=(1, 1, 1))),
    ("padding of the wrong length", (1, 1, 5, 5), (1, 1, 3, 3), None, dict(padding=(1, 1, 1))),
    ("input of rank 2", (5, 5), (1, 1, 3, 3), None, {}),
    ("input of rank 5", (1, 1, 1, 5, 5), (1, 1, 3, 3), None, {}),
    ("empty kernel", (1, 1, 5), (1, 1, 0), None, {}),
    ("no output channels", (1, 1, 5), (0, 1, 3), None, {}),
    ("empty batch", (0, 2, 5), (3, 2, 3), (3,), {}),
    ("empty spatial axis", (1, 1, 0), (1, 1, 1), None, dict(padding=1)),
    ("groups as a tuple", (1, 1, 5), (1, 1, 3), None, dict(groups=(1,))),
    ("stride as a bool", (1, 1, 5), (1, 1, 3), None, dict(stride=True)),
    ("padding as a list", (1, 1, 4, 4), (1, 1, 2, 2), None, dict(padding=[1, 0])),
]
NAMES = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


def _torch_accepts(x_shape, w_shape, b_shape, kw) -> tuple[bool, tuple | None]:
    n = len(w_shape) - 2
    b = None if b_shape is None else torch.ones(b_shape, dtype=torch.float64)
    try:
        y = TORCH_CONV[n](
            torch.ones(x_shape, dtype=torch.float64),
            torch.ones(w_shape, dtype=torch.float64),
            b,
            **kw,
        )
    except Exception:
        return False, None
    return True, tuple(y.shape)


@pytest.mark.parametrize("desc, x_shape, w_shape, b_shape, kw", PARITY, ids=[p[0] for p in PARITY])
def test_accepts_and_rejects_what_pytorch_does(desc, x_shape, w_shape, b_shape, kw):
    accepted, shape = _torch_accepts(x_shape, w_shape, b_shape, kw)
    fn = OURS[len(w_shape) - 2]
    b = None if b_shape is None else np.ones(b_shape)
    if accepted:
        y = fn(np.ones(x_shape), np.ones(w_shape), b, **kw)
        assert y.shape == shape
        assert ct.conv_output_shape(x_shape, w_shape, **kw) == shape
    else:
        with pytest.raises((ValueError, TypeError)) as info:
            fn(np.ones(x_shape), np.ones(w_shape), b, **kw)
        assert any(name in str(info.value) for name in NAMES), str(info.value)


def test_zero_input_channels_are_refused_unlike_pytorch():
    """The one known difference: PyTorch accepts zero input channels (and returns an empty
    (1, 0, 3) for a weight of 1 output channel);
    convt_jax refuses an empty weight axis, as conv_transpose does (SPEC §3: ill-formed)."""
    assert _torch_accepts((1, 0, 4), (1, 0, 2), None, {})[0]
    with pytest.raises(ValueError, match=r"weight.shape\[1\] = C_in // groups >= 1"):
        ct.conv1d(np.ones((1, 0, 4)), np.ones((1, 0, 2)))


def test_positional_order_is_pytorchs():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((1, 4, 7, 6)), rng.standard_normal((6, 2, 3, 2)), np.ones(6)
    pos = ct.conv2d(x, w, b, (2, 1), (1, 0), (1, 2), 2)
    ref = F.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), (2, 1), (1, 0), (1, 2), 2)
    np.testing.assert_allclose(np.asarray(pos), ref.numpy(), rtol=TOL64, atol=TOL64)


# --- the adjoint pair ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect", "replicate"])
def test_adjoint_identity(seed, mode):
    """<conv(x, W), y> == <x, conv_transpose(y, W)> with the same weight and settings."""
    cfg = _config(seed)
    if mode != "zeros" and cfg["kw"]["padding"] == "valid":
        cfg["kw"]["padding"] = 1
    kw = dict(cfg["kw"])
    x, w, _ = _arrays(cfg)
    pads = _torch_pads(kw["padding"], cfg["n"], cfg["kernel"], kw["dilation"])
    if pads is not None:
        pairs = [(pads[2 * i], pads[2 * i + 1]) for i in range(cfg["n"])][::-1]
        if mode == "reflect" and any(
            max(p) >= s for p, s in zip(pairs, cfg["spatial"], strict=True)
        ):
            pytest.skip("reflect padding as long as the input")
        if mode == "circular" and any(
            max(p) > s for p, s in zip(pairs, cfg["spatial"], strict=True)
        ):
            pytest.skip("circular padding longer than the input")
        kw["padding"] = tuple(pairs)
    else:
        kw["padding"] = 0
    y = ct.conv(x, w, padding_mode=mode, **kw)
    g = np.random.default_rng(2).standard_normal(y.shape)
    back = ct.conv_transpose(
        g,
        w,
        stride=kw["stride"],
        padding=kw["padding"],
        groups=kw["groups"],
        dilation=kw["dilation"],
        output_size=cfg["spatial"],
        padding_mode=mode,
    )
    assert back.shape == x.shape
    lhs, rhs = float(jnp.vdot(y, g)), float(jnp.vdot(x, back))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


def test_conv_is_the_input_gradient_of_conv_transpose():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 9, 7)), rng.standard_normal((6, 2, 3, 2))
    kw = dict(stride=(2, 3), padding=((1, 0), (2, 1)), dilation=(1, 2), groups=2)
    y = ct.conv2d(x, w, **kw)
    _, vjp = jax.vjp(
        lambda t: ct.conv_transpose2d(t, w, **kw, output_size=(9, 7)), jnp.zeros(y.shape)
    )
    (want,) = vjp(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-12, atol=1e-12)
    # and the transposed convolution is the input gradient of the convolution
    g = rng.standard_normal(y.shape)
    _, vjp = jax.vjp(lambda t: ct.conv2d(t, w, **kw), jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(g))
    back = ct.conv_transpose2d(g, w, **kw, output_size=(9, 7))
    np.testing.assert_allclose(np.asarray(dx), np.asarray(back), rtol=1e-12, atol=1e-12)


# --- transformations ----------------------------------------------------------------------

KW = dict(stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2), groups=2)


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((3, 4, 6, 5)))
    w = jnp.asarray(rng.standard_normal((6, 2, 3, 2)))
    b = jnp.asarray(rng.standard_normal(6))
    return x, w, b


def f(x, w, b):
    return ct.conv2d(x, w, b, **KW)


def test_jit_equals_eager_and_does_not_retrace(arrays):
    x, w, b = arrays
    eager = f(x, w, b)
    np.testing.assert_array_equal(np.asarray(eager), np.asarray(jax.jit(f)(x, w, b)))
    n = _conv._forward._cache_size()
    f(x + 1, w, b)
    ct.conv2d(x, w, b, stride=[2, 1], padding=[(1, 0), [0, 2]], dilation=(1, 2), groups=np.int64(2))
    assert _conv._forward._cache_size() == n


def test_grad_of_grad_and_jvp(arrays):
    x, w, b = arrays
    x = x[:1]
    check_grads(f, (x, w, b), order=2, modes=("fwd", "rev"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "mode", ["reflect", pytest.param("circular", marks=pytest.mark.slow), "replicate"]
)
def test_grad_of_grad_with_padding_mode(mode):
    rng = np.random.default_rng(0)
    x, w = jnp.asarray(rng.standard_normal((1, 2, 5))), jnp.asarray(rng.standard_normal((3, 2, 3)))
    check_grads(
        lambda x, w: ct.conv1d(x, w, None, 2, 2, padding_mode=mode),
        (x, w),
        order=2,
        modes=("fwd", "rev"),
        atol=1e-6,
        rtol=1e-6,
    )


def test_hessian_matches_pytorch(arrays):
    x, w, b = arrays
    x = x[:1, :, :4, :4]

    def loss(x):
        return jnp.sum(jnp.sin(f(x, w, b)))

    h = jax.hessian(loss)(x)

    def tloss(tx):
        tw, tb = torch.from_numpy(np.asarray(w)), torch.from_numpy(np.asarray(b))
        pads = (0, 2, 1, 0)
        y = F.conv2d(F.pad(tx, pads), tw, tb, stride=(2, 1), dilation=(1, 2), groups=2)
        return torch.sin(y).sum()

    th = torch.autograd.functional.hessian(tloss, torch.tensor(np.asarray(x)))
    np.testing.assert_allclose(np.asarray(h), th.numpy(), rtol=1e-9, atol=1e-9)


def test_vmap_over_input_weight_and_both(arrays):
    x, w, b = arrays
    xs = jnp.stack([x, 2 * x, -x])
    ws = jnp.stack([w, w * 0.5, w + 1])
    for axes, args, want in [
        ((0, None, None), (xs, w, b), [f(xi, w, b) for xi in xs]),
        ((None, 0, None), (x, ws, b), [f(x, wi, b) for wi in ws]),
        ((0, 0, None), (xs, ws, b), [f(xi, wi, b) for xi, wi in zip(xs, ws, strict=True)]),
    ]:
        got = jax.vmap(f, axes)(*args)
        np.testing.assert_allclose(
            np.asarray(got), np.asarray(jnp.stack(want)), rtol=1e-10, atol=1e-10
        )


def test_vmap_of_grad(arrays):
    x, w, b = arrays
    ws = jnp.stack([w, w * 0.5])

    def loss(w):
        return jnp.sum(f(x, w, b) ** 2)

    got = jax.vmap(jax.grad(loss))(ws)
    want = jnp.stack([jax.grad(loss)(wi) for wi in ws])
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-10)


def test_jvp_is_linear_in_both(arrays):
    x, w, b = arrays
    dx, dw = jnp.ones_like(x) * 0.1, jnp.ones_like(w) * 0.2
    y, t = jax.jvp(lambda x, w: f(x, w, b), (x, w), (dx, dw))
    want = f(dx, w, None) + f(x, dw, None)
    np.testing.assert_allclose(np.asarray(t), np.asarray(want), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(y), np.asarray(f(x, w, b)), rtol=0, atol=0)


def test_checkpoint_and_empty_batch(arrays):
    x, w, b = arrays
    g1 = jax.grad(lambda w: jnp.sum(jax.checkpoint(f)(x, w, b) ** 2))(w)
    g2 = jax.grad(lambda w: jnp.sum(f(x, w, b) ** 2))(w)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g2), rtol=1e-12, atol=1e-12)
    y = f(x[:0], w, b)
    assert y.shape == (0, *f(x, w, b).shape[1:])


# --- methods, dtypes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method", ["dilated", "subpixel", "matmul", "grouped", "depthwise", "onednn"]
)
def test_every_method_gives_the_same_numbers(method):
    rng = np.random.default_rng(0)
    groups = 4 if method == "depthwise" else (2 if method == "grouped" else 1)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    # depthwise: the transposed convolution's C_in (this one's C_out) equals groups
    c_out = 4 if method == "depthwise" else 8
    w = rng.standard_normal((c_out, 4 // groups, 3, 2)).astype(np.float32)
    kw = dict(stride=2, padding=1, groups=groups)
    if method == "onednn" and ct.backend_info().backend != "onednn":
        pytest.skip("the oneDNN backend is not in use")
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    got = ct.conv2d(x, w, **kw, method=method)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)
    gw = jax.grad(lambda w: jnp.sum(ct.conv2d(x, w, **kw, method=method) ** 2))(jnp.asarray(w))
    tw = torch.from_numpy(w).requires_grad_()
    (F.conv2d(torch.from_numpy(x), tw, **kw) ** 2).sum().backward()
    np.testing.assert_allclose(np.asarray(gw), tw.grad.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "dtype, tol",
    [(jnp.float16, 2e-2), (jnp.bfloat16, 1e-1), (jnp.float32, 1e-5), (jnp.float64, 1e-12)],
)
def test_real_dtypes(dtype, tol):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 4, 6, 5)), rng.standard_normal((6, 2, 3, 2))
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1, groups=2).numpy()
    y = ct.conv2d(jnp.asarray(x, dtype), jnp.asarray(w, dtype), None, 2, 1, 1, 2)
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=tol, atol=tol * 4)
    if dtype in (jnp.float16, jnp.bfloat16):  # accumulated in float32 when asked
        y32 = ct.conv2d(
            jnp.asarray(x, dtype),
            jnp.asarray(w, dtype),
            None,
            2,
            1,
            1,
            2,
            preferred_element_type=jnp.float32,
        )
        assert y32.dtype == dtype


@pytest.mark.parametrize("dtype", [jnp.complex64, jnp.complex128])
def test_complex(dtype):
    rng = np.random.default_rng(0)
    xr, xi = rng.standard_normal((2, 2, 6)), rng.standard_normal((2, 2, 6))
    wr, wi = rng.standard_normal((4, 1, 3)), rng.standard_normal((4, 1, 3))
    kw = dict(stride=2, padding=1, groups=2)

    def real(x, w):
        return F.conv1d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()

    want = (real(xr, wr) - real(xi, wi)) + 1j * (real(xr, wi) + real(xi, wr))
    y = ct.conv1d(jnp.asarray(xr + 1j * xi, dtype), jnp.asarray(wr + 1j * wi, dtype), **kw)
    assert y.dtype == dtype
    tol = 1e-5 if dtype == jnp.complex64 else 1e-12
    np.testing.assert_allclose(np.asarray(y), want, rtol=tol, atol=tol)


# --- NaN / Inf ------------------------------------------------------------------------------


@pytest.mark.parametrize("dilation", [(1, 2), 1])
@pytest.mark.parametrize("method", ["auto", "dilated", "subpixel", "matmul"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_reach_exactly_pytorchs_outputs(method, dtype, dilation):
    """A NaN / +Inf / -Inf in the input reaches exactly the outputs whose window holds it."""
    spatial, kernel = (7, 6), (3, 2)
    kw = dict(stride=(2, 1), padding=(1, 1), dilation=dilation)
    if method == "matmul" and dilation != 1:
        pytest.skip("the method cannot compute the configuration")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, *kernel)).astype(dtype)
    items = []
    for pos, val in itertools.product([(0, 0), (6, 5), (3, 2), (1, 4)], [np.nan, np.inf, -np.inf]):
        x = rng.standard_normal((2, *spatial)).astype(dtype)
        x[(0, *pos)] = val
        items.append(x)
    both = rng.standard_normal((2, *spatial)).astype(dtype)
    both[0, 2, 2], both[1, 2, 3] = np.inf, -np.inf
    items.append(both)
    x = np.stack(items)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    got = np.asarray(ct.conv2d(x, w, **kw, method=method))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


def _definition(x, w, stride, pads, dilation):
    """``y[o] = sum over the in-range taps of x[s*o + d*k - lo] * w[k]`` (groups 1): the
    padding contributes no products."""
    n, _, *spatial = x.shape
    c_out, c_in, *kernel = w.shape
    out = [
        (length + lo + hi - d * (k - 1) - 1) // s + 1
        for length, k, s, d, (lo, hi) in zip(spatial, kernel, stride, dilation, pads, strict=True)
    ]
    y = np.zeros((n, c_out, *out))
    for b, co, *o in itertools.product(range(n), range(c_out), *[range(v) for v in out]):
        acc = 0.0
        for ci, *k in itertools.product(range(c_in), *[range(v) for v in kernel]):
            pos = [
                s * oo + d * kk - lo
                for oo, kk, s, d, (lo, _) in zip(o, k, stride, dilation, pads, strict=True)
            ]
            if all(0 <= p < length for p, length in zip(pos, spatial, strict=True)):
                acc = acc + x[(b, ci, *pos)] * w[(co, ci, *k)]
        y[(b, co, *o)] = acc
    return y


@pytest.mark.parametrize("method", ["auto", "dilated", "subpixel", "matmul"])
@pytest.mark.parametrize(
    "stride, padding, dilation", [((2, 1), 1, (1, 2)), ((1, 1), 2, (1, 1)), ((2, 2), 0, (1, 1))]
)
def test_nan_and_inf_in_the_weight(method, stride, padding, dilation):
    """Each entry is the definition's (padding contributes nothing) or NaN where PyTorch's
    is: PyTorch multiplies its padding zeros by an Inf weight, some forms do not; the same
    rule as the transposed convolution's gradients (tests/test_nonfinite.py)."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((3, 2, 3, 2))
    w[0, 0, 0, 0], w[1, 1, 2, 1], w[2, 0, 1, 1] = np.inf, np.nan, -np.inf
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    if method == "matmul" and dilation != (1, 1):
        pytest.skip("the method cannot compute the configuration")
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    definition = _definition(x, w, stride, ((padding, padding),) * 2, dilation)
    got = np.asarray(ct.conv2d(x, w, **kw, method=method))
    same = (np.isnan(got) & np.isnan(definition)) | np.isclose(got, definition, 1e-12, 1e-12)
    assert np.all(same | (np.isnan(got) & np.isnan(want)))


# --- oneDNN ----------------------------------------------------------------------------------


def test_jitted_conv2d_lowers_to_onednn_on_cpu():
    if jax.default_backend() != "cpu" or ct.backend_info().backend != "onednn":
        pytest.skip(f"the oneDNN backend is not in use: {ct.backend_info().reason}")
    x = jnp.ones((2, 4, 8, 8), jnp.float32)
    w = jnp.ones((6, 2, 3, 3), jnp.float32)

    def fn(x, w):
        return ct.conv2d(x, w, stride=2, padding=1, groups=2)

    assert "convt_jax_onednn_" in jax.jit(fn).lower(x, w).as_text()
    # and both gradients
    text = (
        jax.jit(jax.grad(lambda x, w: jnp.sum(fn(x, w) ** 2), argnums=(0, 1))).lower(x, w).as_text()
    )
    assert text.count("convt_jax_onednn_") >= 3
