"""One call from a PyTorch module: ``from_torch`` on ct.nn and the Flax modules, weight norm.

Every configuration the layers support, built in PyTorch (plain and weight-normed
with either API), read back by ``from_torch`` with no key, and run against the
PyTorch module.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import convt_jax as ct

TORCH_LAYERS = {
    1: torch.nn.ConvTranspose1d,
    2: torch.nn.ConvTranspose2d,
    3: torch.nn.ConvTranspose3d,
}
OURS = {1: ct.nn.ConvTranspose1d, 2: ct.nn.ConvTranspose2d, 3: ct.nn.ConvTranspose3d}
TOL = dict(rtol=1e-10, atol=1e-10)

# (input spatial, in, out, kernel, torch settings)
CONFIGS = [
    ((7,), 2, 4, 3, dict()),
    ((7,), 2, 4, 3, dict(stride=2, padding=1, output_padding=1)),
    ((6,), 4, 6, 2, dict(stride=3, groups=2, dilation=2, bias=False)),
    ((9,), 8, 4, 16, dict(stride=8, padding=4)),  # HiFi-GAN upsampler
    ((5, 4), 3, 2, (3, 2), dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0))),
    (
        (4, 5),
        6,
        9,
        (3, 2),
        dict(stride=2, padding=(2, 1), output_padding=1, groups=3, dilation=(1, 2)),
    ),
    ((3, 4), 4, 4, 4, dict(stride=2, padding=1, groups=4, bias=False)),  # depthwise
    ((3, 3, 2), 2, 3, 3, dict(stride=2, padding=1, output_padding=1)),
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


def _weight_norm(module, api, dim=0):
    if api == "new":
        return torch.nn.utils.parametrizations.weight_norm(module, dim=dim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nn.utils.weight_norm(module, dim=dim)


def _torch(cfg, norm=None, dtype=torch.float64, seed=0):
    spatial, c_in, c_out, kernel, kw = cfg
    torch.manual_seed(seed)
    t = TORCH_LAYERS[len(spatial)](c_in, c_out, kernel, dtype=dtype, **kw)
    if norm is not None:
        t = _weight_norm(t, *norm)
        with torch.no_grad():
            for name, p in t.named_parameters():
                if name != "bias":
                    p.mul_(torch.rand_like(p) + 0.5)
    return t


def _check_settings(layer, t):
    n = len(t.kernel_size)
    assert layer.in_channels == t.in_channels and layer.out_channels == t.out_channels
    assert tuple(layer.kernel_size) == tuple(t.kernel_size)
    assert tuple(layer.stride) == tuple(t.stride)
    assert tuple(layer.output_padding) == tuple(t.output_padding)
    assert tuple(layer.dilation) == tuple(t.dilation)
    assert layer.groups == t.groups
    pad = layer.padding
    assert (tuple(pad) if not isinstance(pad, str) else pad) == tuple(t.padding)[:n]
    assert (layer.bias is None) == (t.bias is None)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize(
    "norm",
    [None, ("old", 0), ("new", 0), ("new", 1), ("old", None)],
    ids=["plain", "old-dim0", "new-dim0", "new-dim1", "old-dimNone"],
)
def test_ct_nn_from_torch(rng, cfg, norm):
    spatial, c_in = cfg[0], cfg[1]
    n = len(spatial)
    t = _torch(cfg, norm)
    layer = OURS[n].from_torch(t)  # no key
    assert type(layer) is OURS[n]
    _check_settings(layer, t)
    assert layer.weight.dtype == jnp.float64 and layer.channels_last is False
    x = rng.standard_normal((2, c_in, *spatial))
    want = t(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(layer(x), want, **TOL)
    # the generic class takes any dimension
    generic = ct.nn.ConvTranspose.from_torch(t)
    np.testing.assert_allclose(generic(x), want, **TOL)
    # and the weight-normed state dict loads into a layer built by hand
    sd = t.state_dict()
    by_hand = layer.load_state_dict(sd)
    np.testing.assert_allclose(by_hand(x), want, **TOL)


@pytest.mark.parametrize("cfg", CONFIGS[1::2], ids=IDS[1::2])
def test_output_size_after_from_torch(rng, cfg):
    spatial, c_in = cfg[0], cfg[1]
    t = _torch(cfg)
    layer = OURS[len(spatial)].from_torch(t)
    x = rng.standard_normal((1, c_in, *spatial))
    base = t(torch.as_tensor(x)).shape[2:]
    size = [
        b + (1 if s > 1 + op else 0)
        for b, s, op in zip(base, t.stride, t.output_padding, strict=True)
    ]
    want = t(torch.as_tensor(x), output_size=size).detach().numpy()
    np.testing.assert_allclose(layer(x, output_size=size), want, **TOL)


@pytest.mark.parametrize(
    "dtype, jdtype",
    [(torch.float32, jnp.float32), (torch.float64, jnp.float64), (torch.bfloat16, jnp.bfloat16)],
)
def test_dtypes_follow_the_module(rng, dtype, jdtype):
    t = _torch(CONFIGS[1], dtype=dtype)
    layer = ct.nn.ConvTranspose1d.from_torch(t)
    assert layer.weight.dtype == jdtype and layer.bias.dtype == jdtype
    np.testing.assert_array_equal(
        np.asarray(layer.weight, np.float64), t.weight.detach().double().numpy()
    )


def test_padding_mode_is_read():
    """PyTorch builds transposed convolutions with padding_mode="zeros" only; a module whose
    padding_mode was set afterwards is read as it is (the exact adjoint of that padding)."""
    t = _torch(CONFIGS[4])
    t.padding_mode = "circular"
    layer = ct.nn.ConvTranspose2d.from_torch(t)
    assert layer.padding_mode == "circular"
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 4))
    want = ct.conv_transpose2d(
        x,
        jnp.asarray(t.weight.detach().numpy()),
        jnp.asarray(t.bias.detach().numpy()),
        t.stride,
        t.padding,
        t.output_padding,
        padding_mode="circular",
    )
    np.testing.assert_allclose(layer(x), want, **TOL)


def test_channels_last_option(rng):
    t = _torch(CONFIGS[4])
    layer = ct.nn.ConvTranspose2d.from_torch(t, channels_last=True)
    assert layer.channels_last is True
    x = rng.standard_normal((2, 3, 5, 4))
    want = t(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(layer(np.moveaxis(x, 1, -1)), np.moveaxis(want, 1, -1), **TOL)


def test_from_torch_errors():
    t1 = torch.nn.ConvTranspose1d(2, 2, 3)
    with pytest.raises(
        TypeError, match="ConvTranspose2d.from_torch needs a torch.nn.ConvTranspose2d"
    ):
        ct.nn.ConvTranspose2d.from_torch(t1)
    for bad in (torch.nn.Conv2d(2, 2, 3), torch.nn.Linear(2, 2), np.ones(3)):
        with pytest.raises(
            TypeError,
            match="must be a torch.nn.ConvTranspose1d, ConvTranspose2d or ConvTranspose3d",
        ):
            ct.nn.ConvTranspose2d.from_torch(bad)
    with pytest.raises(ValueError, match="lazy module"):
        ct.nn.ConvTranspose2d.from_torch(torch.nn.LazyConvTranspose2d(3, 2))


def test_missing_key_says_what_to_pass():
    with pytest.raises(TypeError) as info:
        ct.nn.ConvTranspose2d(2, 3, 4)
    msg = str(info.value)
    assert "key=jax.random.key(0)" in msg and "ConvTranspose2d.from_torch(module)" in msg
    with pytest.raises(TypeError, match=r"ConvTranspose1d.from_torch\(module\)"):
        ct.nn.ConvTranspose1d(2, 3, 4, key=None)


def test_load_state_dict_prefixed_weight_norm_keys():
    model = torch.nn.Module()
    model.ups = torch.nn.ModuleList([_weight_norm(torch.nn.ConvTranspose1d(4, 2, 3), "old")])
    layer = ct.nn.ConvTranspose1d(4, 2, 3, key=jax.random.key(0))
    with pytest.raises(ValueError) as info:
        layer.load_state_dict(model.state_dict())
    msg = str(info.value)
    assert "k.startswith('ups.0.')" in msg and "strip any module prefix" not in msg


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize(
    "norm", [None, ("new", 0), ("old", 1)], ids=["plain", "new-dim0", "old-dim1"]
)
def test_flax_from_torch(rng, cfg, norm):
    import convt_jax.flax as ctf
    from convt_jax.flax import linen as ctl

    spatial, c_in = cfg[0], cfg[1]
    n = len(spatial)
    t = _torch(cfg, norm)
    x = rng.standard_normal((2, c_in, *spatial))
    want = t(torch.as_tensor(x)).detach().numpy()
    m = getattr(ctf, f"ConvTranspose{n}d").from_torch(t)
    _check_settings(m, t)
    assert m.weight[...].dtype == jnp.float64
    np.testing.assert_allclose(m(np.moveaxis(x, 1, -1)), np.moveaxis(want, 1, -1), **TOL)
    lin, variables = getattr(ctl, f"ConvTranspose{n}d").from_torch(t, channels_last=False)
    np.testing.assert_allclose(lin.apply(variables, x), want, **TOL)
    assert set(variables["params"]) == ({"weight"} if t.bias is None else {"weight", "bias"})
