# %% [markdown]
# # Transposed convolution, explained
#
# A **transposed convolution** (also called a *fractionally strided convolution*, and
# often, wrongly, a *deconvolution*) is the layer that makes a feature map **bigger**.
# Decoders, GAN generators, U-Nets and audio vocoders use it as *learnable upsampling*:
# `torch.nn.ConvTranspose2d`, `flax.linen.ConvTranspose`, and `convt_jax.conv_transpose2d`.
#
# This notebook builds the operation from scratch on numbers small enough to check
# with pencil and paper, and then answers the questions people trip over:
#
# 1. **What does it compute?** Two equivalent pictures: *scatter* (every input value
#    paints a scaled copy of the kernel) and *gather* (an ordinary convolution over a
#    stretched input).
# 2. **Why is it called "transposed"?** Its matrix is the transpose of a convolution's.
# 3. **How big is the output?** The size formula, and why one input size can map to
#    several output sizes (`output_padding`, `output_size`).
# 4. **What do `groups` and depthwise mean here?**
# 5. **Where do checkerboard artifacts come from**, and how ICNR initialisation avoids them.
#
# No prior knowledge beyond "a convolution slides a small kernel over an image" is assumed.
# We use `convt_jax`, which computes exactly what PyTorch's `conv_transpose{1,2,3}d` does,
# and check it against PyTorch when PyTorch is installed.

# %%
# %matplotlib inline
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import convt_jax as ct

try:
    import torch
except ImportError:  # the comparisons with PyTorch are skipped
    torch = None

plt.rcParams.update({"figure.dpi": 100, "font.size": 10})
np.set_printoptions(precision=4, suppress=True)
print(
    "convt_jax",
    ct.__version__,
    "| jax",
    jax.__version__,
    "| torch",
    torch.__version__ if torch else "not installed",
)

# %% [markdown]
# ## 1. The scatter view: every input value paints a copy of the kernel
#
# Start in one dimension with one channel. Take the input `x = [1, 2, 3]`, the kernel
# `w = [1, 10, 100]` and **stride 2**. A transposed convolution does this:
#
# > for each input position `i`, add the kernel, multiplied by `x[i]`, into the output
# > starting at position `stride * i`.
#
# That is, `x[i] * w[k]` is added to output position `o = stride * i + k`. Where copies
# overlap, they add up. The kernel is made of powers of ten so that each output digit
# tells you which copy it came from.


# %%
def conv_transpose_scatter(x, w, stride):
    """Transposed convolution, 1-D, one channel, the scatter way."""
    L, K = len(x), len(w)
    y = np.zeros((L - 1) * stride + K)
    for i in range(L):
        y[stride * i : stride * i + K] += x[i] * w  # paint a scaled copy of the kernel
    return y


x = np.array([1.0, 2.0, 3.0])
w = np.array([1.0, 10.0, 100.0])
y = conv_transpose_scatter(x, w, stride=2)
y  # noqa: B018 - the cell's last value is what the notebook shows

# %% [markdown]
# Check it by hand:
#
# * `x[0] = 1` paints `[1, 10, 100]` at positions 0, 1, 2;
# * `x[1] = 2` paints `[2, 20, 200]` at positions 2, 3, 4;
# * `x[2] = 3` paints `[3, 30, 300]` at positions 4, 5, 6.
#
# Position 2 receives `100` (from `x[0]`) and `2` (from `x[1]`): `102`. Position 4
# receives `200 + 3 = 203`. The output has `(3 - 1) * 2 + 3 = 7` entries: an input of
# length 3 became an output of length 7, **upsampled by the stride**.
#
# ## 2. The gather view: an ordinary convolution over a stretched input
#
# The same numbers can be computed from the output's side, which is how libraries
# actually compute it (one call to an ordinary convolution routine):
#
# 1. **stretch** the input: put `stride - 1` zeros between neighbouring values
#    (`[1, 0, 2, 0, 3]`); this is called *input dilation* or *lhs dilation*;
# 2. **pad** `K - 1` zeros on both ends (`[0, 0, 1, 0, 2, 0, 3, 0, 0]`);
# 3. slide the **flipped** kernel `[100, 10, 1]` over it with stride 1, taking a dot
#    product at each position.
#
# Why flipped? In the scatter view `x[i]` meets `w[k]` at `o = s*i + k`, so at a fixed
# output position, larger `k` goes with smaller `i`: reading the input left to right
# means reading the kernel right to left.


# %%
def conv_transpose_gather(x, w, stride):
    """Transposed convolution, 1-D, one channel, the gather way."""
    K = len(w)
    stretched = np.zeros((len(x) - 1) * stride + 1)
    stretched[::stride] = x  # 1. stretch
    padded = np.pad(stretched, K - 1)  # 2. pad K - 1 zeros on each side
    flipped = w[::-1]  # 3. slide the flipped kernel
    return np.array([padded[o : o + K] @ flipped for o in range(len(padded) - K + 1)])


print("gather :", conv_transpose_gather(x, w, stride=2))
print("scatter:", conv_transpose_scatter(x, w, stride=2))

# %% [markdown]
# Here are the two views side by side. **Left**: one row per *input* value, each
# painting its copy of the kernel; the bottom row adds the columns. **Right**: one row
# per *output* value, each a dot product of the flipped kernel with a window of the
# stretched, padded input. Colours show which input value each number comes from.


# %%
def cell(ax, col, row, text, color="white", alpha=1.0, bold=False):
    ax.add_patch(Rectangle((col, -row), 1, 1, facecolor=color, alpha=alpha, edgecolor="0.6"))
    ax.text(
        col + 0.5,
        -row + 0.5,
        text,
        ha="center",
        va="center",
        fontsize=9,
        fontweight="bold" if bold else "normal",
    )


def scatter_gather_figure(x, w, stride):
    K, L = len(w), len(x)
    n_out = (L - 1) * stride + K
    colors = [f"C{i}" for i in range(L)]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [n_out + 3, n_out + 2 * K + 2]}
    )
    # Scatter: one row per input.
    for i in range(L):
        left.text(-0.3, -i + 0.5, f"x[{i}]={x[i]:g} paints", ha="right", va="center")
        for o in range(n_out):
            k = o - stride * i
            if 0 <= k < K:
                cell(left, o, i, f"{x[i] * w[k]:g}", colors[i], 0.35)
            else:
                cell(left, o, i, "")
    y = conv_transpose_scatter(x, w, stride)
    left.text(-0.3, -(L + 0.2) + 0.5, "sum  y =", ha="right", va="center", fontweight="bold")
    for o in range(n_out):
        cell(left, o, L + 0.2, f"{y[o]:g}", "0.85", bold=True)
        left.text(o + 0.5, 1.25, f"o={o}", ha="center", fontsize=8, color="0.4")
    left.set_title(f"scatter: x[i]·w added at o = {stride}·i + k")
    left.set_xlim(-4.5, n_out + 0.2)
    left.set_ylim(-L - 0.5, 1.8)
    # Gather: the stretched, padded input, then one row per output.
    padded_len = n_out + K - 1
    src = {K - 1 + stride * i: i for i in range(L)}  # padded position -> input index
    for p in range(padded_len):
        i = src.get(p)
        cell(
            right,
            p,
            0,
            f"{x[i]:g}" if i is not None else "0",
            colors[i] if i is not None else "0.93",
            0.35 if i is not None else 1.0,
        )
    right.text(-0.3, 0.5, "stretched +\npadded input", ha="right", va="center")
    flipped = w[::-1]
    for o in range(n_out):
        row = o + 1.3
        for k in range(K):
            i = src.get(o + k)
            cell(
                right,
                o + k,
                row,
                f"{flipped[k]:g}",
                colors[i] if i is not None else "white",
                0.35 if i is not None else 1.0,
            )
        right.text(padded_len + 0.3, -row + 0.5, f"→ y[{o}] = {y[o]:g}", va="center")
    right.set_title(
        "gather: flipped kernel ["
        + ", ".join(f"{v:g}" for v in flipped)
        + "] slid over it, stride 1"
    )
    right.set_xlim(-3.5, padded_len + 4)
    right.set_ylim(-n_out - 0.5, 1.3)
    for ax in (left, right):
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()


scatter_gather_figure(x, w, stride=2)

# %% [markdown]
# In the right panel, a kernel cell is coloured when it sits on a non-zero input: most
# of the multiplications hit inserted zeros. That is wasted work (a stride-2 layer in 2-D
# multiplies zeros 3 times out of 4), which is why `convt_jax` also has lowerings that
# skip the zeros (`method="subpixel"`, `"matmul"`; see notebook 04). They all compute
# the same numbers.
#
# ### The same numbers from the library (and from PyTorch)
#
# Real layers have a batch axis and channels: the input is `(N, C_in, L)` and the weight
# `(C_in, C_out, K)` (PyTorch's layout). With one sample and one channel:

# %%
x3 = jnp.asarray(x, jnp.float32)[None, None]  # (N=1, C_in=1, L=3)
w3 = jnp.asarray(w, jnp.float32)[None, None]  # (C_in=1, C_out=1, K=3)
print("convt_jax:", ct.conv_transpose1d(x3, w3, stride=2))
if torch is not None:
    print(
        "PyTorch:  ",
        torch.nn.functional.conv_transpose1d(
            torch.tensor(np.asarray(x3)), torch.tensor(np.asarray(w3)), stride=2
        ),
    )

# %% [markdown]
# The gather view is a single XLA convolution with `lhs_dilation` (the stretching),
# explicit padding and the flipped kernel:

# %%
jax.lax.conv_general_dilated(
    x3, w3[..., ::-1], window_strides=(1,), padding=[(2, 2)], lhs_dilation=(2,)
)

# %% [markdown]
# ## 3. Why "transposed"?
#
# A convolution is linear, so it is a matrix: `y = C @ u`. Take the ordinary (forward)
# convolution with the same kernel `w = [1, 10, 100]` and **stride 2** on an input of
# length 7: it produces 3 outputs, so `C` is a 3×7 matrix, each row a copy of the kernel
# shifted by 2. The transposed convolution with the same kernel and stride is the matrix
# `Cᵀ` (7×3): it goes back from 3 values to 7. We read both matrices off with
# `jax.jacobian`:


# %%
def conv(u):  # ordinary convolution (cross-correlation, like PyTorch): 7 -> 3
    return jax.lax.conv_general_dilated(u[None, None], w3, window_strides=(2,), padding="VALID")[
        0, 0
    ]


def conv_t(v):  # transposed convolution: 3 -> 7
    return ct.conv_transpose1d(v[None, None], w3, stride=2)[0, 0]


C = jax.jacobian(conv)(jnp.zeros(7))
T = jax.jacobian(conv_t)(jnp.zeros(3))
print(
    "C has shape",
    C.shape,
    "and conv_transpose's matrix",
    T.shape,
    "| equal to C.T:",
    bool(jnp.array_equal(T, C.T)),
)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [7, 3]})
for ax, M, title in (
    (axes[0], C, "convolution, stride 2: C (3×7)"),
    (axes[1], T, "transposed convolution: Cᵀ (7×3)"),
):
    ax.imshow(np.log10(1 + np.asarray(M)), cmap="Blues", vmin=0, vmax=2.5)
    for (r, c), v in np.ndenumerate(np.asarray(M)):
        ax.text(c, r, f"{v:g}" if v else "·", ha="center", va="center", fontsize=9)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()

# %% [markdown]
# Read the columns of `Cᵀ`: column `i` is where input `i` sends its kernel copy. That is
# exactly the scatter view. Two consequences:
#
# * The transposed convolution is **not an inverse**: `Cᵀ C` is not the identity; it only
#   undoes the *shape* change. Going back with the same kernel does not recover the input.
# * It is the **gradient** of the convolution with respect to its input (for a linear map
#   `y = C u`, the backward pass computes `Cᵀ g`). That is how every autodiff framework
#   already uses it, and why its padding and stride are named after the forward
#   convolution's:

# %%
g = jnp.array([1.0, 2.0, 3.0])
_, vjp = jax.vjp(conv, jnp.zeros(7))
print("gradient of the convolution:", vjp(g)[0])
print("transposed convolution:     ", conv_t(g))

# %% [markdown]
# ## 4. Two dimensions: stamps of the kernel
#
# In 2-D each input pixel stamps a scaled copy of the 2-D kernel onto the output, at row
# `stride * i`, column `stride * j`. Take the 2×2 input `[[1, 2], [3, 4]]` and the 2×2
# kernel `[[1, 0.5], [0.25, -0.25]]`.
#
# * With **stride 2** the stamps sit side by side without touching (kernel size equals
#   stride), so the output is four scaled copies of the kernel: its first row is
#   `[1·1, 1·0.5, 2·1, 2·0.5] = [1, 0.5, 2, 1]`.
# * With **stride 1** the stamps overlap. The centre value is
#   `1·(−0.25) + 2·0.25 + 3·0.5 + 4·1 = 5.75`.

# %%
x2 = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])  # (N, C_in, H, W)
w2 = jnp.array([[[[1.0, 0.5], [0.25, -0.25]]]])  # (C_in, C_out, kh, kw)


def stamps_figure(x2, w2):
    xs, ws = np.asarray(x2[0, 0]), np.asarray(w2[0, 0])
    fig, axes = plt.subplots(2, 5, figsize=(12, 5.2))
    for r, stride in enumerate((2, 1)):
        n = (2 - 1) * stride + 2
        total = np.asarray(ct.conv_transpose2d(x2, w2, stride=stride)[0, 0])
        panels = []
        for (i, j), v in np.ndenumerate(xs):
            stamp = np.full((n, n), np.nan)
            stamp[stride * i : stride * i + 2, stride * j : stride * j + 2] = v * ws
            panels.append((stamp, f"x[{i},{j}]={v:g} · w"))
        panels.append((total, f"sum (stride {stride})"))
        for ax, (img, title) in zip(axes[r], panels, strict=True):
            ax.imshow(np.nan_to_num(img), cmap="RdBu_r", vmin=-4.5, vmax=4.5)
            for (a, b), v in np.ndenumerate(img):
                ax.text(
                    b,
                    a,
                    "" if np.isnan(v) else f"{v:g}",
                    ha="center",
                    va="center",
                    color="white" if abs(v) > 3 else "black",
                )
            ax.set_title(title, fontsize=10, fontweight="bold" if "sum" in title else None)
            ax.set_xticks(np.arange(n) - 0.5, minor=True)
            ax.set_yticks(np.arange(n) - 0.5, minor=True)
            ax.grid(which="minor", color="0.7")
            ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        axes[r, 0].set_ylabel(f"stride {stride}", fontsize=11)
    fig.tight_layout()


stamps_figure(x2, w2)
print("stride 2:\n", ct.conv_transpose2d(x2, w2, stride=2)[0, 0])
print("stride 1:\n", ct.conv_transpose2d(x2, w2)[0, 0])

# %% [markdown]
# ## 5. Output size, padding, and the `output_padding` ambiguity
#
# For each spatial axis, with input length `L`, kernel size `K`, stride `s`, dilation `d`
# (the spacing between kernel taps), padding `p` and output padding `a`:
#
# $$L_\text{out} = (L - 1)\,s - 2p + d\,(K - 1) + a + 1$$
#
# * `(L - 1) s + d (K - 1) + 1` is the full painted length from the scatter view.
# * **`padding` crops** `p` positions from each end of that full output. It does not add
#   zeros: it is named after the padding of the forward convolution this layer is the
#   transpose of, so `ConvTranspose(k=4, s=2, p=1)` exactly reverses the shape change of
#   `Conv(k=4, s=2, p=1)`.

# %%
x4 = jnp.arange(1.0, 5.0)[None, None]  # L = 4
k3 = jnp.ones((1, 1, 3))  # K = 3
full = ct.conv_transpose1d(x4, k3, stride=2)
cropped = ct.conv_transpose1d(x4, k3, stride=2, padding=1)
print("full output (padding=0):", full[0, 0], "length", full.shape[-1])
print("padding=1 crops one each end:", cropped[0, 0], "length", cropped.shape[-1])
print("same as full[1:-1]:", bool(jnp.array_equal(cropped, full[..., 1:-1])))

# %% [markdown]
# ### Several sizes map to one
#
# A stride-2 convolution rounds down: with `K = 3, s = 2, p = 1` it maps **both 7 and 8**
# to 4 (`floor((L + 2p − K) / s) + 1`). So when the transposed convolution goes back
# from 4, there are two equally valid answers. The formula gives the smaller one, 7;
# `output_padding = a` adds `a` positions at the end to pick another one. It must be
# smaller than the stride (or the dilation): only `s` sizes round to the same value.


# %%
def conv_out(L, K=3, s=2, p=1):
    return (L + 2 * p - K) // s + 1


sizes = np.arange(4, 14)
print("forward conv (k=3, s=2, p=1):", "  ".join(f"{L}→{conv_out(L)}" for L in sizes))
for a in (0, 1):
    shape = ct.conv_transpose_output_shape((1, 1, 4), (1, 1, 3), 2, 1, a)
    print(f"transposed conv from 4 with output_padding={a}: {shape[-1]}")

fig, ax = plt.subplots(figsize=(7, 3.2))
ax.step(sizes, [conv_out(L) for L in sizes], where="post", color="0.75", zorder=1)
ax.scatter(
    sizes,
    [conv_out(L) for L in sizes],
    color="C0",
    zorder=2,
    label="forward conv: input size → output size",
)
ax.scatter(
    [7, 8],
    [4, 4],
    s=160,
    facecolors="none",
    edgecolors="C3",
    linewidths=2,
    zorder=3,
    label="7 and 8 both give 4",
)
ax.annotate(
    "conv_transpose from 4:\noutput_padding=0 → 7\noutput_padding=1 → 8",
    xy=(7.5, 4),
    xytext=(9.2, 2.3),
    arrowprops={"arrowstyle": "->"},
)
ax.set_xlabel("size before the stride-2 convolution")
ax.set_ylabel("size after")
ax.legend(loc="upper left", fontsize=9)
fig.tight_layout()

# %% [markdown]
# ### `output_size` resolves it for you
#
# In a U-Net, the upsampled map must match the size of the skip connection it is
# concatenated with, which could be odd or even. Instead of working out `output_padding`,
# pass the size you want, as with PyTorch's `layer(x, output_size=...)`. A size no
# `output_padding` can reach is an error that lists the reachable sizes.

# %%
for target in (7, 8):
    y = ct.conv_transpose1d(x4, k3, stride=2, padding=1, output_size=(target,))
    print(f"output_size=({target},) -> shape {y.shape}")
if torch is not None:
    layer = torch.nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1)
    print(
        "PyTorch layer(x, output_size=[8]):",
        tuple(layer(torch.ones(1, 1, 4), output_size=[8]).shape),
    )
try:
    ct.conv_transpose1d(x4, k3, stride=2, padding=1, output_size=(9,))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ## 6. Channels, groups and depthwise
#
# With channels, every input channel paints into every output channel with its own
# kernel: the weight has shape `(C_in, C_out, K)` and output channel `co` sums the
# paintings of all input channels with kernels `w[:, co]`.
#
# With **`groups = g`**, the channels are split into `g` independent groups: the first
# `C_in / g` input channels only paint into the first `C_out / g` output channels, and so
# on. The weight shrinks to `(C_in, C_out / g, K)`, `g` times fewer parameters. A grouped
# call is the same as `g` separate calls, concatenated:

# %%
rng = np.random.default_rng(0)
xg = jnp.asarray(rng.standard_normal((1, 4, 5)), jnp.float32)  # C_in = 4
wg = jnp.asarray(rng.standard_normal((4, 3, 3)), jnp.float32)  # groups=2: (C_in, C_out/2, K)
grouped = ct.conv_transpose1d(xg, wg, stride=2, groups=2)  # C_out = 6
separate = jnp.concatenate(
    [
        ct.conv_transpose1d(xg[:, :2], wg[:2], stride=2),
        ct.conv_transpose1d(xg[:, 2:], wg[2:], stride=2),
    ],
    axis=1,
)
print(
    "grouped output shape:",
    grouped.shape,
    "| max |grouped - separate| =",
    float(jnp.abs(grouped - separate).max()),
)

# %% [markdown]
# **Depthwise** is the extreme case `groups = C_in = C_out`: each channel is upsampled by
# its own kernel and channels never mix. A classic use is fixed **bilinear upsampling**
# with the kernel `[1/4, 3/4, 3/4, 1/4]` (outer product with itself in 2-D), `K = 4`,
# `s = 2`, `p = 1`, which FCN-style segmentation networks use to initialise their
# upsampling layers. Applied to a colour image (one group per colour channel):

# %%
H = 8
yy, xx = np.mgrid[0:H, 0:H] + 0.5
disc = np.hypot(yy - 4.5, xx - 3.5) < 2.6  # a red disc ...
bar = (yy < 2) & (xx > 4.5)  # ... and a yellow bar
image = np.stack([disc | bar, bar, ~disc & ~bar]).astype(np.float32) * 0.9  # on blue
image = jnp.asarray(image)[None]  # (1, 3, 8, 8)

k1 = jnp.array([0.25, 0.75, 0.75, 0.25])
bilinear = jnp.tile(jnp.outer(k1, k1)[None, None], (3, 1, 1, 1))  # (C_in=3, C_out/g=1, 4, 4)
nearest = jnp.ones((3, 1, 2, 2))
up_bilinear = ct.conv_transpose2d(image, bilinear, stride=2, padding=1, groups=3)
up_nearest = ct.conv_transpose2d(image, nearest, stride=2, groups=3)
resized = jax.image.resize(image, (1, 3, 2 * H, 2 * H), "bilinear")
print("shapes:", image.shape, "->", up_bilinear.shape)
print(
    "equals jax.image.resize(..., 'bilinear') away from the border:",
    float(jnp.abs(up_bilinear - resized)[..., 1:-1, 1:-1].max()),
)

fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
for ax, img, title in (
    (axes[0], image, f"input {H}×{H}"),
    (axes[1], up_nearest, "depthwise, k=2 box kernel\n(nearest neighbour)"),
    (axes[2], up_bilinear, "depthwise, k=4 bilinear kernel\n(the border darkens: zero padding)"),
):
    ax.imshow(np.clip(np.asarray(img[0]).transpose(1, 2, 0), 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ## 7. Checkerboard artifacts
#
# ### The kernel's footprint on the output grid
#
# With stride 2, the kernel copies are placed every 2 output pixels. If the kernel size
# is **not a multiple of the stride**, the copies overlap unevenly. With `K = 3`, every
# other output pixel is covered by two copies and the ones between by only one; with
# `K = 4` every pixel (away from the border) is covered by exactly two. The number of
# copies covering each pixel is itself a transposed convolution: all-ones input, all-ones
# kernel.


# %%
def footprint_figure(L=5, stride=2, kernels=(3, 4)):
    fig, axes = plt.subplots(
        2, len(kernels), figsize=(12, 4.6), sharex=True, gridspec_kw={"height_ratios": [2.2, 1]}
    )
    for c, K in enumerate(kernels):
        top, bottom = axes[0, c], axes[1, c]
        n_out = (L - 1) * stride + K
        for i in range(L):
            top.add_patch(Rectangle((stride * i, i), K, 0.7, color=f"C{i}", alpha=0.6))
            top.text(stride * i - 0.2, i + 0.35, f"x[{i}]", ha="right", va="center", fontsize=9)
        top.set_ylim(-0.3, L)
        top.set_yticks([])
        top.set_title(f"stride {stride}, kernel size {K}: where each input's kernel copy lands")
        count = np.asarray(
            ct.conv_transpose1d(jnp.ones((1, 1, L)), jnp.ones((1, 1, K)), stride=stride)
        )[0, 0]
        bottom.bar(np.arange(n_out) + 0.5, count, width=0.9, color="0.45")
        for o, v in enumerate(count):
            bottom.text(o + 0.5, v + 0.1, f"{v:g}", ha="center", fontsize=9)
        bottom.set_ylim(0, 3)
        bottom.set_ylabel("copies")
        bottom.set_xlabel("output position")
        for ax in (top, bottom):
            ax.set_xticks(range(0, (L - 1) * stride + max(kernels) + 1))
            ax.grid(axis="x", color="0.85")
            ax.set_xlim(-1.5, (L - 1) * stride + max(kernels) + 0.5)
    fig.tight_layout()


footprint_figure()

# %% [markdown]
# In 2-D the unevenness multiplies across the two axes: with `K = 3` the coverage
# alternates 1, 2, 4, a grid pattern; with `K = 4` it is a constant 4 inside; with `K = 2`
# (kernel size equal to the stride) the copies tile the output without overlap.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
for ax, K in zip(axes, (2, 3, 4), strict=True):
    cover = np.asarray(
        ct.conv_transpose2d(jnp.ones((1, 1, 5, 5)), jnp.ones((1, 1, K, K)), stride=2)
    )[0, 0]
    ax.imshow(cover, cmap="magma", vmin=0, vmax=4.5)
    for (r, c), v in np.ndenumerate(cover):
        ax.text(
            c,
            r,
            f"{v:g}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if v < 3 else "black",
        )
    ax.set_title(f"stride 2, {K}×{K} kernel: copies per pixel", fontsize=10)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# ### Even overlap is not enough: learned kernels still make checkerboards
#
# Uneven overlap explains part of the story (Odena, Dumoulin & Olah, *Deconvolution and
# Checkerboard Artifacts*, Distill 2016). But even with `K = 4`, look at *which* kernel
# taps reach each output pixel: by the scatter rule `o = 2i + k`, every other output
# position only ever uses the taps `w[0], w[2]`, and the positions between them only
# `w[1], w[3]`. In 2-D that makes four interleaved **phases** (even/odd row × even/odd column), each
# computed with its own quarter of the kernel. Feed the layer a perfectly flat input and
# the four phases come out at four different levels unless the four quarter-sums happen
# to be equal. A randomly initialised layer has no reason for them to be equal, so it
# paints a checkerboard on a flat input, and stacking layers compounds it.
#
# **ICNR** initialisation (Aitken et al. 2017, `ct.nn.init.icnr`) builds the kernel as
# *nearest-neighbour upsampling followed by a small convolution*. Every phase then sums
# the same taps, so a flat input gives a flat output (away from the border), and
# training starts from a checkerboard-free layer.
#
# Below, with PyTorch's default random initialisation (top) and with ICNR (bottom):
# one `ConvTranspose2d(8, 1, kernel_size=4, stride=2, padding=1)` layer on a smooth random
# input, and a three-layer decoder (8×8 → 16×16 → 32×32 → 64×64, the same kind of layer,
# ReLU between) on a constant input and on a smooth random input. The images are cropped
# to leave out the border, where the zero padding makes its own (legitimate) edge.


# %%
def decoder(key, channels, icnr):
    keys = jax.random.split(key, 2 * len(channels))
    layers = []
    for n, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        layer = ct.nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, key=keys[2 * n])
        if icnr:
            layer = layer.replace(
                weight=ct.nn.init.icnr(keys[2 * n + 1], layer.weight.shape, stride=2)
            )
        layers.append(layer)
    return layers


def run_decoder(layers, h):
    for n, layer in enumerate(layers):
        h = layer(h)
        if n < len(layers) - 1:
            h = jax.nn.relu(h)
    return np.asarray(h[0, 0])


def smooth_input(key, size):
    coarse = jax.random.normal(key, (1, 8, 3, 3))
    return jax.image.resize(coarse, (1, 8, size, size), "bilinear")


key = jax.random.key(1)
cases = [
    ("one layer, smooth input", [8, 1], smooth_input(jax.random.key(2), 16), 2),
    ("three layers, constant input", [8, 8, 8, 1], jnp.ones((1, 8, 8, 8)), 8),
    ("three layers, smooth input", [8, 8, 8, 1], smooth_input(jax.random.key(3), 8), 8),
]
fig, axes = plt.subplots(2, 3, figsize=(11, 7.8))
for r, icnr in enumerate((False, True)):
    for c, (title, channels, inp, border) in enumerate(cases):
        img = run_decoder(decoder(key, channels, icnr), inp)[border:-border, border:-border]
        spread = max(3 * img.std(), 0.02 * abs(img.mean()), 1e-6)  # a flat image shows flat
        axes[r, c].imshow(img, cmap="gray", vmin=img.mean() - spread, vmax=img.mean() + spread)
        axes[r, c].set_title(f"{'ICNR init' if icnr else 'random init'}: {title}", fontsize=10)
        axes[r, c].axis("off")
fig.tight_layout()

# %% [markdown]
# The top row shows the artifact: a regular grid pattern laid over whatever the input
# is, and on a constant input nothing but the pattern. The bottom row uses the same
# layer shapes initialised with ICNR: the constant input stays constant and the smooth
# input stays free of the 2×2 pattern. (What remains is the blockiness of
# nearest-neighbour upsampling filtered by small random kernels; training takes it
# from there, see notebook 02.)
#
# We can check the cause directly on the single layer: the sums of the four kernel
# quarters `w[:, :, a::2, b::2]` (one per output phase) are what a constant input is
# multiplied by in each phase.

# %%
for icnr in (False, True):
    w0 = np.asarray(decoder(key, [8, 1], icnr)[0].weight)  # (C_in=8, C_out=1, 4, 4)
    sums = [w0[:, 0, a::2, b::2].sum() for a in (0, 1) for b in (0, 1)]
    print(
        f"{'ICNR init' if icnr else 'random init':12s} phase sums (even/even, even/odd, "
        f"odd/even, odd/odd): {np.round(sums, 4)}"
    )

# %% [markdown]
# ## Summary
#
# * A transposed convolution **paints** a scaled copy of the kernel for every input value,
#   `stride` apart, and adds the overlaps (scatter view). Equivalently, it is an ordinary
#   stride-1 convolution of the zero-stretched, padded input with the flipped kernel
#   (gather view); that is how it is computed.
# * It is the **transpose** (not the inverse) of a convolution's matrix, i.e. the
#   convolution's gradient with respect to its input.
# * `L_out = (L − 1)s − 2p + d(K − 1) + a + 1`; `padding` **crops** the output.
#   `output_padding` (or `output_size`) picks among the `s` sizes a stride-`s` convolution
#   would have mapped to the same size.
# * `groups = g` splits channels into `g` independent groups; depthwise is one channel per
#   group (e.g. fixed bilinear upsampling).
# * Checkerboards come from uneven kernel overlap (kernel size not a multiple of the stride)
#   and, even with even overlap, from the output phases using different kernel taps. ICNR
#   starts a layer without them.
#
# Next: [02 — training a decoder](02_training_a_decoder.ipynb),
# [03 — porting from PyTorch](03_porting_from_pytorch.ipynb),
# [04 — performance](04_performance.ipynb).
