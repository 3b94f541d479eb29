"""One training step of whole decoders (convt_jax, jax.lax, PyTorch); the transposed layers' share.

    python -m benchmarks.models                       # all four models, 7 rounds
    python -m benchmarks.models --small --rounds 1    # scaled-down models (a smoke test)
    python -m benchmarks.models --models dcgan,hifigan --rounds 9 --out models.md
    python -m benchmarks.models --list                # the models and their transposed layers
    python -m benchmarks.models --bfloat16            # mixed precision: bfloat16 compute

A step is loss -> gradients of every parameter (``jax.value_and_grad`` under
``jax.jit`` / ``torch.autograd.grad``), with a mean-squared-error loss
against a fixed random target.  Every model runs six ways:

* ``convt_jax``: every convolution is convt_jax's: the transposed layers
  ``ct.conv_transpose``, the regular ones ``ct.conv`` (``--method``, default
  ``auto``) -- a whole model ported to convt_jax;
* ``convt_jax + lax conv``: the transposed layers ``ct.conv_transpose``, the regular
  ones ``jax.lax.conv_general_dilated`` (what convt_jax 0.1 could offer);
* ``jax.lax``: ``jax.lax.conv_transpose`` (it expresses every transposed layer
  of these models: none has groups; ``output_padding`` would go in as extra
  padding at the high end) and ``jax.lax`` regular convolutions;
* ``JAX stand-in`` and ``PyTorch stand-in``: each transposed layer replaced by
  a cheap layer of the same output shape (a 1x1 channel matmul with the weight
  averaged over its kernel, then nearest-neighbour repetition by
  ``ceil(out / in)`` and a crop); the JAX stand-in's regular convolutions are
  ``ct.conv``, as in the ``convt_jax`` step;
* ``PyTorch``: ``torch.nn.functional.conv_transpose*d`` and ``conv*d``.

The other layers are plain ``jax.numpy`` and ``torch.nn.functional``, NCHW,
float32.  "Added" = step time - stand-in step
time of the same framework: the time the transposed convolutions add (the
stand-in's own small cost is left in both, so it slightly understates both
frameworks alike).  Every round runs all five once, alternating frameworks,
the order reversed every other round; step times are medians over the rounds,
"added" the median over the rounds of the step - stand-in difference within
each round.  Before timing, the loss and every gradient are checked against
PyTorch's (the stand-in against PyTorch's stand-in); a float32 difference above
1e-3 of the largest entry is checked again with the step run in float64 on both
sides, where rounding cannot hide a wrong result.  The 3-D decoder uses
k=s=2 up-convolutions (nnU-Net's and the 3-D U-Net paper's); ``--unet3d-kernel
4`` uses k4 s2 p1 instead.

``--bfloat16`` times a mixed-precision step instead: float32 parameters, bfloat16
compute, the policy of PyTorch's ``torch.autocast("cpu", dtype=torch.bfloat16)``
on both sides: every convolution and transposed convolution casts its input,
weight and bias to bfloat16 and returns bfloat16 (float32 sums inside), the other
layers run in the dtype they are given (normalisation statistics in float32), and
the loss is taken in float32; the gradients of the float32 parameters come back in
float32 through the casts.  The two policies round differently, so each
mixed-precision step is checked against PyTorch's float32 step, beside PyTorch's
autocast step against the same: a step is flagged where its error is more than
``BF16_MISMATCH`` times PyTorch's own.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

os.environ.setdefault("XLA_FLAGS", "")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import convt_jax as ct  # noqa: E402

from . import _machine  # noqa: E402
from .run import _lax_conv, _lax_transpose  # noqa: E402

# --------------------------------------------------------------------------------------
# Parameters: a model asks for them by name; at init they are created (NumPy), later
# they are looked up in the dict that JAX differentiates / PyTorch tracks.


class Params:
    """``p.w(name, shape, fan_in)`` etc.: creates on first use (``init``) or looks up."""

    def __init__(self, values=None, seed=0):
        self.values = {} if values is None else values
        self.create = values is None
        self.rng = np.random.default_rng(seed)

    def _get(self, name, make):
        if self.create and name not in self.values:
            self.values[name] = make().astype(np.float32)
        return self.values[name]

    def w(self, name, shape, fan_in):
        return self._get(name, lambda: self.rng.standard_normal(shape) / math.sqrt(fan_in))

    def b(self, name, n):
        return self._get(name, lambda: 0.1 * self.rng.standard_normal(n))

    def gamma(self, name, n):
        return self._get(name, lambda: 1 + 0.1 * self.rng.standard_normal(n))


# --------------------------------------------------------------------------------------
# The layers, once for JAX and once for PyTorch (NC* layout, PyTorch weight layouts).


def _standin_size(length, k, s, p, op):
    out = (length - 1) * s - 2 * p + k + op
    return out, -(-out // length)


class JaxOps:
    """Layers in jax.lax / jax.numpy; ``convt`` is convt_jax, jax.lax or the stand-in."""

    def __init__(self, convt: str, method: str = "auto", compute=None, conv: str = "convt_jax"):
        self.kind, self.method, self.compute, self.conv_kind = convt, method, compute, conv

    def _cast(self, *arrays):
        """The operands of a (transposed) convolution in the compute dtype (autocast)."""
        if self.compute is None:
            return arrays
        return tuple(None if a is None else a.astype(self.compute) for a in arrays)

    def conv(self, x, w, b=None, stride=1, padding=0, dilation=1):
        x, w, b = self._cast(x, w, b)
        if self.conv_kind == "convt_jax":
            # float32 sums for bfloat16 operands (oneDNN's kernels, and the XLA forms'
            # rule), the result in the operands' dtype
            return ct.conv(x, w, b, stride, padding, dilation, method=self.method)
        y = _lax_conv(x, w, s=stride, p=padding, d=dilation, g=1, channels_last=False)
        return y if b is None else y + b.reshape(-1, *(1,) * (x.ndim - 2))

    def convt(self, x, w, b, stride, padding, output_padding=0):
        x, w, b = self._cast(x, w, b)
        nd = x.ndim - 2
        if self.kind == "convt_jax":
            return ct.conv_transpose(x, w, b, stride, padding, output_padding, method=self.method)
        if self.kind == "jax.lax":
            y = _lax_transpose(
                x,
                w,
                nd=nd,
                k=w.shape[2],
                s=stride,
                p=padding,
                op=output_padding,
                g=1,
                channels_last=False,
            )
        else:
            y = jnp.einsum("nc...,co->no...", x, w.mean(axis=tuple(range(2, 2 + nd))))
            for axis in range(2, 2 + nd):
                out, r = _standin_size(
                    x.shape[axis], w.shape[axis], stride, padding, output_padding
                )
                y = jax.lax.slice_in_dim(jnp.repeat(y, r, axis=axis), 0, out, axis=axis)
        return y if b is None else y + b.reshape(-1, *(1,) * nd)

    @staticmethod
    def _norm(x, axes, gamma, beta, eps=1e-5):
        # statistics in float32 also where the activations are bfloat16 (mixed precision)
        xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean = xf.mean(axis=axes, keepdims=True)
        var = jnp.square(xf - mean).mean(axis=axes, keepdims=True)
        shape = (-1, *(1,) * (x.ndim - 2))
        y = (xf - mean) * jax.lax.rsqrt(var + eps) * gamma.reshape(shape) + beta.reshape(shape)
        return y.astype(x.dtype)

    def batch_norm(self, x, gamma, beta):
        return self._norm(x, (0, *range(2, x.ndim)), gamma, beta)

    def instance_norm(self, x, gamma, beta):
        return self._norm(x, tuple(range(2, x.ndim)), gamma, beta)

    relu = staticmethod(jax.nn.relu)
    tanh = staticmethod(jnp.tanh)

    @staticmethod
    def leaky_relu(x, slope):
        return jax.nn.leaky_relu(x, slope)

    @staticmethod
    def cat(xs):
        return jnp.concatenate(xs, axis=1)


class TorchOps:
    """The same layers in torch.nn.functional; ``convt`` is PyTorch's or the stand-in."""

    def __init__(self, convt: str):
        import torch

        self.torch, self.F, self.kind = torch, torch.nn.functional, convt

    def conv(self, x, w, b=None, stride=1, padding=0, dilation=1):
        f = (self.F.conv1d, self.F.conv2d, self.F.conv3d)[x.ndim - 3]
        return f(x, w, b, stride, padding, dilation)

    def convt(self, x, w, b, stride, padding, output_padding=0):
        nd = x.ndim - 2
        if self.kind == "PyTorch":
            f = (self.F.conv_transpose1d, self.F.conv_transpose2d, self.F.conv_transpose3d)[nd - 1]
            return f(x, w, b, stride, padding, output_padding)
        wm = w.mean(dim=tuple(range(2, 2 + nd)))
        y = self.conv(x, wm.t().reshape(*wm.t().shape, *(1,) * nd))
        sizes = [
            _standin_size(x.shape[a], w.shape[a], stride, padding, output_padding)
            for a in range(2, 2 + nd)
        ]
        y = self.F.interpolate(y, scale_factor=[float(r) for _, r in sizes], mode="nearest")
        y = y[(slice(None), slice(None), *(slice(0, out) for out, _ in sizes))]
        return y if b is None else y + b.reshape(-1, *(1,) * nd)

    def batch_norm(self, x, gamma, beta):
        return self.F.batch_norm(x, None, None, gamma, beta, training=True, eps=1e-5)

    def instance_norm(self, x, gamma, beta):
        return self.F.instance_norm(x, weight=gamma, bias=beta, eps=1e-5)

    def relu(self, x):
        return self.F.relu(x)

    def tanh(self, x):
        return self.torch.tanh(x)

    def leaky_relu(self, x, slope):
        return self.F.leaky_relu(x, slope)

    def cat(self, xs):
        return self.torch.cat(xs, dim=1)


# --------------------------------------------------------------------------------------
# The models: functions of (ops, params, *inputs) -> output.


def dcgan(ops, p: Params, z, *, nz=100, ngf=64, nc=3):
    """DCGAN generator (Radford et al.; PyTorch's DCGAN example): 1x1 -> 64x64."""
    chans = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
    x = z
    for i in range(4):
        stride, pad = (1, 0) if i == 0 else (2, 1)
        w = p.w(f"ct{i}", (chans[i], chans[i + 1], 4, 4), chans[i] * 16 / stride**2)
        x = ops.convt(x, w, None, stride, pad)
        x = ops.relu(
            ops.batch_norm(x, p.gamma(f"bn{i}.g", chans[i + 1]), p.b(f"bn{i}.b", chans[i + 1]))
        )
    return ops.tanh(ops.convt(x, p.w("ct4", (ngf, nc, 4, 4), ngf * 4), None, 2, 1))


def _resblock1(ops, p, name, x, ch, k, dilations):
    for m, d in enumerate(dilations):
        xt = ops.leaky_relu(x, 0.1)
        xt = ops.conv(
            xt,
            p.w(f"{name}.c1{m}", (ch, ch, k), ch * k),
            p.b(f"{name}.c1{m}b", ch),
            1,
            (k * d - d) // 2,
            d,
        )
        xt = ops.leaky_relu(xt, 0.1)
        xt = ops.conv(
            xt,
            p.w(f"{name}.c2{m}", (ch, ch, k), ch * k),
            p.b(f"{name}.c2{m}b", ch),
            1,
            (k - 1) // 2,
            1,
        )
        x = xt + x
    return x


def hifigan(
    ops,
    p: Params,
    mel,
    *,
    ch=512,
    rates=(8, 8, 2, 2),
    kernels=(16, 16, 4, 4),
    rb_kernels=(3, 7, 11),
    rb_dilations=(1, 3, 5),
):
    """HiFi-GAN V1 generator (Kong et al.): mel (N, 80, T) -> audio (N, 1, 256 T)."""
    x = ops.conv(mel, p.w("pre", (ch, mel.shape[1], 7), mel.shape[1] * 7), p.b("preb", ch), 1, 3)
    for i, (u, k) in enumerate(zip(rates, kernels, strict=True)):
        c_in, c_out = ch // 2**i, ch // 2 ** (i + 1)
        x = ops.leaky_relu(x, 0.1)
        x = ops.convt(
            x, p.w(f"up{i}", (c_in, c_out, k), c_in * k / u), p.b(f"up{i}b", c_out), u, (k - u) // 2
        )
        xs = None
        for j, rk in enumerate(rb_kernels):
            r = _resblock1(ops, p, f"rb{i}.{j}", x, c_out, rk, rb_dilations)
            xs = r if xs is None else xs + r
        x = xs * (1.0 / len(rb_kernels))
    x = ops.leaky_relu(x, 0.01)
    c = ch // 2 ** len(rates)
    return ops.tanh(ops.conv(x, p.w("post", (1, c, 7), c * 7), p.b("postb", 1), 1, 3))


def pix2pix(ops, p: Params, img, *, ngf=64, num_downs=8, nc=3):
    """pix2pix U-Net generator (Isola et al., ``UnetGenerator``, batch norm, no dropout)."""
    c = [ngf * min(2**i, 8) for i in range(num_downs)]
    h = [ops.conv(img, p.w("d0", (c[0], img.shape[1], 4, 4), img.shape[1] * 16), None, 2, 1)]
    for i in range(1, num_downs):
        x = ops.conv(
            ops.leaky_relu(h[-1], 0.2),
            p.w(f"d{i}", (c[i], c[i - 1], 4, 4), c[i - 1] * 16),
            None,
            2,
            1,
        )
        if i < num_downs - 1:  # the innermost down-convolution has no norm
            x = ops.batch_norm(x, p.gamma(f"dn{i}.g", c[i]), p.b(f"dn{i}.b", c[i]))
        h.append(x)
    x = h[-1]
    for i in range(num_downs - 1, 0, -1):
        c_in = c[i] if i == num_downs - 1 else 2 * c[i]
        y = ops.convt(ops.relu(x), p.w(f"u{i}", (c_in, c[i - 1], 4, 4), c_in * 4), None, 2, 1)
        y = ops.batch_norm(y, p.gamma(f"un{i}.g", c[i - 1]), p.b(f"un{i}.b", c[i - 1]))
        x = ops.cat([h[i - 1], y])
    return ops.tanh(
        ops.convt(ops.relu(x), p.w("u0", (2 * c[0], nc, 4, 4), 2 * c[0] * 4), p.b("u0b", nc), 2, 1)
    )


def unet3d(ops, p: Params, x, *skips, chans=(256, 128, 64, 32, 32), kernel=2, classes=3):
    """3-D U-Net decoder (nnU-Net style): per level a k=s=2 up-convolution, the skip,
    two (3x3x3 conv, instance norm, leaky ReLU 0.01); then a 1x1x1 head."""
    pad = (kernel - 2) // 2
    for i, skip in enumerate(skips):
        c_in, c_out = chans[i], chans[i + 1]
        x = ops.convt(
            x,
            p.w(f"up{i}", (c_in, c_out, *(kernel,) * 3), c_in * kernel**3 / 8),
            p.b(f"up{i}b", c_out),
            2,
            pad,
        )
        x = ops.cat([skip, x])
        for j, cin in enumerate((skip.shape[1] + c_out, c_out)):
            x = ops.conv(
                x, p.w(f"c{i}{j}", (c_out, cin, 3, 3, 3), cin * 27), p.b(f"c{i}{j}b", c_out), 1, 1
            )
            x = ops.leaky_relu(
                ops.instance_norm(x, p.gamma(f"n{i}{j}.g", c_out), p.b(f"n{i}{j}.b", c_out)), 0.01
            )
    return ops.conv(x, p.w("head", (classes, chans[-1], 1, 1, 1), chans[-1]), p.b("headb", classes))


class Model(NamedTuple):
    name: str
    fn: Callable
    inputs: tuple  # shapes of the inputs
    kwargs: dict
    what: str


def models(small: bool, unet3d_kernel: int = 2) -> dict[str, Model]:
    """The four decoders, full size or (``small``) scaled down to a smoke-test size."""
    if small:
        n, ngf, b, ch = 2, 16, 2, (64, 32, 16, 8, 8)
        dc = Model("dcgan", dcgan, ((n, 100, 1, 1),), {"ngf": ngf}, "")
        hf = Model("hifigan", hifigan, ((1, 80, 8),), {"ch": 64}, "")
        px = Model("pix2pix", pix2pix, ((1, 3, 64, 64),), {"ngf": 8, "num_downs": 6}, "")
    else:
        n, b, ch = 8, 2, (256, 128, 64, 32, 32)
        dc = Model("dcgan", dcgan, ((n, 100, 1, 1),), {}, "")
        hf = Model("hifigan", hifigan, ((1, 80, 32),), {}, "")
        px = Model("pix2pix", pix2pix, ((1, 3, 256, 256),), {}, "")
    u3 = Model(
        "unet3d",
        unet3d,
        ((1, ch[0], b, b, b), *((1, ch[i + 1], *(b * 2 ** (i + 1),) * 3) for i in range(4))),
        {"chans": ch, "kernel": unet3d_kernel},
        "",
    )
    dc = dc._replace(
        what=f"DCGAN generator, nz=100, ngf={dc.kwargs.get('ngf', 64)}, batch "
        f"{dc.inputs[0][0]}, 1x1 -> 64x64x3 (4 stride-2 k4 + one stride-1 k4 "
        "transposed layers, batch norm, ReLU, tanh)"
    )
    hf = hf._replace(
        what=f"HiFi-GAN V1 generator, {hf.kwargs.get('ch', 512)} initial channels, "
        f"batch 1, {hf.inputs[0][2]} mel frames -> {hf.inputs[0][2] * 256} samples "
        "(upsample rates 8,8,2,2, kernels 16,16,4,4; ResBlock1 kernels 3,7,11, "
        "dilations 1,3,5; leaky ReLU; no weight norm)"
    )
    px = px._replace(
        what=f"pix2pix U-Net generator, ngf={px.kwargs.get('ngf', 64)}, "
        f"{px.kwargs.get('num_downs', 8)} downs, batch 1, "
        f"{px.inputs[0][2]}x{px.inputs[0][3]} (k4 s2 p1 transposed layers, "
        "batch norm, no dropout)"
    )
    u3 = u3._replace(
        what=f"3-D U-Net decoder, batch 1, {ch[0]} channels at {b}^3 -> "
        f"{ch[-1]} at {b * 16}^3 in 4 levels (k{unet3d_kernel} s2 up-convolution, "
        "skip, 2 x (3x3x3 conv, instance norm, leaky ReLU)), 1x1x1 head"
    )
    return {m.name: m for m in (dc, hf, px, u3)}


# --------------------------------------------------------------------------------------
# Steps, checks and timing.


def _data(model: Model, params: dict, seed=1):
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(s, dtype=np.float32) for s in model.inputs]
    out = jax.eval_shape(
        lambda p, *xs: model.fn(JaxOps("jax.lax"), Params(p), *xs, **model.kwargs), params, *inputs
    )
    target = rng.standard_normal(out.shape, dtype=np.float32)
    return inputs, target


def init(model: Model) -> dict:
    """The model's parameters (NumPy), created by tracing it once (no computation)."""
    p = Params()
    jax.eval_shape(
        lambda *xs: model.fn(JaxOps("jax.lax"), p, *xs, **model.kwargs),
        *(jax.ShapeDtypeStruct(s, jnp.float32) for s in model.inputs),
    )
    return p.values


def transposed_layers(model: Model, params: dict) -> list[str]:
    """A line per transposed layer: input shape, weight shape, stride, padding."""
    layers = []

    class Recorder(JaxOps):
        def convt(self, x, w, b, stride, padding, output_padding=0):
            layers.append(
                f"{tuple(x.shape)} * {tuple(w.shape)}, stride {stride}, "
                f"padding {padding}"
                + (f", output_padding {output_padding}" if output_padding else "")
            )
            return super().convt(x, w, b, stride, padding, output_padding)

    jax.eval_shape(
        lambda p, *xs: model.fn(Recorder("jax.lax"), Params(p), *xs, **model.kwargs),
        params,
        *(jax.ShapeDtypeStruct(s, jnp.float32) for s in model.inputs),
    )
    return layers


#: The JAX variants: (transposed layers, regular convolutions) of each.
JAX_VARIANTS = {
    "convt_jax": ("convt_jax", "convt_jax"),
    "convt_jax + lax conv": ("convt_jax", "jax.lax"),
    "jax.lax": ("jax.lax", "jax.lax"),
    "JAX stand-in": ("stand-in", "convt_jax"),
}


def jax_step(model: Model, kind: str, method: str, compute=None):
    """Jitted (params, target, *inputs) -> (loss, gradient dict) for a variant of
    :data:`JAX_VARIANTS`; ``compute`` (bfloat16): the convolutions' operands cast to it
    (autocast's policy), the loss in float32."""
    convt, conv = JAX_VARIANTS[kind]
    ops = JaxOps(convt, method, compute, conv)

    def loss(params, target, *inputs):
        y = model.fn(ops, Params(params), *inputs, **model.kwargs)
        return jnp.mean(jnp.square(y.astype(target.dtype) - target))

    return jax.jit(jax.value_and_grad(loss))


def torch_step(model: Model, kind: str, params: dict, target, inputs, autocast=False):
    """() -> (loss, gradient dict) with PyTorch; parameters are leaf tensors; ``autocast``:
    the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""
    import contextlib

    import torch

    tp = {k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in params.items()}
    tt = torch.from_numpy(target)
    tx = [torch.from_numpy(x) for x in inputs]
    ops = TorchOps(kind)
    names = list(tp)

    def step():
        mixed = (
            torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
        )
        with mixed:
            y = model.fn(ops, Params(tp), *tx, **model.kwargs)
        # the loss in the target's dtype: float32 for an autocast (bfloat16) output, float64
        # in _float64_error's re-check (not .float(), which rounded that step's output)
        loss = torch.mean(torch.square(y.to(tt.dtype) - tt))
        grads = torch.autograd.grad(loss, [tp[k] for k in names])
        return loss, dict(zip(names, grads, strict=True))

    return step


def _max_rel_error(a, b) -> float:
    """Worst over the loss and every gradient of |a - b|.max() / |b|.max(), leaving out the
    gradients that are zero up to rounding (|b|.max() under 1e-5 of the model's largest
    gradient entry: a bias followed by a normalisation)."""

    def arr(v):
        return np.asarray(v.detach().numpy() if hasattr(v, "detach") else v, np.float64)

    errs = [abs(float(arr(a[0])) - float(arr(b[0]))) / (abs(float(arr(b[0]))) + 1e-30)]
    refs = {k: arr(v) for k, v in b[1].items()}
    floor = 1e-5 * max(float(np.abs(r).max()) for r in refs.values())
    for k, ref in refs.items():
        scale = float(np.abs(ref).max())
        if scale > floor:
            errs.append(float(np.abs(arr(a[1][k]) - ref).max() / scale))
    return max(errs)


MISMATCH = 1e-3  # worst relative error of a float32 step that is checked again in float64
BF16_MISMATCH = 4.0  # a mixed-precision step this many times PyTorch's error is flagged


def _float64_error(
    model: Model, kind: str, ref: str, method: str, params: dict, inputs: list, target
) -> float:
    """The worst relative error of the same step in float64, against PyTorch's in float64.

    A float32 step of a whole model can differ from PyTorch's by more than rounding
    suggests where a gradient is ill-conditioned (a leaky-ReLU input within rounding of
    zero takes the other slope; a batch norm over one value); in float64 a correct step
    agrees to ~1e-12, a wrong one does not."""
    from convt_jax import _compat

    params = {k: v.astype(np.float64) for k, v in params.items()}
    inputs, target = [x.astype(np.float64) for x in inputs], target.astype(np.float64)
    theirs = torch_step(
        model, "stand-in" if ref == "PyTorch stand-in" else "PyTorch", params, target, inputs
    )()
    with _compat.enable_x64():
        step = jax_step(model, kind, method)
        ours = step(
            {k: jnp.asarray(v) for k, v in params.items()},
            jnp.asarray(target),
            *[jnp.asarray(x) for x in inputs],
        )
        ours = jax.tree.map(np.asarray, ours)
    return _max_rel_error(ours, theirs)


def bench_model(model: Model, rounds: int, method: str, with_lax: bool, log=print, bfloat16=False):
    """{variant: [ms per round]} and {variant: relative error against PyTorch}."""
    compute = jnp.bfloat16 if bfloat16 else None
    params = init(model)
    inputs, target = _data(model, params)
    jp, jt, jx = (
        {k: jnp.asarray(v) for k, v in params.items()},
        jnp.asarray(target),
        [jnp.asarray(x) for x in inputs],
    )
    kinds = [k for k in JAX_VARIANTS if with_lax or k != "jax.lax"]
    steps = {}
    for kind in kinds:
        f = jax_step(model, kind, method, compute)
        t0 = time.perf_counter()
        f = f.lower(jp, jt, *jx).compile()
        log(f"  {model.name} {kind:>16}: compiled in {time.perf_counter() - t0:6.1f} s")
        steps[kind] = lambda f=f: jax.block_until_ready(f(jp, jt, *jx))
    steps["PyTorch"] = torch_step(model, "PyTorch", params, target, inputs, bfloat16)
    steps["PyTorch stand-in"] = torch_step(model, "stand-in", params, target, inputs, bfloat16)
    ref = {k: "PyTorch stand-in" if k == "JAX stand-in" else "PyTorch" for k in JAX_VARIANTS}
    outs, errors = {}, {}
    for kind, f in steps.items():  # warm-up and check
        t0 = time.perf_counter()
        outs[kind] = f()
        log(f"  {model.name} {kind:>16}: first step {1e3 * (time.perf_counter() - t0):8.1f} ms")
    if bfloat16:  # both frameworks' mixed-precision steps against PyTorch's float32 one
        f32 = {
            "PyTorch": torch_step(model, "PyTorch", params, target, inputs)(),
            "PyTorch stand-in": torch_step(model, "stand-in", params, target, inputs)(),
        }
        for kind, r in ref.items():
            if kind in outs:
                err, theirs = _max_rel_error(outs[kind], f32[r]), _max_rel_error(outs[r], f32[r])
                errors[kind] = (err, None, theirs)
                log(
                    f"  {model.name} {kind:>16}: loss and gradients vs {r} float32: worst "
                    f"relative error {err:.1e} ({r} autocast: {theirs:.1e})"
                )
    for kind, r in ref.items():
        if kind in outs and not bfloat16:
            err = _max_rel_error(outs[kind], outs[r])
            err64 = (
                _float64_error(model, kind, r, method, params, inputs, target)
                if err > MISMATCH and not bfloat16
                else None
            )
            errors[kind] = (err, err64)
            log(
                f"  {model.name} {kind:>16}: loss and gradients vs {r}: worst relative "
                f"error {err:.1e}" + ("" if err64 is None else f" (float64: {err64:.1e})")
            )
    # alternate frameworks within a round; reverse the order every other round
    order = [
        k
        for k in (
            "convt_jax",
            "PyTorch",
            "convt_jax + lax conv",
            "jax.lax",
            "PyTorch stand-in",
            "JAX stand-in",
        )
        if k in steps
    ]
    times = {k: [] for k in order}
    for r in range(rounds):
        for kind in order if r % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            steps[kind]()
            times[kind].append(time.perf_counter() - t0)
    return {k: [1e3 * t for t in v] for k, v in times.items()}, errors


def table(results: dict, all_models: dict, header: str, errors: dict, mixed: bool = False) -> str:
    lines = [
        "### Training step (loss -> gradients of every parameter): milliseconds\n",
        header,
        "",
        "| model | convt_jax step | convt_jax + lax conv step | jax.lax step | "
        "JAX stand-in step | PyTorch step | PyTorch stand-in step | added: convt_jax | "
        "added: PyTorch | added: convt_jax / PyTorch | step: convt_jax / PyTorch | "
        "step: convt_jax + lax conv / PyTorch |",
        "|---" * 12 + "|",
    ]

    def ms(v):
        return f"{v:.1f}" if v is not None else "n/a"

    for name, rounds in results.items():
        t = {k: statistics.median(v) for k, v in rounds.items()}
        # paired by round: the median of (step - stand-in step) over rounds
        added = {
            k: (
                statistics.median([a - b for a, b in zip(rounds[k], rounds[s], strict=True)])
                if k in rounds
                else None
            )
            for k, s in (("convt_jax", "JAX stand-in"), ("PyTorch", "PyTorch stand-in"))
        }
        ratio = (
            f"{added['convt_jax'] / added['PyTorch']:.2f}"
            if added["PyTorch"] and added["PyTorch"] > 0
            else "n/a (PyTorch adds <= 0)"
        )
        lines.append(
            f"| {name} | {ms(t.get('convt_jax'))} | {ms(t.get('convt_jax + lax conv'))} | "
            f"{ms(t.get('jax.lax'))} | {ms(t.get('JAX stand-in'))} | {ms(t.get('PyTorch'))} | "
            f"{ms(t.get('PyTorch stand-in'))} | {ms(added['convt_jax'])} | "
            f"{ms(added['PyTorch'])} | {ratio} | "
            f"{t['convt_jax'] / t['PyTorch']:.2f} | "
            f"{t['convt_jax + lax conv'] / t['PyTorch']:.2f} |"
        )
    lines.append(
        '\n"added" = step - stand-in step of the same framework (the median over '
        "rounds of the difference within a round): the time the transposed "
        "convolutions add (both JAX steps with convt_jax's regular convolutions). Models:\n"
    )

    def check(kind, err, err64, theirs=None):
        if theirs is not None:  # mixed precision: against PyTorch's float32 step
            flag = " **mismatch**" if err > BF16_MISMATCH * theirs else ""
            return f"{kind} {err:.0e} (PyTorch autocast {theirs:.0e}{flag})"
        if err64 is None:
            return f"{kind} {err:.0e}"
        verdict = " (**mismatch**)" if err64 > 1e-9 else ""
        return f"{kind} {err:.0e} (float64: {err64:.0e}{verdict})"

    for name in results:
        err = ", ".join(check(k, *v) for k, v in errors[name].items())
        lines.append(
            f"* **{name}**: {all_models[name].what}. `jax.lax.conv_transpose` "
            f"expresses every transposed layer (no groups, no output_padding). "
            f"Worst relative error of loss and gradients against PyTorch: {err}"
            + (
                " (mixed precision: both frameworks' bfloat16 steps against PyTorch's float32 "
                f"step; flagged above {BF16_MISMATCH:g}x PyTorch's own error)."
                if mixed
                else f" (float32 errors above {MISMATCH:g} are checked again in float64, "
                "where a correct step agrees to rounding)."
            )
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        default="dcgan,hifigan,pix2pix,unet3d",
        help="comma-separated subset of dcgan,hifigan,pix2pix,unet3d",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--small", action="store_true", help="scaled-down models (fewer channels, smaller inputs)"
    )
    parser.add_argument("--method", default="auto", help="convt_jax's method= for every layer")
    parser.add_argument(
        "--unet3d-kernel",
        type=int,
        default=2,
        choices=(2, 4),
        help="kernel of the 3-D up-convolutions (2: k=s as in nnU-Net; 4: p=1)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="PyTorch threads (default: the CPUs this process may use)",
    )
    parser.add_argument("--no-lax", action="store_true", help="skip the jax.lax variant")
    parser.add_argument(
        "--bfloat16",
        action="store_true",
        help="mixed precision: float32 parameters, bfloat16 compute (PyTorch: autocast)",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the models and their transposed layers and exit"
    )
    parser.add_argument("--out", default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    all_models = models(args.small, args.unet3d_kernel)
    names = args.models.split(",")
    unknown = [n for n in names if n not in all_models]
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {','.join(all_models)}")
    if args.list:
        for name in names:
            m = all_models[name]
            params = init(m)
            size = sum(v.size for v in params.values())
            print(f"{name}: {m.what}; {size / 1e6:.2f} M parameters; transposed layers:")
            for line in transposed_layers(m, params):
                print(f"    {line}")
        return 0
    import torch

    torch.set_num_threads(args.threads or _machine.cores()[0])
    start = _machine.matmul_rates()
    print(_machine.header(start), file=sys.stderr, flush=True)
    results, errors = {}, {}
    for name in names:
        results[name], errors[name] = bench_model(
            all_models[name],
            args.rounds,
            args.method,
            not args.no_lax,
            log=lambda s: print(s, file=sys.stderr, flush=True),
            bfloat16=args.bfloat16,
        )
    end = _machine.matmul_rates()
    header = (
        _machine.header(start, end) + f"\n\nMedian of {args.rounds} rounds (frameworks "
        f"alternating); convt_jax method={args.method!r}"
        f"{'; --small sizes' if args.small else ''}"
        f"{'; mixed precision (bfloat16 compute, float32 parameters)' if args.bfloat16 else ''}."
    )
    text = table(results, all_models, header, errors, args.bfloat16)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
