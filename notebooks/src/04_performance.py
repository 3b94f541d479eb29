# %% [markdown]
# # Performance: convt_jax against PyTorch and jax.lax
#
# `benchmarks/run.py` times transposed convolutions from real models (DCGAN generator
# layers, U-Net up-convolutions, a depthwise layer, a HiFi-GAN upsampler, 3-D V-Net and
# U-Net layers) on the CPU, forward and forward + backward (gradients with respect to
# input and weight), for
#
# * **PyTorch** (`torch.nn.functional.conv_transpose*d`, 2 threads): the reference;
# * **convt_jax** `method="auto"` (the default). With the `onednn` extra installed,
#   `auto` runs the forward and both gradients as oneDNN's convolution kernels on the
#   CPU (`convt_jax.backend_info()` says whether it does); without it, and on GPU and
#   TPU, it picks one of the XLA lowerings per layer: `"dilated"` (one XLA convolution
#   over the zero-stretched input, notebook 01's gather view), `"subpixel"` (one small
#   convolution per output phase, no multiplications by inserted zeros), `"matmul"` (one
#   matrix multiply, then scatter-add, "col2im"), `"grouped"` and `"depthwise"`;
# * **`jax.lax`**: `jax.lax.conv_transpose` (for grouped layers, which it cannot express,
#   the equivalent lhs-dilated convolution), differentiated by JAX's autodiff.
#
# Every result is checked against PyTorch before it is timed. **This notebook times
# nothing:** timings need a quiet machine, and a notebook run has none. It plots the
# tables recorded in `benchmarks/RESULTS.md`, and every plot names the machine, the date
# and the commit its table was recorded at (the commit from `git log`). If that file is
# missing, it runs a short version of the benchmark on two small layers instead (about a
# minute).

# %%
# %matplotlib inline
import contextlib
import datetime
import io
import math
import pathlib
import re
import subprocess
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
# `RESULTS.md` holds two kinds of table among its prose:
#
# * `benchmarks/run.py`'s own, one per mode under a heading that names it
#   (`#### forward: ...`, `#### forward + backward ...`): a row per layer (`_cl` for the
#   channels-last variant), a column per implementation, each cell `milliseconds (time /
#   PyTorch time)`;
# * the oneDNN backend's summaries: a row per layer and, for the forward (`fwd`) and the
#   forward + backward (`f+b`), channels-first (NCHW) and channels-last (NHWC), PyTorch's
#   milliseconds followed by `auto`'s `milliseconds (time / PyTorch time)`.
#
# Each table is read with the headings above it (which carry its date), the last `CPU:`
# line above it (its machine) and the commit that added it to the file (`git log -S`).

# %%
CELL = re.compile(r"^\s*([\d.]+)\s*\(\s*([\d.]+)\s*\)\s*$")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
SUMMARY = re.compile(r"(fwd|f\+b) (NCHW|NHWC): PyTorch ms")
COLUMNS = ("forward NCHW", "forward NHWC", "forward + backward NCHW", "forward + backward NHWC")


def read_tables(text):
    """Every Markdown table of `text`: header, rows, headings and the prose above it."""
    tables, headings, section, fence = [], {}, 0, False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        fence ^= line.startswith("```")
        if not fence and re.match(r"#+ ", line):
            level = len(line) - len(line.lstrip("#"))
            headings = {k: v for k, v in headings.items() if k < level}
            headings[level] = line.lstrip("#").strip()
            section = i if level <= 2 else section
        is_table = (
            not fence
            and line.startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"[\s|:-]+", lines[i + 1].strip() or "x")
        )
        if not is_table:
            i += 1
            continue
        start = i
        header = [c.strip() for c in line.strip("|").split("|")]
        rows = []
        i += 2
        while i < len(lines) and lines[i].strip().startswith("|"):
            rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
            i += 1
        tables.append(
            {
                "headings": [headings[k] for k in sorted(headings)],
                "section": tuple(headings[k] for k in sorted(headings) if k <= 3),
                "header": header,
                "rows": rows,
                "above": "\n".join(lines[section:start]),
                "lines": lines[start:i],
            }
        )
    return tables


def run_mode(table):
    """'forward' or 'forward + backward' for a table of run.py's, else None."""
    last = table["headings"][-1].lower() if table["headings"] else ""
    if table["header"][0].lower() != "shape" or "auto" not in table["header"]:
        return None
    return "forward + backward" if "backward" in last else "forward" if "forward" in last else None


def machine(table):
    """E.g. '2-core AMD EPYC (AVX-512)', from the last `CPU:` paragraph above the table."""
    at = table["above"].rfind("CPU:")
    if at < 0:
        return "machine not recorded"
    para = " ".join(table["above"][at:].split("\n\n")[0].split())
    model = re.match(r"CPU:\s*([^;,]+)", para).group(1)
    model = model.replace("(R)", "").replace(" Processor", "").strip()
    cores = re.search(r"(\d+) CPUs usable", para)
    low = para.lower()
    isa = "AVX-512" if "avx512" in low else "AVX2, no AVX-512" if "avx2" in low else ""
    isa += " and AMX" if isa and "amx" in low else ""
    return (f"{cores.group(1)}-core " if cores else "") + model + (f" ({isa})" if isa else "")


def git(*args):
    """git's output in the repository, or '' (not a clone, no git)."""
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def provenance(table):
    """Machine, date and commit of a recorded table, and a caption saying so."""
    # The commit that added the table's first row to RESULTS.md (the oldest one that
    # changed how often that line occurs); one named in a heading is the measured code.
    log = git("log", "--format=%h %cs", "-S", table["lines"][2], "--", "benchmarks/RESULTS.md")
    commit, day = log.splitlines()[-1].split() if log else ("(not committed)", "")
    named = re.search(r"\bcommit ([0-9a-f]{7,40})\b", " ".join(table["headings"]))
    dates = [d for h in table["headings"] for d in DATE.findall(h)]
    info = {"machine": machine(table), "date": dates[-1] if dates else day, "commit": commit}
    info["caption"] = f"{info['machine']}, {info['date']}, " + (
        f"measured at commit {named.group(1)}" if named else f"recorded at commit {commit}"
    )
    return info


def auto_ratios(tables):
    """{column of COLUMNS: {layer: auto time / PyTorch time}} of some tables."""
    out = {}
    for table in tables:
        header, mode = table["header"], run_mode(table)
        for cells in table["rows"]:
            if cells[0].startswith("**") or cells[0].endswith("_bf16"):
                continue
            for j, name in enumerate(header[:-1]):  # the oneDNN summaries
                m = SUMMARY.fullmatch(name)
                cell = CELL.match(cells[j + 1]) if m and j + 1 < len(cells) else None
                if cell:
                    column = "forward " if m.group(1) == "fwd" else "forward + backward "
                    out.setdefault(column + m.group(2), {})[cells[0]] = float(cell.group(2))
            cell = CELL.match(cells[header.index("auto")]) if mode else None
            if cell:  # run.py's tables
                layer, layout = (
                    (cells[0][:-3], "NHWC") if cells[0].endswith("_cl") else (cells[0], "NCHW")
                )
                out.setdefault(f"{mode} {layout}", {})[layer] = float(cell.group(2))
    return {c: out[c] for c in COLUMNS if c in out}


def implementations(tables):
    """{mode: {layer: {implementation: (ms, ratio to PyTorch)}}} of run.py's tables."""
    results = {}
    for table in tables:
        mode = run_mode(table)
        for cells in table["rows"] if mode else ():
            if cells[0].startswith("**"):
                continue
            row = {}
            # A row may stop short of the header (an unmeasured implementation's
            # trailing cells left empty): its missing columns are skipped.
            for name, cell in zip(table["header"][1:], cells[1:], strict=False):
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
# From `benchmarks/RESULTS.md` if it is there: every oneDNN summary table (one per
# machine), and the newest set of run.py tables with a `jax.lax` column (recorded before
# the oneDNN backend existed: the XLA lowerings against PyTorch and `jax.lax`).
# Otherwise a short run of the same benchmark (two small layers) on this machine.
# Timings on a shared machine are noisy; the ratios, taken from interleaved runs on the
# same inputs, are what count.


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


def geomean(values):
    values = [v for v in values if v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


text = RESULTS.read_text() if RESULTS.exists() else ""
tables = read_tables(text)
if tables:
    # One dataset per oneDNN summary table.
    datasets = [
        {**provenance(t), "ratios": auto_ratios([t]), "tables": [t]}
        for t in tables
        if any(SUMMARY.fullmatch(name) for name in t["header"])
    ]
    sections = {}
    for t in tables:
        if run_mode(t):
            sections.setdefault(t["section"], []).append(t)
    with_lax = [g for g in sections.values() if any("jax.lax" in t["header"] for t in g)]
    xla_tables = max(with_lax, key=lambda g: provenance(g[0])["date"]) if with_lax else []
    xla = {**provenance(xla_tables[0]), "results": implementations(xla_tables)}
else:
    text = short_benchmark()
    tables = read_tables(text)
    now = {
        "machine": machine(tables[0]),
        "date": datetime.date.today().isoformat(),
        "commit": git("describe", "--always", "--dirty") or "unknown",
    }
    now["caption"] = (
        f"{now['machine']}, measured now by this notebook at {now['commit']} "
        "(RESULTS.md is missing)"
    )
    datasets = [{**now, "ratios": auto_ratios(tables), "tables": tables}]
    xla_tables = tables
    xla = {**now, "results": implementations(tables)}

for d in datasets:
    means = ", ".join(f"{c} {geomean(d['ratios'][c].values()):.2f}" for c in d["ratios"])
    print(f"{d['caption']}: {len(next(iter(d['ratios'].values())))} layers; {means}")
print(f"{xla['caption']}: {', '.join(xla['results'])}")

# %% [markdown]
# ## At a glance: `auto` against PyTorch on the CPU
#
# `convt_jax`'s default, `method="auto"` with the oneDNN backend, against PyTorch on the
# same layers: the geometric mean over the layers of `auto`'s time divided by PyTorch's,
# for each mode and memory layout, one bar per machine. **Below the dashed line is
# faster than PyTorch.**

# %%
LABELS = [
    c.replace(" NCHW", "\nchannels-first").replace(" NHWC", "\nchannels-last") for c in COLUMNS
]
fig, ax = plt.subplots(figsize=(8, 4))
width = 0.8 / max(len(datasets), 1)
top = 1.25
for j, d in enumerate(datasets):
    means = [geomean(d["ratios"].get(c, {}).values()) for c in COLUMNS]
    top = max(top, np.nanmax(means) + 0.15)
    x = np.arange(len(COLUMNS)) + (j - (len(datasets) - 1) / 2) * width
    ax.bar(x, means, width=width * 0.95, color=f"C{j}", label=d["caption"])
    for xx, m in zip(x, means, strict=True):
        if np.isfinite(m):
            ax.text(xx, m + 0.015, f"{m:.2f}", ha="center", va="bottom", fontsize=8)
ax.axhline(1, color="k", ls="--", lw=1)
ax.set_xticks(range(len(COLUMNS)), LABELS)
ax.set_ylabel("time / PyTorch time (geometric mean)")
ax.set_ylim(0, top)
ax.legend(fontsize=8, loc="upper left", frameon=False)
n = max(len(r) for d in datasets for r in d["ratios"].values())
ax.set_title(f'convt_jax (method="auto", oneDNN backend) against PyTorch: {n} layers, float32')
fig.tight_layout()
display(
    Markdown(
        "Recorded in `benchmarks/RESULTS.md`: " + "; ".join(d["caption"] for d in datasets) + "."
    )
)

# %% [markdown]
# ## Every layer, oneDNN backend
#
# The same tables layer by layer: `auto`'s time divided by PyTorch's, green faster than
# PyTorch and red slower, with the geometric mean in the last row. The layers are listed
# in `python -m benchmarks.run --list`; the `_cl` variants are the NHWC columns.

# %%
fig, axes = plt.subplots(
    1, len(datasets), figsize=(1 + 4.4 * len(datasets), 1.6 + 0.3 * (n + 1)), squeeze=False
)
for ax, d in zip(axes[0], datasets, strict=True):
    layers = list(dict.fromkeys(layer for c in COLUMNS for layer in d["ratios"].get(c, {})))
    grid = np.array(
        [[d["ratios"].get(c, {}).get(layer, np.nan) for c in COLUMNS] for layer in layers]
        + [[geomean(d["ratios"].get(c, {}).values()) for c in COLUMNS]]
    )
    ax.imshow(np.log2(grid), cmap="RdYlGn_r", vmin=-2, vmax=2, aspect="auto")
    for (r, c), v in np.ndenumerate(grid):
        if np.isfinite(v):
            weight = "bold" if r == len(layers) else "normal"
            color = "white" if abs(math.log2(v)) > 1.5 else "black"
            ax.text(
                c, r, f"{v:.2f}", ha="center", va="center", fontsize=8, color=color, weight=weight
            )
    ax.axhline(len(layers) - 0.5, color="k", lw=1)
    ax.set_xticks(range(len(COLUMNS)), ["fwd\nNCHW", "fwd\nNHWC", "f+b\nNCHW", "f+b\nNHWC"])
    ax.set_yticks(range(len(layers) + 1), [*layers, "geometric mean"])
    ax.set_title(d["caption"].replace(f"{d['machine']}, ", f"{d['machine']}\n"), fontsize=9)
fig.suptitle("auto (oneDNN backend) time / PyTorch time")
fig.tight_layout()
display(
    Markdown(
        "Recorded in `benchmarks/RESULTS.md`: " + "; ".join(d["caption"] for d in datasets) + "."
    )
)

# %% [markdown]
# ## Without oneDNN: the XLA lowerings against `jax.lax`
#
# Without the `onednn` extra (and for float64, and on GPU and TPU), `auto` picks one of
# the XLA lowerings per layer. These tables were recorded before the oneDNN backend
# existed, on the channels-first float32 layers: `jax.lax` time divided by `auto` time,
# how much faster a layer runs with `convt_jax` than with JAX's own transposed
# convolution (for forward + backward, JAX's autodiff of it). **Right of the dashed
# line: `convt_jax` is faster.**

# %%
results = {
    mode: {k: v for k, v in table.items() if not k.endswith(("_cl", "_bf16"))}
    for mode, table in xla["results"].items()
}
modes = [m for m in results if any("jax.lax" in r and "auto" in r for r in results[m].values())]
layers = list(dict.fromkeys(layer for m in modes for layer in results[m]))
fig, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * len(layers)))
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
ax.set_xlabel("jax.lax time / convt_jax (auto, XLA lowerings) time (log scale)")
ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), frameon=False)
ax.set_title(xla["caption"], fontsize=9, pad=14 * len(modes) + 10)
ax.set_xlim(right=ax.get_xlim()[1] * 1.5)
fig.tight_layout()
display(
    Markdown(f"Recorded in `benchmarks/RESULTS.md`, before the oneDNN backend: {xla['caption']}.")
)

# %% [markdown]
# ## Every lowering, every layer (without oneDNN)
#
# Without oneDNN, `auto` is a rule (see `convt_jax/_methods.py`) that picks a lowering
# and backward form per layer from measurements like these. The heat map shows the ratio
# to PyTorch of every implementation in the same tables; green cells are faster than
# PyTorch, red slower.

# %%
fig, axes = plt.subplots(
    1, len(results), figsize=(5.5 * len(results), 1.8 + 0.32 * len(layers)), squeeze=False
)
for ax, (mode, table) in zip(axes[0], results.items(), strict=True):
    rows = list(table)
    impls = [k for k in dict.fromkeys(i for r in table.values() for i in r) if k != "PyTorch"]
    impls.sort(key=lambda k: k == "jax.lax")  # JAX's own last
    grid = np.array([[table[layer].get(i, (np.nan, np.nan))[1] for i in impls] for layer in rows])
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
    ax.set_yticks(range(len(rows)), rows)
    ax.set_title(f"{mode}: time / PyTorch time")
fig.suptitle(xla["caption"], fontsize=10)
fig.tight_layout()
display(
    Markdown(f"Recorded in `benchmarks/RESULTS.md`, before the oneDNN backend: {xla['caption']}.")
)

# %% [markdown]
# ## The numbers
#
# The tables plotted above, as recorded (or as just measured):

# %%
plotted = [(d["caption"], d["tables"]) for d in datasets] + [(xla["caption"], xla_tables)]
display(
    Markdown(
        "\n\n".join(
            f"**{caption}**\n\n" + "\n\n".join("\n".join(t["lines"]) for t in group)
            for caption, group in plotted
        )
    )
)

# %% [markdown]
# To record the benchmark on your machine (the 20 base layers, `auto` against PyTorch;
# about a minute per command on a 2-core Xeon with AVX-512):
#
# ```bash
# S=dcgan1,dcgan2,dcgan3,dcgan4,unet1,unet2,s1k3,depthwise,hifigan,conv1d
# S=$S,vnet3d,unet3d,group4,group8,group32,k3s2op1,k3s2op1w,wide2d,s1k3w,wide3d
# python -m benchmarks.run --shapes $S --methods auto --no-lax --rounds 7 --out cf.md
# python -m benchmarks.run --shapes $S --methods auto --no-lax --rounds 7 --channels-last \
#     --out cl.md
# ```
#
# then add the tables to `benchmarks/RESULTS.md` (a `CPU:` line and a dated heading above
# them, as the others have) and re-run this notebook (`python notebooks/build.py 04`) to
# redraw the plots from it.
