"""Every JAX-version-dependent detail of convt_jax, in one place.

convt_jax supports every JAX release from 0.4.38 on.  The rest of the package
imports what differs between releases from here, never from ``jax`` directly,
and every name below is found by feature detection (``hasattr`` / a guarded
import), not by comparing version strings, so a release that moves a name only
needs a change here.

What differs, by release:

* ``jax.typeof`` (0.5+); before it, ``jax.core.get_aval``.
* The manual mesh axes a value varies over (``shard_map``'s type-level
  tracking): ``aval.mat.varying`` (0.10+), ``aval.vma`` (0.6-0.9), none before.
  Casting a value to vary over more axes: ``jax.lax.pcast(x, axes,
  to="varying")`` (0.8+), ``jax.lax.pvary(x, axes)`` (0.6-0.7).
* Shardings in abstract values (``aval.sharding``): from 0.5; ``NamedSharding
  .update(spec=...)`` from 0.6, ``.with_spec(...)`` before.
* Explicit mesh axes (``jax.sharding.AxisType.Explicit``, ``jax.make_mesh``'s
  default in newer releases): the types exist from 0.5, but convt_jax needs
  ``jax.sharding.auto_axes``, ``jax.sharding.use_abstract_mesh`` (0.7+) and
  ``lower_with_sharding_in_types`` to run with them; on older releases a
  computation on Explicit axes raises :class:`NotImplementedError` saying so,
  and Auto mesh axes (the partitioner's ordinary path) work everywhere.
* ``jax.enable_x64`` (0.8+); before it, ``jax.experimental.enable_x64``.
* Whether a lowering rule lowers into a partitioned program (:func:`is_partitioned`): read
  from the lowering context's axis context, whose fields are the same on every release.
* JAX 0.11 and 0.12 (Python 3.12+) need nothing beyond the above: every name used here
  is found the same way there (checked with 0.11.2 on Python 3.13 and 0.12.0.1 on 3.12).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
from collections.abc import Callable
from typing import Any, cast

import jax
import jax.sharding
from jax.extend.core import Primitive  # public on every supported release

__all__ = [
    "AxisType",
    "HAS_EXPLICIT_AXES",
    "Primitive",
    "auto_axes",
    "auto_mesh",
    "aval_sharding",
    "enable_x64",
    "explicit_axes",
    "ffi_call",
    "ffi_include_dir",
    "is_exporting",
    "is_partitioned",
    "jaxlib_version",
    "register_ffi_target",
    "lower_with_sharding_in_types",
    "require_explicit_axes",
    "typeof",
    "use_abstract_mesh",
    "varying_axes",
    "vary_over",
    "with_spec",
]

# --- abstract values ----------------------------------------------------------------------

if hasattr(jax, "typeof"):
    typeof: Callable[[Any], Any] = jax.typeof
else:  # jax < 0.5
    from jax import core as _core

    typeof = getattr(_core, "get_aval")  # noqa: B009  (absent from newer releases' stubs)


def varying_axes(aval: Any) -> frozenset:
    """The manual mesh axes ``aval`` varies over (inside ``shard_map``); empty where the
    release does not track them in the type."""
    mat = getattr(aval, "mat", None)  # jax >= 0.10
    if mat is not None:
        return frozenset(mat.varying)
    vma = getattr(aval, "vma", None)  # jax 0.6 - 0.9
    if vma is not None:
        return frozenset(vma)
    return frozenset()


_pcast = getattr(jax.lax, "pcast", None)  # jax >= 0.8
# jax 0.6 - 0.7; deprecated once pcast exists, so only looked up without it.
_pvary = None if _pcast is not None else getattr(jax.lax, "pvary", None)


def vary_over(x: jax.Array, axes: tuple) -> jax.Array:
    """``x`` cast to vary over the manual mesh ``axes`` too (a no-op on the values)."""
    if _pcast is not None:
        return _pcast(x, axes, to="varying")
    if _pvary is not None:
        return _pvary(x, axes)
    # Releases without either do not track varying axes, so nothing ever differs.
    raise NotImplementedError(
        f"casting to varying manual axes {axes} needs jax >= 0.6 (jax.lax.pvary); "
        f"this is jax {jax.__version__}"
    )


def aval_sharding(aval: Any) -> Any:
    """The sharding in ``aval``'s type, or None on releases whose types carry none."""
    return getattr(aval, "sharding", None)


def with_spec(sharding: Any, spec: Any) -> Any:
    """``sharding`` with its ``PartitionSpec`` replaced by ``spec``."""
    if hasattr(sharding, "update"):  # jax >= 0.6
        return sharding.update(spec=spec)
    return sharding.with_spec(spec)  # jax 0.5


# --- mesh axis types ----------------------------------------------------------------------

AxisType = getattr(jax.sharding, "AxisType", None)  # None before jax 0.5
_EXPLICIT = getattr(AxisType, "Explicit", None)
_auto_axes = getattr(jax.sharding, "auto_axes", None)  # jax >= 0.7
_use_abstract_mesh = getattr(jax.sharding, "use_abstract_mesh", None)  # jax >= 0.7

#: Whether this JAX lets convt_jax run on Explicit mesh axes (sharding in types).
HAS_EXPLICIT_AXES = _auto_axes is not None and _use_abstract_mesh is not None


def explicit_axes(mesh: Any) -> tuple:
    """The names of ``mesh``'s Explicit axes (``()`` for no mesh, an empty one, or a
    release without Explicit axes)."""
    if mesh is None or _EXPLICIT is None or mesh.empty:
        return ()
    axes = getattr(mesh, "explicit_axes", None)  # jax >= 0.6
    if axes is not None:
        return tuple(axes)
    return tuple(n for n, t in zip(mesh.axis_names, mesh.axis_types, strict=True) if t == _EXPLICIT)


def require_explicit_axes(axes: tuple) -> None:
    """Raise a clear error if this JAX cannot run convt_jax on Explicit mesh ``axes``."""
    if axes and not HAS_EXPLICIT_AXES:
        raise NotImplementedError(
            f"convt_jax on Explicit mesh axes {axes} (sharding in types) needs jax >= 0.7 "
            f"(jax.sharding.auto_axes); this is jax {jax.__version__}. Use Auto mesh "
            "axes (jax.make_mesh(..., axis_types=(jax.sharding.AxisType.Auto,) * n)) "
            "or upgrade JAX."
        )


def auto_axes(fn: Callable, axes: tuple, out_sharding: Any) -> Callable:
    """``jax.sharding.auto_axes``: ``fn`` run with the Explicit ``axes`` Auto."""
    require_explicit_axes(axes)
    return cast(Callable, _auto_axes)(fn, axes=axes, out_sharding=out_sharding)


def auto_mesh(mesh: Any, axes: tuple) -> Any:
    """``mesh`` with ``axes`` switched to Auto."""
    require_explicit_axes(axes)
    auto = cast(Any, AxisType).Auto
    return mesh.update_axis_types({a: auto for a in axes})


def use_abstract_mesh(mesh: Any) -> contextlib.AbstractContextManager:
    """``jax.sharding.use_abstract_mesh``: trace with ``mesh`` as the current mesh."""
    if _use_abstract_mesh is None:  # only the Explicit-axes path calls it
        require_explicit_axes(tuple(mesh.axis_names))
    return cast(Callable, _use_abstract_mesh)(mesh)


@functools.cache
def _find_lower_with_sharding_in_types() -> Callable:
    try:
        from jax.extend.mlir import lower_with_sharding_in_types as fn  # jax >= 0.9

        return fn
    except ImportError:
        pass
    # jax 0.7 - 0.8 have no public spelling of it; the private one is the only one.
    # (Only reached on the Explicit-axes path, which needs jax >= 0.7.)
    from jax._src.interpreters.mlir import lower_with_sharding_in_types as fn

    return fn


def lower_with_sharding_in_types(ctx: Any, op: Any, aval: Any) -> Any:
    """Annotate the lowered ``op`` with the sharding of ``aval``'s type."""
    return _find_lower_with_sharding_in_types()(ctx, op, aval)


# --- lowering ------------------------------------------------------------------------------


def is_partitioned(ctx: Any) -> bool:
    """Whether a lowering rule's ``ctx`` lowers into a program that XLA's SPMD partitioner
    splits: ``jax.jit`` over more than one device, or ``shard_map`` with a mesh axis of
    size > 1 left Auto.  Read from the lowering context's axis context (its
    ``num_devices``, or its ``mesh`` and ``manual_axes``), the same on every release."""
    axis_context = getattr(getattr(ctx, "module_context", None), "axis_context", None)
    num_devices = getattr(axis_context, "num_devices", None)
    if num_devices is not None:  # jit (ShardingContext)
        return num_devices > 1
    mesh = getattr(axis_context, "mesh", None)
    manual = getattr(axis_context, "manual_axes", None)
    if mesh is not None and manual is not None:  # shard_map (SPMDAxisContext)
        return any(size > 1 for name, size in mesh.shape.items() if name not in manual)
    return False  # pmap, or one device


def is_exporting(ctx: Any) -> bool:
    """Whether a lowering rule's ``ctx`` lowers for ``jax.export`` (a serialized program:
    no custom calls outside XLA's stable set).  Read from the module context's lowering
    parameters (``for_export``, on every supported release); ``False`` where absent."""
    params = getattr(getattr(ctx, "module_context", None), "lowering_parameters", None)
    return bool(getattr(params, "for_export", False))


# --- partitioning rules (``jax.experimental.custom_partitioning``) ------------------------
#
# A partition callback with a Shardy sharding rule (``def_partition(sharding_rule=...)``)
# from jax 0.5; before, only GSPMD's callbacks, and convt_jax keeps its convolution-free
# forms in partitioned programs there.


@functools.cache
def _custom_partitioning() -> Any:
    try:
        from jax.experimental.custom_partitioning import custom_partitioning
    except ImportError:  # pragma: no cover - every supported release has it
        return None
    if "sharding_rule" not in inspect.signature(custom_partitioning.def_partition).parameters:
        return None
    return custom_partitioning


#: Whether partitioned programs can run convt_jax's one-device forms per device.
HAS_PARTITIONING_RULES = _custom_partitioning() is not None


def custom_partitioning(fn: Callable, static_argnums: tuple[int, ...]) -> Any:
    """``jax.experimental.custom_partitioning(fn, static_argnums)``."""
    return _custom_partitioning()(fn, static_argnums=static_argnums)


def def_partition(cp: Any, partition: Callable, infer: Callable, rule: Callable) -> None:
    """Give ``cp`` its partition callback, GSPMD's inference and Shardy's rule."""
    cp.def_partition(
        partition=partition,
        infer_sharding_from_operands=infer,
        sharding_rule=rule,
        decode_shardings=False,
    )


def require_devices_during_lowering(*primitives: Any) -> bool:
    """Have ``jax.jit`` give the lowering of ``primitives`` its device assignment and mesh
    (which a partitioning rule's lowering needs), as JAX's own custom-partitioned
    primitives do.  JAX has no public spelling of this registry
    (``jax._src.dispatch.prim_requires_devices_during_lowering``, the same from 0.4.36 to
    0.10); where it is missing, False, and partitioned programs keep the
    convolution-free forms."""
    try:
        from jax._src import dispatch
    except ImportError:  # pragma: no cover
        return False
    registry = getattr(dispatch, "prim_requires_devices_during_lowering", None)
    if not isinstance(registry, set):
        return False
    registry.update(primitives)
    return True


def partitioner_sees_mesh(ctx: Any) -> bool:
    """Whether a partitioning callback in a lowering ``ctx`` gets named shardings on a
    mesh: a ``jax.jit`` whose shardings carry one (its axis context's ``abstract_mesh``);
    not ``shard_map`` with Auto axes left (no mesh to decode them on)."""
    axis_context = getattr(getattr(ctx, "module_context", None), "axis_context", None)
    if getattr(axis_context, "manual_axes", None) is not None:
        return False
    return getattr(axis_context, "abstract_mesh", None) is not None


# --- XLA's foreign function interface ---------------------------------------------------
#
# ``jax.ffi`` from jax 0.4.39 / 0.5; ``jax.extend.ffi`` before (0.4.38), with the same
# calls (``ffi_call(target, result_shape_dtypes)`` returning a callable).


@functools.cache
def _ffi() -> Any:
    module = getattr(jax, "ffi", None)
    if module is not None and hasattr(module, "ffi_call"):
        return module
    try:
        return importlib.import_module("jax.extend.ffi")  # jax 0.4.38
    except ImportError:
        return None


def ffi_include_dir() -> str | None:
    """The folder of the XLA FFI headers that ship in jaxlib, or None without ``jax.ffi``."""
    ffi = _ffi()
    return None if ffi is None else ffi.include_dir()


def register_ffi_target(name: str, fn_pointer: Any) -> None:
    """Register a C function (a ``ctypes`` function) as the CPU FFI target ``name``."""
    ffi = _ffi()
    ffi.register_ffi_target(name, ffi.pycapsule(fn_pointer), platform="cpu")


def ffi_call(name: str, result: Any) -> Callable:
    """``jax.ffi.ffi_call(name, result)``: a function of the operands and attributes."""
    return _ffi().ffi_call(name, result)


def jaxlib_version() -> str:
    """The installed jaxlib's version (the FFI headers and ABI a handler is built for)."""
    import jaxlib

    return getattr(jaxlib, "__version__", None) or jax.__version__


# --- configuration ------------------------------------------------------------------------


def enable_x64(new_val: bool = True) -> contextlib.AbstractContextManager:
    """A context manager that turns 64-bit types on (``True``) or off (``False``)."""
    if hasattr(jax, "enable_x64"):  # jax >= 0.8
        return jax.enable_x64(new_val)
    experimental = importlib.import_module("jax.experimental")  # jax < 0.8
    return experimental.enable_x64(new_val)
