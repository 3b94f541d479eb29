"""Equinox (SPEC §7): ct.nn layers live inside eqx.Modules as they are."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import convt_jax as ct


class Decoder(eqx.Module):
    fc: eqx.nn.Linear
    up1: ct.nn.ConvTranspose2d
    up2: ct.nn.ConvTranspose2d

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.fc = eqx.nn.Linear(4, 8 * 3 * 3, key=k1)
        self.up1 = ct.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, key=k2)
        self.up2 = ct.nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1, key=k3)

    def __call__(self, z):  # one sample, channels first
        h = self.fc(z).reshape(8, 3, 3)
        return self.up2(jax.nn.relu(self.up1(h)))


def test_filter_jit_grad_and_optax_train():
    model = Decoder(jax.random.key(0))
    teacher = Decoder(jax.random.key(5))
    z = jax.random.normal(jax.random.key(1), (16, 4), jnp.float32)
    target = jax.vmap(teacher)(z)
    assert target.shape == (16, 1, 12, 12)
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_array))

    def loss_fn(model, z, target):
        return jnp.mean((jax.vmap(model)(z) - target) ** 2)

    @eqx.filter_jit
    def step(model, state, z, target):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model, z, target)
        updates, state = opt.update(grads, state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), state, loss

    w0 = np.array(model.up1.weight)
    losses = []
    for _ in range(30):
        model, state, loss = step(model, state, z, target)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert isinstance(model.up1, ct.nn.ConvTranspose2d)
    assert not np.allclose(model.up1.weight, w0)
    assert model.up1.stride == (2, 2)  # settings survive the updates


def test_filter_grad_matches_torch(rng):
    torch.manual_seed(0)
    t = torch.nn.ConvTranspose2d(
        3, 4, 3, stride=2, padding=1, output_padding=1, groups=1, dtype=torch.float64
    )
    layer = ct.nn.ConvTranspose2d(
        3, 4, 3, stride=2, padding=1, output_padding=1, dtype=jnp.float64, key=jax.random.key(0)
    )
    layer = layer.load_state_dict(t.state_dict())

    class Wrap(eqx.Module):
        up: ct.nn.ConvTranspose2d
        scale: float = eqx.field(static=True, default=2.0)

        def __call__(self, x):
            return self.scale * self.up(x)

    model = Wrap(layer)
    x = rng.standard_normal((2, 3, 4, 5))
    cot = rng.standard_normal((2, 4, 8, 10))
    grads = eqx.filter_grad(lambda m: jnp.sum(m(x) * cot))(model)
    y = 2.0 * t(torch.as_tensor(x))
    (y * torch.as_tensor(cot)).sum().backward()
    np.testing.assert_allclose(grads.up.weight, t.weight.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grads.up.bias, t.bias.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        eqx.filter_jit(lambda m, x: m(x))(model, x), y.detach().numpy(), rtol=1e-10, atol=1e-10
    )


def test_partition_combine_and_tree_structure():
    model = Decoder(jax.random.key(0))
    params, static = eqx.partition(model, eqx.is_array)
    # the layer's only leaves are weight and bias
    assert len(jax.tree_util.tree_leaves(params.up1)) == 2
    rebuilt = eqx.combine(params, static)
    z = jnp.ones(4)
    np.testing.assert_array_equal(rebuilt(z), model(z))
