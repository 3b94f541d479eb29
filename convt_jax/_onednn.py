"""oneDNN's convolution kernels as the CPU backend, through XLA's FFI.

The forward, ``dx`` and ``dw`` of the primitive can run as one FFI call each to oneDNN
(``_onednn.cc``): on CPU, float32, bfloat16 and float16, 1-3 spatial axes, either layout,
any groups, stride, dilation and padding.  bfloat16 / float16 operands run oneDNN's native
half-precision kernels (float32 accumulation, the result rounded once, as PyTorch's) where
the CPU has the instructions for them (:func:`native_half`) and oneDNN has a direct kernel
for that primitive in that dtype; elsewhere they are converted to float32 around the
float32 kernels (e.g. oneDNN 3.2's float16 weight gradient, which has only its reference
kernel).  They are forms of the
method registry (:mod:`._methods`, name ``"onednn"``) like the XLA lowerings, chosen by
``"auto"`` wherever they apply, pinned by ``method="onednn"``.

The handler is compiled on first use, not at installation: against the XLA FFI headers of
the jaxlib that runs it (``jax.ffi.include_dir()``) and the oneDNN of the ``onednn`` extra
(the ``onednn-cpu-gomp`` and ``onednn-devel-cpu-gomp`` wheels), with the C++ compiler on
``PATH`` (``$CXX``, else ``c++``), into a cache folder (``$CONVT_JAX_CACHE_DIR``, else
``$XDG_CACHE_HOME/convt_jax``, else ``~/.cache/convt_jax``), keyed by the source, the
jaxlib and oneDNN versions and the compiler; later processes load the cached library.  A
new jaxlib gets its own build.  Where any step fails (another OS or CPU, no compiler, the
extra not installed, a build error) or ``CONVT_JAX_ONEDNN=0`` is set, nothing is raised:
the XLA forms run, and :func:`backend_info` says which backend is in use and why.  Where the
``onednn`` extra is installed on Linux x86-64 (or ``CONVT_JAX_ONEDNN_ROOT`` is set) and the
backend still cannot be built or loaded, a :class:`BackendWarning` says so once, with the
reason and the fix.

What stays on the XLA forms: float64 and complex dtypes (oneDNN has no such kernels),
``preferred_element_type`` other than float32, empty operands, programs that XLA's SPMD
partitioner splits (an FFI call is opaque to it; see ``_methods.partitioned``), programs
lowered for export (``jax.export``: a custom call is not a stable, portable op) and every
platform but the CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from . import _compat
from . import _geometry as geo
from ._geometry import Config

_SOURCE = pathlib.Path(__file__).with_name("_onednn.cc")
_TARGETS = {
    "forward": "convt_jax_onednn_forward",
    "input_grad": "convt_jax_onednn_input_grad",
    "weight_grad": "convt_jax_onednn_weight_grad",
}
#: The environment switch: ``CONVT_JAX_ONEDNN=0`` (or ``false``, ``off``, ``no``) keeps
#: every call on the XLA forms.
ENV_SWITCH = "CONVT_JAX_ONEDNN"
_FLOAT32 = np.dtype(np.float32)
_DTYPES = (_FLOAT32, np.dtype(jnp.bfloat16), np.dtype(np.float16))
#: The handler's dtype codes (``convt_jax_onednn_probe``, ``convt_jax_onednn_native_half``).
_CODES = {np.dtype(np.float32): 0, np.dtype(jnp.bfloat16): 1, np.dtype(np.float16): 2}


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    """Which CPU backend convt_jax uses in this process, and why.

    Attributes:
        backend: ``"onednn"`` when oneDNN's kernels are loaded, else ``"xla"``.
        reason: Why that backend: the library loaded, or the step that failed.
        onednn_version: oneDNN's version (``"3.2.0"``), when loaded.
        library: The path of the compiled handler, when loaded.
    """

    backend: str
    reason: str
    onednn_version: str | None = None
    library: str | None = None


class BackendWarning(RuntimeWarning):
    """The ``onednn`` extra is installed but its CPU backend cannot be built or loaded here,
    so convt_jax runs on XLA's own (slower) convolutions.

    Issued once per process, at the first call that asks for the backend, with the reason
    (no C++ compiler, a failed build, ...) and how to fix it.  Silence it with
    ``CONVT_JAX_ONEDNN=0`` (which keeps the XLA forms without trying) or with
    :mod:`warnings`.

    Examples:
        >>> import warnings
        >>> import convt_jax as ct
        >>> warnings.filterwarnings("ignore", category=ct.BackendWarning)
    """


class _Unavailable(Exception):
    pass


_lock = threading.Lock()
_state: BackendInfo | None = None
_library: ctypes.CDLL | None = None
_switched_off = 0  # > 0 inside switched_off()


@contextlib.contextmanager
def switched_off() -> Iterator[None]:
    """Within the block, choose no oneDNN form (the XLA rule's choice, as without the
    backend): for comparing the two and for tests of the XLA forms.  Programs traced
    before are not traced again."""
    global _switched_off
    _switched_off += 1
    try:
        yield
    finally:
        _switched_off -= 1


def _disabled_by_env() -> bool:
    return os.environ.get(ENV_SWITCH, "").strip().lower() in ("0", "false", "off", "no")


def _distribution_file(dist: str, suffix: str) -> pathlib.Path:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise _Unavailable(
            f"the {dist} package is not installed (pip install 'convt_jax[onednn]')"
        ) from None
    for f in files:
        name = "/" + str(f).replace("\\", "/")
        if name.endswith("/" + suffix):
            path = pathlib.Path(str(f.locate())).resolve()
            if path.exists():
                return path
    raise _Unavailable(f"{suffix} not found among the files of {dist}")


def _onednn_paths() -> tuple[pathlib.Path, pathlib.Path]:
    """(the include folder, the folder of libdnnl.so.3)."""
    root = os.environ.get("CONVT_JAX_ONEDNN_ROOT")
    if root:
        include, lib = pathlib.Path(root, "include"), pathlib.Path(root, "lib")
        if not (include / "oneapi" / "dnnl" / "dnnl.hpp").exists():
            raise _Unavailable(
                f"no include/oneapi/dnnl/dnnl.hpp under CONVT_JAX_ONEDNN_ROOT={root}"
            )
        if not (lib / "libdnnl.so.3").exists():
            raise _Unavailable(f"no lib/libdnnl.so.3 under CONVT_JAX_ONEDNN_ROOT={root}")
        return include, lib
    header = _distribution_file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
    library = _distribution_file("onednn-cpu-gomp", "libdnnl.so.3")
    return header.parents[2], library.parent


def _cache_dir() -> pathlib.Path:
    base = os.environ.get("CONVT_JAX_CACHE_DIR")
    if base:
        return pathlib.Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(xdg, "convt_jax")


def _compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and (path := shutil.which(name)):
            return path
    raise _Unavailable("no C++ compiler found ($CXX, c++, g++ or clang++ on PATH)")


def _build(include: pathlib.Path, libdir: pathlib.Path) -> pathlib.Path:
    """The compiled handler, from the cache or compiled now."""
    cxx = _compiler()
    ffi_include = _compat.ffi_include_dir()
    flags = ["-O2", "-std=c++17", "-shared", "-fPIC", "-w"]
    try:
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, timeout=60
        ).stdout.splitlines()[:1]
    except (OSError, subprocess.SubprocessError) as e:
        raise _Unavailable(f"the C++ compiler {cxx} does not run: {e}") from None
    key = hashlib.sha256()
    for part in (
        _SOURCE.read_bytes(),
        _compat.jaxlib_version().encode(),
        str(ffi_include).encode(),
        str(libdir).encode(),
        cxx.encode(),
        "".join(version).encode(),
        " ".join(flags).encode(),
    ):
        key.update(part + b"\0")
    folder = _cache_dir()
    target = folder / f"convt_jax_onednn-{key.hexdigest()[:20]}.so"
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _Unavailable(f"cannot create the cache folder {folder}: {e}") from None
    # Compiled to a temporary name and renamed: processes building at once never load a
    # half-written file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
    os.close(fd)
    cmd = [
        cxx,
        *flags,
        f"-I{ffi_include}",
        f"-I{include}",
        str(_SOURCE),
        "-o",
        tmp,
        f"-L{libdir}",
        "-l:libdnnl.so.3",
        f"-Wl,-rpath,{libdir}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        os.unlink(tmp)
        raise _Unavailable(f"compiling the oneDNN handler failed: {e}") from None
    if proc.returncode != 0:
        os.unlink(tmp)
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise _Unavailable(f"compiling the oneDNN handler failed ({' '.join(cmd)}):\n{tail}")
    os.replace(tmp, target)
    return target


def _extra_installed() -> bool:
    """Whether the user asked for the backend: the ``onednn`` extra's packages are installed
    or ``CONVT_JAX_ONEDNN_ROOT`` names a oneDNN."""
    if os.environ.get("CONVT_JAX_ONEDNN_ROOT"):
        return True
    try:
        importlib.metadata.distribution("onednn-cpu-gomp")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _warn_unavailable(reason: str) -> None:
    warnings.warn(
        "convt_jax: the oneDNN CPU backend (the 'onednn' extra, installed) cannot be used, "
        f"so every layer runs on XLA's slower convolutions: {reason}. Fix that (e.g. install a "
        "C++ compiler: apt-get install g++; the backend is compiled on first use), or set "
        f"{ENV_SWITCH}=0 to use XLA's convolutions without this warning "
        "(convt_jax.backend_info() says which backend is in use and why).",
        BackendWarning,
        stacklevel=2,
    )


def _load() -> BackendInfo:
    global _library
    if _disabled_by_env():
        return BackendInfo("xla", f"switched off by {ENV_SWITCH}={os.environ[ENV_SWITCH]}")
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        return BackendInfo(
            "xla",
            f"the oneDNN backend is built for Linux x86-64 only (this is "
            f"{sys.platform} {platform.machine()})",
        )
    if _compat.ffi_include_dir() is None:
        reason = f"jax {jax.__version__} has no jax.ffi"
        if _extra_installed():
            _warn_unavailable(reason)
        return BackendInfo("xla", reason)
    try:
        include, libdir = _onednn_paths()
        path = _build(include, libdir)
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            raise _Unavailable(f"loading {path} failed: {e}") from None
        for target in _TARGETS.values():
            _compat.register_ffi_target(target, getattr(lib, target))
    except _Unavailable as e:
        if _extra_installed():
            _warn_unavailable(str(e))
        return BackendInfo("xla", str(e))
    _library = lib
    v = lib.convt_jax_onednn_version()
    version = f"{v // 10000}.{v // 100 % 100}.{v % 100}"
    return BackendInfo("onednn", f"oneDNN {version} loaded from {libdir}", version, str(path))


def is_switched_off() -> bool:
    """Whether the caller is inside :func:`switched_off`."""
    return _switched_off > 0


def backend_info() -> BackendInfo:
    """Which CPU backend convt_jax uses in this process, and why (builds it on first call).

    ``backend`` is ``"onednn"`` when oneDNN's kernels are loaded (``pip install
    "convt_jax[onednn]"`` on Linux x86-64 with a C++ compiler), else ``"xla"`` with the
    reason (e.g. ``CONVT_JAX_ONEDNN=0``, no compiler, the extra not installed).

    Returns:
        A :class:`BackendInfo`.
    """
    global _state
    with _lock:
        if _state is None:
            _state = _load()
        return _state


def available() -> bool:
    """Whether oneDNN's kernels are loaded (building them on first call)."""
    return backend_info().backend == "onednn"


def implementations() -> list[str]:
    """oneDNN's names of the kernels that have run so far in this process (e.g.
    ``jit:avx512_core``); primitives only probed by :func:`unsupported` are not counted."""
    if _library is None:
        return []
    buf = ctypes.create_string_buffer(4096)
    _library.convt_jax_onednn_impls(buf, len(buf))
    return [s for s in buf.value.decode().split(",") if s]


def supports_dtype(dtype) -> bool:
    """float32, bfloat16 and float16 (natively or computed in float32: :func:`compute_dtype`)."""
    return np.dtype(dtype) in _DTYPES


def native_half(dtype) -> bool:
    """Whether this CPU, as oneDNN sees it, has native instructions for ``dtype``
    (bfloat16: AVX512-BF16 or AMX; float16: AVX512-FP16 or AMX-FP16; either: AVX-NE-CONVERT).
    ``ONEDNN_MAX_CPU_ISA`` (e.g. ``AVX512_CORE``) lowers what oneDNN sees.  False for float32
    and where the backend is not loaded."""
    code = _CODES.get(np.dtype(dtype), 0)
    if code == 0 or not available() or _library is None:
        return False
    return bool(_library.convt_jax_onednn_native_half(ctypes.c_int64(code)))


#: The three primitives of a problem, in the handler's order.
KINDS = ("forward", "input_grad", "weight_grad")
#: The fewest channels per group a half-precision primitive sums over to run natively.
#: oneDNN's bfloat16 / float16 kernels consume the summed channels in blocks of 16 to 32
#: (a vector of float32 sums, an AMX tile row), zero-filled: a layer with 3 output channels
#: (an image decoder's last layer) used 3 of each block in its input gradient, which on a
#: Xeon with AMX took 1.5x PyTorch's time natively and 0.97x converted to float32.
HALF_MIN_CHANNELS = 16


def compute_dtype(
    config: Config, x_shape: Sequence[int], w_shape: Sequence[int], dtype, kind: str
) -> np.dtype:
    """The dtype oneDNN's kernel for ``kind`` (one of :data:`KINDS`) computes a problem in:
    ``dtype`` itself for bfloat16 / float16 where the CPU has native instructions for it
    and oneDNN gives a direct kernel (neither its reference kernel nor its GEMM-based
    fallback) for that primitive in that dtype, and the primitive sums over at least
    :data:`HALF_MIN_CHANNELS` channels per group; float32 otherwise (the operands are then
    converted around the float32 kernel, whose choice :func:`unsupported` has checked)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32 or not native_half(dtype):
        return np.dtype(np.float32)
    x_shape = tuple(int(d) for d in x_shape)
    w_shape = tuple(int(d) for d in w_shape)
    # The channels the primitive sums over: the forward over the input's, the input
    # gradient over the output's (the weight gradient sums over the batch and space).
    summed = {"forward": w_shape[0], "input_grad": w_shape[1] * config.groups}.get(kind)
    if summed is not None and summed // config.groups < HALF_MIN_CHANNELS:
        return np.dtype(np.float32)
    native = _native_kernels(config, x_shape, w_shape, dtype)[KINDS.index(kind)]
    return dtype if native else np.dtype(np.float32)


def unsupported(config: Config, x_shape: Sequence[int], w_shape: Sequence[int]) -> str | None:
    """``None`` when the oneDNN forms compute the configuration, else why not (the dtype is
    checked by :func:`supports_dtype`)."""
    if not 1 <= config.ndim <= 3:
        return f"it needs 1-3 spatial axes (got {config.ndim})"
    if config.preferred_element_type is not None and np.dtype(
        config.preferred_element_type
    ) != np.dtype(np.float32):
        return (
            "it computes in float32 (got preferred_element_type="
            f"{np.dtype(config.preferred_element_type).name})"
        )
    if 0 in tuple(x_shape) or 0 in tuple(w_shape):
        return "it needs non-empty operands"
    if _switched_off:
        return "the oneDNN backend is switched off in this block (_onednn.switched_off)"
    info = backend_info()
    if info.backend != "onednn":
        return f"the oneDNN backend is not in use: {info.reason}"
    return _probe(config, tuple(int(d) for d in x_shape), tuple(int(d) for d in w_shape))


def _logical(config: Config, shape: Sequence[int]) -> list[int]:
    """An activation shape in oneDNN's order (N, C, *S)."""
    c_ax = geo.channel_axis(config, len(shape))
    return [shape[0], shape[c_ax], *geo.spatial_shape(config, shape)]


def _probe_statuses(
    config: Config,
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    dtype: np.dtype,
    stop_at_failure: bool = False,
) -> list[tuple[int, str]]:
    """Build the three primitives of a problem with operands of ``dtype`` (the forward's
    output in the configuration's output dtype, the weight gradient in float32): the
    handler's status (0 a direct kernel, 3 the GEMM-based fallback, 2 the reference kernel,
    1 none) and the implementation's name, or why none, for each (only up to the first
    1 or 2 with ``stop_at_failure``)."""
    lib = _library
    if lib is None:
        return [(1, "the oneDNN backend is not loaded")] * (1 if stop_at_failure else 3)
    nd = config.ndim
    x_shape = (1,) * (nd + 2 - len(x_shape)) + x_shape  # unbatched: one batch row
    y_shape = geo.output_shape(config, x_shape, w_shape)

    def arr(values):
        return (ctypes.c_int64 * len(values))(*values)

    args = (
        ctypes.c_int64(nd),
        ctypes.c_int64(config.groups),
        ctypes.c_int64(int(config.channels_last)),
        arr(_logical(config, x_shape)),
        arr(_logical(config, y_shape)),
        arr(w_shape[2:]),
        arr(config.stride),
        arr(config.dilation),
        arr([lo for lo, _ in config.crops]),
        arr([hi for _, hi in config.crops]),
    )
    code = _CODES[np.dtype(dtype)]
    out_code = _CODES.get(np.dtype(config.preferred_element_type or dtype), code)
    dtypes = (  # (x, y, weight) of each kind
        (code, out_code, code),  # forward: x, w -> y
        (code, code, code),  # input gradient: g, w -> dx
        (code, code, 0),  # weight gradient: g, x -> dw in float32
    )
    buf = ctypes.create_string_buffer(1024)
    statuses = []
    for kind in range(3):
        status = lib.convt_jax_onednn_probe(
            ctypes.c_int64(kind), *args, arr(dtypes[kind]), buf, ctypes.c_int64(len(buf))
        )
        statuses.append((int(status), buf.value.decode()))
        if stop_at_failure and status in (1, 2):
            break
    return statuses


_KIND_NAMES = ("forward", "input gradient", "weight gradient")


@functools.lru_cache(maxsize=4096)
def _probe(config: Config, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> str | None:
    """Build the three float32 primitives of a problem; why not, where oneDNN cannot
    compute it or has only its reference kernel (orders of magnitude slower than the XLA
    forms)."""
    for name, (status, text) in zip(
        _KIND_NAMES,
        _probe_statuses(config, x_shape, w_shape, _FLOAT32, stop_at_failure=True),
        strict=False,  # (up to the first failure)
    ):
        if status == 1:
            return f"oneDNN cannot compute its {name}: {text}"
        if status == 2:
            return f"oneDNN has only its reference kernel for its {name} ({text})"
    return None


@functools.lru_cache(maxsize=4096)
def _native_kernels(
    config: Config, x_shape: tuple[int, ...], w_shape: tuple[int, ...], dtype: np.dtype
) -> tuple[bool, ...]:
    """For each of :data:`KINDS`: whether oneDNN has a direct kernel in ``dtype``."""
    return tuple(status == 0 for status, _ in _probe_statuses(config, x_shape, w_shape, dtype))


def _attributes(config: Config) -> dict:
    return dict(
        stride=np.asarray(config.stride, np.int64),
        dilation=np.asarray(config.dilation, np.int64),
        pad_l=np.asarray([lo for lo, _ in config.crops], np.int64),
        pad_r=np.asarray([hi for _, hi in config.crops], np.int64),
        groups=np.int64(config.groups),
        channels_last=bool(config.channels_last),
    )


def _call(
    kind: str,
    shape: tuple[int, ...],
    a: jax.Array,
    b: jax.Array,
    config: Config,
    dtype: np.dtype = _FLOAT32,
    out_dtype: np.dtype = _FLOAT32,
):
    """One FFI call: ``a`` and ``b`` in ``dtype`` (converted if need be), the result of
    ``shape`` in ``out_dtype``."""
    if not available():  # the registry only offers these forms where it is
        raise RuntimeError(f"the oneDNN backend is not in use: {backend_info().reason}")
    fn = _compat.ffi_call(_TARGETS[kind], jax.ShapeDtypeStruct(shape, out_dtype))
    return fn(a.astype(dtype), b.astype(dtype), **_attributes(config))


def _native(kind: str, config: Config, x_shape, w_shape, *operands: jax.Array) -> np.dtype | None:
    """The half-precision dtype to compute ``kind`` in natively, where all ``operands`` have
    it and :func:`compute_dtype` says so; else ``None`` (the float32 kernel)."""
    dtype = np.dtype(operands[0].dtype)
    if dtype == np.float32 or any(np.dtype(o.dtype) != dtype for o in operands):
        return None
    native = compute_dtype(config, x_shape, w_shape, dtype, kind)
    return native if native == dtype else None


def _flip(w: jax.Array, config: Config) -> jax.Array:
    return geo.flip_spatial(w) if config.flip else w


def forward(x: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """The transposed convolution by oneDNN's convolution backward data (the transposed
    convolution is the adjoint of the regular one with the same weight)."""
    shape = geo.output_shape(config, x.shape, w.shape)
    out_dtype = geo.output_dtype(config, x.dtype)
    native = _native("forward", config, x.shape, w.shape, x, w)
    if native is not None:  # oneDNN writes the output dtype (half, or float32) itself
        return _call("forward", shape, x, _flip(w, config), config, native, out_dtype)
    y = _call("forward", shape, x, _flip(w, config), config)
    return y.astype(out_dtype)


def _with_spatial(config: Config, batch: int, channels: int, spatial) -> tuple[int, ...]:
    spatial = tuple(spatial)
    if config.channels_last:
        return (batch, *spatial, channels)
    return (batch, channels, *spatial)


def input_shape(config: Config, y_shape: Sequence[int], w_shape: Sequence[int]) -> tuple[int, ...]:
    """The input's shape for an output (cotangent) shape and a weight shape."""
    # L_out = (L - 1) s - lo - hi + d (K - 1) + 1, solved for L.
    spatial = (
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, k, s, d, (lo, hi) in zip(
            geo.spatial_shape(config, y_shape),
            w_shape[2:],
            config.stride,
            config.dilation,
            config.crops,
            strict=True,
        )
    )
    return _with_spatial(config, y_shape[0], w_shape[0], spatial)


def weight_shape(config: Config, y_shape: Sequence[int], x_shape: Sequence[int]) -> tuple[int, ...]:
    """The weight's shape ``(C_in, C_out / groups, *K)`` for an output and an input shape."""
    c_ax = geo.channel_axis(config, len(x_shape))
    # L_out = (L - 1) s - lo - hi + d (K - 1) + 1, solved for K.
    kernel = (
        (n - (ln - 1) * s + lo + hi - 1) // d + 1
        for n, ln, s, d, (lo, hi) in zip(
            geo.spatial_shape(config, y_shape),
            geo.spatial_shape(config, x_shape),
            config.stride,
            config.dilation,
            config.crops,
            strict=True,
        )
    )
    return (x_shape[c_ax], y_shape[c_ax] // config.groups, *kernel)


def input_grad(g: jax.Array, w: jax.Array, config: Config) -> jax.Array:
    """``dx`` by oneDNN's convolution forward (``g`` of the output's shape): also the regular
    convolution's forward (``ct.conv``)."""
    shape = input_shape(config, g.shape, w.shape)
    native = _native("input_grad", config, shape, w.shape, g, w)
    if native is not None:
        return _call("input_grad", shape, g, _flip(w, config), config, native, native)
    return _call("input_grad", shape, g, _flip(w, config), config).astype(g.dtype)


def weight_grad(g: jax.Array, x: jax.Array, config: Config) -> jax.Array:
    """``dw`` by oneDNN's convolution backward weights."""
    shape = weight_shape(config, g.shape, x.shape)
    # Half-precision operands: a float32 gradient (summed over the batch in float32), then
    # rounded once.
    native = _native("weight_grad", config, x.shape, shape, g, x)
    dw = _call("weight_grad", shape, g, x, config, native or _FLOAT32)
    return _flip(dw, config).astype(g.dtype)
