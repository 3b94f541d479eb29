"""Flax modules (SPEC §7): NNX and linen against torch.nn.ConvTranspose*d, inside NNX models;
the linen N-d classes against torch.nn.ConvTranspose*d / Conv*d and the per-dimension ones."""

from __future__ import annotations

import dataclasses
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import linen, nnx

import convt_jax as ct
import convt_jax.flax as ctf
from convt_jax.flax import linen as ctl

ROOT = Path(__file__).resolve().parents[1]
TOL = dict(rtol=1e-10, atol=1e-10)
TORCH_LAYERS = {
    1: torch.nn.ConvTranspose1d,
    2: torch.nn.ConvTranspose2d,
    3: torch.nn.ConvTranspose3d,
}
NNX = {1: ctf.ConvTranspose1d, 2: ctf.ConvTranspose2d, 3: ctf.ConvTranspose3d}
LINEN = {1: ctl.ConvTranspose1d, 2: ctl.ConvTranspose2d, 3: ctl.ConvTranspose3d}
# The regular convolution's (tests/test_conv_layers.py tests its 1/2/3-d classes).
TORCH_CONVS = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
LINEN_CONVS = {1: ctl.Conv1d, 2: ctl.Conv2d, 3: ctl.Conv3d}
# family -> (ct.nn's N-d class, NNX's, linen's)
N_D = {
    "ConvTranspose": (ct.nn.ConvTranspose, ctf.ConvTranspose, ctl.ConvTranspose),
    "Conv": (ct.nn.Conv, ctf.Conv, ctl.Conv),
}

# (input spatial, in, out, kernel, settings shared by both libraries)
CONFIGS = [
    ((7,), 2, 4, 3, dict(stride=2, padding=1, output_padding=1)),
    ((6,), 4, 6, 2, dict(stride=3, groups=2, dilation=2, bias=False)),
    (
        (4, 5),
        6,
        9,
        (3, 2),
        dict(stride=2, padding=(2, 1), output_padding=1, groups=3, dilation=(1, 2)),
    ),
    ((3, 4), 2, 2, 4, dict(stride=2, padding=1)),
    (
        (2, 3, 3),
        4,
        2,
        (2, 3, 2),
        dict(
            stride=(1, 2, 2),
            padding=(0, 1, 0),
            output_padding=(1, 1, 0),
            dilation=(2, 1, 1),
            groups=2,
        ),
    ),
]
IDS = [f"{len(c[0])}d-{i}" for i, c in enumerate(CONFIGS)]


def _torch(cfg, seed=0, layers=TORCH_LAYERS):
    spatial, c_in, c_out, kernel, kw = cfg
    torch.manual_seed(seed)
    return layers[len(spatial)](c_in, c_out, kernel, dtype=torch.float64, **kw)


def _conv_cfg(cfg):
    """A configuration of CONFIGS for the regular convolution: no output padding, and an
    input three larger on each axis (enough for every dilated kernel there)."""
    spatial, c_in, c_out, kernel, kw = cfg
    kw = {k: v for k, v in kw.items() if k != "output_padding"}
    return tuple(s + 3 for s in spatial), c_in, c_out, kernel, kw


def _nnx(cfg, **extra):
    spatial, c_in, c_out, kernel, kw = cfg
    return NNX[len(spatial)](
        c_in, c_out, kernel, param_dtype=jnp.float64, rngs=nnx.Rngs(0), **kw, **extra
    )


def _torch_grads(t, x, cot):
    xt = torch.as_tensor(x).requires_grad_(True)
    y = t(xt)
    (y * torch.as_tensor(cot)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy(), t.weight.grad.numpy()


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("channels_last", [True, False])
def test_nnx_matches_torch_values_and_gradients(rng, cfg, channels_last):
    spatial, c_in = cfg[0], cfg[1]
    t = _torch(cfg)
    m = _nnx(cfg, channels_last=channels_last)
    m.load_state_dict(t.state_dict())
    x = rng.standard_normal((2, c_in, *spatial))
    want, want_gx, want_gw = _torch_grads(
        t, x, cot := rng.standard_normal(t(torch.as_tensor(x)).shape)
    )
    move = (lambda a: np.moveaxis(a, 1, -1)) if channels_last else (lambda a: a)
    xin, cin = move(x), move(cot)
    np.testing.assert_allclose(m(xin), move(want), **TOL)

    def loss(model, x):
        return jnp.sum(model(x) * cin)

    gm, gx = nnx.grad(loss, argnums=(0, 1))(m, xin)
    np.testing.assert_allclose(gx, move(want_gx), **TOL)
    np.testing.assert_allclose(gm.weight[...], want_gw, **TOL)
    if t.bias is not None:
        np.testing.assert_allclose(gm.bias[...], t.bias.grad.numpy(), **TOL)
    else:
        assert m.bias is None and "bias" not in gm


def _linen_cases():
    """(family, class, cfg): the transposed 1/2/3-d classes and both N-d classes on every
    configuration; the regular convolution's N-d class on two in the default tier (its
    1/2/3-d classes: tests/test_conv_layers.py)."""
    for family, cls in [("ConvTranspose", "per_dim"), ("ConvTranspose", "Nd"), ("Conv", "Nd")]:
        for i, (cfg, id_) in enumerate(zip(CONFIGS, IDS, strict=True)):
            marks = [pytest.mark.slow] if family == "Conv" and i not in (1, 4) else []
            yield pytest.param(family, cls, cfg, id=f"{family}-{cls}-{id_}", marks=marks)


@pytest.mark.parametrize("family, cls, cfg", list(_linen_cases()))
def test_linen_matches_torch_values_and_gradients(rng, family, cls, cfg):
    if family == "Conv":
        cfg = _conv_cfg(cfg)
    spatial, c_in, c_out, kernel, kw = cfg
    t = _torch(cfg, layers=TORCH_LAYERS if family == "ConvTranspose" else TORCH_CONVS)
    if cls == "Nd":
        m = N_D[family][2](len(spatial), c_in, c_out, kernel, param_dtype=jnp.float64, **kw)
    else:
        m = LINEN[len(spatial)](c_in, c_out, kernel, param_dtype=jnp.float64, **kw)
    x = rng.standard_normal((2, c_in, *spatial))
    xin = np.moveaxis(x, 1, -1)
    variables = m.init(jax.random.key(0), xin)
    assert set(variables["params"]) == set(t.state_dict())
    for k, v in variables["params"].items():
        assert v.shape == tuple(t.state_dict()[k].shape) and v.dtype == jnp.float64
    variables = m.variables_from_state_dict(t.state_dict())
    cot = rng.standard_normal(t(torch.as_tensor(x)).shape)
    want, want_gx, want_gw = _torch_grads(t, x, cot)
    np.testing.assert_allclose(m.apply(variables, xin), np.moveaxis(want, 1, -1), **TOL)
    cin = np.moveaxis(cot, 1, -1)
    gv, gx = jax.grad(lambda v, x: jnp.sum(m.apply(v, x) * cin), argnums=(0, 1))(variables, xin)
    np.testing.assert_allclose(gx, np.moveaxis(want_gx, 1, -1), **TOL)
    np.testing.assert_allclose(gv["params"]["weight"], want_gw, **TOL)
    if t.bias is not None:
        np.testing.assert_allclose(gv["params"]["bias"], t.bias.grad.numpy(), **TOL)
    # jitted apply: same numbers
    np.testing.assert_allclose(jax.jit(m.apply)(variables, xin), np.moveaxis(want, 1, -1), **TOL)


@pytest.mark.parametrize("family", ["ConvTranspose", "Conv"])
@pytest.mark.parametrize("n", [1, 2, pytest.param(3, marks=pytest.mark.slow)])
def test_linen_n_d_equals_per_dimension_class(rng, family, n):
    """``ctl.ConvTranspose(n, ...)`` is ``ctl.ConvTranspose{n}d(...)``: same parameters for
    the same key, same results, same settings."""
    per_dim = (LINEN if family == "ConvTranspose" else LINEN_CONVS)[n]
    kw = dict(stride=2, padding=1, groups=2, bias=n != 2, channels_last=n != 3)
    m, ref = N_D[family][2](n, 4, 6, 3, **kw), per_dim(4, 6, 3, **kw)
    assert m.num_spatial_dims == ref.num_spatial_dims == n
    for f in dataclasses.fields(ref):
        assert getattr(m, f.name) == getattr(ref, f.name), f.name
    shape = (2, *(5,) * n, 4) if m.channels_last else (2, 4, *(5,) * n)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    v, want_v = m.init(jax.random.key(3), x), ref.init(jax.random.key(3), x)
    assert jax.tree.structure(v) == jax.tree.structure(want_v)
    for got, want in zip(jax.tree.leaves(v), jax.tree.leaves(want_v), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(m.apply(v, x), ref.apply(want_v, x))


@pytest.mark.parametrize("family", ["ConvTranspose", "Conv"])
def test_linen_n_d_fields_are_the_nnx_arguments(family):
    """The linen N-d class's fields: NNX's N-d arguments but rngs, in order, same defaults,
    all positional (``ctl.ConvTranspose(2, 8, 4, 4)``: num_spatial_dims, C_in, C_out, kernel)."""
    _, nnx_cls, linen_cls = N_D[family]
    nnx_params = list(inspect.signature(nnx_cls.__init__).parameters.values())[1:]
    want = [(p.name, p.default) for p in nnx_params if p.name != "rngs"]
    fields = [f for f in dataclasses.fields(linen_cls) if f.name not in ("parent", "name")]
    none = {dataclasses.MISSING: inspect.Parameter.empty}
    assert [(f.name, none.get(f.default, f.default)) for f in fields] == want
    per_dim = dataclasses.fields((LINEN if family == "ConvTranspose" else LINEN_CONVS)[2])
    assert [f.name for f in per_dim] == [f.name for f in fields][1:] + ["parent", "name"]
    m = linen_cls(2, 8, 4, 4, stride=2)
    assert (m.num_spatial_dims, m.in_channels, m.out_channels, m.kernel_size) == (2, 8, 4, 4)
    assert m.stride == 2


@pytest.mark.slow  # the N-d classes meet PyTorch in the default tier
@pytest.mark.parametrize("family", ["ConvTranspose", "Conv"])
def test_linen_n_d_four_spatial_axes_match_ct_nn(rng, family):
    """Four spatial axes (no PyTorch class): the ct.nn N-d layer's weights, values and
    gradients."""
    nn_cls, _, linen_cls = N_D[family]
    kw = dict(stride=2, padding=1, groups=2)
    layer = nn_cls(4, 4, 2, 3, **kw, dtype=jnp.float64, key=jax.random.key(0))
    m = linen_cls(4, 4, 2, 3, **kw, channels_last=False, param_dtype=jnp.float64)
    x = jnp.asarray(rng.standard_normal((1, 4, 3, 3, 3, 4)))
    shapes = jax.tree.map(jnp.shape, m.init(jax.random.key(0), x)["params"])
    assert shapes == {"weight": layer.weight.shape, "bias": layer.bias.shape}
    variables = m.variables_from_state_dict(layer.state_dict())
    np.testing.assert_allclose(m.apply(variables, x), layer(x), **TOL)
    gp = jax.grad(lambda v: jnp.sum(m.apply(v, x) ** 2))(variables)["params"]
    gl = jax.grad(lambda lay: jnp.sum(lay(x) ** 2))(layer)
    np.testing.assert_allclose(gp["weight"], gl.weight, **TOL)
    np.testing.assert_allclose(gp["bias"], gl.bias, **TOL)


@pytest.mark.parametrize("family", ["ConvTranspose", "Conv"])
def test_linen_n_d_from_torch(rng, family):
    """``from_torch`` on an N-d class takes the PyTorch layer's number of spatial axes."""
    torch_cls = (TORCH_LAYERS if family == "ConvTranspose" else TORCH_CONVS)[2]
    t = torch.nn.utils.parametrizations.weight_norm(torch_cls(4, 6, 3, stride=2, groups=2))
    m, variables = N_D[family][2].from_torch(t, channels_last=False)
    assert type(m) is N_D[family][2] and m.num_spatial_dims == 2 and m.groups == 2
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    want = t(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(m.apply(variables, x), want, rtol=1e-5, atol=1e-6)
    other = (TORCH_CONVS if family == "ConvTranspose" else TORCH_LAYERS)[2](2, 2, 1)
    with pytest.raises(TypeError, match=f"must be a torch.nn.{family}1d, {family}2d or"):
        N_D[family][2].from_torch(other)


def test_initialisation_is_pytorchs_distribution():
    m = ctf.ConvTranspose2d(16, 32, 3, groups=4, rngs=nnx.Rngs(0))
    bound = 1 / np.sqrt((32 // 4) * 9)
    w, b = np.asarray(m.weight[...]), np.asarray(m.bias[...])
    assert w.shape == (16, 8, 3, 3) and b.shape == (32,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound  # uniform's std
    other = ctf.ConvTranspose2d(16, 32, 3, groups=4, rngs=nnx.Rngs(1))
    assert not np.array_equal(w, other.weight[...])
    lin = ctl.ConvTranspose2d(16, 32, 3, groups=4)
    p = lin.init(jax.random.key(0), jnp.ones((1, 2, 2, 16)))["params"]
    assert np.abs(p["weight"]).max() <= bound and np.abs(p["bias"]).max() <= bound


class Decoder(nnx.Module):
    """A small NNX decoder: Linear -> reshape -> two transposed convolutions."""

    def __init__(self, rngs):
        self.fc = nnx.Linear(4, 8 * 3 * 3, rngs=rngs)
        self.up1 = ctf.ConvTranspose2d(8, 4, 4, stride=2, padding=1, rngs=rngs)
        self.up2 = ctf.ConvTranspose2d(
            4, 1, 3, stride=2, padding=1, output_padding=1, groups=1, rngs=rngs
        )

    def __call__(self, z):
        h = self.fc(z).reshape(z.shape[0], 3, 3, 8)
        h = jax.nn.relu(self.up1(h))
        return self.up2(h)


def test_nnx_model_trains_with_optimizer():
    model = Decoder(nnx.Rngs(0))
    z = jax.random.normal(jax.random.key(1), (16, 4), jnp.float32)
    target = Decoder(nnx.Rngs(5))(z)  # reachable: another decoder's output
    assert model(z).shape == target.shape
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    before = {k: np.array(v) for k, v in model.up1.state_dict().items()}

    @nnx.jit
    def step(model, opt, z, target):
        def loss_fn(model):
            return jnp.mean((model(z) - target) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt, z, target)) for _ in range(30)]
    assert losses[-1] < 0.7 * losses[0]
    after = model.up1.state_dict()
    assert not np.allclose(after["weight"], before["weight"])
    assert not np.allclose(after["bias"], before["bias"])
    # the optimizer's state holds Adam moments for our parameters
    leaves = jax.tree_util.tree_leaves(nnx.state(opt))
    assert any(np.shape(a) == (8, 4, 4, 4) for a in leaves)


def test_nnx_jit_split_merge_state(rng):
    m = ctf.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, rngs=nnx.Rngs(0))
    x = jnp.asarray(rng.standard_normal((2, 5, 5, 3)), jnp.float32)
    want = m(x)
    np.testing.assert_allclose(nnx.jit(lambda m, x: m(x))(m, x), want, rtol=1e-6, atol=1e-6)
    graphdef, state = nnx.split(m)
    params = nnx.state(m, nnx.Param)
    assert {str(k) for k in params.keys()} == {"weight", "bias"}
    assert params["weight"][...].shape == (3, 4, 3, 3)
    m2 = nnx.merge(graphdef, state)
    assert isinstance(m2, ctf.ConvTranspose2d)
    np.testing.assert_allclose(m2(x), want, rtol=1e-6, atol=1e-6)
    # a jitted pure function of (graphdef, state)
    f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    np.testing.assert_allclose(f(state, x), want, rtol=1e-6, atol=1e-6)
    # nnx.update writes new weights in
    zero = jax.tree_util.tree_map(jnp.zeros_like, state)
    nnx.update(m2, zero)
    assert float(jnp.abs(m2(x)).max()) == 0.0


def test_output_size_dtype_and_param_dtype(rng):
    m = ctf.ConvTranspose2d(2, 3, 4, stride=2, padding=1, rngs=nnx.Rngs(0))
    x = jnp.asarray(rng.standard_normal((1, 5, 5, 2)), jnp.float32)
    assert m(x).shape == (1, 10, 10, 3)
    assert m(x, output_size=(11, 11)).shape == (1, 11, 11, 3)
    # dtype=None: the result dtype of inputs and parameters
    assert m(x).dtype == jnp.float32
    assert m(x.astype(jnp.float64)).dtype == jnp.float64
    # dtype: the computation dtype (parameters stay float32)
    half = ctf.ConvTranspose2d(
        2, 3, 4, stride=2, padding=1, dtype=jnp.bfloat16, compute_mode="float32", rngs=nnx.Rngs(0)
    )
    assert half.weight[...].dtype == jnp.float32
    y = half(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), m(x), rtol=3e-2, atol=3e-2)
    p64 = ctf.ConvTranspose2d(2, 3, 4, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    assert p64.weight[...].dtype == jnp.float64 and p64.bias[...].dtype == jnp.float64
    # linen: the same meanings
    lin = ctl.ConvTranspose2d(2, 3, 4, stride=2, padding=1, dtype=jnp.bfloat16)
    v = lin.init(jax.random.key(0), x)
    assert v["params"]["weight"].dtype == jnp.float32
    assert lin.apply(v, x).dtype == jnp.bfloat16
    assert lin.apply(v, x, output_size=(11, 11)).shape == (1, 11, 11, 3)


def test_settings_read_back():
    m = ctf.ConvTranspose3d(
        4,
        6,
        (2, 3, 1),
        stride=2,
        padding=(1, 0, 0),
        groups=2,
        dilation=(1, 2, 1),
        bias=False,
        rngs=nnx.Rngs(0),
    )
    assert m.kernel_size == (2, 3, 1) and m.stride == (2, 2, 2)
    assert m.dilation == (1, 2, 1) and m.groups == 2 and m.channels_last is True
    assert m.bias is None and set(m.state_dict()) == {"weight"}
    assert m.weight[...].shape == (4, 3, 2, 3, 1)
    generic = ctf.ConvTranspose(4, 2, 3, kernel_size=2, stride=2, rngs=nnx.Rngs(0))
    assert generic(jnp.ones((1, 3, 3, 3, 3, 2))).shape == (1, 6, 6, 6, 6, 3)


@pytest.mark.parametrize("api", ["old", "new"])
def test_load_state_dict_weight_norm(rng, api):
    import warnings

    t = torch.nn.ConvTranspose1d(8, 4, 16, stride=8, padding=4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wn = (
            torch.nn.utils.weight_norm
            if api == "old"
            else torch.nn.utils.parametrizations.weight_norm
        )
        t = wn(t)
    sd = t.state_dict()
    assert "weight" not in sd
    m = ctf.ConvTranspose1d(
        8,
        4,
        16,
        stride=8,
        padding=4,
        channels_last=False,
        param_dtype=jnp.float64,
        rngs=nnx.Rngs(0),
    )
    m.load_state_dict(sd)  # in place
    x = rng.standard_normal((2, 8, 5))
    np.testing.assert_allclose(m(x), t(torch.as_tensor(x)).detach().numpy(), **TOL)
    lin = ctl.ConvTranspose1d(
        8, 4, 16, stride=8, padding=4, channels_last=False, param_dtype=jnp.float64
    )
    np.testing.assert_allclose(
        lin.apply(lin.variables_from_state_dict(sd), x),
        t(torch.as_tensor(x)).detach().numpy(),
        **TOL,
    )


@pytest.mark.parametrize("n", [1, 2, 3])
def test_from_torch(rng, n):
    t = TORCH_LAYERS[n](4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, dilation=1)
    t = torch.nn.utils.parametrizations.weight_norm(t)
    x = rng.standard_normal((2, 4) + (3,) * n).astype(np.float32)
    want = t(torch.as_tensor(x)).detach().numpy()
    m = NNX[n].from_torch(t)
    assert isinstance(m, NNX[n]) and m.channels_last is True
    assert m.weight[...].dtype == jnp.float32 and m.groups == 2
    np.testing.assert_allclose(
        m(np.moveaxis(x, 1, -1)), np.moveaxis(want, 1, -1), rtol=1e-5, atol=1e-6
    )
    m_cf = NNX[n].from_torch(t, channels_last=False)
    np.testing.assert_allclose(m_cf(x), want, rtol=1e-5, atol=1e-6)
    lin, variables = LINEN[n].from_torch(t, channels_last=False)
    np.testing.assert_allclose(lin.apply(variables, x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match=f"needs a torch.nn.ConvTranspose{n % 3 + 1}d"):
        NNX[n % 3 + 1].from_torch(t)
    with pytest.raises(TypeError, match="must be a torch.nn.ConvTranspose1d"):
        NNX[n].from_torch(torch.nn.Conv1d(2, 2, 1))


def test_errors_match_ct_nn():
    cases = [
        (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4), ValueError),
        (
            dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, output_padding=2),
            ValueError,
        ),
        (dict(in_channels=2, out_channels=2, kernel_size=(3, 3, 3)), ValueError),
        (dict(in_channels=2, out_channels=2, kernel_size=3, padding_mode="mirror"), ValueError),
        (dict(in_channels=2, out_channels=2, kernel_size=3, bias="yes"), TypeError),
        (dict(in_channels=0, out_channels=2, kernel_size=3), ValueError),
        # equal to bias=True, whose template the linen module's cache holds (built below)
        (dict(in_channels=2, out_channels=2, kernel_size=3, bias=1), TypeError),
    ]
    ctl.ConvTranspose2d(2, 2, 3, bias=True).init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))
    for kw, exc in cases:
        with pytest.raises(exc) as ours_nn:
            ct.nn.ConvTranspose2d(**kw, key=jax.random.key(0))
        with pytest.raises(exc) as ours_nnx:
            ctf.ConvTranspose2d(**kw, rngs=nnx.Rngs(0))
        with pytest.raises(exc) as ours_linen:
            ctl.ConvTranspose2d(**kw).init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))
        assert str(ours_nnx.value) == str(ours_nn.value) == str(ours_linen.value)


@pytest.mark.parametrize("family", ["ConvTranspose", "Conv"])
@pytest.mark.parametrize(
    "value, exc, message",
    [
        (0, ValueError, "num_spatial_dims=0 must be >= 1"),
        (-1, ValueError, "num_spatial_dims=-1 must be >= 1"),
        (True, TypeError, "num_spatial_dims=True must be an int, not bool"),
        (2.0, TypeError, "num_spatial_dims=2.0 must be an int, not float"),
        ("2", TypeError, "num_spatial_dims='2' must be an int, not str"),
        (None, TypeError, "num_spatial_dims=None must be an int, not NoneType"),
    ],
    ids=["0", "-1", "True", "2.0", "str", "None"],
)
def test_bad_num_spatial_dims(family, value, exc, message):
    """ct.nn's check and message in the NNX and linen N-d classes, where linen checks
    (``init`` / ``apply``); a valid equal value (1 for True, 2 for 2.0) built before does not
    let it through the templates' cache."""
    nn_cls, nnx_cls, linen_cls = N_D[family]
    for n in (1, 2):  # 1 == True, 2 == 2.0: valid, and in the cache first
        nnx_cls(n, 2, 2, 3, rngs=nnx.Rngs(0))
        linen_cls(n, 2, 2, 3).init(jax.random.key(0), jnp.ones((1, *(4,) * n, 2)))
    with pytest.raises(exc) as ours_nn:
        nn_cls(value, 2, 2, 3, key=jax.random.key(0))
    with pytest.raises(exc) as ours_nnx:
        nnx_cls(value, 2, 2, 3, rngs=nnx.Rngs(0))
    m = linen_cls(value, 2, 2, 3)  # a dataclass: checked when first called
    with pytest.raises(exc) as ours_linen:
        m.init(jax.random.key(0), jnp.ones((1, 4, 4, 2)))
    assert str(ours_nn.value) == str(ours_nnx.value) == str(ours_linen.value) == message


def test_other_errors(rng):
    with pytest.raises(
        TypeError,
        match=r"rngs=None must be an nnx.Rngs.*rngs=nnx.Rngs\(0\).*"
        r"ConvTranspose2d.from_torch\(module\)",
    ):
        ctf.ConvTranspose2d(2, 2, 3, rngs=None)
    with pytest.raises(TypeError, match="rngs"):
        ctf.ConvTranspose2d(2, 2, 3)  # rngs is required
    with pytest.raises(TypeError, match="dtype='int32' must be None"):
        ctf.ConvTranspose2d(2, 2, 3, dtype="int32", rngs=nnx.Rngs(0))
    m = ctf.ConvTranspose2d(2, 3, 3, rngs=nnx.Rngs(0))
    with pytest.raises(
        ValueError,
        match=r"weight of shape \(3, 2, 3, 3\) must have shape "
        r"\(2, 3, 3, 3\)",
    ):
        m.load_state_dict(
            {"weight": np.ones((3, 2, 3, 3), np.float32), "bias": np.ones(3, np.float32)}
        )
    with pytest.raises(ValueError, match="missing: \\['bias'\\]"):
        m.load_state_dict({"weight": np.ones((2, 3, 3, 3), np.float32)})
    with pytest.raises(TypeError, match="dtype float64"):
        m.load_state_dict({"weight": np.ones((2, 3, 3, 3)), "bias": np.ones(3)})
    with pytest.raises(ValueError, match=r"removeprefix\('up.'\)"):
        m.load_state_dict({"up.weight": np.ones((2, 3, 3, 3), np.float32)})
    before = np.array(m.weight[...])
    with pytest.raises(ValueError):
        m.load_state_dict({"weight": np.zeros((2, 3, 3, 3), np.float32)})
    np.testing.assert_array_equal(m.weight[...], before)  # a failed load changes nothing
    # channel mismatch at call time: the functions' message, also under jit
    with pytest.raises(ValueError, match="channel"):
        m(jnp.ones((1, 4, 4, 5)))
    with pytest.raises(ValueError, match="channel"):
        nnx.jit(lambda m, x: m(x))(m, jnp.ones((1, 4, 4, 5)))


def test_importing_without_flax_says_how_to_install():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "flax" or name.startswith("flax."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        import convt_jax                      # the core package does not need flax
        try:
            import convt_jax.flax
        except ImportError as e:
            print("MESSAGE:", e)
        else:
            print("IMPORTED")
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert 'pip install "convt_jax[flax]"' in proc.stdout, proc.stdout


def test_flax_extra_in_pyproject():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    from packaging.requirements import Requirement

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (extra,) = [Requirement(r) for r in config["project"]["optional-dependencies"]["flax"]]
    assert extra.name == "flax"
    # The test environment's pinned Flax is one the extra accepts.
    pinned = [Requirement(r) for r in config["dependency-groups"]["test"]]
    (version,) = [str(r.specifier).removeprefix("==") for r in pinned if r.name == "flax"]
    assert extra.specifier.contains(version), (version, str(extra.specifier))


def test_linen_inside_a_linen_model():
    class Net(linen.Module):
        @linen.compact
        def __call__(self, x):
            x = ctl.ConvTranspose2d(3, 4, 4, stride=2, padding=1, name="up")(x)
            return linen.Dense(2)(x)

    net = Net()
    x = jnp.ones((2, 4, 4, 3))
    v = net.init(jax.random.key(0), x)
    assert set(v["params"]["up"]) == {"weight", "bias"}
    assert v["params"]["up"]["weight"].shape == (3, 4, 4, 4)

    def loss(v):
        return jnp.mean(net.apply(v, x) ** 2)

    g = jax.grad(loss)(v)
    tx = optax.sgd(0.1)
    updates, _ = tx.update(g, tx.init(v))
    assert float(loss(optax.apply_updates(v, updates))) < float(loss(v))
