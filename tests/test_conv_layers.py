"""Regular-convolution layers (SPEC §8): ct.nn, Flax NNX and linen against torch.nn.Conv*d.

Values and gradients in float64 with padding modes, groups, dilation and both layouts;
state dicts both ways, ``from_torch``, weight-norm checkpoints (PyTorch's default
``dim=0`` is the *output* channel of a Conv weight) and PyTorch's initial distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from test_weight_norm import _weight_norm

import convt_jax as ct
import convt_jax.flax as ctf
from convt_jax.flax import linen as ctl

TOL = dict(rtol=1e-10, atol=1e-10)
TORCH = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}
NN = {1: ct.nn.Conv1d, 2: ct.nn.Conv2d, 3: ct.nn.Conv3d}
NNX = {1: ctf.Conv1d, 2: ctf.Conv2d, 3: ctf.Conv3d}
LINEN = {1: ctl.Conv1d, 2: ctl.Conv2d, 3: ctl.Conv3d}

# (input spatial, in, out, kernel, settings shared by both libraries)
CONFIGS = [
    ((9,), 2, 4, 3, dict(stride=2, padding=1)),
    ((8,), 4, 6, 2, dict(stride=3, groups=2, dilation=2, bias=False)),
    ((7,), 3, 3, 3, dict(padding="same", padding_mode="reflect", groups=3)),
    ((6, 7), 6, 9, (3, 2), dict(stride=2, padding=(2, 1), groups=3, dilation=(1, 2))),
    ((5, 6), 2, 4, 3, dict(padding=1, padding_mode="circular")),
    ((5, 5), 2, 2, (2, 3), dict(stride=(1, 2), padding=(1, 2), padding_mode="replicate")),
    ((4, 5, 4), 4, 2, (2, 3, 2), dict(stride=(1, 2, 1), padding="valid", groups=2)),
    ((4, 4, 5), 2, 3, 3, dict(padding=1, dilation=(1, 1, 2), padding_mode="reflect")),
]
IDS = [f"{len(c[0])}d-{c[4].get('padding_mode', 'zeros')}-{i}" for i, c in enumerate(CONFIGS)]
FAST = [0, 3, 4, 7]  # the default run; the rest are marked slow


def _cases():
    for i, (cfg, id_) in enumerate(zip(CONFIGS, IDS, strict=True)):
        marks = [] if i in FAST else [pytest.mark.slow]
        yield pytest.param(cfg, id=id_, marks=marks)


def _torch(cfg, seed=0):
    spatial, c_in, c_out, kernel, kw = cfg
    torch.manual_seed(seed)
    return TORCH[len(spatial)](c_in, c_out, kernel, dtype=torch.float64, **kw)


def _torch_grads(t, x, cot):
    xt = torch.as_tensor(x).requires_grad_(True)
    y = t(xt)
    (y * torch.as_tensor(cot)).sum().backward()
    gb = None if t.bias is None else t.bias.grad.numpy()
    return y.detach().numpy(), xt.grad.numpy(), t.weight.grad.numpy(), gb


def _reference(rng, cfg):
    """The torch layer, an input, a cotangent and torch's (y, dx, dw, db)."""
    spatial, c_in = cfg[0], cfg[1]
    t = _torch(cfg)
    x = rng.standard_normal((2, c_in, *spatial))
    cot = rng.standard_normal(tuple(t(torch.as_tensor(x)).shape))
    return t, x, cot, _torch_grads(t, x, cot)


def _layout(channels_last):
    return (lambda a: np.moveaxis(a, 1, -1)) if channels_last else (lambda a: a)


def _check(got, want, move):
    y, gx, gw, gb = got
    want_y, want_gx, want_gw, want_gb = want
    np.testing.assert_allclose(y, move(want_y), **TOL)
    np.testing.assert_allclose(gx, move(want_gx), **TOL)
    np.testing.assert_allclose(gw, want_gw, **TOL)
    if want_gb is None:
        assert gb is None
    else:
        np.testing.assert_allclose(gb, want_gb, **TOL)


# --- values and gradients -------------------------------------------------------------------


@pytest.mark.parametrize("cfg", list(_cases()))
@pytest.mark.parametrize("channels_last", [False, True])
def test_nn_matches_torch_values_and_gradients(rng, cfg, channels_last):
    t, x, cot, want = _reference(rng, cfg)
    layer = ct.nn.Conv.from_torch(t, channels_last=channels_last)
    assert type(layer) is ct.nn.Conv and layer.weight.dtype == jnp.float64
    move = _layout(channels_last)
    layer = NN[len(cfg[0])].from_torch(t, channels_last=channels_last)

    def loss(lay, x):
        return jnp.sum(lay(x) * move(cot))

    gl, gx = jax.grad(loss, argnums=(0, 1))(layer, move(x))
    assert type(gl) is type(layer)
    _check((layer(move(x)), gx, gl.weight, gl.bias), want, move)


@pytest.mark.parametrize("cfg", list(_cases()))
@pytest.mark.parametrize("channels_last", [True, False])
def test_nnx_matches_torch_values_and_gradients(rng, cfg, channels_last):
    spatial, c_in, c_out, kernel, kw = cfg
    t, x, cot, want = _reference(rng, cfg)
    m = NNX[len(spatial)](
        c_in, c_out, kernel, **kw, channels_last=channels_last, param_dtype=jnp.float64,
        rngs=nnx.Rngs(0),
    )  # fmt: skip
    m.load_state_dict(t.state_dict())
    move = _layout(channels_last)

    def loss(model, x):
        return jnp.sum(model(x) * move(cot))

    gm, gx = nnx.grad(loss, argnums=(0, 1))(m, move(x))
    gb = gm.bias[...] if m.bias is not None else None
    _check((m(move(x)), gx, gm.weight[...], gb), want, move)


@pytest.mark.parametrize("cfg", list(_cases()))
def test_linen_matches_torch_values_and_gradients(rng, cfg):
    spatial, c_in, c_out, kernel, kw = cfg
    t, x, cot, want = _reference(rng, cfg)
    m = LINEN[len(spatial)](c_in, c_out, kernel, param_dtype=jnp.float64, **kw)
    move = _layout(True)
    variables = m.init(jax.random.key(0), move(x))
    assert {k: v.shape for k, v in variables["params"].items()} == {
        k: tuple(v.shape) for k, v in t.state_dict().items()
    }
    variables = m.variables_from_state_dict(t.state_dict())

    def loss(params, x):
        return jnp.sum(m.apply({"params": params}, x) * move(cot))

    gp, gx = jax.grad(loss, argnums=(0, 1))(variables["params"], move(x))
    y = m.apply(variables, move(x))
    _check((y, gx, gp["weight"], gp.get("bias")), want, move)


def test_n_d_layers_take_four_spatial_axes(rng):
    """The N-d classes: four spatial axes, against convt_jax.conv with the same weights."""
    x = rng.standard_normal((2, 4, 5, 4, 5, 4))
    layer = ct.nn.Conv(4, 4, 6, 3, stride=2, padding=1, groups=2, key=jax.random.key(0))
    want = ct.conv(x, layer.weight, layer.bias, 2, 1, groups=2)
    assert layer.weight.shape == (6, 2, 3, 3, 3, 3)
    np.testing.assert_allclose(layer(x.astype(np.float32)), want, rtol=1e-5, atol=1e-5)
    m = ctf.Conv(4, 4, 6, 3, stride=2, padding=1, groups=2, channels_last=False, rngs=nnx.Rngs(0))
    m.load_state_dict(layer.state_dict())
    np.testing.assert_allclose(m(x.astype(np.float32)), want, rtol=1e-5, atol=1e-5)


def test_unbatched_and_compute_mode():
    layer = ct.nn.Conv2d(2, 3, 3, padding=1, key=jax.random.key(0))
    x = jnp.ones((2, 5, 5))
    np.testing.assert_allclose(layer(x), layer(x[None])[0], rtol=1e-6)
    half = ct.nn.Conv2d(2, 3, 3, compute_mode="float32", dtype=jnp.bfloat16, key=jax.random.key(0))
    assert half(x.astype(jnp.bfloat16)).dtype == jnp.bfloat16


# --- state dicts, from_torch, weight norm ---------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_state_dict_round_trips(n):
    t = TORCH[n](4, 6, 3, stride=2, padding=1, groups=2, dtype=torch.float64)
    layer = NN[n](4, 6, 3, stride=2, padding=1, groups=2, dtype=jnp.float64, key=jax.random.key(1))
    loaded = layer.load_state_dict(t.state_dict())
    assert type(loaded) is type(layer)
    sd = loaded.state_dict()
    assert set(sd) == {"weight", "bias"} and sd["weight"].shape == (6, 2) + (3,) * n
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(sd[k], v.numpy())
    t2 = TORCH[n](4, 6, 3, stride=2, padding=1, groups=2, dtype=torch.float64)
    t2.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()})  # back into torch
    for k, v in t.state_dict().items():
        assert torch.equal(t2.state_dict()[k], v)
    # The Flax modules load the same dict and give it back.
    m = NNX[n](4, 6, 3, stride=2, padding=1, groups=2, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    m.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(m.state_dict()["weight"], sd["weight"])
    lm = LINEN[n](4, 6, 3, stride=2, padding=1, groups=2, param_dtype=jnp.float64)
    v = lm.variables_from_state_dict(t.state_dict())
    np.testing.assert_array_equal(v["params"]["bias"], sd["bias"])


def test_load_state_dict_errors():
    layer = ct.nn.Conv1d(2, 4, 3, bias=False, key=jax.random.key(0))
    with pytest.raises(ValueError, match="unexpected"):
        layer.load_state_dict({"weight": np.zeros((4, 2, 3), np.float32), "bias": np.zeros(4)})
    with pytest.raises(ValueError, match="must have shape"):
        layer.load_state_dict({"weight": np.zeros((2, 4, 3), np.float32)})  # transposed layout


@pytest.mark.parametrize("n", [1, 2, 3])
def test_from_torch_settings(n):
    t = TORCH[n](4, 6, 2, stride=2, padding=1, dilation=2, groups=2, padding_mode="circular")
    for layer in (NN[n].from_torch(t), ct.nn.Conv.from_torch(t)):
        assert (layer.in_channels, layer.out_channels, layer.groups) == (4, 6, 2)
        assert layer.kernel_size == (2,) * n and layer.stride == (2,) * n
        assert layer.padding == (1,) * n and layer.dilation == (2,) * n
        assert layer.padding_mode == "circular" and layer.num_spatial_dims == n
    m = NNX[n].from_torch(t)
    assert (
        m.channels_last and m.padding_mode == "circular" and m.weight[...].shape == t.weight.shape
    )
    lm, variables = LINEN[n].from_torch(t)
    assert lm.padding == (1,) * n and set(variables["params"]) == {"weight", "bias"}


def test_from_torch_refuses_the_other_family_and_rank():
    conv, convt = torch.nn.Conv2d(2, 3, 3), torch.nn.ConvTranspose2d(2, 3, 3)
    with pytest.raises(TypeError, match="must be a torch.nn.Conv1d, Conv2d or Conv3d"):
        ct.nn.Conv2d.from_torch(convt)
    with pytest.raises(TypeError, match="must be a torch.nn.ConvTranspose1d"):
        ct.nn.ConvTranspose2d.from_torch(conv)
    with pytest.raises(TypeError, match=r"Conv1d.from_torch needs a torch.nn.Conv1d.*Conv2d"):
        ct.nn.Conv1d.from_torch(conv)
    with pytest.raises(TypeError, match=r"use convt_jax.flax.Conv2d.from_torch"):
        ctf.Conv3d.from_torch(conv)
    with pytest.raises(TypeError, match=r"use convt_jax.flax.linen.Conv2d.from_torch"):
        ctl.Conv1d.from_torch(conv)
    with pytest.raises(TypeError, match="must be a torch.nn.Conv1d"):
        ctf.Conv2d.from_torch(convt)


@pytest.mark.parametrize("api", ["old", "new"])
@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_checkpoints(rng, api, dim):
    """PyTorch's default dim=0 on a Conv weight (C_out, C_in // groups, *K): per output channel."""
    torch.manual_seed(0)
    t = _weight_norm(torch.nn.Conv2d(4, 6, 3, padding=1, groups=2, dtype=torch.float64), api, dim)
    with torch.no_grad():  # g away from ||v||, so folding matters
        for name, p in t.named_parameters():
            if name != "bias":
                p.mul_(torch.rand_like(p) + 0.5)
    x = rng.standard_normal((2, 4, 5, 5))
    want = t(torch.as_tensor(x)).detach().numpy()
    if dim == 0:
        g = t.weight_g if api == "old" else t.parametrizations.weight.original0
        assert tuple(g.shape) == (6, 1, 1, 1)
    layer = ct.nn.Conv2d(4, 6, 3, padding=1, groups=2, dtype=jnp.float64, key=jax.random.key(0))
    np.testing.assert_allclose(layer.load_state_dict(t.state_dict())(x), want, **TOL)
    np.testing.assert_allclose(ct.nn.Conv2d.from_torch(t)(x), want, **TOL)
    m = ctf.Conv2d.from_torch(t, channels_last=False)
    np.testing.assert_allclose(m(x), want, **TOL)
    lm, variables = ctl.Conv2d.from_torch(t, channels_last=False)
    np.testing.assert_allclose(lm.apply(variables, x), want, **TOL)


# --- initialisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, c_in, c_out, kernel, groups", [(1, 16, 8, 5, 1), (2, 32, 64, 3, 4), (3, 8, 16, 2, 2)]
)
def test_default_init_is_pytorchs(n, c_in, c_out, kernel, groups):
    """kaiming_uniform(a=sqrt(5)) and the bias: both uniform in ±1/sqrt(C_in / groups * K^n)."""
    bound = 1 / np.sqrt(c_in // groups * kernel**n)
    t = TORCH[n](c_in, c_out, kernel, groups=groups)
    assert t.weight.abs().max().item() <= bound  # the bound is PyTorch's
    layer = NN[n](c_in, c_out, kernel, groups=groups, key=jax.random.key(0))
    m = NNX[n](c_in, c_out, kernel, groups=groups, rngs=nnx.Rngs(0))
    lm = LINEN[n](c_in, c_out, kernel, groups=groups)
    x = jnp.ones((1,) + (kernel + 2,) * n + (c_in,))
    params = lm.init(jax.random.key(0), x)["params"]
    for w, b in (
        (layer.weight, layer.bias),
        (m.weight[...], m.bias[...]),  # type: ignore[index]
        (params["weight"], params["bias"]),
    ):
        assert w.shape == tuple(t.weight.shape) and b.shape == (c_out,)
        w, b = np.asarray(w), np.asarray(b)
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        # Uniform, not merely bounded: the extremes near the bound, the variance bound^2 / 3.
        assert np.abs(w).max() > 0.9 * bound
        assert abs(w.var() / (bound**2 / 3) - 1) < 0.2
    assert not np.array_equal(layer.weight, NN[n](c_in, c_out, kernel, groups=groups,
                                                  key=jax.random.key(1)).weight)  # fmt: skip


# --- construction ---------------------------------------------------------------------------


def test_validation_and_repr():
    with pytest.raises(ValueError, match="padding='same' needs stride=1"):
        ct.nn.Conv2d(2, 2, 3, stride=2, padding="same", key=jax.random.key(0))
    with pytest.raises(ValueError, match="groups=2 must divide"):
        ct.nn.Conv1d(3, 4, 3, groups=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="padding_mode"):
        ctf.Conv1d(2, 2, 3, padding_mode="mirror", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="key=None"):
        ct.nn.Conv1d(2, 2, 3)
    with pytest.raises(TypeError):
        ct.nn.Conv1d(2, 2, 3, 1, 0, 1, 1, True, "zeros", False)  # channels_last is keyword-only
    layer = ct.nn.Conv2d(2, 4, 3, 2, 1, 1, 2, False, "reflect", key=jax.random.key(0))
    assert repr(layer) == (
        "Conv2d(2, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), groups=2, "
        "padding_mode='reflect', bias=False)"
    )
    assert repr(ct.nn.Conv(1, 2, 2, 3, key=jax.random.key(0))).startswith(
        "Conv(num_spatial_dims=1, 2, 2"
    )


def test_pytree_and_replace():
    layer = ct.nn.Conv1d(2, 4, 3, key=jax.random.key(0))
    doubled = jax.tree.map(lambda a: 2 * a, layer)
    assert type(doubled) is ct.nn.Conv1d and doubled.kernel_size == (3,)
    np.testing.assert_allclose(doubled.weight, 2 * layer.weight)
    assert len(jax.tree.leaves(layer)) == 2
    new = layer.replace(weight=jnp.zeros((4, 2, 3), jnp.float32))
    assert float(jnp.abs(new(jnp.ones((2, 5)))).max() - jnp.abs(layer.bias).max()) <= 1e-7
    # The transposed layers keep their own fields and settings.
    assert not hasattr(layer, "output_padding")
    assert ct.nn.ConvTranspose1d(2, 4, 3, key=jax.random.key(0)).output_padding == (0,)


def test_replace_names_the_regular_convolutions_weight_layout():
    """A wrong weight shape for a Conv names its layout (C_out, C_in // groups, *kernel),
    not the transposed layers' (C_in, C_out // groups, *kernel)."""
    import re

    layer = ct.nn.Conv2d(2, 3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=re.escape("(C_out, C_in // groups, *kernel)")):
        layer.replace(weight=jnp.zeros((2, 3, 4, 4)))
    layer_t = ct.nn.ConvTranspose2d(2, 3, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=re.escape("(C_in, C_out // groups, *kernel)")):
        layer_t.replace(weight=jnp.zeros((3, 3, 4, 4)))
