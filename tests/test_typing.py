"""The public signatures' ``Literal`` types: they list what the functions accept, and
pyright flags a misspelled setting (those checks are skipped when pyright is not
installed: ``pip install pyright``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

from convt_jax import _args, _methods
from convt_jax import typing as ct_typing

_PYRIGHT = shutil.which("pyright") or (
    str(Path(sys.executable).with_name("pyright"))
    if Path(sys.executable).with_name("pyright").exists()
    else None
)
needs_pyright = pytest.mark.skipif(_PYRIGHT is None, reason="pyright is not installed")

_ROOT = Path(__file__).resolve().parent.parent


def _pyright(tmp_path: Path, source: str) -> list[dict]:
    """pyright's error diagnostics for ``source`` (checked against this checkout)."""
    (tmp_path / "check.py").write_text(textwrap.dedent(source))
    (tmp_path / "pyrightconfig.json").write_text(
        json.dumps(
            {
                "include": ["check.py"],
                "pythonVersion": "3.10",
                "typeCheckingMode": "basic",
                "extraPaths": [str(_ROOT)],
            }
        )
    )
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}  # no version check online
    out = subprocess.run(
        [str(_PYRIGHT), "--outputjson", "--pythonpath", sys.executable, "-p", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    report = json.loads(out.stdout)
    return [d for d in report["generalDiagnostics"] if d["severity"] == "error"]


def test_literals_list_the_accepted_values():
    methods = set(typing.get_args(ct_typing.Method))
    # Every registered method is in the type; the type may name a backend (oneDNN) before
    # its registration is built.
    assert set(_methods.METHODS) <= methods
    assert methods - set(_methods.METHODS) <= {"onednn"}
    assert typing.get_args(ct_typing.PaddingMode) == _args.PADDING_MODES
    assert typing.get_args(ct_typing.ConvMode) == _args.CONV_MODES
    assert typing.get_args(ct_typing.ComputeMode) == _args.COMPUTE_MODES
    assert typing.get_args(ct_typing.PaddingString) == _args.PADDING_STRINGS


@needs_pyright
def test_valid_settings_type_check(tmp_path):
    errors = _pyright(
        tmp_path,
        """
        import jax.numpy as jnp
        import convt_jax as ct

        x = jnp.ones((1, 2, 3, 3))
        w = jnp.ones((2, 4, 3, 3))
        y = ct.conv_transpose2d(
            x, w, None, 2, ((1, 0), 1), 1, method="subpixel", padding_mode="zeros",
            conv_mode="convolution",
        )
        z = ct.conv_transpose(x, w, padding="same", method="auto")
        layer = ct.nn.ConvTranspose2d(2, 4, 3, padding="valid", compute_mode="float32")
        """,
    )
    assert errors == []


@needs_pyright
@pytest.mark.parametrize(
    "call, name",
    [
        ('ct.conv_transpose2d(x, w, method="not-a-method")', "method"),
        ('ct.conv_transpose(x, w, padding_mode="mirror")', "padding_mode"),
        ('ct.conv_transpose1d(x, w, conv_mode="correlation")', "conv_mode"),
        ('ct.nn.ConvTranspose2d(2, 4, 3, compute_mode="half")', "compute_mode"),
    ],
)
def test_a_misspelled_setting_is_a_type_error(tmp_path, call, name):
    errors = _pyright(
        tmp_path,
        f"""
        import jax.numpy as jnp
        import convt_jax as ct

        x = jnp.ones((1, 2, 3, 3))
        w = jnp.ones((2, 4, 3, 3))
        {call}
        """,
    )
    assert len(errors) == 1, errors
    assert f'"{name}"' in errors[0]["message"], errors[0]["message"]
