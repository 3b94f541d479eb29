"""Weight-layout converters, each proven against the real framework (float64, 1e-10)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import convt_jax as ct  # noqa: E402

TOL = dict(rtol=1e-10, atol=1e-10)

# (spatial input, C_in, C_out, kernel, stride, padding, output_padding, dilation, groups)
CONFIGS = [
    ((7,), 3, 4, (3,), (2,), 1, 1, (1,), 1),
    ((4, 5), 4, 6, (4, 4), (2, 2), 1, 0, (1, 1), 2),
    ((5, 4), 2, 2, (3, 3), (1, 2), ((2, 0), (0, 1)), (0, 1), (2, 1), 1),
    ((4, 3), 3, 2, (2, 3), (3, 2), "same", 0, (1, 1), 1),
    ((3, 3, 4), 2, 4, (2, 3, 2), (2, 1, 2), (0, 1, 1), (1, 0, 0), (1, 1, 1), 2),
]
IDS = [f"{len(c[0])}d-{i}" for i, c in enumerate(CONFIGS)]


def _case(rng, cfg):
    spatial, c_in, c_out, kernel, stride, padding, opad, dilation, groups = cfg
    x = rng.standard_normal((2, *spatial, c_in))  # channels last
    w = rng.standard_normal((c_in, c_out // groups, *kernel))
    b = rng.standard_normal((c_out,))
    ref = ct.conv_transpose(
        x, w, b, stride, padding, opad, groups=groups, dilation=dilation, channels_last=True
    )
    return x, w, b, ref


def _ours(x, w, b, stride, pad, opad, dilation, groups):
    return ct.conv_transpose(
        x, w, b, stride, pad, opad, groups=groups, dilation=dilation, channels_last=True
    )


# ----------------------------------------------------------------------------- MegEngine


def test_megengine_roundtrip(rng):
    w = rng.standard_normal((8, 3, 2, 2))
    me = ct.layouts.to_megengine(w, groups=4)
    assert me.shape == (4, 2, 3, 2, 2)
    np.testing.assert_array_equal(ct.layouts.from_megengine(me), w)


def test_megengine_grouped_semantics(rng):
    """MegEngine (no wheel for this Python) documents its grouped weight as
    ``(groups, C_in/g, C_out/g, *K)``: group ``j`` maps input block ``j`` to output
    block ``j`` with the ungrouped kernel ``W[j]``. Checked block by block."""
    g, x = 3, rng.standard_normal((2, 6, 4, 3))
    me = rng.standard_normal((g, 2, 5, 3, 2))
    y = ct.conv_transpose2d(x, ct.layouts.from_megengine(me), None, 2, 1, 1, groups=g)
    blocks = [ct.conv_transpose2d(x[:, 2 * j : 2 * j + 2], me[j], None, 2, 1, 1) for j in range(g)]
    np.testing.assert_allclose(y, np.concatenate(blocks, axis=1), **TOL)


# ----------------------------------------------------------------------------- Flax

flax_nn = pytest.importorskip("flax.linen")


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_to_flax_matches_flax(rng, cfg, transpose_kernel):
    spatial, c_in, c_out, kernel, stride, padding, opad, dilation, groups = cfg
    x, w, b, ref = _case(rng, cfg)
    k, pads = ct.layouts.to_flax(
        w,
        padding,
        opad,
        stride=stride,
        dilation=dilation,
        groups=groups,
        transpose_kernel=transpose_kernel,
    )
    layer = flax_nn.ConvTranspose(
        c_out,
        kernel,
        strides=stride,
        padding=pads,
        kernel_dilation=dilation,
        transpose_kernel=transpose_kernel,
        dtype=jnp.float64,
        param_dtype=jnp.float64,
    )
    y = layer.apply({"params": {"kernel": k, "bias": b}}, x)
    np.testing.assert_allclose(y, ref, **TOL)


@pytest.mark.parametrize("transpose_kernel", [False, True])
@pytest.mark.parametrize(
    "padding,stride", [("SAME", (2, 3)), ("VALID", (2, 3)), (1, (1, 2)), (((2, 1), (3, 2)), (2, 3))]
)
def test_from_flax_matches_flax(rng, padding, stride, transpose_kernel):
    x = rng.standard_normal((2, 4, 5, 3))
    layer = flax_nn.ConvTranspose(
        4,
        (3, 4),
        strides=stride,
        padding=padding,
        transpose_kernel=transpose_kernel,
        dtype=jnp.float64,
        param_dtype=jnp.float64,
    )
    params = layer.init(jax.random.key(0), x)
    params = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal(p.shape)), params)
    y = layer.apply(params, x)
    w, pad, opad = ct.layouts.from_flax(
        params["params"]["kernel"], padding, strides=stride, transpose_kernel=transpose_kernel
    )
    assert w.shape == (3, 4, 3, 4)
    np.testing.assert_allclose(
        _ours(x, w, params["params"]["bias"], stride, pad, opad, 1, 1), y, **TOL
    )


def test_flax_dilation_and_groups_roundtrip(rng):
    w = rng.standard_normal((6, 2, 3, 2))
    for tk in (False, True):
        k, pads = ct.layouts.to_flax(
            w, 2, 1, stride=2, dilation=(2, 1), groups=3, transpose_kernel=tk
        )
        w2, pad, opad = ct.layouts.from_flax(
            k, pads, strides=2, kernel_dilation=(2, 1), transpose_kernel=tk, groups=3
        )
        np.testing.assert_array_equal(w2, w)
        assert (pad, opad) == (((2, 2), (2, 2)), (1, 1))  # PyTorch's form of the crop (2, 1)


def test_flax_padding_errors():
    with pytest.raises(ValueError, match="CIRCULAR"):
        ct.layouts.from_flax(jnp.zeros((3, 2, 2)), "CIRCULAR")
    with pytest.raises(ValueError, match="start of spatial axis 0"):
        ct.layouts.from_flax(jnp.zeros((3, 2, 2)), [(3, 0)])  # lax pad > K - 1
    with pytest.raises(ValueError, match=r"groups=3 must be >= 1 and divide w.shape\[0\]=4"):
        ct.layouts.to_flax(jnp.zeros((4, 2, 3)), groups=3)


# ----------------------------------------------------------------------------- Haiku

hk = pytest.importorskip("haiku")


def _haiku_apply(n, c_out, kernel, stride, padding, w, b, x):
    def f(x):
        return hk.ConvNDTranspose(n, c_out, kernel, stride=stride, padding=padding)(x)

    model = hk.without_apply_rng(hk.transform(f))
    params = model.init(jax.random.key(0), x)
    (name,) = params
    assert params[name]["w"].shape == w.shape
    return model.apply({name: {"w": w, "b": b}}, x)


@pytest.mark.parametrize(
    "cfg",
    [c for c in CONFIGS if set(c[7]) == {1}],
    ids=[i for i, c in zip(IDS, CONFIGS, strict=True) if set(c[7]) == {1}],
)
def test_to_haiku_matches_haiku(rng, cfg):
    spatial, c_in, c_out, kernel, stride, padding, opad, dilation, groups = cfg
    x, w, b, ref = _case(rng, cfg)
    hw, pads = ct.layouts.to_haiku(w, padding, opad, stride=stride, groups=groups)
    y = _haiku_apply(len(spatial), c_out, kernel, stride, pads, hw, b, x)
    np.testing.assert_allclose(y, ref, **TOL)


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 1), (0, 2))])
@pytest.mark.parametrize("stride", [1, (3, 2)])
def test_from_haiku_matches_haiku(rng, padding, stride):
    x = rng.standard_normal((2, 4, 3, 3))
    hw = rng.standard_normal((3, 4, 5, 3))  # (*K, C_out, C_in)
    b = rng.standard_normal((5,))
    y = _haiku_apply(2, 5, (3, 4), stride, padding, hw, b, x)
    w, pad, opad = ct.layouts.from_haiku(hw, padding, stride=stride)
    assert w.shape == (3, 5, 3, 4)
    np.testing.assert_allclose(_ours(x, w, b, stride, pad, opad, 1, 1), y, **TOL)


def test_haiku_output_shape_padding(rng):
    """A module built with ``output_shape``: pass Haiku's derived padding."""
    from haiku._src.conv import compute_adjusted_padding

    x = rng.standard_normal((1, 5, 2))
    hw = rng.standard_normal((4, 3, 2))
    pads = (compute_adjusted_padding(5, 10, 4, 2, "SAME"),)

    def f(x):
        return hk.Conv1DTranspose(3, 4, stride=2, output_shape=10, padding="SAME")(x)

    model = hk.without_apply_rng(hk.transform(f))
    (name,) = model.init(jax.random.key(0), x)
    y = model.apply({name: {"w": hw, "b": jnp.zeros(3)}}, x)
    w, pad, opad = ct.layouts.from_haiku(hw, pads, stride=2)
    np.testing.assert_allclose(_ours(x, w, None, 2, pad, opad, 1, 1), y, **TOL)


# ----------------------------------------------------------------------------- Equinox

eqx = pytest.importorskip("equinox")


def _eqx_apply(n, c_in, c_out, kernel, stride, padding, opad, dilation, groups, weight, b, x):
    layer = eqx.nn.ConvTranspose(
        n,
        c_in,
        c_out,
        kernel,
        stride=stride,
        padding=padding,
        output_padding=opad,
        dilation=dilation,
        groups=groups,
        dtype=jnp.float64,
        key=jax.random.key(0),
    )
    assert layer.weight.shape == weight.shape
    layer = eqx.tree_at(
        lambda m: (m.weight, m.bias),
        layer,
        (jnp.asarray(weight), jnp.asarray(b).reshape((-1,) + (1,) * n)),
    )
    x_cf = jnp.moveaxis(x, -1, 1)
    return jnp.moveaxis(jax.vmap(layer)(x_cf), 1, -1)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_to_equinox_matches_equinox(rng, cfg):
    spatial, c_in, c_out, kernel, stride, padding, opad, dilation, groups = cfg
    x, w, b, ref = _case(rng, cfg)
    weight, pad, op = ct.layouts.to_equinox(
        w, padding, opad, stride=stride, dilation=dilation, groups=groups
    )
    y = _eqx_apply(
        len(spatial), c_in, c_out, kernel, stride, pad, op, dilation, groups, weight, b, x
    )
    np.testing.assert_allclose(y, ref, **TOL)


@pytest.mark.parametrize(
    "padding,opad",
    [
        ("SAME", 0),
        ("SAME", 1),
        ("SAME_LOWER", 0),
        ("SAME_LOWER", 1),
        ("VALID", 1),
        (1, 0),
        (((2, 0), (1, 3)), 1),
    ],
)
def test_from_equinox_matches_equinox(rng, padding, opad):
    n, c_in, c_out, kernel, stride, dilation, groups = 2, 4, 6, (3, 4), (2, 3), (2, 1), 2
    x = rng.standard_normal((2, 5, 4, c_in))
    weight = rng.standard_normal((c_out, c_in // groups, *kernel))
    b = rng.standard_normal((c_out,))
    y = _eqx_apply(n, c_in, c_out, kernel, stride, padding, opad, dilation, groups, weight, b, x)
    w, pad, op = ct.layouts.from_equinox(
        weight, padding, opad, stride=stride, dilation=dilation, groups=groups
    )
    np.testing.assert_allclose(_ours(x, w, b, stride, pad, op, dilation, groups), y, **TOL)


def test_to_equinox_moves_dilation_output_padding(rng):
    """output_padding >= stride (allowed by dilation) moves into the end padding for Equinox."""
    w = rng.standard_normal((2, 3, 3))
    weight, pad, op = ct.layouts.to_equinox(w, 2, 2, stride=1, dilation=3)
    assert (pad, op) == (((2, 0),), (0,))
    with pytest.raises(ValueError, match="Equinox requires output_padding < stride"):
        ct.layouts.to_equinox(w, 0, 2, stride=1, dilation=3)


# ----------------------------------------------------------------------------- Keras

keras = pytest.importorskip("keras")
KERAS_JAX = keras.backend.backend() == "jax"
_LAYERS = {1: "Conv1DTranspose", 2: "Conv2DTranspose", 3: "Conv3DTranspose"}


def _keras_apply(n, c_out, kernel, stride, padding, opad, dilation, k, b, x):
    layer = getattr(keras.layers, _LAYERS[n])(
        c_out,
        kernel,
        strides=stride,
        padding=padding,
        output_padding=opad,
        dilation_rate=dilation,
        dtype="float64",
    )
    layer.build(x.shape)
    assert tuple(layer.kernel.shape) == k.shape
    layer.kernel.assign(np.asarray(k))
    layer.bias.assign(np.asarray(b))
    return np.asarray(layer(x))


KERAS_CONFIGS = [  # PyTorch settings Keras can express
    ((7,), 3, 4, (3,), (2,), 0, 1, (1,), 1),  # valid, op 1
    ((5, 6), 2, 3, (4, 3), (2, 1), 1, 0, (1, 1), 1),  # same, op None
    ((4, 5), 4, 6, (2, 2), (3, 3), 0, 0, (1, 1), 2),  # valid, op 0 (k < s)
    ((4, 3), 3, 2, (2, 3), (3, 2), "same", 0, (1, 1), 1),  # same
    ((5, 4), 2, 2, (3, 3), (1, 1), 2, 0, (2, 2), 1),  # same with dilation
    ((3, 3, 4), 2, 4, (3, 3, 3), (2, 1, 2), 1, 0, (1, 1, 1), 1),  # same, op 0
]


@pytest.mark.skipif(not KERAS_JAX, reason="Keras is not on the JAX backend")
@pytest.mark.parametrize(
    "cfg", KERAS_CONFIGS, ids=[f"{len(c[0])}d-{i}" for i, c in enumerate(KERAS_CONFIGS)]
)
def test_to_keras_matches_keras(rng, cfg):
    spatial, c_in, c_out, kernel, stride, padding, opad, dilation, groups = cfg
    x, w, b, ref = _case(rng, cfg)
    k, kpad, kopad = ct.layouts.to_keras(
        w, padding, opad, stride=stride, dilation=dilation, groups=groups
    )
    y = _keras_apply(len(spatial), c_out, kernel, stride, kpad, kopad, dilation, k, b, x)
    np.testing.assert_allclose(y, ref, **TOL)


@pytest.mark.skipif(not KERAS_JAX, reason="Keras is not on the JAX backend")
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("opad", [None, 0, 1])
def test_from_keras_matches_keras(rng, padding, opad):
    stride, kernel = (2, 3), (3, 2)  # kernel > stride on one axis, < on the other
    x = rng.standard_normal((2, 4, 3, 3))
    k = rng.standard_normal((*kernel, 5, 3))
    b = rng.standard_normal((5,))
    y = _keras_apply(2, 5, kernel, stride, padding, opad, (1, 1), k, b, x)
    w, pad, op = ct.layouts.from_keras(k, padding, opad, strides=stride)
    np.testing.assert_allclose(_ours(x, w, b, stride, pad, op, 1, 1), y, **TOL)


def test_to_keras_rejects_what_keras_cannot_express():
    # PyTorch's exact doubling (K=3, s=2, p=1, op=1) crops (1, 0); Keras' "same" crops (0, 1).
    with pytest.raises(
        ValueError,
        match=r"has no Keras equivalent.*padding=\(0, 1\) "
        r"output_padding=0",
    ):
        ct.layouts.to_keras(jnp.zeros((2, 2, 3)), 1, 1, stride=2)


def test_keras_formula_numpy(rng):
    """The padding rules documented in ``to_keras``, against a NumPy loop of the definition."""

    def full_of(x, w, s):
        full = np.zeros((len(x) - 1) * s + len(w) + s)  # room for output padding
        for i, xi in enumerate(x):
            full[s * i : s * i + len(w)] += xi * w
        return full

    def keras_numpy(x, w, s, mode, a):
        kk = len(w)
        full = full_of(x, w, s)
        if mode == "valid":
            lo, hi = 0, -(max(kk, s) - kk if a is None else a)
        else:
            pad_len = s + kk - 2 if a is None else kk + kk % 2 - 2 + a
            left = min(-(-pad_len // 2), kk - 1)
            lo, hi = kk - 1 - left, kk - 1 - (pad_len - left)
        return full[lo : (len(x) - 1) * s + kk - hi], (lo, hi)

    x = rng.standard_normal(5)
    for kk in (1, 2, 3, 4, 5):
        w = rng.standard_normal(kk)
        for s in (1, 2, 3):
            for mode in ("valid", "same"):
                for a in (None, *range(s)):
                    want, (lo, hi) = keras_numpy(x, w, s, mode, a)
                    assert lo >= 0 and -hi < s  # always PyTorch-expressible
                    wt, pad, op = ct.layouts.from_keras(w.reshape(kk, 1, 1), mode, a, strides=s)
                    np.testing.assert_array_equal(wt.ravel(), w)
                    # PyTorch semantics of the returned settings, by NumPy:
                    (p_lo, p_hi), (op,) = pad[0], op
                    torch_len = (len(x) - 1) * s - p_lo - p_hi + kk + op
                    np.testing.assert_allclose(
                        want, full_of(x, w, s)[p_lo : p_lo + torch_len], **TOL
                    )


def test_converters_take_a_torch_tensor_that_requires_grad(rng):
    """A tensor straight from a PyTorch model (requires_grad) is detached, as the layers'
    load_state_dict does; the result equals the NumPy array's."""
    torch = pytest.importorskip("torch")
    kernel = rng.standard_normal((3, 3, 4, 6))  # Flax (*K, C_in, C_out)
    t = torch.tensor(kernel, requires_grad=True)
    got, want = ct.layouts.from_flax(t, "SAME"), ct.layouts.from_flax(kernel, "SAME")
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
    assert got[1:] == want[1:]
