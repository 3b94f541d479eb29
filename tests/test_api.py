"""The public surface: names, signatures, docstrings, the shape helper, py.typed."""

from __future__ import annotations

import doctest
import importlib
import importlib.resources
import importlib.util
import inspect
import itertools
import pkgutil
import re
import types
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pytest

import convt_jax as ct
from convt_jax._compat import enable_x64  # jax.enable_x64 is new in jax 0.8

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

OPS = ["conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]
POSITIONAL = [
    ("input", inspect.Parameter.empty),
    ("weight", inspect.Parameter.empty),
    ("bias", None),
    ("stride", 1),
    ("padding", 0),
    ("output_padding", 0),
]
KEYWORD_ONLY = [
    ("groups", 1),
    ("dilation", 1),
    ("output_size", None),
    ("channels_last", False),
    ("conv_mode", "cross_correlation"),
    ("precision", None),
    ("preferred_element_type", None),
    ("padding_mode", "zeros"),
    ("method", "auto"),
]
P = inspect.Parameter


# --- names ------------------------------------------------------------------------------


def _public_modules(module: types.ModuleType = ct):
    """``convt_jax`` and every public submodule reachable through ``__all__``."""
    yield module
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name, None)
        if isinstance(obj, types.ModuleType):
            yield from _public_modules(obj)


PUBLIC_MODULES = list(_public_modules())


def _missing_dependency(error: BaseException | None) -> str | None:
    """The top-level package a failed import could not find (through ``raise ... from``)."""
    while error is not None:
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name.split(".")[0]
        error = error.__cause__ or error.__context__
    return None


def _package_modules():
    """``(name, module)`` for every module of the package, imported here (``__main__``, the
    demo's entry point, left out); ``module`` is None for one whose optional dependency
    (flax) is not installed.  Any other import error is raised."""
    # walk_packages imports each package to list its modules; a package whose optional
    # dependency is missing is listed without its submodules (they need it too).
    found = pkgutil.walk_packages(ct.__path__, "convt_jax.", onerror=lambda name: None)
    names = {"convt_jax"} | {m.name for m in found} - {"convt_jax.__main__"}
    for name in sorted(names):
        try:
            yield name, importlib.import_module(name)
        except ImportError as e:
            missing = _missing_dependency(e)
            if missing is None or importlib.util.find_spec(missing) is not None:
                raise
            _NOT_INSTALLED[name] = missing
            yield name, None


_NOT_INSTALLED: dict[str, str] = {}  # a module left out -> the dependency it lacks
PACKAGE_MODULES = dict(_package_modules())


def _skip_reason(name: str) -> str:
    """Why a module (or a submodule of one) left out is not tested."""
    package = max((m for m in _NOT_INSTALLED if name == m or name.startswith(m + ".")), key=len)
    return f"{name}: needs {_NOT_INSTALLED[package]}, which is not installed"


def _type_aliases(module: types.ModuleType) -> set[str]:
    """The names a module declares as ``Name: TypeAlias = ...`` (an alias object's
    ``__module__`` is ``typing``'s, not the module's)."""
    annotations = vars(module).get("__annotations__", {})
    return {k for k, v in annotations.items() if v in ("TypeAlias", TypeAlias)}


def _public_names(module: types.ModuleType) -> set[str]:
    """Names without an underscore that the module defines or re-exports from its own
    (private) submodules; names it merely imports from elsewhere do not count."""
    names = set()
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        if name in _type_aliases(module):
            names.add(name)
            continue
        if isinstance(obj, types.ModuleType):
            origin = obj.__name__
        else:
            origin = getattr(obj, "__module__", None)
            if not isinstance(origin, str):
                continue
        if origin == module.__name__ or origin.startswith(module.__name__ + "."):
            names.add(name)
    return names


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_is_complete_and_exists(module):
    assert hasattr(module, "__all__"), f"{module.__name__} has no __all__"
    assert len(module.__all__) == len(set(module.__all__)), "duplicates in __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name!r}"
    # convt_jax.flax needs the optional flax extra, so it is not in __all__; it appears as an
    # attribute once some test has imported it.
    optional = {"flax"} if module is ct else set()
    assert _public_names(module) - optional == set(module.__all__)
    assert module.__doc__ and module.__doc__.strip(), f"{module.__name__} has no docstring"


def test_top_level_names():
    assert set(OPS) | {"conv_transpose_output_shape", "layouts"} <= set(ct.__all__)
    assert isinstance(ct.__version__, str)


def test_layout_converters_come_in_pairs():
    names = set(ct.layouts.__all__)
    for name in names:  # from_X and to_X
        other = (
            name.replace("from_", "to_", 1)
            if name.startswith("from_")
            else name.replace("to_", "from_", 1)
        )
        assert other in names, f"{name} has no inverse {other}"


def _documented():
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            # Modules: checked above.  Type aliases: documented by the string after them
            # in the source (an alias object has no docstring of its own).
            if not isinstance(obj, types.ModuleType) and name not in _type_aliases(module):
                yield pytest.param(obj, id=f"{module.__name__}.{name}")


@pytest.mark.parametrize("obj", list(_documented()))
def test_public_names_are_documented(obj):
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"{obj!r} has no docstring"
    if inspect.isfunction(obj):
        # An Args section for every function that takes arguments (one without any has
        # none: mkdocs --strict rejects an empty or placeholder section).
        takes_arguments = bool(inspect.signature(obj).parameters)
        assert ("Args:" in doc) == takes_arguments, obj.__name__
        assert "Returns:" in doc, obj.__name__
    elif inspect.isclass(obj) and not _per_dimension(obj) and not issubclass(obj, Warning):
        # A class documents its constructor's arguments (a dataclass of results: its
        # Attributes); the per-dimension classes point at the N-d one (the test below); a
        # warning category is raised by convt_jax, not constructed by the user.
        assert "Args:" in doc or "Attributes:" in doc, obj.__name__


# The 1-d, 2-d and 3-d classes document their arguments once, on the N-d class they point
# at (as Equinox's Conv1d points at Conv): module -> (the N-d class's module, the pointer,
# written with {} for the N-d class's name).
_POINTERS = {
    "convt_jax.nn": ("convt_jax.nn", ":class:`{}`"),
    "convt_jax.flax": ("convt_jax.flax", ":class:`{}`"),
    "convt_jax.flax.linen": ("convt_jax.flax", ":class:`convt_jax.flax.{}`"),
}
_FAMILIES = ("ConvTranspose", "Conv")


def _per_dimension(cls) -> bool:
    return cls.__name__ in {f"{f}{n}d" for f in _FAMILIES for n in (1, 2, 3)}


def _per_dimension_classes():
    for name, (full_name, _) in _POINTERS.items():
        module, full_module = PACKAGE_MODULES.get(name), PACKAGE_MODULES.get(full_name)
        for family in _FAMILIES:
            for n in (1, 2, 3):
                id_ = f"{name}.{family}{n}d"
                if module is None or full_module is None:
                    marks = [pytest.mark.skip(reason=_skip_reason(name))]
                    yield pytest.param(None, None, None, id=id_, marks=marks)
                else:
                    cls = getattr(module, f"{family}{n}d")
                    yield pytest.param(cls, getattr(full_module, family), name, id=id_)


def _constructor_parameters(cls) -> list[inspect.Parameter]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # no self
    # A linen module's dataclass fields end with Flax's own parent and name.
    return [p for p in params if p.name not in ("parent", "name")]


@pytest.mark.parametrize("cls, full, module", list(_per_dimension_classes()))
def test_per_dimension_classes_point_at_the_n_d_class(cls, full, module):
    doc, full_doc = inspect.getdoc(cls), inspect.getdoc(full)
    # One line, the pointer and a short example; no Args of their own.
    assert "Args:" not in doc and _POINTERS[module][1].format(full.__name__) in doc, cls
    assert "Examples:\n  >>> " in doc, cls
    # The N-d class documents every argument they take ...
    args = full_doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^  (\w+):", args, re.M)
    assert documented == [p.name for p in _constructor_parameters(full)]
    # ... and they take its arguments after num_spatial_dims, with the same defaults
    # (a linen module: as dataclass fields, and no rngs).
    params = _constructor_parameters(cls)
    want = _constructor_parameters(full)[1:]
    if module == "convt_jax.flax.linen":
        want = [p.replace(kind=P.POSITIONAL_OR_KEYWORD) for p in want if p.name != "rngs"]
        params = [p.replace(annotation=P.empty) for p in params]
        want = [p.replace(annotation=P.empty) for p in want]
    assert params == want, cls


# --- signatures ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", OPS)
def test_op_signature(name):
    params = list(inspect.signature(getattr(ct, name)).parameters.values())
    assert [(p.name, p.default) for p in params] == POSITIONAL + KEYWORD_ONLY
    for p in params[: len(POSITIONAL)]:
        assert p.kind is P.POSITIONAL_OR_KEYWORD, p.name
    for p in params[len(POSITIONAL) :]:
        assert p.kind is P.KEYWORD_ONLY, f"{p.name} must be keyword-only"


@pytest.mark.parametrize("name", OPS)
def test_groups_and_dilation_cannot_be_positional(name):
    """PyTorch orders groups before dilation, Lucid/MegEngine after: positional is refused."""
    x, w = np.ones((1, 2, 3)), np.ones((2, 1, 2))
    with pytest.raises(TypeError):
        getattr(ct, name)(x, w, None, 1, 0, 0, 1)


def test_output_shape_signature():
    params = list(inspect.signature(ct.conv_transpose_output_shape).parameters.values())
    assert [(p.name, p.kind, p.default) for p in params] == [
        ("input_shape", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("weight_shape", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("stride", P.POSITIONAL_OR_KEYWORD, 1),
        ("padding", P.POSITIONAL_OR_KEYWORD, 0),
        ("output_padding", P.POSITIONAL_OR_KEYWORD, 0),
        ("groups", P.KEYWORD_ONLY, 1),
        ("dilation", P.KEYWORD_ONLY, 1),
        ("output_size", P.KEYWORD_ONLY, None),
        ("channels_last", P.KEYWORD_ONLY, False),
    ]


# The regular convolution (SPEC §8): torch.nn.functional.conv{1,2,3}d's positional order.
CONV_OPS = ["conv", "conv1d", "conv2d", "conv3d"]
CONV_POSITIONAL = [
    ("input", inspect.Parameter.empty),
    ("weight", inspect.Parameter.empty),
    ("bias", None),
    ("stride", 1),
    ("padding", 0),
    ("dilation", 1),
    ("groups", 1),
]
CONV_KEYWORD_ONLY = [
    ("padding_mode", "zeros"),
    ("channels_last", False),
    ("method", "auto"),
    ("precision", None),
    ("preferred_element_type", None),
]


@pytest.mark.parametrize("name", CONV_OPS)
def test_conv_signature(name):
    assert name in ct.__all__
    params = list(inspect.signature(getattr(ct, name)).parameters.values())
    assert [(p.name, p.default) for p in params] == CONV_POSITIONAL + CONV_KEYWORD_ONLY
    for p in params[: len(CONV_POSITIONAL)]:
        assert p.kind is P.POSITIONAL_OR_KEYWORD, p.name
    for p in params[len(CONV_POSITIONAL) :]:
        assert p.kind is P.KEYWORD_ONLY, f"{p.name} must be keyword-only"


def test_conv_output_shape_signature():
    assert "conv_output_shape" in ct.__all__
    params = list(inspect.signature(ct.conv_output_shape).parameters.values())
    assert [(p.name, p.kind, p.default) for p in params] == [
        ("input_shape", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("weight_shape", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("stride", P.POSITIONAL_OR_KEYWORD, 1),
        ("padding", P.POSITIONAL_OR_KEYWORD, 0),
        ("dilation", P.POSITIONAL_OR_KEYWORD, 1),
        ("groups", P.POSITIONAL_OR_KEYWORD, 1),
        ("channels_last", P.KEYWORD_ONLY, False),
    ]


def test_positional_order_is_pytorchs():
    """input, weight, bias, stride, padding, output_padding: the same numbers either way."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((1, 2, 4, 3)), rng.standard_normal((2, 3, 3, 2)), np.ones(3)
    pos = ct.conv_transpose2d(x, w, b, (2, 1), (1, 0), (1, 0))
    kw = ct.conv_transpose2d(
        input=x, weight=w, bias=b, stride=(2, 1), padding=(1, 0), output_padding=(1, 0)
    )
    np.testing.assert_array_equal(np.asarray(pos), np.asarray(kw))
    assert pos.shape == (1, 3, 8, 4)


# --- the shape helper agrees with the operation ---------------------------------------------

SPATIAL, KERNEL = (3, 4, 2), (2, 3, 2)
PADDINGS = {
    "int": lambda n: 1,
    "per-axis": lambda n: tuple(i % 2 for i in range(n)),
    "pairs": lambda n: tuple((i % 2, 1 - i % 2) for i in range(n)),
    "same": lambda n: "same",
    "valid": lambda n: "valid",
}


def _shape_cases():
    """(id, n, batched, channels_last, settings, expected spatial output or None)."""
    for i, (n, batched, channels_last, pad) in enumerate(
        itertools.product((1, 2, 3), (True, False), (False, True), PADDINGS)
    ):
        stride = (2, 1, 3)[:n] if i % 2 else 2
        dilation = 1 if i % 3 else (1, 2, 1)[:n]
        output_padding = 1 if (stride == 2 and i % 4 == 0 and pad != "same") else 0
        want = (
            tuple(
                s * length
                for s, length in zip(
                    stride if isinstance(stride, tuple) else (stride,) * n, SPATIAL[:n], strict=True
                )
            )
            if pad == "same"
            else None
        )
        yield (
            f"{n}d-{'b' if batched else 'u'}-{'cl' if channels_last else 'cf'}-{pad}",
            n,
            batched,
            channels_last,
            dict(
                stride=stride,
                padding=PADDINGS[pad](n),
                output_padding=output_padding,
                dilation=dilation,
            ),
            want,
        )
    # groups; output_size as spatial sizes, as an int and as a full output shape
    yield "2d-groups", 2, True, False, dict(groups=2, stride=2, padding=1), None
    yield "1d-output_size-int", 1, True, False, dict(stride=3, output_size=9), (9,)
    yield (
        "2d-output_size-spatial-cl",
        2,
        True,
        True,
        dict(stride=2, padding=(1, 0), output_size=(5, 9)),
        (5, 9),
    )
    yield (
        "2d-output_size-full",
        2,
        True,
        False,
        dict(stride=2, output_size=(2, 3, 7, 10)),
        (7, 10),
    )
    yield (
        "2d-output_size-full-unbatched",
        2,
        False,
        False,
        dict(stride=2, output_size=(3, 7, 10)),
        (7, 10),
    )
    yield (
        "3d-output_size-full-cl-unbatched",
        3,
        False,
        True,
        dict(stride=2, output_size=(6, 9, 5, 3)),
        (6, 9, 5),
    )
    yield (
        "3d-output_size-full-cl",
        3,
        True,
        True,
        dict(stride=2, dilation=2, padding=1, output_size=(2, 6, 10, 4, 3)),
        (6, 10, 4),
    )


@pytest.mark.parametrize("case", [pytest.param(c[1:], id=c[0]) for c in _shape_cases()])
def test_output_shape_matches_the_operation(case):
    n, batched, channels_last, kw, want_spatial = case
    groups = kw.get("groups", 1)
    c_in, c_out = 2 * groups, 3 * groups
    spatial, kernel = SPATIAL[:n], KERNEL[:n]
    x_shape = (spatial + (c_in,)) if channels_last else ((c_in,) + spatial)
    if batched:
        x_shape = (2,) + x_shape
    w_shape = (c_in, 3) + kernel
    expected = ct.conv_transpose_output_shape(x_shape, w_shape, channels_last=channels_last, **kw)
    assert isinstance(expected, tuple) and all(type(d) is int for d in expected)
    x, w = np.ones(x_shape, np.float32), np.ones(w_shape, np.float32)
    assert (
        getattr(ct, f"conv_transpose{n}d")(x, w, channels_last=channels_last, **kw).shape
        == expected
    )
    assert ct.conv_transpose(x, w, channels_last=channels_last, **kw).shape == expected
    # list shapes work the same as tuples
    assert (
        ct.conv_transpose_output_shape(
            list(x_shape), list(w_shape), channels_last=channels_last, **kw
        )
        == expected
    )
    # the non-spatial axes are (N,) C_out in the input's layout
    lead = x_shape[:1] if batched else ()
    spatial_out = expected[len(lead) : -1] if channels_last else expected[len(lead) + 1 :]
    assert len(spatial_out) == n
    assert expected == (
        (lead + spatial_out + (c_out,)) if channels_last else (lead + (c_out,) + spatial_out)
    )
    if want_spatial is not None:  # output_size honoured; "same" gives input * stride
        assert spatial_out == want_spatial


# --- docstring examples run ------------------------------------------------------------


def _doctests():
    """Every ``>>>`` example in every module of the package, private ones included."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {}
    for module in filter(None, PACKAGE_MODULES.values()):
        for t in finder.find(module):
            if t.examples:
                tests[t.name] = t
    return [tests[name] for name in sorted(tests)]


DOCTESTS = _doctests()
# A module left out for a missing optional dependency shows in the report as a skip.
_NOT_IMPORTED = [
    pytest.param(
        None,
        id=name,
        marks=pytest.mark.skip(reason=_skip_reason(name)),
    )
    for name, module in PACKAGE_MODULES.items()
    if module is None
]


def test_every_module_is_searched_for_examples():
    # The Flax modules' examples once ran only when another test file had imported them.
    modules = {t.globs["__name__"] for t in DOCTESTS}
    assert {"convt_jax.nn._layers", "convt_jax.nn._torch", "convt_jax.typing"} <= modules
    if PACKAGE_MODULES["convt_jax.flax"] is None:
        pytest.skip(_skip_reason("convt_jax.flax"))
    assert {"convt_jax.flax._nnx", "convt_jax.flax.linen"} <= modules


def test_every_public_function_has_a_doctest_that_is_run():
    names = {t.name.rsplit(".", 1)[1] for t in DOCTESTS}
    assert set(OPS) | {"conv_transpose_output_shape"} | set(ct.layouts.__all__) <= names
    assert set(CONV_OPS) | {"conv_output_shape"} <= names


def test_examples_stand_in_an_examples_section():
    # Google style's "Examples:" section is what mkdocstrings-python renders as code; a
    # `>>>` anywhere else (an "Example:" admonition, plain text) is Markdown there and
    # reads as three nested blockquotes (tests/test_docs.py checks the built pages).
    outside = []
    for t in DOCTESTS:
        lines = inspect.cleandoc(t.docstring or "").splitlines()
        for i, line in enumerate(lines):
            if not line.lstrip().startswith(">>>"):
                continue
            indent = len(line) - len(line.lstrip())
            above = (a for a in reversed(lines[:i]) if a.strip())
            header = next((a for a in above if len(a) - len(a.lstrip()) < indent), None)
            if header is None or header.strip() != "Examples:":
                outside.append(f"{t.name}: {line.strip()}")
    assert not outside, "\n".join(outside)


@pytest.mark.parametrize("test", [pytest.param(t, id=t.name) for t in DOCTESTS] + _NOT_IMPORTED)
def test_docstring_examples(test):
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    test.globs = dict(test.globs)
    # The printed examples use JAX's default float32 (the test session enables x64).
    with enable_x64(False):
        runner.run(test, out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)


# --- packaging ------------------------------------------------------------------------


def test_py_typed_ships():
    assert importlib.resources.files("convt_jax").joinpath("py.typed").is_file()
    root = Path(ct.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    # In a source checkout: the wheel takes the whole package folder, py.typed included.
    if pyproject.is_file() and tomllib is not None:
        config = tomllib.loads(pyproject.read_text())
        packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        assert "convt_jax" in packages
        ignore = root / ".gitignore"
        if ignore.is_file():
            assert "py.typed" not in ignore.read_text()
