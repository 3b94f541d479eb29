"""Autotuning: pick a lowering by compiling and timing the candidates on this machine.

``choose(kind, key, candidates, args, default)`` returns the name of the
fastest of ``candidates`` (functions of the same arguments that compute the
same thing) for arguments of the shapes and dtypes in ``args``.  It is off by
default and then returns ``default`` at once; turn it on with
``convt_jax.autotune()`` (a function and a context manager, in the spirit of
``torch.backends.cudnn.benchmark``) or with ``CONVT_JAX_AUTOTUNE=1`` in the
environment before ``convt_jax`` is imported.

How a choice is made.  Each candidate is compiled with
``jax.jit(fn).lower(*args).compile()`` (a candidate whose tracing or
compilation raises an ordinary ``Exception`` is skipped), then run on
concrete stand-in arrays of the given shapes and dtypes (deterministic
pseudo-random values, all finite): one warm-up run, then several timed runs
taken in turn across the candidates (so drift on a shared machine hits all of
them alike); each candidate's fastest run is kept (on a busy machine the
noise only ever adds time, so the minimum is the steadiest estimate; the
medians are recorded beside it).  ``default`` is kept unless another
candidate is at least ``MARGIN`` (10 %) faster, so timing noise does not move
the choice away from the rule's pick.  The stand-ins are ordinary
arrays and the executables run eagerly, so ``choose`` may be called while
``jax.jit``, ``jax.grad`` or ``jax.vmap`` trace the caller (only the shapes
and dtypes of ``args`` are read; they may be tracers).

Off by default: tuning a layer compiles every candidate form of its forward
pass and of both gradients, which multiplies the first call's compile time
(about 10x for one 2-D layer's forward and backward on XLA:CPU), paid once
per configuration and machine; the rule it replaces is measured, and a tuned
form pays this back only over many steps (a training run).

The key of a choice.  ``(kind, key)`` from the caller (``kind`` names what is
chosen, e.g. ``"forward"``, ``"dx"``, ``"dw"``; ``key`` holds everything the
speed depends on: shapes, dtypes, layout, settings), extended here with the
shapes and dtypes of ``args``, the candidate names and ``default``, and with
the machine: the platform and device kind of ``jax.devices()[0]`` (on
XLA:CPU, whose device kind is only ``"cpu"``, with the CPU model name and the
number of usable cores), the jax version and the convt_jax version.  ``key``
must be built from values whose ``repr`` is the same in every process (ints,
strings, bools, ``None``, numpy dtypes, enums, tuples and named tuples of
these).

The cache.  Choices are kept in memory and in one JSON file per machine kind
and version pair, ``autotune-<platform>-<device kind>-jax<version>-
convt_jax<version>.json`` in ``$CONVT_JAX_CACHE_DIR``, else
``$XDG_CACHE_HOME/convt_jax``, else ``~/.cache/convt_jax``.  The file is
written atomically (a temporary file, then ``os.replace``) after merging
what other processes wrote meanwhile; a file that cannot be read or parsed
is ignored with a warning (and replaced on the next write), and a directory
that cannot be written leaves the cache in memory only (one warning).
``convt_jax.tuning_cache()`` lists the choices with their measured times and
``convt_jax.clear_tuning_cache()`` forgets them.

Reproducibility.  Once a configuration has been timed, its choice is read
back from the cache by every later call, in this process and in every later
process on the same machine kind with the same jax and convt_jax versions:
the same call runs the same program and gives bit-identical results run to
run.  Clearing the cache, or moving to another machine kind or version,
times the candidates again and may pick a different form; every form computes
the same mathematical result, so the numbers then agree up to floating-point
rounding, not bit for bit.  To pin a form, pass an explicit ``method`` (no
tuning is done then), or copy the cache file to machines of the same kind.

The switch is one global setting, read when a call is traced: a function
that ``jax.jit`` has already traced keeps the choice it made then.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import re
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from . import _args

__all__ = ["autotune", "choose", "clear_tuning_cache", "enabled", "tuning_cache"]

ENV_SWITCH = "CONVT_JAX_AUTOTUNE"
ENV_CACHE_DIR = "CONVT_JAX_CACHE_DIR"
FORMAT = 1
MARGIN = 0.10  # another candidate must be this much faster than ``default`` to replace it
MIN_RUNS = 3  # timed runs per candidate, at least ...
MAX_RUNS = 7  # ... and at most; more only while the candidates' total stays under BUDGET_S
BUDGET_S = 1.0

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")

_lock = threading.RLock()
_memory: dict[str, dict[str, Any]] = {}  # full key -> entry {"kind", "key", "choice", "times"}
_loaded: set[str] = set()  # cache files already merged into _memory
_warned: set[str] = set()  # one warning per problem and file


def _initial_switch() -> bool:
    value = os.environ.get(ENV_SWITCH)
    if value is None:
        return False
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    warnings.warn(
        f"{ENV_SWITCH}={value!r} is not one of 1/0 (true/false, yes/no, on/off); "
        "autotuning stays off",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


_enabled = _initial_switch()


def enabled() -> bool:
    """Whether ``method="auto"`` times the candidate lowerings (see :class:`autotune`)."""
    return _enabled


class autotune(contextlib.AbstractContextManager):  # noqa: N801  (reads as a function)
    """Turn timing-based choice of the lowering on or off, globally or for a ``with`` block.

    With autotuning on, ``method="auto"`` compiles and times the applicable
    lowerings (and backward forms) once per configuration on this machine,
    keeps the fastest in memory and in the user's cache directory, and uses
    it from then on; with it off (the default), ``auto`` follows a fixed rule.
    An explicit ``method`` is never tuned.  ``CONVT_JAX_AUTOTUNE=1`` turns it
    on for the whole process.

    The setting is read when a call is traced: a function ``jax.jit`` has
    already traced keeps the lowering it chose then.

    Args:
      enabled: ``True`` to time and choose, ``False`` for the fixed rule.

    Called as a function (``convt_jax.autotune()``,
    ``convt_jax.autotune(False)``) it sets the global switch; used as a
    context manager, the previous setting comes back at the end of the block.

    Examples:
      >>> import convt_jax
      >>> with convt_jax.autotune():
      ...     pass  # calls first traced here use the forms measured fastest
    """

    def __init__(self, enabled: bool = True):
        enabled = _args.check_autotune_switch(enabled)
        global _enabled
        with _lock:
            self._previous = _enabled
            _enabled = enabled

    def __repr__(self) -> str:
        return f"convt_jax.autotune(enabled={_enabled})"

    def __exit__(self, *exc_info):
        global _enabled
        with _lock:
            _enabled = self._previous
        return None


# --- the machine and the cache file --------------------------------------------------------


def _library_version() -> str:
    try:
        return str(importlib.import_module("convt_jax").__version__)
    except (ImportError, AttributeError):
        return "unknown"


_cpu: str | None = None


def _cpu_model() -> str:
    """The host CPU's model name and usable core count (XLA:CPU's device kind is just "cpu")."""
    global _cpu
    if _cpu is None:
        model = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        if not model:
            import platform

            model = platform.processor() or platform.machine() or "unknown"
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cores = os.cpu_count() or 0
        _cpu = f"{model} x{cores}"
    return _cpu


def _machine() -> dict[str, str]:
    device = jax.devices()[0]
    kind = str(device.device_kind)
    if device.platform == "cpu":
        kind = f"{kind} {_cpu_model()}"
    return {
        "platform": device.platform,
        "device_kind": kind,
        "jax": jax.__version__,
        "convt_jax": _library_version(),
    }


def cache_dir() -> str:
    """The directory of the tuning cache files (see the module docstring)."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return os.path.expanduser(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = xdg if xdg else os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "convt_jax")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "unknown"


def cache_file(machine: Mapping[str, str] | None = None) -> str:
    """The path of this machine's tuning cache file."""
    m = _machine() if machine is None else machine
    name = (
        f"autotune-{_slug(m['platform'])}-{_slug(m['device_kind'])[:80]}"
        f"-jax{_slug(m['jax'])}-convt_jax{_slug(m['convt_jax'])}.json"
    )
    return os.path.join(cache_dir(), name)


def _warn_once(tag: str, message: str) -> None:
    if tag not in _warned:
        _warned.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _valid_entry(entry) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("kind"), str)
        and isinstance(entry.get("key"), str)
        and isinstance(entry.get("choice"), str)
        and isinstance(entry.get("times"), dict)
    )


def _read_file(
    path: str, machine: Mapping[str, str], quiet: bool = False
) -> dict[str, dict[str, Any]]:
    """The entries of a cache file; ``{}`` (with one warning) if it is unreadable or corrupt."""
    warn = (lambda tag, message: None) if quiet else _warn_once
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as e:
        warn(
            "read:" + path,
            f"convt_jax: ignoring the autotuning cache {path!r}, which "
            f"cannot be read ({type(e).__name__}: {e}); it will be rewritten",
        )
        return {}
    if (
        not isinstance(data, dict)
        or data.get("format") != FORMAT
        or any(data.get(k) != v for k, v in machine.items())
        or not isinstance(data.get("entries"), dict)
        or not all(isinstance(k, str) and _valid_entry(v) for k, v in data["entries"].items())
    ):
        warn(
            "read:" + path,
            f"convt_jax: ignoring the autotuning cache {path!r}: not a "
            f"format-{FORMAT} cache for this machine and version; it will be rewritten",
        )
        return {}
    return data["entries"]


def _write_file(path: str, machine: Mapping[str, str], entries: Mapping[str, dict]) -> None:
    """Merge ``entries`` into the file at ``path``, atomically; memory-only if it fails."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Keep what other processes wrote meanwhile; a corrupt file was reported when read.
        merged = dict(_read_file(path, machine, quiet=True))
        merged.update(entries)
        data = {"format": FORMAT, **machine, "entries": merged}
        fd, tmp = tempfile.mkstemp(prefix=".autotune-", suffix=".tmp", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        _warn_once(
            "write:" + path,
            f"convt_jax: cannot write the autotuning cache {path!r} "
            f"({type(e).__name__}: {e}); choices are kept in memory only",
        )


def _load(machine: Mapping[str, str]) -> str:
    """Merge this machine's cache file into memory (once per file); return its path."""
    path = cache_file(machine)
    if path not in _loaded:
        _loaded.add(path)
        for k, entry in _read_file(path, machine).items():
            _memory.setdefault(k, entry)
    return path


# --- timing ----------------------------------------------------------------------------------


def _stand_in(spec, rng: np.random.Generator) -> np.ndarray:
    """A finite, deterministic array of ``spec``'s shape and dtype."""
    shape, dtype = tuple(spec.shape), np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.bool_):
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        low = 0 if np.issubdtype(dtype, np.unsignedinteger) else -3
        return rng.integers(low, 4, size=shape).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    # float64/32/16 and the ml_dtypes floats (bfloat16, float8...): through float32.
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


def _block(out) -> None:
    for leaf in jax.tree_util.tree_leaves(out):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()


def _measure(
    candidates: Mapping[str, Callable], args: Sequence[Any]
) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, str]]:
    """Fastest and median seconds per candidate (``None`` for one that failed), and the
    failures' errors."""
    specs = [jax.ShapeDtypeStruct(tuple(a.shape), a.dtype) for a in args]
    compiled, errors = {}, {}
    for name, fn in candidates.items():
        try:
            compiled[name] = jax.jit(fn).lower(*specs).compile()
        except Exception as e:  # noqa: BLE001  (a form that cannot compile is not a choice)
            errors[name] = f"{type(e).__name__}: {e}"[:500]
    if not compiled:
        return dict.fromkeys(candidates), dict.fromkeys(candidates), errors
    rng = np.random.default_rng(0)
    host = [_stand_in(s, rng) for s in specs]
    # Concrete arrays even while an outer jit/grad/vmap traces the caller.
    with jax.ensure_compile_time_eval():
        inputs = [jax.device_put(h) for h in host]
        runs: dict[str, list[float]] = {}
        for name, exe in list(compiled.items()):  # warm-up
            try:
                _block(exe(*inputs))
                runs[name] = []
            except Exception as e:  # noqa: BLE001  (e.g. out of memory at run time)
                errors[name] = f"{type(e).__name__}: {e}"[:500]
                del compiled[name]
        total = 0.0
        for r in range(MAX_RUNS):
            if r >= MIN_RUNS and total > BUDGET_S:
                break
            for name, exe in compiled.items():
                start = time.perf_counter()
                _block(exe(*inputs))
                elapsed = time.perf_counter() - start
                runs[name].append(elapsed)
                total += elapsed
        del inputs
    fastest = {name: (min(runs[name]) if name in runs else None) for name in candidates}
    medians = {
        name: (statistics.median(runs[name]) if name in runs else None) for name in candidates
    }
    return fastest, medians, errors


def _pick(times: Mapping[str, float | None], default: str) -> str:
    measured = {n: t for n, t in times.items() if t is not None and math.isfinite(t)}
    if not measured:
        return default
    best = min(measured, key=lambda n: (measured[n], n != default))
    base = measured.get(default)
    if base is not None and measured[best] > (1.0 - MARGIN) * base:
        return default
    return best


# --- the public hook --------------------------------------------------------------------------


def choose(
    kind: str, key: tuple, candidates: Mapping[str, Callable], args: Sequence[Any], default: str
) -> str:
    """The name of the fastest of ``candidates`` on this machine, or ``default``.

    Args:
      kind: what is chosen (``"forward"``, ``"dx"``, ``"dw"``, ...): part of the key.
      key: a tuple of everything the speed depends on besides ``args``' shapes
        and dtypes (layout, settings...), built from values with a stable
        ``repr`` (ints, strings, bools, ``None``, dtypes, tuples).
      candidates: name -> function of ``*args``; every function computes the same thing.
      args: the arguments' shapes and dtypes: ``jax.ShapeDtypeStruct`` or any
        object with ``.shape`` and ``.dtype`` (not read: tracers are fine).
      default: the name returned when tuning is off, when nothing could be
        timed, and unless another candidate is ``MARGIN`` faster.  Need not be
        among ``candidates`` only if tuning is off.

    Returns:
      A name in ``candidates`` (or ``default``), the same for the same key in
      every later call and process on this machine (see the module docstring).
    """
    if not _enabled:
        return default
    if not candidates:
        return default
    if default not in candidates:
        raise ValueError(f"default={default!r} must be one of the candidates {sorted(candidates)}")
    machine = _machine()
    signature = tuple((tuple(int(d) for d in a.shape), str(np.dtype(a.dtype))) for a in args)
    key_text = repr((kind, key, signature, tuple(sorted(candidates)), default))
    full = repr((tuple(machine.values()), key_text))
    with _lock:
        path = _load(machine)
        hit = _memory.get(full)
        if hit is not None and hit["choice"] in candidates:
            return hit["choice"]
        times, medians, errors = _measure(candidates, args)
        choice = _pick(times, default)
        entry = {
            "kind": kind,
            "key": key_text,
            "choice": choice,
            "times": times,
            "medians": medians,
            "machine": dict(machine),
        }
        if errors:
            entry["errors"] = errors
        _memory[full] = entry
        _write_file(path, machine, {full: entry})
        return choice


def tuning_cache() -> list[dict[str, Any]]:
    """The choices known on this machine: one dict per tuned configuration.

    Returns:
      A list of dicts, one per configuration tuned in this process or read
      from this machine's cache file: ``kind``, ``key`` (the full key as
      text), ``choice`` (the name kept), ``times`` (each candidate's fastest
      run in seconds, what the choice compares; ``None`` for one that failed
      to compile or run), ``medians`` (the median runs), ``machine`` and, if a
      candidate failed, ``errors``.  A snapshot: changing it changes nothing.

    Examples:
      >>> import convt_jax
      >>> isinstance(convt_jax.tuning_cache(), list)
      True
    """
    with _lock:
        _load(_machine())
        return [json.loads(json.dumps(entry)) for entry in _memory.values()]


def clear_tuning_cache(disk: bool = True) -> None:
    """Forget the tuned choices: the next traced call of each configuration times again.

    Args:
      disk: also delete the cache files in the cache directory (every machine
        kind and version).  With ``disk=False`` only memory is cleared, and
        the choices saved on disk are read back at the next call.

    Returns:
      ``None``.

    Functions that ``jax.jit`` has already traced keep the lowering they chose.
    """
    with _lock:
        _memory.clear()
        _loaded.clear()
        _warned.clear()
        if disk:
            directory = cache_dir()
            try:
                names = os.listdir(directory)
            except OSError:
                names = []
            for name in names:
                if name.startswith("autotune-") and name.endswith(".json"):
                    try:
                        os.unlink(os.path.join(directory, name))
                    except OSError as e:
                        warnings.warn(
                            f"convt_jax: cannot delete the autotuning cache file "
                            f"{os.path.join(directory, name)!r} ({e})",
                            RuntimeWarning,
                            stacklevel=2,
                        )
