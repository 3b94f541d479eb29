"""Layers and initialisers: PyTorch parity, pytree behaviour, init statistics, ICNR."""

from __future__ import annotations

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import convt_jax as ct

TOL = dict(rtol=1e-10, atol=1e-10)
TORCH_LAYERS = {
    1: torch.nn.ConvTranspose1d,
    2: torch.nn.ConvTranspose2d,
    3: torch.nn.ConvTranspose3d,
}
OURS = {1: ct.nn.ConvTranspose1d, 2: ct.nn.ConvTranspose2d, 3: ct.nn.ConvTranspose3d}

# (input spatial, in, out, kernel, settings shared by both libraries)
CONFIGS = [
    ((7,), 2, 4, 3, dict(stride=2, padding=1, output_padding=1)),
    ((6,), 4, 6, 2, dict(stride=3, groups=2, dilation=2, bias=False)),
    ((5, 4), 3, 2, (3, 2), dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0))),
    (
        (4, 5),
        6,
        9,
        (3, 2),
        dict(stride=2, padding=(2, 1), output_padding=1, groups=3, dilation=(1, 2)),
    ),
    ((3, 4), 2, 2, 4, dict(stride=2, padding=1)),  # DCGAN block
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


def _pair(cfg, seed=0, **ours_kw):
    """A float64 torch layer and our layer holding its weights."""
    spatial, c_in, c_out, kernel, kw = cfg
    n = len(spatial)
    torch.manual_seed(seed)
    t = TORCH_LAYERS[n](c_in, c_out, kernel, dtype=torch.float64, **kw)
    kw = dict(kw)
    stride, padding, opad = (
        kw.pop(k, d) for k, d in (("stride", 1), ("padding", 0), ("output_padding", 0))
    )
    ours = OURS[n](
        c_in,
        c_out,
        kernel,
        stride,
        padding,
        opad,
        dtype=jnp.float64,
        key=jax.random.key(seed),
        **kw,
        **ours_kw,
    )
    return t, ours.load_state_dict(t.state_dict())


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_matches_torch_layer(rng, cfg):
    spatial, c_in = cfg[0], cfg[1]
    t, ours = _pair(cfg)
    x = rng.standard_normal((3, c_in, *spatial))
    want = t(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(ours(x), want, **TOL)
    np.testing.assert_allclose(jax.jit(lambda layer, x: layer(x))(ours, x), want, **TOL)
    # unbatched
    np.testing.assert_allclose(ours(x[0]), t(torch.as_tensor(x[0])).detach().numpy(), **TOL)
    # channels_last: same weights, activations moved
    _, cl = _pair(cfg, channels_last=True)
    np.testing.assert_allclose(cl(np.moveaxis(x, 1, -1)), np.moveaxis(want, 1, -1), **TOL)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_output_size_matches_torch_layer(rng, cfg):
    """``forward(x, output_size)``: torch ignores the layer's output_padding then; so do we."""
    spatial, c_in, c_out, kernel, kw = cfg
    t, ours = _pair(cfg)
    x = rng.standard_normal((2, c_in, *spatial))
    base = ct.conv_transpose_output_shape(
        x.shape,
        ours.weight.shape,
        ours.stride,
        ours.padding,
        groups=ours.groups,
        dilation=ours.dilation,
    )[2:]
    for extra in {0, max(ours.stride) - 1}:
        size = tuple(b + min(extra, s - 1) for b, s in zip(base, ours.stride, strict=True))
        want = t(torch.as_tensor(x), output_size=list(size)).detach().numpy()
        assert want.shape[2:] == size
        np.testing.assert_allclose(ours(x, output_size=size), want, **TOL)
        full = (2, c_out) + size  # a full shape works too, as in torch
        np.testing.assert_allclose(ours(x, output_size=full), want, **TOL)


def test_output_size_error_names_reachable_sizes():
    layer = ct.nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1, key=jax.random.key(0))
    with pytest.raises(
        ValueError,
        match=r"output_size=\(12,\) is not reachable: spatial axis 0 "
        r"can be 9..10",
    ):
        layer(jnp.ones((1, 1, 5)), output_size=(12,))


def test_state_dict_roundtrip_to_torch(rng):
    ours = ct.nn.ConvTranspose2d(
        4, 6, 3, 2, 1, 1, groups=2, dtype=jnp.float64, key=jax.random.key(3)
    )
    sd = ours.state_dict()
    assert set(sd) == {"weight", "bias"}
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert sd["weight"].shape == (4, 3, 3, 3) and sd["bias"].shape == (6,)
    t = torch.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, dtype=torch.float64)
    t.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()})
    x = rng.standard_normal((2, 4, 3, 5))
    np.testing.assert_allclose(ours(x), t(torch.as_tensor(x)).detach().numpy(), **TOL)
    no_bias = ct.nn.ConvTranspose1d(2, 2, 2, bias=False, key=jax.random.key(0))
    assert set(no_bias.state_dict()) == {"weight"}


def test_conv_mode_convolution_is_flipped_torch(rng):
    cfg = CONFIGS[3]
    t, ours = _pair(cfg, conv_mode="convolution")
    with torch.no_grad():
        t.weight.copy_(torch.flip(t.weight, dims=(2, 3)))
    x = rng.standard_normal((2, cfg[1], *cfg[0]))
    np.testing.assert_allclose(ours(x), t(torch.as_tensor(x)).detach().numpy(), **TOL)


def test_nd_layer_matches_function(rng):
    layer = ct.nn.ConvTranspose(
        4,
        2,
        3,
        kernel_size=2,
        stride=(2, 1, 1, 2),
        padding=((1, 0),) * 4,
        dtype=jnp.float64,
        key=jax.random.key(0),
    )
    x = rng.standard_normal((1, 2, 2, 3, 2, 2))
    np.testing.assert_allclose(
        layer(x), ct.conv_transpose(x, layer.weight, layer.bias, (2, 1, 1, 2), ((1, 0),) * 4), **TOL
    )
    assert "num_spatial_dims=4" in repr(layer)


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_padding_mode_layer_is_the_function(rng, mode):
    layer = ct.nn.ConvTranspose2d(
        2, 3, 3, 2, 1, 1, padding_mode=mode, dtype=jnp.float64, key=jax.random.key(0)
    )
    x = rng.standard_normal((2, 2, 4, 3))
    want = ct.conv_transpose2d(x, layer.weight, layer.bias, 2, 1, 1, padding_mode=mode)
    np.testing.assert_allclose(layer(x), want, **TOL)
    assert layer.padding_mode == mode and f"padding_mode='{mode}'" in repr(layer)


# ----------------------------------------------------------------------------- pytree


def test_pytree_leaves_are_weight_and_bias_only():
    layer = ct.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, key=jax.random.key(0))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(layer)[0]]
    assert paths == [".weight", ".bias"]
    no_bias = ct.nn.ConvTranspose2d(4, 6, 3, bias=False, key=jax.random.key(0))
    assert len(jax.tree.leaves(no_bias)) == 1 and no_bias.bias is None
    # settings are static aux data: equal settings, equal treedef
    other = ct.nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, groups=2, key=jax.random.key(1))
    assert jax.tree.structure(layer) == jax.tree.structure(other)
    assert jax.tree.structure(layer) != jax.tree.structure(no_bias)
    # tree_map rebuilds a layer of the same class and settings
    zero = jax.tree.map(jnp.zeros_like, layer)
    assert type(zero) is ct.nn.ConvTranspose2d and zero.stride == (2, 2)
    assert float(jnp.abs(zero.weight).sum()) == 0.0


def test_immutable():
    layer = ct.nn.ConvTranspose1d(2, 2, 3, key=jax.random.key(0))
    # A frozen dataclass: assignment raises dataclasses.FrozenInstanceError (an AttributeError).
    with pytest.raises(AttributeError, match="cannot assign to field 'weight'"):
        layer.weight = jnp.zeros((2, 2, 3))
    with pytest.raises(AttributeError, match="cannot assign to field 'stride'"):
        layer.stride = (2,)
    with pytest.raises(AttributeError):
        del layer.bias
    # (copies and pickles still work: they do not go through __setattr__)
    again = pickle.loads(pickle.dumps(layer))
    np.testing.assert_array_equal(again.weight, layer.weight)
    assert again.kernel_size == (3,)


def test_grad_and_optax_train_a_layer(rng):
    layer = ct.nn.ConvTranspose2d(3, 2, 4, 2, 1, dtype=jnp.float64, key=jax.random.key(0))
    x = jnp.asarray(rng.standard_normal((4, 3, 3, 3)))
    target = jnp.asarray(rng.standard_normal((4, 2, 6, 6)))

    def loss(layer):
        return jnp.mean((layer(x) - target) ** 2)

    grads = jax.grad(loss)(layer)
    assert type(grads) is ct.nn.ConvTranspose2d
    assert grads.weight.shape == layer.weight.shape and grads.bias.shape == layer.bias.shape
    # The gradient is PyTorch's.
    t = torch.nn.ConvTranspose2d(3, 2, 4, 2, 1, dtype=torch.float64)
    t.load_state_dict({k: torch.as_tensor(v) for k, v in layer.state_dict().items()})
    torch.mean((t(torch.tensor(np.array(x))) - torch.tensor(np.array(target))) ** 2).backward()
    np.testing.assert_allclose(grads.weight, t.weight.grad.numpy(), **TOL)
    np.testing.assert_allclose(grads.bias, t.bias.grad.numpy(), **TOL)

    opt = optax.adam(0.05)
    state = opt.init(layer)

    @jax.jit
    def step(layer, state):
        value, g = jax.value_and_grad(loss)(layer)
        updates, state = opt.update(g, state, layer)
        return optax.apply_updates(layer, updates), state, value

    first = loss(layer)
    for _ in range(20):
        layer, state, _ = step(layer, state)
    assert type(layer) is ct.nn.ConvTranspose2d
    assert loss(layer) < 0.8 * first


def test_jit_does_not_retrace(rng):
    traces = []

    @jax.jit
    def apply(layer, x):
        traces.append(1)
        return layer(x)

    a = ct.nn.ConvTranspose1d(2, 3, 3, 2, key=jax.random.key(0))
    b = ct.nn.ConvTranspose1d(2, 3, 3, 2, key=jax.random.key(1))
    x = jnp.ones((1, 2, 4))
    apply(a, x)
    apply(b, x)  # new weights, same settings: no retrace
    assert len(traces) == 1
    apply(ct.nn.ConvTranspose1d(2, 3, 3, 1, key=jax.random.key(0)), x)  # new settings
    assert len(traces) == 2


def test_vmap_over_layers(rng):
    """A stack of layers (an ensemble) is a pytree with a leading axis on the leaves."""
    layers = [
        ct.nn.ConvTranspose1d(2, 2, 3, 2, dtype=jnp.float64, key=jax.random.key(i))
        for i in range(3)
    ]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *layers)
    x = rng.standard_normal((1, 2, 4))
    out = jax.vmap(lambda layer: layer(x))(stacked)
    for i, layer in enumerate(layers):
        np.testing.assert_allclose(out[i], layer(x), **TOL)


# ----------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "dtype", [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64, jnp.complex64]
)
def test_dtype(dtype):
    layer = ct.nn.ConvTranspose2d(2, 4, 3, 2, key=jax.random.key(0), dtype=dtype)
    assert layer.weight.dtype == dtype and layer.bias.dtype == dtype and layer.dtype == dtype
    x = jnp.ones((1, 2, 3, 3), dtype)
    assert layer(x).dtype == dtype


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_compute_mode_float32(rng, dtype):
    kw = dict(key=jax.random.key(0), dtype=dtype)
    half = ct.nn.ConvTranspose2d(16, 8, 4, 2, 1, **kw)
    acc32 = ct.nn.ConvTranspose2d(16, 8, 4, 2, 1, compute_mode="float32", **kw)
    x = jnp.asarray(rng.standard_normal((2, 16, 5, 5)), dtype)
    y = acc32(x)
    assert y.dtype == dtype  # returns the input dtype
    want = ct.conv_transpose2d(
        x, acc32.weight, acc32.bias, 2, 1, preferred_element_type=jnp.float32
    )
    np.testing.assert_array_equal(np.asarray(y, np.float32), np.asarray(want, np.float32))
    assert half(x).dtype == dtype
    # float32 layers and inputs are unaffected by compute_mode
    f32 = ct.nn.ConvTranspose1d(2, 2, 2, compute_mode="float32", key=jax.random.key(0))
    np.testing.assert_array_equal(
        f32(jnp.ones((1, 2, 3))), ct.conv_transpose1d(jnp.ones((1, 2, 3)), f32.weight, f32.bias)
    )


# ----------------------------------------------------------------------------- init


@pytest.mark.parametrize(
    "n,c_in,c_out,kernel,groups", [(1, 64, 48, 5, 1), (2, 32, 64, (4, 3), 4), (3, 16, 8, 3, 2)]
)
def test_default_init_matches_torch_bounds(n, c_in, c_out, kernel, groups):
    layer = OURS[n](c_in, c_out, kernel, groups=groups, key=jax.random.key(0), dtype=jnp.float64)
    t = TORCH_LAYERS[n](c_in, c_out, kernel, groups=groups, dtype=torch.float64)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(t.weight)
    assert ct.nn.init.fan_in(layer.weight.shape) == fan_in
    bound = 1 / math.sqrt(fan_in)
    for ours, theirs in ((layer.weight, t.weight), (layer.bias, t.bias)):
        ours, theirs = np.asarray(ours), theirs.detach().numpy()
        assert ours.shape == theirs.shape
        for w in (ours, theirs):  # both inside the bound, and filling it
            assert np.abs(w).max() <= bound
            assert np.abs(w).max() > bound * (1 - 20 / w.size)
        if ours.size > 1000:  # uniform: mean 0, variance bound^2 / 3
            se = bound / math.sqrt(3 * ours.size)
            assert abs(ours.mean()) < 5 * se
            np.testing.assert_allclose(ours.var(), bound**2 / 3, rtol=0.05)
            np.testing.assert_allclose(theirs.var(), bound**2 / 3, rtol=0.05)


def test_init_is_deterministic_in_the_key():
    a = ct.nn.ConvTranspose1d(3, 3, 3, key=jax.random.key(7))
    b = ct.nn.ConvTranspose1d(3, 3, 3, key=jax.random.key(7))
    c = ct.nn.ConvTranspose1d(3, 3, 3, key=jax.random.key(8))
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, c.weight)
    # raw uint32 keys work too
    ct.nn.ConvTranspose1d(3, 3, 3, key=jax.random.PRNGKey(0))


def test_pytorch_uniform_and_default():
    w = ct.nn.init.pytorch_uniform(jax.random.key(0), (8, 4, 3, 3))
    assert w.shape == (8, 4, 3, 3) and w.dtype == jnp.float32
    assert float(jnp.abs(w).max()) <= 1 / 6
    b = ct.nn.init.pytorch_uniform(jax.random.key(0), (5,), fan_in=100)
    assert float(jnp.abs(b).max()) <= 0.1
    w, b = ct.nn.init.pytorch_default(jax.random.key(0), (4, 3, 2), groups=2, bias=True)
    assert b.shape == (6,)
    assert ct.nn.init.pytorch_default(jax.random.key(0), (4, 3, 2), bias=False)[1] is None
    z = ct.nn.init.pytorch_uniform(jax.random.key(0), (2, 2, 2), jnp.complex64)
    assert z.dtype == jnp.complex64 and float(jnp.abs(z.imag).max()) > 0
    with pytest.raises(TypeError, match="dtype has dtype int32"):
        ct.nn.init.pytorch_uniform(jax.random.key(0), (2, 2, 2), jnp.int32)
    with pytest.raises(ValueError, match=r"weight_shape=\(2, 2\) must have rank >= 3"):
        ct.nn.init.fan_in((2, 2))


def _interior_phases(y, kernel, stride, padding, length):
    """Per output phase (``prod(stride)`` of them), the interior values of a batched output.

    The interior is where every kernel tap meets an input element: full
    positions ``K-1 .. s*(L-1)``, i.e. output positions ``K-1-p .. s*(L-1)-p``.
    """
    inner = y[
        (
            Ellipsis,
            *[
                slice(k - 1 - p, s * (length - 1) - p + 1)
                for k, s, p in zip(kernel, stride, padding, strict=True)
            ],
        )
    ]
    assert all(m >= s for m, s in zip(inner.shape[2:], stride, strict=True))  # every phase is there
    return [
        np.asarray(
            inner[(Ellipsis, *[slice(o, None, s) for o, s in zip(offs, stride, strict=True)])]
        )
        for offs in np.ndindex(*stride)
    ]


@pytest.mark.parametrize(
    "n,kernel,stride,padding,groups",
    [(1, 4, 2, 1, 1), (2, (4, 3), (2, 3), (1, 0), 2), (2, 6, 3, 0, 1), (3, 4, 2, 1, 1)],
)
def test_icnr_has_no_checkerboard(n, kernel, stride, padding, groups):
    """At init, a constant input gives the same value in all s^d output phases."""
    kernel, stride, padding = (
        v if isinstance(v, tuple) else (v,) * n for v in (kernel, stride, padding)
    )
    kw = dict(groups=groups, dtype=jnp.float64, key=jax.random.key(0))
    default = OURS[n](4, 6, kernel, stride, padding, **kw)
    icnr = default.replace(
        weight=ct.nn.init.icnr(jax.random.key(1), default.weight.shape, stride, jnp.float64)
    )
    length = 4
    x = jnp.ones((1, 4) + (length,) * n, jnp.float64)
    phases = _interior_phases(icnr(x), kernel, stride, padding, length)
    per_channel = phases[0][(0, slice(None)) + (0,) * n]
    for ph in phases:
        np.testing.assert_allclose(
            ph, np.broadcast_to(per_channel.reshape((1, -1) + (1,) * n), ph.shape), **TOL
        )
    # PyTorch's default init, by contrast, has a checkerboard: phases differ.
    phases = _interior_phases(default(x), kernel, stride, padding, length)
    firsts = np.stack([ph[(0, slice(None)) + (0,) * n] for ph in phases])
    assert np.ptp(firsts, axis=0).min() > 1e-3


def test_icnr_is_nearest_neighbour_upsampling_then_convolution(rng):
    """``w = box * v``: the layer equals nearest-neighbour upsampling, then ``v`` at stride 1."""
    key, stride, shape = jax.random.key(3), (2, 3), (3, 4, 4, 5)
    w = ct.nn.init.icnr(key, shape, stride, jnp.float64)
    v = ct.nn.init.pytorch_uniform(key, (3, 4, 3, 3), jnp.float64)  # the draw icnr made
    x = rng.standard_normal((2, 3, 4, 3))
    up = jnp.repeat(jnp.repeat(x, 2, axis=2), 3, axis=3)  # nearest neighbour
    np.testing.assert_allclose(
        ct.conv_transpose2d(x, w, None, stride, 1), ct.conv_transpose2d(up, v, None, 1, 1), **TOL
    )


def test_icnr_errors():
    with pytest.raises(
        ValueError,
        match=r"icnr needs every kernel size >= stride: kernel \(3,\) "
        r"with stride=\(4,\)",
    ):
        ct.nn.init.icnr(jax.random.key(0), (2, 2, 3), 4)
    with pytest.raises(ValueError, match=r"stride=\(2, 2\) must be an int or a tuple of 1 ints"):
        ct.nn.init.icnr(jax.random.key(0), (2, 2, 3), (2, 2))


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args,kwargs,exc,match",
    [
        ((0, 2, 3), {}, ValueError, "in_channels=0 must be >= 1"),
        ((2, 0, 3), {}, ValueError, "out_channels=0 must be >= 1"),
        ((2.0, 2, 3), {}, TypeError, r"in_channels=2.0 must be an int, not float"),
        (
            (2, 2, (3, 3)),
            {},
            ValueError,
            r"kernel_size=\(3, 3\) must be an int or a tuple of 1 ints",
        ),
        ((2, 2, 0), {}, ValueError, "kernel_size=0 must be >= 1 on every axis"),
        (
            (4, 6, 3),
            {"groups": 4},
            ValueError,
            "groups=4 must divide in_channels=4 and out_channels=6",
        ),
        (
            (2, 2, 3, 2, 0, 2),
            {},
            ValueError,
            r"output_padding=\(2,\) must be smaller than "
            r"stride=\(2,\) or dilation=\(1,\)",
        ),
        ((2, 2, 3, 0), {}, ValueError, "stride=0 must be >= 1"),
        ((2, 2, 3, 1, -1), {}, ValueError, "padding=-1 must be >= 0"),
        ((2, 2, 3), {"dilation": 0}, ValueError, "dilation=0 must be >= 1"),
        ((2, 2, 3), {"padding_mode": "mirror"}, ValueError, "padding_mode='mirror' must be one of"),
        ((2, 2, 3), {"conv_mode": "corr"}, ValueError, "conv_mode='corr' must be one of"),
        (
            (2, 2, 3),
            {"compute_mode": "float16"},
            ValueError,
            r"compute_mode='float16' must be one of \('default', 'float32'\)",
        ),
        ((2, 2, 3), {"dtype": jnp.int32}, TypeError, "dtype has dtype int32"),
        ((2, 2, 3), {"bias": 1}, TypeError, "bias=1 must be a bool"),
        ((2, 2, 3), {"channels_last": "yes"}, TypeError, "channels_last='yes' must be a bool"),
    ],
)
def test_constructor_validation(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ct.nn.ConvTranspose1d(*args, **kwargs, key=jax.random.key(0))


def test_key_is_required():
    with pytest.raises(TypeError):
        ct.nn.ConvTranspose1d(2, 2, 3)  # missing keyword-only key
    with pytest.raises(TypeError, match="key=None must be a jax.random key"):
        ct.nn.ConvTranspose1d(2, 2, 3, key=None)
    with pytest.raises(TypeError):
        ct.nn.ConvTranspose1d(2, 2, 3, 1, 0, 0, 1)  # groups is keyword-only


def test_load_state_dict_errors():
    layer = ct.nn.ConvTranspose2d(4, 6, 3, groups=2, key=jax.random.key(0))
    good = layer.state_dict()
    with pytest.raises(
        ValueError,
        match=r"weight of shape \(4, 6, 3, 3\) must have shape "
        r"\(4, 3, 3, 3\) for this ConvTranspose2d",
    ):
        layer.load_state_dict({**good, "weight": np.zeros((4, 6, 3, 3), np.float32)})
    with pytest.raises(ValueError, match=r"bias of shape \(3,\) must have shape \(6,\)"):
        layer.load_state_dict({**good, "bias": np.zeros(3, np.float32)})
    with pytest.raises(
        TypeError,
        match="weight has dtype float64 but this layer's weight is float32: cast it first",
    ):
        layer.load_state_dict({**good, "weight": good["weight"].astype(np.float64)})
    with pytest.raises(ValueError, match=r"missing: \['bias'\], unexpected: \[\]"):
        layer.load_state_dict({"weight": good["weight"]})
    with pytest.raises(ValueError, match=r"missing: \[\], unexpected: \['running_mean'\]"):
        layer.load_state_dict({**good, "running_mean": good["bias"]})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        layer.load_state_dict([good["weight"], good["bias"]])
    no_bias = ct.nn.ConvTranspose2d(4, 6, 3, groups=2, bias=False, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"unexpected: \['bias'\]"):
        no_bias.load_state_dict(good)
    with pytest.raises(ValueError, match="built with bias=False, so its bias cannot be set"):
        no_bias.replace(bias=good["bias"])
    with pytest.raises(ValueError, match=r"replace got \['stride'\]"):
        layer.replace(stride=2)
    # The original layer is unchanged by a successful load.
    new = layer.load_state_dict({k: np.zeros_like(v) for k, v in good.items()})
    assert float(jnp.abs(new.weight).sum()) == 0 and float(jnp.abs(layer.weight).sum()) > 0


def test_load_torch_bfloat16_state_dict():
    t = torch.nn.ConvTranspose1d(2, 3, 2, dtype=torch.bfloat16)
    ours = ct.nn.ConvTranspose1d(2, 3, 2, dtype=jnp.bfloat16, key=jax.random.key(0))
    ours = ours.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(
        np.asarray(ours.weight, np.float32), t.weight.detach().float().numpy()
    )


def test_repr():
    layer = ct.nn.ConvTranspose2d(
        8, 4, 4, stride=2, padding=1, bias=False, dtype=jnp.float16, key=jax.random.key(0)
    )
    assert repr(layer) == (
        "ConvTranspose2d(8, 4, kernel_size=(4, 4), stride=(2, 2), "
        "padding=(1, 1), bias=False, dtype=float16)"
    )
    assert layer.padding == (1, 1) and layer.output_padding == (0, 0)
    asym = ct.nn.ConvTranspose1d(2, 2, 3, padding=((1, 0),), key=jax.random.key(0))
    assert asym.padding == ((1, 0),)
    same = ct.nn.ConvTranspose1d(2, 2, 3, 2, padding="SAME", key=jax.random.key(0))
    assert same.padding == "same" and same(jnp.ones((1, 2, 5))).shape == (1, 2, 10)
