"""The program is chosen where it is lowered: exports from this CPU host for other platforms.

``jax.export`` lowers for any platform without its hardware.  For ``method="auto"`` the
``cuda`` and ``tpu`` programs must be built from XLA's convolutions (the vendors'
convolution kernels), the ``cpu`` program from the CPU forms (what this host's own
``jax.jit`` compiles), and a multi-platform export must carry each platform's branch.
An explicit ``method`` is what the user pinned on every platform.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import convt_jax as ct

export = pytest.importorskip("jax.export")

# (name, function, x shape, w shape): the two layers of the issue and a grouped one.
LAYERS = [
    (
        "2d k4 s2",
        lambda x, w, **kw: ct.conv_transpose2d(x, w, None, 2, 1, **kw),
        (2, 16, 8, 8),
        (16, 8, 4, 4),
    ),
    (
        "3d k2 s2",
        lambda x, w, **kw: ct.conv_transpose3d(x, w, None, 2, 0, **kw),
        (2, 8, 4, 4, 4),
        (8, 4, 2, 2, 2),
    ),
    (
        "2d grouped",
        lambda x, w, **kw: ct.conv_transpose2d(x, w, None, 2, 1, groups=4, **kw),
        (2, 16, 8, 8),
        (16, 2, 4, 4),
    ),
]


def _loss_and_grads(f, **kw):
    return jax.value_and_grad(lambda x, w: jnp.sum(jnp.sin(f(x, w, **kw))), argnums=(0, 1))


def _ops(text: str) -> dict[str, int]:
    return {op: text.count(f"stablehlo.{op}") for op in ("convolution", "dot_general", "case")}


def _export(fn, platforms, x_shape, w_shape):
    spec = (jax.ShapeDtypeStruct(x_shape, jnp.float32), jax.ShapeDtypeStruct(w_shape, jnp.float32))
    return export.export(jax.jit(fn), platforms=platforms)(*spec)


@pytest.mark.usefixtures("xla_forms")
@pytest.mark.parametrize("name, f, x_shape, w_shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_export_for_each_platform_and_all_at_once(name, f, x_shape, w_shape):
    fn = _loss_and_grads(f)
    local = _ops(
        jax.jit(fn).lower(jnp.ones(x_shape, jnp.float32), jnp.ones(w_shape, jnp.float32)).as_text()
    )
    cpu = _ops(_export(fn, ["cpu"], x_shape, w_shape).mlir_module())
    assert cpu == local  # the CPU export is this host's program
    for platform in ("cuda", "tpu", "rocm"):
        accel = _ops(_export(fn, [platform], x_shape, w_shape).mlir_module())
        # forward, dx and dw: one convolution each, no matrix multiply
        assert accel["convolution"] == 3 and accel["dot_general"] == 0, (platform, accel)
    both = _ops(_export(fn, ["cpu", "cuda", "tpu"], x_shape, w_shape).mlir_module())
    assert both["case"] > 0  # a branch per platform
    assert both["convolution"] == cpu["convolution"] + 2 * 3, both
    assert both["dot_general"] == cpu["dot_general"], both
    if name == "2d k4 s2":
        assert cpu["convolution"] == 0 and cpu["dot_general"] > 0, cpu


def test_pinned_method_is_the_same_program_everywhere():
    _, f, x_shape, w_shape = LAYERS[0]
    fn = _loss_and_grads(f, method="matmul")
    texts = [_export(fn, [p], x_shape, w_shape).mlir_module() for p in ("cpu", "cuda", "tpu")]
    ops = [_ops(t) for t in texts]
    assert ops[0] == ops[1] == ops[2], ops
    assert ops[0]["convolution"] == 0


def test_exported_cpu_program_matches_pytorch():
    _, f, x_shape, w_shape = LAYERS[0]
    fn = _loss_and_grads(f)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    exported = _export(fn, ["cpu", "cuda", "tpu"], x_shape, w_shape)
    loss, (dx, dw) = exported.call(x, w)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    want = torch.sin(torch.nn.functional.conv_transpose2d(xt, wt, None, 2, 1)).sum()
    want.backward()
    np.testing.assert_allclose(float(loss), want.item(), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(dx), xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(dw), wt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transform", ["vmap", "jvp"])
def test_vmap_and_jvp_exports_keep_the_platform_choice(transform):
    _, f, x_shape, w_shape = LAYERS[0]
    if transform == "vmap":
        fn = jax.vmap(lambda x, w: f(x, w), in_axes=(0, None))
        shapes = ((3, *x_shape), w_shape)
    else:
        fn = lambda x, w: jax.jvp(lambda x: f(x, w), (x,), (jnp.ones_like(x),))  # noqa: E731
        shapes = (x_shape, w_shape)
    accel = _ops(_export(fn, ["cuda"], *shapes).mlir_module())
    cpu = _ops(_export(fn, ["cpu"], *shapes).mlir_module())
    assert accel["convolution"] > 0 and accel["dot_general"] == 0, accel
    assert cpu["convolution"] == 0 and cpu["dot_general"] > 0, cpu


@pytest.mark.usefixtures("xla_forms")
def test_tuned_forms_replace_the_default_backends_forms_only():
    """Autotuning measures on the default backend (this CPU): the CPU program takes the
    measured forms, the accelerators keep XLA's convolutions."""
    _, f, x_shape, w_shape = LAYERS[0]
    fn = _loss_and_grads(f)
    with ct.autotune():
        accel = _ops(_export(fn, ["cuda"], x_shape, w_shape).mlir_module())
        cpu = _export(fn, ["cpu"], x_shape, w_shape).mlir_module()
        local = (
            jax.jit(fn)
            .lower(jnp.ones(x_shape, jnp.float32), jnp.ones(w_shape, jnp.float32))
            .as_text()
        )
    assert accel["convolution"] == 3 and accel["dot_general"] == 0, accel
    assert _ops(cpu) == _ops(local)


def test_onednn_forms_run_on_this_cpu_and_never_reach_an_export():
    """Where oneDNN's CPU backend is in use, this host's jit calls it (FFI custom calls, no
    convolution), while an export (a serialized, portable program) for the CPU, or for any
    platform, carries XLA's own ops only, and runs with the same numbers."""
    from convt_jax import _onednn

    if not _onednn.available():
        pytest.skip(f"oneDNN backend not in use: {_onednn.backend_info().reason}")
    name, f, x_shape, w_shape = LAYERS[0]
    fn = _loss_and_grads(f)
    x = jnp.asarray(np.random.default_rng(0).standard_normal(x_shape), jnp.float32)
    w = jnp.asarray(np.random.default_rng(1).standard_normal(w_shape), jnp.float32)
    local = jax.jit(fn).lower(x, w).as_text()
    assert local.count("convt_jax_onednn_") == 3  # forward, dx, dw
    assert _ops(local)["convolution"] == 0
    for platforms in (["cpu"], ["cpu", "cuda"]):
        exported = _export(fn, platforms, x_shape, w_shape)
        assert "convt_jax_onednn" not in exported.mlir_module(), platforms
    got = _export(fn, ["cpu"], x_shape, w_shape).call(x, w)
    want = jax.jit(fn)(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)
