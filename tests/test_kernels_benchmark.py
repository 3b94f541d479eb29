"""benchmarks/kernels.py: oneDNN's verbose execution times of convt_jax's and PyTorch's calls.

The parser is checked on lines in both of oneDNN's verbose formats (the one of oneDNN 3.2,
which the ``onednn`` extra installs, and the ``v1`` one of newer versions, which PyTorch
bundles); one real run (slow) checks that both sides print what the parser reads.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
kernels = pytest.importorskip(
    "benchmarks.kernels", reason="benchmarks/ is not in this tree (the sdist leaves it out)"
)

_OLD = (
    "onednn_verbose,exec,cpu,{kind},{impl},forward_training,src_f32::blocked:acdb::f0 "
    "wei_f32:a:blocked:Acdb32a::f0 dst_f32::blocked:acdb::f0,attr-scratchpad:user ,"
    "alg:deconvolution_direct,mb64_ic128oc64_ih16oh32kh4sh2dh0ph1_iw16ow32kw4sw2dw0pw1,{ms}"
)
_V1 = (
    "onednn_verbose,v1,primitive,exec,cpu,{kind},{impl},forward_training,"
    "src:f32::blocked:acdb::f0 wei:f32:a:blocked:Acdb32a::f0 dst:f32::blocked:acdb::f0,"
    "attr-scratchpad:user,alg:deconvolution_direct,mb64_ic128oc64_ih16oh32kh4sh2dh0ph1,{ms}"
)


@pytest.mark.parametrize("fmt", [_OLD, _V1], ids=["onednn-3.2", "v1"])
def test_parse_sums_each_call_by_side_and_primitive_kind(fmt):
    mark = kernels._MARK
    lines = [
        # warm-up, before the first mark: not counted
        fmt.format(kind="deconvolution", impl="brg_conv:avx2", ms="99.0"),
        "onednn_verbose,info,cpu,runtime:OpenMP,nthr:2",
        f"{mark} convt_jax",
        fmt.format(kind="reorder", impl="jit:uni", ms="0.5"),
        fmt.format(kind="deconvolution", impl="brg_conv:avx2", ms="10.0"),
        f"{mark} convt_jax wall 11.25",
        f"{mark} PyTorch",
        fmt.format(kind="reorder", impl="jit:uni", ms="0.25"),
        fmt.format(kind="deconvolution", impl="jit:avx2", ms="12.0"),
        fmt.format(kind="deconvolution", impl="jit:avx2", ms="1.0"),
        fmt.format(kind="convolution", impl="brg_conv_fwd:avx2", ms="3.0"),
        f"{mark} PyTorch wall 14.0",
        f"{mark} PyTorch",
        f"{mark} PyTorch wall 0.5",  # a call that ran no oneDNN primitive
    ]
    sides = kernels._parse("\n".join(lines))
    assert sorted(sides) == ["PyTorch", "convt_jax"]
    calls, walls, impls = sides["convt_jax"]
    assert walls == [11.25]
    assert [dict(c) for c in calls] == [{"reorder": 0.5, "deconvolution": 10.0}]
    assert impls == {"brg_conv:avx2"}
    calls, walls, impls = sides["PyTorch"]
    assert walls == [14.0, 0.5]
    assert [dict(c) for c in calls] == [
        {"reorder": 0.25, "deconvolution": 13.0, "convolution": 3.0},
        {},
    ]
    assert impls == {"jit:avx2", "brg_conv_fwd:avx2"}
    # a call's convolution time: both primitive kinds and the reorders (convt_jax runs
    # oneDNN's convolution primitives for its transposed layers too), nothing else
    assert kernels._total(calls[0]) == 16.25
    assert kernels._total({"convolution": 2.0, "reorder": 0.5, "matmul": 7.0}) == 2.5
    # --detail: each primitive's median time per call (a call without it counts 0)
    prims = kernels._primitives("\n".join(lines))
    problem = "mb64_ic128oc64_ih16oh32kh4sh2dh0ph1_iw16ow32kw4sw2dw0pw1"
    if fmt is _V1:
        problem = "mb64_ic128oc64_ih16oh32kh4sh2dh0ph1"
    assert (
        prims["convt_jax"][("deconvolution", "forward_training", problem, "brg_conv:avx2")] == 10.0
    )
    assert prims["PyTorch"][("deconvolution", "forward_training", problem, "jit:avx2")] == 6.5
    assert prims["PyTorch"][("reorder", "", problem, "jit:uni")] == 0.125


@pytest.mark.slow
def test_a_real_run_reads_both_sides(tmp_path):
    import convt_jax as ct

    if ct.backend_info().backend != "onednn":
        pytest.skip(f"the oneDNN backend is not in use: {ct.backend_info().reason}")
    out = tmp_path / "k.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.kernels",
            "--shapes",
            "group32",
            "--channels-last",
            "--rounds",
            "2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = next(line for line in out.read_text().splitlines() if line.startswith("| group32_cl"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    ours, theirs = float(cells[1]), float(cells[2])
    assert ours > 0 and theirs > 0  # both sides ran oneDNN kernels and the parser read them
    assert cells[7] != "XLA"  # convt_jax's call ran oneDNN's kernel, named in the table
