"""The dtype rules with JAX's default (x64 off), checked in child processes.

The test suite runs with x64 on (tests/conftest.py); a user's process
usually has it off, where ``jnp.asarray`` turns a float64 array into
float32 and an int64 one into int32.  A rule that reads the dtype after
that canonicalisation passes a float64 state dict into a float32 layer
silently and names the wrong dtype in its messages.  These tests run, with
``JAX_ENABLE_X64=0``, (1) a script of the documented dtype rules and (2) the
dtype, layer and error tests of tests/test_errors.py and tests/test_nn.py
(``CONVT_JAX_TEST_X64=0`` makes conftest leave x64 off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import json, warnings
    import jax, numpy as np, torch
    import convt_jax as ct

    assert not jax.config.jax_enable_x64
    warnings.simplefilter("ignore")
    out = {}

    def outcome(fn):
        try:
            r = fn()
            return {"raised": None, "dtype": str(getattr(r, "dtype", None))}
        except Exception as e:
            return {"raised": type(e).__name__, "message": str(e)}

    lay = ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0))
    w64, b64 = np.ones((2, 3, 4)), np.zeros(3)
    out["load_numpy_float64"] = outcome(
        lambda: lay.load_state_dict({"weight": w64, "bias": b64}).weight)
    out["load_torch_float64"] = outcome(lambda: lay.load_state_dict(
        {"weight": torch.from_numpy(w64), "bias": torch.from_numpy(b64)}).weight)
    out["replace_numpy_float64"] = outcome(lambda: lay.replace(weight=w64).weight)
    out["replace_torch_float64"] = outcome(lambda: lay.replace(bias=torch.from_numpy(b64)).bias)
    out["load_numpy_int64"] = outcome(lambda: lay.load_state_dict(
        {"weight": w64.astype(np.int64), "bias": b64.astype(np.float32)}).weight)
    out["load_numpy_float32"] = outcome(lambda: lay.load_state_dict(
        {"weight": w64.astype(np.float32), "bias": b64.astype(np.float32)}).weight)
    x64 = np.ones((1, 2, 5), np.int64)
    out["function_int64_input"] = outcome(
        lambda: ct.conv_transpose1d(x64, np.ones((2, 3, 4), np.float32)))
    out["function_int64_list_input"] = outcome(
        lambda: ct.conv_transpose1d(x64.tolist(), np.ones((2, 3, 4), np.float32)))
    out["layer_int64_input"] = outcome(lambda: lay(x64))
    out["build_float64_layer"] = outcome(
        lambda: ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0), dtype=np.float64).weight)
    out["build_complex128_layer"] = outcome(
        lambda: ct.nn.ConvTranspose1d(2, 3, 4, key=jax.random.key(0),
                                      dtype=np.complex128).weight)
    xt, wt = torch.ones(1, 2, 5), torch.ones(2, 3, 4)
    out["function_torch_float32"] = outcome(lambda: ct.conv_transpose1d(xt, wt))
    out["function_torch_bfloat16"] = outcome(
        lambda: ct.conv_transpose1d(xt.bfloat16(), wt.bfloat16()))
    out["function_torch_int64"] = outcome(lambda: ct.conv_transpose1d(xt.long(), wt))
    out["function_torch_matches_numpy"] = {"raised": None, "dtype": str(bool(np.array_equal(
        np.asarray(ct.conv_transpose1d(torch.arange(10.0).reshape(1, 2, 5), wt)),
        np.asarray(ct.conv_transpose1d(np.arange(10.0, dtype=np.float32).reshape(1, 2, 5),
                                       wt.numpy())))))}
    print("RESULT " + json.dumps(out))
""")


def _env(**extra):
    env = dict(os.environ, JAX_ENABLE_X64="0", JAX_PLATFORMS="cpu", **extra)
    env.pop("CONVT_JAX_TEST_X64", None)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def x64_off():
    """Outcomes of the dtype rules in a child process with x64 off."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=str(ROOT),
        timeout=600,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.parametrize(
    "case",
    ["load_numpy_float64", "load_torch_float64", "replace_numpy_float64", "replace_torch_float64"],
)
def test_float64_into_float32_layer_is_a_type_error(x64_off, case):
    """SPEC: no silent casting; the float64 the user passed is refused, x64 on or off."""
    r = x64_off[case]
    assert r["raised"] == "TypeError", f"{case}: {r}"
    assert "float64" in r["message"] and "float32" in r["message"], r["message"]


def test_float32_state_dict_loads(x64_off):
    """The matching dtype still loads (no false positive of the rule above)."""
    assert x64_off["load_numpy_float32"] == {"raised": None, "dtype": "float32"}


@pytest.mark.parametrize(
    "case",
    ["load_numpy_int64", "function_int64_input", "function_int64_list_input", "layer_int64_input"],
)
def test_int64_messages_name_int64(x64_off, case):
    """The message names the dtype as passed (int64), not JAX's canonical int32."""
    r = x64_off[case]
    assert r["raised"] == "TypeError", f"{case}: {r}"
    assert "int64" in r["message"] and "int32" not in r["message"], r["message"]


def test_int64_state_dict_hint_is_only_the_cast(x64_off):
    """A layer cannot have an integer dtype, so the message does not suggest building one."""
    message = x64_off["load_numpy_int64"]["message"]
    assert "cast it first" in message and "build the layer" not in message, message


def test_float64_hint_names_the_x64_switch(x64_off):
    """With x64 off, building a float64 layer is not a way out unless x64 is turned on."""
    message = x64_off["load_numpy_float64"]["message"]
    assert "jax_enable_x64" in message, message


@pytest.mark.parametrize(
    "case,dtype", [("build_float64_layer", "float64"), ("build_complex128_layer", "complex128")]
)
def test_64_bit_layer_without_x64_is_a_type_error(x64_off, case, dtype):
    """dtype=float64 with x64 off would build float32 weights silently: a TypeError instead."""
    r = x64_off[case]
    assert r["raised"] == "TypeError", f"{case}: {r}"
    assert f"dtype={dtype}" in r["message"] and "jax_enable_x64" in r["message"], r["message"]


@pytest.mark.parametrize(
    "case,dtype", [("function_torch_float32", "float32"), ("function_torch_bfloat16", "bfloat16")]
)
def test_torch_tensors_into_the_functions(x64_off, case, dtype):
    """A torch.Tensor is read through NumPy (bfloat16 through float32), in its own dtype."""
    assert x64_off[case] == {"raised": None, "dtype": dtype}
    assert x64_off["function_torch_matches_numpy"]["dtype"] == "True"


def test_torch_int64_tensor_is_refused_by_name(x64_off):
    r = x64_off["function_torch_int64"]
    assert r["raised"] == "TypeError" and "int64" in r["message"], r


@pytest.mark.slow  # the dtype, layer and error tests again in a child process
@pytest.mark.long
def test_dtype_layer_and_error_tests_pass_with_x64_off():
    """The dtype / state-dict / error-table tests again, in a pytest child with x64 off.

    Tests that build float64 layers to compare with PyTorch at float64
    tolerance need x64 and are left out (their names hold ``float64`` or
    ``roundtrip_to_torch``).
    """
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # one process: its 133 tests take 4.5 s, two xdist workers (pyproject's addopts)
            # would spend more than that starting up (16 against 8 CPU-seconds)
            "-n",
            "0",
            "tests/test_errors.py",
            "tests/test_nn.py",
            "-k",
            "(dtype or state_dict or replace or error_eager) and not float64 "
            "and not roundtrip_to_torch",
        ],
        capture_output=True,
        text=True,
        env=_env(CONVT_JAX_TEST_X64="0"),
        cwd=str(ROOT),
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
