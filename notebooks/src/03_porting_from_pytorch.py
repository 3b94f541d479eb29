# %% [markdown]
# # Porting a PyTorch decoder to JAX
#
# You have a trained PyTorch decoder built from `torch.nn.ConvTranspose2d` layers, with
# some of the settings that JAX's own transposed convolutions lack: `groups`,
# `output_padding`, `dilation`. This notebook
#
# 1. builds such a `torch.nn.Sequential`,
# 2. rebuilds it from `ct.nn.ConvTranspose2d` layers with the same arguments and copies
#    the weights with `load_state_dict` (PyTorch's key names and weight layout, no
#    transposes or flips),
# 3. shows that outputs and gradients are identical (to float round-off), and
# 4. shows what `jax.lax.conv_transpose` and `flax.linen.ConvTranspose` would have
#    computed with the same numbers, and how `ct.layouts.to_flax` converts a layer
#    for Flax when you need to, and
# 5. takes the Flax route: `convt_jax.flax.ConvTranspose2d`, an NNX module that loads the
#    same `state_dict`.

# %%
# %matplotlib inline
import flax
import flax.linen as fnn
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import torch

import convt_jax as ct

jax.config.update("jax_enable_x64", True)  # only for the float64 comparison below
plt.rcParams.update({"figure.dpi": 100, "font.size": 10})
print(
    "convt_jax",
    ct.__version__,
    "| jax",
    jax.__version__,
    "| torch",
    torch.__version__,
    "| flax",
    flax.__version__,
)

# %% [markdown]
# ## The PyTorch decoder
#
# A 16-channel 4×4 feature map in, a 3-channel 50×50 image out. The second layer is
# grouped and uses `output_padding`, the third is dilated, the last has stride 3, output
# padding 2 and no bias.

# %%
torch.manual_seed(0)
torch_decoder = torch.nn.Sequential(
    torch.nn.ConvTranspose2d(16, 32, kernel_size=4, stride=2, padding=1),  # 4 -> 8
    torch.nn.ReLU(),
    torch.nn.ConvTranspose2d(
        32, 32, kernel_size=3, stride=2, padding=1, output_padding=1, groups=4
    ),  # 8 -> 16
    torch.nn.ReLU(),
    torch.nn.ConvTranspose2d(32, 16, kernel_size=3, padding=2, dilation=2),  # 16 -> 16
    torch.nn.ReLU(),
    torch.nn.ConvTranspose2d(
        16, 3, kernel_size=5, stride=3, padding=1, output_padding=2, bias=False
    ),  # 16 -> 50
    torch.nn.Tanh(),
)
x = np.random.default_rng(0).standard_normal((2, 16, 4, 4)).astype(np.float32)
with torch.no_grad():
    y_torch = torch_decoder(torch.from_numpy(x)).numpy()
print(torch_decoder)
print("output:", y_torch.shape)
print("state_dict:", {k: tuple(v.shape) for k, v in torch_decoder.state_dict().items()})

# %% [markdown]
# ## The port: same arguments, same `state_dict`
#
# `ct.nn.ConvTranspose2d` takes PyTorch's constructor arguments (`groups` and `dilation`
# by keyword) and stores `weight` in PyTorch's layout `(C_in, C_out // groups, kh, kw)`,
# so `load_state_dict` accepts the tensors as they are; only the Sequential's index
# prefix (`"2."`) is stripped. Activations map to their `jax.nn` functions. The layers
# go into a dict, a pytree that `jax.jit` and `jax.grad` handle directly.

# %%
ACTIVATIONS = {
    torch.nn.ReLU: jax.nn.relu,
    torch.nn.Tanh: jnp.tanh,
    torch.nn.Sigmoid: jax.nn.sigmoid,
    torch.nn.LeakyReLU: jax.nn.leaky_relu,
}


def port(sequential, dtype=jnp.float32):
    """A torch.nn.Sequential of ConvTranspose2d layers and activations -> (params, forward)."""
    state = sequential.state_dict()
    params, program = {}, []
    for name, m in sequential.named_children():
        if isinstance(m, torch.nn.ConvTranspose2d):
            layer = ct.nn.ConvTranspose2d(
                m.in_channels,
                m.out_channels,
                m.kernel_size,
                m.stride,
                m.padding,
                m.output_padding,
                groups=m.groups,
                dilation=m.dilation,
                bias=m.bias is not None,
                dtype=dtype,
                key=jax.random.key(0),
            )
            params[name] = layer.load_state_dict(
                {
                    k.removeprefix(name + "."): v
                    for k, v in state.items()
                    if k.startswith(name + ".")
                }
            )
            program.append(name)
        else:
            program.append(ACTIVATIONS[type(m)])

    def forward(params, x):
        for step in program:
            x = params[step](x) if isinstance(step, str) else step(x)
        return x

    return params, forward


params, forward = port(torch_decoder)
params  # noqa: B018 - the cell's last value is what the notebook shows

# %% [markdown]
# ## Identical outputs
#
# In float32 the two agree to float32 round-off (the order of additions differs between
# the two libraries); in float64 (the same model converted with `.double()`) to float64
# round-off.

# %%
y_jax = jax.jit(forward)(params, x)
print(
    "float32: shape",
    y_jax.shape,
    "max |jax - torch| =",
    f"{float(np.abs(np.asarray(y_jax) - y_torch).max()):.1e}",
)

torch64 = torch_decoder.double()
params64, forward64 = port(torch64, dtype=jnp.float64)
x64 = x.astype(np.float64)
with torch.no_grad():
    y_torch64 = torch64(torch.from_numpy(x64)).numpy()
print(
    "float64: max |jax - torch| =",
    f"{float(np.abs(np.asarray(jax.jit(forward64)(params64, x64)) - y_torch64).max()):.1e}",
)
torch_decoder = torch_decoder.float()

# %% [markdown]
# ## Identical gradients
#
# Training the port means differentiating it. `jax.grad` with respect to the dict of
# layers returns layers holding the gradients; compare them with PyTorch's autograd for
# the same loss.

# %%
target = np.random.default_rng(1).standard_normal(y_torch.shape).astype(np.float32)


def loss(params, x):
    return jnp.mean((forward(params, x) - target) ** 2)


grads = jax.jit(jax.grad(loss))(params, x)
torch_decoder.zero_grad()
torch.mean((torch_decoder(torch.from_numpy(x)) - torch.from_numpy(target)) ** 2).backward()
for name, g in grads.items():
    m = torch_decoder[int(name)]
    err_w = np.abs(np.asarray(g.weight) - m.weight.grad.numpy()).max()
    scale = np.abs(m.weight.grad.numpy()).max()
    text = (
        f"layer {name}: weight grad {tuple(g.weight.shape)} max |diff| {err_w:.1e} (of {scale:.1e})"
    )
    if g.bias is not None:
        err_b = np.abs(np.asarray(g.bias) - m.bias.grad.numpy()).max()
        text += f", bias grad max |diff| {err_b:.1e}"
    print(text)

# %% [markdown]
# `output_size` works as in PyTorch too: the last layer (stride 3) can produce 48, 49 or
# 50 pixels from 16, and `layer(x, output_size=...)` picks one.

# %%
h = jnp.ones((1, 16, 16, 16))
for size in (48, 49, 50):
    ours = params["6"](h, output_size=(size, size)).shape
    theirs = tuple(torch_decoder[6](torch.ones(1, 16, 16, 16), output_size=[size, size]).shape)
    print(f"output_size={size}: convt_jax {ours}, PyTorch {theirs}")

# %% [markdown]
# ## What `jax.lax.conv_transpose` and `flax.linen.ConvTranspose` would have done
#
# Both compute a transposed convolution, but with `jax.lax.conv_transpose`'s conventions:
#
# * **padding** pads the stride-dilated input (the gather view of notebook 01) instead of
#   cropping the output, so PyTorch's `padding=p` is lax's `d·(k−1) − p` on each side;
# * the kernel is used **unflipped, with input/output axes as given**, unless
#   `transpose_kernel=True`;
# * there is **no `groups`** and **no `output_padding`** (the latter becomes extra `hi`
#   padding).
#
# Flax's `ConvTranspose` wraps `jax.lax.conv_transpose` with channels-last inputs and a
# `(kh, kw, C_in, C_out)` kernel. Here is what happens to each layer of the decoder, fed
# the input that reaches it in the PyTorch model, when its PyTorch numbers are passed
# over literally, and with the conversions done right:


# %%
def layer_inputs(model, x):
    """The input reaching each ConvTranspose2d of a Sequential, as NumPy arrays."""
    out, h = {}, torch.from_numpy(x)
    with torch.no_grad():
        for name, m in model.named_children():
            if isinstance(m, torch.nn.ConvTranspose2d):
                out[name] = (h.numpy(), m(h).numpy())
            h = m(h)
    return out


def compare(got, ref):
    if isinstance(got, Exception):
        return f"error ({type(got).__name__})"
    got = np.asarray(got)
    if got.shape != ref.shape:
        return f"shape {got.shape[1:]} != {ref.shape[1:]}"
    return f"max |diff| {np.abs(got - ref).max():.1e}"


def attempt(f):
    try:
        return f()
    except Exception as err:  # noqa: BLE001 - shown in the table
        return err


dn = ("NCHW", "OIHW", "NCHW")


def layer_row(name, h, ref):
    """One row of the table: layer ``name`` of the decoder ported each way."""
    m = torch_decoder[int(name)]
    w = m.weight.detach().numpy()
    b = np.zeros(m.out_channels, np.float32) if m.bias is None else m.bias.detach().numpy()
    (k, _), (s, _), (p, _), (d, _), (a, _) = (
        m.kernel_size,
        m.stride,
        m.padding,
        m.dilation,
        m.output_padding,
    )
    g = m.groups

    def nchw(y):  # add the bias (when the channel count is even right)
        y = np.asarray(y)
        return y + b[:, None, None] if y.shape[1] == len(b) else y

    lax_literal = attempt(
        lambda: nchw(
            jax.lax.conv_transpose(
                h,
                w,
                (s, s),
                [(p, p)] * 2,
                rhs_dilation=(d, d),
                dimension_numbers=("NCHW", "IOHW", "NCHW"),
            )
        )
    )
    lo, hi = d * (k - 1) - p, d * (k - 1) - p + a  # the right lax padding
    lax_fixed = attempt(
        lambda: nchw(
            jax.lax.conv_transpose(
                h,
                w,
                (s, s),
                [(lo, hi)] * 2,
                rhs_dilation=(d, d),
                dimension_numbers=dn,
                transpose_kernel=True,
            )
        )
    )
    flax_literal = attempt(
        lambda: np.asarray(
            fnn.ConvTranspose(
                m.out_channels, (k, k), strides=(s, s), padding=[(p, p)] * 2, kernel_dilation=(d, d)
            ).apply(
                {"params": {"kernel": w.transpose(2, 3, 0, 1), "bias": b}}, h.transpose(0, 2, 3, 1)
            )
        ).transpose(0, 3, 1, 2)
    )
    kernel, pads = ct.layouts.to_flax(w, p, a, stride=s, dilation=d, groups=g)
    flax_converted = attempt(
        lambda: np.asarray(
            fnn.ConvTranspose(
                m.out_channels, (k, k), strides=(s, s), padding=pads, kernel_dilation=(d, d)
            ).apply({"params": {"kernel": kernel, "bias": b}}, h.transpose(0, 2, 3, 1))
        ).transpose(0, 3, 1, 2)
    )
    ours = params[name](h)
    return (
        f"{name}: k={k} s={s} p={p} d={d} op={a} g={g}",
        compare(lax_literal, ref),
        compare(lax_fixed, ref),
        compare(flax_literal, ref),
        compare(flax_converted, ref),
        compare(ours, ref),
    )


rows = [layer_row(name, h, ref) for name, (h, ref) in layer_inputs(torch_decoder, x).items()]

headers = (
    "layer",
    "lax, literal",
    "lax, d(k-1)-p + transpose_kernel",
    "flax, literal",
    "flax via ct.layouts.to_flax",
    "convt_jax",
)
widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
for r in [headers, tuple("-" * w for w in widths)] + rows:
    print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))

# %% [markdown]
# Reading the table:
#
# * **Literal port** (`padding=p`, the PyTorch kernel reshaped without flipping): the
#   layers come out the wrong size, because lax and Flax pad the stride-dilated input
#   where PyTorch crops the output. Where the sizes happen to agree (stride 1 and
#   `d·(k−1) = 2p`, like layer 4), the numbers are still wrong: the kernel is not flipped.
#   Flax refuses the grouped layer's kernel outright (its shape is not `(kh, kw, C_in, C_out)`).
# * **lax with the padding converted and `transpose_kernel=True`** matches PyTorch on the
#   ungrouped layers, output padding included (as extra `hi` padding). On the grouped
#   layer 2 it still runs but is silently wrong: `jax.lax.conv_transpose` has no
#   `groups`, so it reads the `(32, 8, 3, 3)` grouped weight as a dense 32 → 8 kernel
#   and returns 8 channels instead of 32.
# * **Flax with `ct.layouts.to_flax`** matches everywhere: it flips and transposes the
#   kernel, converts padding and output padding to lax padding, and expands groups into
#   the equivalent block-diagonal dense kernel (correct, but `groups` times more weights
#   and FLOPs).
# * **convt_jax** takes the PyTorch layer as it is.
#
# A picture of the first two points: feed layer 0 a single 1 in the middle of input
# channel 0, so its output is a stamp of the kernel `w[0, 0]` (the scatter view of
# notebook 01). The literal lax port crops differently (the stamp lands elsewhere in a
# smaller image) and uses the kernel unflipped; the `to_flax` conversion lands exactly
# on PyTorch's.

# %%
m0 = torch_decoder[0]
w0 = m0.weight.detach().numpy()
impulse = np.zeros((1, 16, 4, 4), np.float32)
impulse[0, 0, 1, 2] = 1.0
with torch.no_grad():
    stamp_torch = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(impulse), m0.weight, None, 2, 1
    ).numpy()[0, 0]
stamp_lax = np.asarray(
    jax.lax.conv_transpose(
        impulse, w0, (2, 2), [(1, 1)] * 2, dimension_numbers=("NCHW", "IOHW", "NCHW")
    )
)[0, 0]
kernel, pads = ct.layouts.to_flax(w0, 1, 0, stride=2)
stamp_flax = np.asarray(
    fnn.ConvTranspose(32, (4, 4), strides=(2, 2), padding=pads, use_bias=False).apply(
        {"params": {"kernel": kernel}}, impulse.transpose(0, 2, 3, 1)
    )
)[0, ..., 0]
stamp_ours = np.asarray(ct.conv_transpose2d(impulse, w0, stride=2, padding=1))[0, 0]

panels = [
    (w0[0, 0], "the kernel w[0, 0] (4×4)"),
    (stamp_torch, "PyTorch (8×8)"),
    (stamp_lax, "lax.conv_transpose, literal (6×6)"),
    (stamp_flax, "Flax via ct.layouts.to_flax (8×8)"),
    (stamp_ours, "convt_jax (8×8)"),
]
vmax = np.abs(w0[0, 0]).max()
fig, axes = plt.subplots(1, 5, figsize=(13, 3.1))
for ax, (img, title) in zip(axes, panels, strict=True):
    ax.imshow(img, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_title(title, fontsize=9)
    ax.set_xticks(np.arange(img.shape[1] + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(img.shape[0] + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.8", lw=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
fig.tight_layout()

# %% [markdown]
# ## The Flax route
#
# Inside a Flax NNX model, use `convt_jax.flax.ConvTranspose2d`: an `nnx.Module` with the
# same constructor arguments as `ct.nn.ConvTranspose2d` (and `rngs=` instead of `key=`),
# whose `weight` and `bias` are `nnx.Param`s in PyTorch's layout, so
# `nnx.Optimizer(model, tx, wrt=nnx.Param)` trains them. Like Flax's own layers it takes
# channels-last input by default (`channels_last=True`). `load_state_dict` loads a PyTorch
# state dict in place (NNX modules are mutable, like PyTorch's), and
# `ConvTranspose2d.from_torch(module)` does settings and weights in one call. Here is the
# grouped, output-padded layer 2, fed the same input as in the table above (transposed to
# NHWC):

# %%
from flax import nnx  # noqa: E402 - imported where the notebook first uses it

import convt_jax.flax as ctf  # noqa: E402

m2 = torch_decoder[2]
nnx_layer = ctf.ConvTranspose2d(
    32, 32, kernel_size=3, stride=2, padding=1, output_padding=1, groups=4, rngs=nnx.Rngs(0)
)
nnx_layer.load_state_dict(m2.state_dict())
print(
    "Params:",
    {name: tuple(getattr(nnx_layer, name).shape) for name in ("weight", "bias")},
    "| all nnx.Param:",
    all(isinstance(getattr(nnx_layer, name), nnx.Param) for name in ("weight", "bias")),
)

h2, ref2 = layer_inputs(torch_decoder, x)["2"]
h2_nhwc = h2.transpose(0, 2, 3, 1)  # NCHW -> NHWC
y_nnx = np.asarray(nnx_layer(h2_nhwc)).transpose(0, 3, 1, 2)  # NHWC -> NCHW to compare
print(
    "load_state_dict: output",
    y_nnx.shape,
    "max |nnx - torch| =",
    f"{np.abs(y_nnx - ref2).max():.1e}",
)
y_from = np.asarray(ctf.ConvTranspose2d.from_torch(m2)(h2_nhwc)).transpose(0, 3, 1, 2)
print(
    "from_torch:      output",
    y_from.shape,
    "max |nnx - torch| =",
    f"{np.abs(y_from - ref2).max():.1e}",
)

# %% [markdown]
# ## Summary
#
# * `ct.nn.ConvTranspose2d(*torch_args, groups=..., dilation=..., key=...)` plus
#   `load_state_dict(torch_layer.state_dict())` is a complete port of a PyTorch layer:
#   same weight layout, same padding and output-padding semantics, same `output_size`.
# * `jax.lax.conv_transpose` needs the padding converted (`d·(k−1) − p`, plus
#   `output_padding` on the high side), `transpose_kernel=True` with `OIHW` numbering,
#   and cannot do groups.
# * `flax.linen.ConvTranspose` needs the same plus channels-last data; `ct.layouts.to_flax`
#   does the conversion (and `from_flax` goes back). `ct.layouts` has the same pair for
#   Equinox, Haiku, Keras and MegEngine.
# * In Flax NNX models, `convt_jax.flax.ConvTranspose2d` (channels-last by default) takes
#   the same arguments and the same `state_dict`, or `ConvTranspose2d.from_torch(module)`.
