# %% [markdown]
# # Performance: `convt_jax` vs PyTorch and `jax.lax`
#
# `benchmarks/run.py` times transposed convolutions from real models (DCGAN generator
# layers, U-Net up-convolutions, a depthwise layer, a HiFi-GAN upsampler, 3-D V-Net and
# U-Net layers) on the CPU, forward and forward + backward (gradients with respect to
# input and weight), for
#
# * **PyTorch** (`torch.nn.functional.conv_transpose*d`, 2 threads): the reference;
# * **convt_jax** with each `method=`: `"auto"` (the default, which picks one of the
#   others per layer), `"dilated"` (one XLA convolution over the zero-stretched input,
#   notebook 01's gather view), `"subpixel"` (one small convolution per output phase, no
#   multiplications by inserted zeros), `"matmul"` (one matrix multiply, then
#   scatter-add, "col2im"), `"depthwise"` (for `groups == C_in`);
# * **`jax.lax`**: `jax.lax.conv_transpose` (for grouped layers, which it cannot express,
#   the equivalent lhs-dilated convolution) and, for the backward pass, JAX's own autodiff
#   of the dilated lowering, `autodiff(dilated)`.
#
# Every result is checked against PyTorch before it is timed. This notebook reads the
# recorded results from `benchmarks/RESULTS.md` (its Markdown tables) and plots them. If
# that file is missing, it runs a short version of the benchmark on two small layers
# instead (about a minute).

# %%
# %matplotlib inline
import contextlib
import io
import math
import pathlib
import re
import sys
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

ROOT = next(
    p
    for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents)
    if (p / "benchmarks" / "run.py").exists()
)
sys.path.insert(0, str(ROOT))  # `benchmarks` is not part of the package
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
plt.rcParams.update({"figure.dpi": 100, "font.size": 10})
print("results file:", RESULTS.relative_to(ROOT), "exists" if RESULTS.exists() else "is missing")

# %% [markdown]
# ## Reading the Markdown tables
#
# `benchmarks/run.py` writes one table per mode under a heading that names it
# (`### forward: ...`, `### forward + backward ...`). Each row is a layer; each cell is
# `milliseconds (time / PyTorch time)`. The parser below reads any such table in the
# file, so `RESULTS.md` can hold prose around them.

# %%
CELL = re.compile(r"^\s*([\d.]+)\s*\(\s*([\d.]+)\s*\)\s*$")


def parse_results(text):
    """{mode: {layer: {implementation: (ms, ratio to PyTorch)}}} from run.py's tables."""
    results, mode = {}, None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            low = line.lower()
            mode = (
                "forward + backward"
                if "backward" in low
                else "forward"
                if "forward" in low
                else None
            )
        is_table = (
            line.startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"[\s|:-]+", lines[i + 1].strip() or "x")
        )
        if not is_table:
            i += 1
            continue
        header = [c.strip() for c in line.strip("|").split("|")]
        i += 2
        while i < len(lines) and lines[i].strip().startswith("|"):
            cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            i += 1
            if mode is None or header[0].lower() != "shape" or cells[0].startswith("**"):
                continue
            row = {}
            # A row may stop short of the header (an unmeasured implementation's
            # trailing cells left empty): its missing columns are skipped.
            for name, cell in zip(header[1:], cells[1:], strict=False):
                m = CELL.match(cell)
                if name.lower().startswith("pytorch"):
                    row["PyTorch"] = (float(cell), 1.0)
                elif m:
                    row[name] = (float(m.group(1)), float(m.group(2)))
            results.setdefault(mode, {})[cells[0]] = row
    return results


# %% [markdown]
# ## The results
#
# From `benchmarks/RESULTS.md` if it is there; otherwise a short run of the same
# benchmark (two small layers, fewer implementations) on this machine. Timings on a
# shared machine are noisy; the ratios, taken from interleaved runs on the same inputs,
# are what count.


# %%
def short_benchmark():
    """benchmarks.run.main on two small layers; returns its Markdown output."""
    import benchmarks.run as run

    run.SHAPES.setdefault("small_dcgan", (16, 64, (16, 16), 32, 4, 2, 1, 1))
    run.SHAPES.setdefault("small_conv1d", (8, 64, (256,), 32, 4, 2, 1, 1))
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "results.md"
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            run.main(
                [
                    "--shapes",
                    "small_dcgan,small_conv1d",
                    "--rounds",
                    "9",
                    "--methods",
                    "auto,dilated,subpixel,matmul",
                    "--out",
                    str(out),
                ]
            )
        return out.read_text()


text = RESULTS.read_text() if RESULTS.exists() else ""
results = parse_results(text)
if results:
    source = "benchmarks/RESULTS.md"
else:
    source = "a short run of benchmarks/run.py on this machine (RESULTS.md is missing)"
    text = short_benchmark()
    results = parse_results(text)
setup = next((ln for ln in text.splitlines() if ln.startswith("jax ")), "")
display(Markdown(f"**Source:** {source}.\n\n**Setup:** {setup}"))
for mode, table in results.items():
    print(
        f"{mode}: {len(table)} layers, implementations: "
        + ", ".join(k for k in next(iter(table.values())) if k != "PyTorch")
    )

# %% [markdown]
# ## Time relative to PyTorch
#
# Each bar is an implementation's time divided by PyTorch's on the same layer (log
# scale; **left of the dashed line is faster than PyTorch**). `auto` is what
# `convt_jax` uses by default; `jax.lax` is what you get without it.


# %%
def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


HEADLINE = ("auto", "jax.lax", "autodiff(dilated)")
COLORS = {"auto": "C0", "jax.lax": "C3", "autodiff(dilated)": "C1"}

n_layers = max(len(t) for t in results.values())
fig, axes = plt.subplots(
    1, len(results), figsize=(6.5 * len(results), 1.6 + 0.75 * n_layers), squeeze=False
)
for ax, (mode, table) in zip(axes[0], results.items(), strict=True):
    layers = list(table)
    impls = [i for i in HEADLINE if any(i in row for row in table.values())]
    height = 0.8 / len(impls)
    for j, impl in enumerate(impls):
        ratios = [table[layer].get(impl, (np.nan, np.nan))[1] for layer in layers]
        y = np.arange(len(layers)) + (j - (len(impls) - 1) / 2) * height
        ax.barh(
            y,
            ratios,
            height=height,
            color=COLORS[impl],
            label=f"{impl} (geometric mean {geomean(ratios):.2f})",
        )
        for yy, r in zip(y, ratios, strict=True):
            if np.isfinite(r):
                ax.text(r * 1.04, yy, f"{r:.2f}", va="center", fontsize=7)
    ax.axvline(1, color="k", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(np.arange(len(layers)), layers)
    ax.invert_yaxis()
    ax.set_xlabel("time / PyTorch time (log scale)")
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), frameon=False)
    ax.set_title(mode, pad=14 * len(impls) + 10)
    lo = min(r for row in table.values() for k, (_, r) in row.items() if k in impls)
    hi = max(r for row in table.values() for k, (_, r) in row.items() if k in impls)
    ax.set_xlim(min(lo, 1) / 1.6, max(hi, 1) * 1.8)
fig.tight_layout()

# %% [markdown]
# ## Speed-up over `jax.lax`
#
# The same numbers as `jax.lax` time divided by `auto` time: how much faster a layer runs
# with `convt_jax` than with JAX's own transposed convolution (and, for forward + backward,
# JAX's autodiff of it). **Right of the dashed line: `convt_jax` is faster.**

# %%
fig, ax = plt.subplots(figsize=(8, 1.4 + 0.55 * n_layers))
modes = [m for m in results if any("jax.lax" in r and "auto" in r for r in results[m].values())]
layers = list(dict.fromkeys(layer for m in modes for layer in results[m]))
height = 0.8 / max(len(modes), 1)
for j, mode in enumerate(modes):
    table = results[mode]
    speedup = [
        table[layer]["jax.lax"][1] / table[layer]["auto"][1]
        if layer in table and "jax.lax" in table[layer]
        else np.nan
        for layer in layers
    ]
    y = np.arange(len(layers)) + (j - (len(modes) - 1) / 2) * height
    ax.barh(
        y,
        speedup,
        height=height,
        color=f"C{j + 4}",
        label=f"{mode} (geometric mean {geomean([s for s in speedup if s == s]):.1f}×)",
    )
    for yy, v in zip(y, speedup, strict=True):
        if np.isfinite(v):
            ax.text(v * 1.04, yy, f"{v:.1f}×", va="center", fontsize=7)
ax.axvline(1, color="k", ls="--", lw=1)
ax.set_xscale("log")
ax.set_yticks(np.arange(len(layers)), layers)
ax.invert_yaxis()
ax.set_xlabel("jax.lax time / convt_jax (auto) time (log scale)")
ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), frameon=False)
ax.set_xlim(right=ax.get_xlim()[1] * 1.5)
fig.tight_layout()

# %% [markdown]
# ## Every lowering, every layer
#
# `auto` is a rule (see `convt_jax/_methods.py`) that picks a lowering and backward form per
# layer from measurements like these. The heat map shows the ratio to PyTorch of every
# implementation; green cells are faster than PyTorch, red slower.

# %%
fig, axes = plt.subplots(
    1, len(results), figsize=(7 * len(results), 1.8 + 0.45 * n_layers), squeeze=False
)
for ax, (mode, table) in zip(axes[0], results.items(), strict=True):
    layers = list(table)
    impls = [k for k in next(iter(table.values())) if k != "PyTorch"]
    grid = np.array([[table[layer].get(i, (np.nan, np.nan))[1] for i in impls] for layer in layers])
    ax.imshow(np.log2(grid), cmap="RdYlGn_r", vmin=-3, vmax=3, aspect="auto")
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(
                c,
                r,
                f"{v:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(math.log2(v)) > 2 else "black",
            )
    ax.set_xticks(range(len(impls)), impls, rotation=30, ha="right")
    ax.set_yticks(range(len(layers)), layers)
    ax.set_title(f"{mode}: time / PyTorch time")
fig.tight_layout()

# %% [markdown]
# ## The numbers
#
# The tables as recorded (or as just measured):

# %%
display(Markdown("\n".join(ln for ln in text.splitlines() if not ln.startswith("jax "))))

# %% [markdown]
# To record the full benchmark (every layer, forward and forward + backward; it takes a
# while on two cores):
#
# ```bash
# python -m benchmarks.run --out /tmp/layers.md   # then paste the tables into benchmarks/RESULTS.md
# ```
#
# and re-run this notebook (`python notebooks/build.py 04`) to redraw the plots from it.
