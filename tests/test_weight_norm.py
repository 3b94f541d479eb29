"""Weight-norm checkpoints: ``fold_weight_norm`` against PyTorch's own weight norm."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from convt_jax.nn._torch import fold_weight_norm

TORCH_LAYERS = {
    1: torch.nn.ConvTranspose1d,
    2: torch.nn.ConvTranspose2d,
    3: torch.nn.ConvTranspose3d,
}
KERNELS = {1: 3, 2: (3, 2), 3: (2, 3, 2)}
API = {
    "old": ("weight_g", "weight_v"),
    "new": ("parametrizations.weight.original0", "parametrizations.weight.original1"),
}


def _weight_norm(module, api, dim):
    if api == "new":
        return torch.nn.utils.parametrizations.weight_norm(module, dim=dim)
    with warnings.catch_warnings():  # the old API is deprecated but still in checkpoints
        warnings.simplefilter("ignore")
        return torch.nn.utils.weight_norm(module, dim=dim)


def _torch_weight(module, n, c_in):
    """The weight PyTorch computes (the old API recomputes it in a forward pre-hook)."""
    module(
        torch.zeros(
            (1, c_in) + (2,) * n,
            dtype=module.bias.dtype if module.bias is not None else torch.float32,
        )
    )
    return module.weight.detach().numpy()


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("api", ["old", "new"])
@pytest.mark.parametrize("dim", [0, 1, None])
@pytest.mark.parametrize("groups", [1, 2])
def test_matches_pytorch(n, api, dim, groups):
    torch.manual_seed(n * 10 + groups)
    c_in, c_out = 4, 6
    t = _weight_norm(TORCH_LAYERS[n](c_in, c_out, KERNELS[n], stride=2, groups=groups), api, dim)
    with torch.no_grad():  # g away from ||v||, so folding matters
        for name, p in t.named_parameters():
            if name != "bias":
                p.mul_(torch.rand_like(p) + 0.5)
    sd = t.state_dict()
    g_key, v_key = API[api]
    assert set(sd) == {g_key, v_key, "bias"}
    want = _torch_weight(t, n, c_in)
    out = fold_weight_norm(sd)
    assert set(out) == {"weight", "bias"}
    assert out["bias"] is sd["bias"]
    w = out["weight"]
    assert w.dtype == np.float32 and w.shape == want.shape == tuple(sd[v_key].shape)
    np.testing.assert_allclose(w, want, rtol=2e-6, atol=1e-7)
    # the per-`dim` norms are g
    g = sd[g_key].numpy()
    axes = tuple(range(w.ndim)) if dim is None else tuple(i for i in range(w.ndim) if i != dim)
    np.testing.assert_allclose(
        np.sqrt((w.astype(np.float64) ** 2).sum(axes)).ravel(), np.abs(g).ravel(), rtol=1e-5
    )


def test_default_dim_normalises_per_input_channel():
    """PyTorch's dim=0 on a ConvTranspose weight (C_in, C_out, *k) is per *input* channel."""
    t = torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(3, 5, 4))
    g = t.parametrizations.weight.original0
    assert tuple(g.shape) == (3, 1, 1)
    with torch.no_grad():
        g.copy_(torch.tensor([1.0, 2.0, 3.0]).reshape(3, 1, 1))
    w = fold_weight_norm(t.state_dict())["weight"]
    np.testing.assert_allclose(np.linalg.norm(w.reshape(3, -1), axis=1), [1, 2, 3], rtol=1e-6)


def test_float64_and_torch_or_numpy_values(rng):
    t = torch.nn.utils.parametrizations.weight_norm(
        torch.nn.ConvTranspose2d(2, 3, 2, dtype=torch.float64), dim=1
    )
    with torch.no_grad():
        t.parametrizations.weight.original0.mul_(3.0)
    want = t.weight.detach().numpy()
    for sd in (t.state_dict(), {k: v.numpy() for k, v in t.state_dict().items()}):
        w = fold_weight_norm(sd)["weight"]
        assert w.dtype == np.float64
        np.testing.assert_allclose(w, want, rtol=1e-14, atol=1e-15)


def test_plain_state_dict_passes_through():
    sd = {"weight": np.ones((2, 3, 4)), "bias": np.zeros(3)}
    out = fold_weight_norm(sd)
    assert out == sd and out is not sd


def test_squeezed_g_is_read_when_unambiguous():
    v = np.random.default_rng(0).standard_normal((4, 3, 5))
    g = np.arange(1.0, 4.0)  # (3,): only axis 1 has size 3
    w = fold_weight_norm({"weight_g": g, "weight_v": v})["weight"]
    np.testing.assert_allclose(
        np.linalg.norm(w.transpose(1, 0, 2).reshape(3, -1), axis=1), g, rtol=1e-12
    )


@pytest.mark.parametrize(
    "sd, match",
    [
        ({"weight_g": np.ones(4), "weight_v": np.ones((4, 4, 3))}, r"ambiguous.*axes \[0, 1\]"),
        (
            {"weight_g": np.ones((4, 4, 1)), "weight_v": np.ones((4, 4, 3))},
            r"weight_g of shape \(4, 4, 1\) and weight_v of shape \(4, 4, 3\) are inconsistent",
        ),
        ({"weight_g": np.ones((2, 1, 1)), "weight_v": np.ones((4, 4, 3))}, "inconsistent"),
        ({"weight_g": np.ones((4, 1, 1))}, "has 'weight_g' but not 'weight_v'"),
        (
            {"parametrizations.weight.original1": np.ones((4, 1, 1))},
            "has 'parametrizations.weight.original1' but not 'parametrizations.weight.original0'",
        ),
        (
            {
                "weight": np.ones((4, 1, 1)),
                "weight_g": np.ones((4, 1, 1)),
                "weight_v": np.ones((4, 1, 1)),
            },
            "both 'weight' and the weight-norm pair",
        ),
        (
            {
                "weight_g": np.ones(()),
                "weight_v": np.ones((2, 2, 2)),
                "parametrizations.weight.original0": np.ones(()),
                "parametrizations.weight.original1": np.ones((2, 2, 2)),
            },
            "both weight-norm spellings",
        ),
        (
            {"weight_orig": np.ones((2, 2, 2)), "weight_u": np.ones(2), "weight_v": np.ones(2)},
            "spectral norm",
        ),
        (
            {"parametrizations.weight.original": np.ones((2, 2, 2))},
            "only weight norm's parametrization",
        ),
    ],
)
def test_bad_state_dicts(sd, match):
    with pytest.raises(ValueError, match=match):
        fold_weight_norm(sd)


def test_prefixed_keys_say_how_to_select_one_layer():
    model = torch.nn.Module()
    model.ups = torch.nn.ModuleList(
        [torch.nn.utils.parametrizations.weight_norm(torch.nn.ConvTranspose1d(4, 2, 3))]
    )
    sd = model.state_dict()
    with pytest.raises(ValueError) as info:
        fold_weight_norm(sd)
    msg = str(info.value)
    assert "'ups.0.'" in msg and "strip" not in msg
    hint = "{k.removeprefix('ups.0.'): v for k, v in sd.items() if k.startswith('ups.0.')}"
    assert hint in msg
    selected = eval(hint, {"sd": sd})  # the hint works as written
    w = fold_weight_norm(selected)["weight"]
    np.testing.assert_allclose(w, model.ups[0].weight.detach().numpy(), rtol=2e-6, atol=1e-7)


def test_not_a_mapping():
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        fold_weight_norm([("weight", np.ones(3))])
