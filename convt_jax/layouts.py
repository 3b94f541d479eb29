"""Weight-layout converters between the PyTorch layout and other frameworks.

The PyTorch layout of a transposed-convolution weight is ``(C_in, C_out //
groups, *kernel)``; every function of :mod:`convt_jax` takes that layout.
Converters are named ``from_X`` (X's layout -> PyTorch) and ``to_X``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _args, _checkpoints
from . import _geometry as geo
from .typing import Dilation, FrameworkPadding, OutputPadding, Padding, Stride

__all__ = [
    "from_equinox",
    "from_flax",
    "from_haiku",
    "from_keras",
    "from_megengine",
    "to_equinox",
    "to_flax",
    "to_haiku",
    "to_keras",
    "to_megengine",
]


def from_megengine(w: ArrayLike) -> jax.Array:
    """MegEngine's grouped weight ``(groups, C_in//g, C_out//g, *K)`` -> ``(C_in, C_out//g, *K)``.

    Args:
      w: MegEngine grouped ``ConvTranspose*d`` weight (``groups`` is its first axis).

    Returns:
      The PyTorch-layout weight; pass ``groups=w.shape[0]`` to the functions.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> ct.layouts.from_megengine(jnp.zeros((4, 2, 3, 5, 5))).shape
      (8, 3, 5, 5)
    """
    w = _array("w", w, 4, "(groups, C_in // groups, C_out // groups, *kernel)")
    g, cig, cog, *kernel = w.shape
    return w.reshape(g * cig, cog, *kernel)


def to_megengine(w: ArrayLike, groups: int) -> jax.Array:
    """PyTorch ``(C_in, C_out//g, *K)`` -> MegEngine's grouped ``(groups, C_in//g, C_out//g, *K)``.

    Args:
      w: PyTorch-layout weight.
      groups: the number of groups (must divide ``w.shape[0]``).

    Returns:
      MegEngine's grouped weight layout.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> ct.layouts.to_megengine(jnp.zeros((8, 3, 5, 5)), groups=4).shape
      (4, 2, 3, 5, 5)
    """
    w = _array("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _args.divides("groups", groups, w.shape[0], "w.shape[0]")
    return w.reshape(g, w.shape[0] // g, *w.shape[1:])


# ---------------------------------------------------------------------------------------
# Every framework below computes the same operation as PyTorch's, described per
# axis by the *crop* ``(lo, hi)`` of the full transposed convolution (``hi``
# negative = extended, which is how ``output_padding`` shows up).  What differs is
# a few facts, one row per framework in ``_FRAMEWORKS``:
#
# * the kernel layout: ``"KIO"`` / ``"KOI"`` (spatial axes first, then C_in and
#   C_out or the reverse; one dense kernel, so groups become a block-diagonal
#   kernel), or ``"grouped"`` (``(C_out, C_in // groups, *K)``, the forward kernel
#   of the lhs-dilated convolution: ``_geometry.forward_kernel``);
# * whether the kernel is stored spatially flipped;
# * the padding convention: ``"lax"`` (padding of the stride-dilated input,
#   ``(k - 1 - lo, k - 1 - hi)`` with ``k = dilation * (K - 1) + 1``; "SAME" /
#   "VALID" as ``jax.lax.conv_transpose``), ``"keras"`` ("valid" / "same" plus
#   ``output_padding``) or ``"torch"`` (PyTorch's numbers; "SAME" / "SAME_LOWER"
#   / "VALID" strings).
# ---------------------------------------------------------------------------------------

Pairs = tuple[tuple[int, int], ...]


class _Framework(NamedTuple):
    name: str
    layout: str  # "KIO", "KOI" or "grouped"
    flipped: bool  # kernel stored spatially reversed
    padding: str  # "lax", "keras" or "torch"
    kernel_name: str  # the argument name of the framework's kernel in from_X
    kernel_rule: str  # its layout, for the rank error
    channels_name: str  # what groups must divide, in from_X's error


_FRAMEWORKS = {
    "flax": _Framework("Flax", "KIO", True, "lax", "kernel", "(*kernel, C_in, C_out)", "C_in"),
    "flax_transposed": _Framework(
        "Flax", "KOI", False, "lax", "kernel", "(*kernel, C_in, C_out)", "C_in"
    ),
    "haiku": _Framework("Haiku", "KOI", True, "lax", "w", "(*kernel, C_out, C_in)", "C_in"),
    "keras": _Framework("Keras", "KOI", False, "keras", "kernel", "(*kernel, C_out, C_in)", "C_in"),
    "equinox": _Framework(
        "Equinox",
        "grouped",
        True,
        "torch",
        "weight",
        "(C_out, C_in // groups, *kernel)",
        "weight.shape[0]",
    ),
}
_TORCH_RULE = "(C_in, C_out // groups, *kernel)"


def _array(name: str, w: Any, min_rank: int, rule: str) -> jax.Array:
    # a private copy (the caller may change theirs in place); a torch.Tensor is detached
    w = _checkpoints.owned_leaf(_args.from_torch_tensor(w))
    _checkpoints.check_rank(name, w.shape, min_rank, rule)
    return w


def _dense(w: jax.Array, groups: int) -> jax.Array:
    """``(C_in, C_out//g, *K)`` -> block-diagonal ``(C_in, C_out, *K)`` (zeros across groups)."""
    if groups == 1:
        return w
    c_in, cog, *kernel = w.shape
    cig = c_in // groups
    blocks = w.reshape(groups, cig, cog, *kernel)
    eye = jnp.eye(groups, dtype=w.dtype).reshape(groups, 1, groups, 1, *([1] * len(kernel)))
    return (blocks[:, :, None] * eye).reshape(c_in, groups * cog, *kernel)


def _grouped(w: jax.Array, groups: int) -> jax.Array:
    """Block-diagonal ``(C_in, C_out, *K)`` -> ``(C_in, C_out//g, *K)`` (diagonal blocks kept)."""
    if groups == 1:
        return w
    c_in, c_out, *kernel = w.shape
    _checkpoints.check_kernel_groups(groups, c_out)
    cig, cog = c_in // groups, c_out // groups
    blocks = w.reshape(groups, cig, groups, cog, *kernel)
    idx = jnp.arange(groups)
    return blocks[idx, :, idx].reshape(c_in, cog, *kernel)


def _kernel_to(fw: _Framework, w: jax.Array, groups: int) -> jax.Array:
    """PyTorch ``(C_in, C_out // g, *K)`` -> the framework's kernel."""
    if fw.layout == "grouped":
        return geo.forward_kernel(w, groups, flip=not fw.flipped)
    n = w.ndim - 2
    dense = _dense(w, groups)
    if fw.flipped:
        dense = geo.flip_spatial(dense)
    return jnp.moveaxis(dense, (0, 1), (n, n + 1) if fw.layout == "KIO" else (n + 1, n))


def _kernel_from(fw: _Framework, kernel: Any, groups: Any) -> jax.Array:
    """The framework's kernel -> PyTorch ``(C_in, C_out // g, *K)`` (validating ``groups``)."""
    k = _array(fw.kernel_name, kernel, 3, fw.kernel_rule)
    n = k.ndim - 2
    if fw.layout == "grouped":
        g = _args.divides("groups", groups, k.shape[0], fw.channels_name)
        return geo.forward_kernel(k, g, flip=not fw.flipped)
    dense = jnp.moveaxis(k, (n, n + 1) if fw.layout == "KIO" else (n + 1, n), (0, 1))
    if fw.flipped:
        dense = geo.flip_spatial(dense)
    return _grouped(dense, _args.divides("groups", groups, dense.shape[0], fw.channels_name))


def _to_torch_padding(
    crops, stride, dilation, framework: str, *, symmetric: bool = True
) -> tuple[Pairs, tuple[int, ...]]:
    """Crops -> ``(padding pairs, output_padding)`` the functions accept, or a ValueError.

    Prefers PyTorch's own form, symmetric padding plus output padding
    (``(lo, lo)`` and ``lo - hi``), so the result also works in
    ``torch.nn.ConvTranspose*d``; otherwise (or with ``symmetric=False``)
    ``(lo, max(hi, 0))`` pairs with the smallest output padding.
    """
    pads, opad = [], []
    for ax, ((lo, hi), s, d) in enumerate(zip(crops, stride, dilation, strict=True)):
        _checkpoints.check_torch_crop(framework, ax, (lo, hi), s, d)
        if symmetric and 0 <= lo - hi < max(s, d):
            pads.append((lo, lo))
            opad.append(lo - hi)
        else:
            pads.append((lo, max(hi, 0)))
            opad.append(max(-hi, 0))
    return tuple(pads), tuple(opad)


def _lax_crops(value: Any, kernel, stride, dilation, framework: str) -> Pairs:
    """Flax/Haiku ``padding`` (a string, an int, or ints / (lo, hi) pairs per axis) as crops."""
    n = len(kernel)
    if isinstance(value, str):
        mode = _checkpoints.padding_string(value, ("SAME", "VALID"), framework)
        pads = tuple(
            geo.lax_string_padding(mode, k, s, d)
            for k, s, d in zip(kernel, stride, dilation, strict=True)
        )
    else:
        pads = _args.padding_pairs(value, n)
    # lax_padding is its own inverse: crop = k - 1 - pad.
    return tuple(geo.lax_padding(k, d, p) for k, d, p in zip(kernel, dilation, pads, strict=True))


def _keras_lax_pads(
    kernel: int, stride: int, dilation: int, padding: str, output_padding: int | None
) -> tuple[int, int]:
    """Keras' own translation to lax padding (``keras.src.backend.common.backend_utils``)."""
    k = (kernel - 1) * dilation + 1
    if padding == "valid":
        a = max(k, stride) - k if output_padding is None else output_padding
        return k - 1, k - 1 + a
    if output_padding is None:
        pad_len = stride + k - 2
    else:
        pad_len = k + k % 2 - 2 + output_padding
    left = min(pad_len // 2 + pad_len % 2, k - 1)
    return left, pad_len - left


def _keras_crops(kernel, stride, dilation, padding: str, output_padding) -> tuple:
    return tuple(
        geo.lax_padding(k, d, _keras_lax_pads(k, s, d, padding, a))
        for k, s, d, a in zip(kernel, stride, dilation, output_padding, strict=True)
    )


def _keras_reachable(kernel: int, stride: int, dilation: int) -> list[str]:
    """The PyTorch settings of one axis that some Keras padding / output_padding gives."""
    found = set()
    for mode in ("valid", "same"):
        for a in (None, *range(stride)):
            crop = _keras_crops((kernel,), (stride,), (dilation,), mode, (a,))
            (pad,), (op,) = _to_torch_padding(crop, (stride,), (dilation,), "Keras")
            found.add(f"padding={pad} output_padding={op}")
    return sorted(found)


def _keras_padding(crops, kernel_size, stride, dil, padding, output_padding):
    """Crops -> Keras' ``(padding, output_padding)``, or a ValueError listing what Keras can do."""
    n = len(kernel_size)
    for mode in ("valid", "same"):
        if _keras_crops(kernel_size, stride, dil, mode, (None,) * n) == crops:
            return mode, None
        options = []
        for ax in range(n):
            found = [
                a
                for a in range(stride[ax])
                if _keras_crops(
                    kernel_size[ax : ax + 1], stride[ax : ax + 1], dil[ax : ax + 1], mode, (a,)
                )
                == crops[ax : ax + 1]
            ]
            if not found:
                break
            options.append(found[0])
        else:
            return mode, tuple(options)
    reachable = "; ".join(
        f"axis {ax}: " + ", ".join(_keras_reachable(kernel_size[ax], stride[ax], dil[ax]))
        for ax in range(n)
    )
    _checkpoints.no_keras_equivalent(padding, output_padding, crops, reachable)


def _equinox_crops(padding: Any, output_padding: Any, kernel, stride, dil) -> Pairs:
    n = len(kernel)
    opad = _args.int_tuple("output_padding", output_padding, n)
    if not isinstance(padding, str):
        return tuple(
            (lo, hi - a) for (lo, hi), a in zip(_args.padding_pairs(padding, n), opad, strict=True)
        )
    mode = _checkpoints.padding_string(padding, ("SAME", "SAME_LOWER", "VALID"), "Equinox")
    crops = []
    for kk, s, d, a in zip(kernel, stride, dil, opad, strict=True):
        if mode == "VALID":
            crops.append((0, -a))
            continue
        p_sum = d * (kk - 1) - s + a + 1
        a_eff = -p_sum if p_sum < 0 else 0
        p_sum = max(p_sum, 0)
        lo = (p_sum + (mode == "SAME_LOWER")) // 2
        crops.append((lo, p_sum - lo - a_eff))
    return tuple(crops)


def _to(
    fw: _Framework,
    w: Any,
    padding: Any,
    output_padding: Any,
    stride: Any,
    dilation: Any,
    groups: Any,
) -> tuple:
    """PyTorch weight and settings -> the framework's kernel and padding (its own form)."""
    w = _array("w", w, 3, _TORCH_RULE)
    g = _args.divides("groups", groups, w.shape[0], "w.shape[0]")
    n = w.ndim - 2
    settings = _args.parse_settings(n, stride, padding, output_padding, g, dilation)
    kernel_size = tuple(w.shape[2:])
    crops = settings.crops(kernel_size)
    stride_t, dil = settings.stride, settings.dilation
    kernel = _kernel_to(fw, w, g)
    if fw.padding == "lax":
        return kernel, tuple(
            geo.lax_padding(k, d, c) for k, d, c in zip(kernel_size, dil, crops, strict=True)
        )
    if fw.padding == "keras":
        return (kernel,) + _keras_padding(
            crops, kernel_size, stride_t, dil, padding, output_padding
        )
    # "torch" (Equinox): PyTorch's numbers, but output_padding < stride.
    if all(a < s for a, s in zip(settings.output_padding, stride_t, strict=True)):
        pads, opad = settings.pads(kernel_size), settings.output_padding
    else:
        pads, opad = _to_torch_padding(crops, stride_t, dil, "PyTorch", symmetric=False)
        _checkpoints.check_output_padding_below_stride(
            fw.name, padding, output_padding, opad, stride_t
        )
    return kernel, pads, opad


def _from(
    fw: _Framework,
    kernel: Any,
    padding: Any,
    output_padding: Any,
    stride: Any,
    dilation: Any,
    groups: Any,
    stride_name: str,
    dilation_name: str,
) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """The framework's kernel and padding -> PyTorch weight, padding pairs, output_padding."""
    w = _kernel_from(fw, kernel, groups)
    n = w.ndim - 2
    kernel_size = tuple(w.shape[2:])
    stride_t = _args.int_tuple(stride_name, stride, n)
    dil = _args.int_tuple(dilation_name, dilation, n)
    if fw.padding == "lax":
        crops = _lax_crops(padding, kernel_size, stride_t, dil, fw.name)
    elif fw.padding == "keras":
        _checkpoints.keras_padding(padding)
        opad = (
            (None,) * n
            if output_padding is None
            else _args.int_tuple("output_padding", output_padding, n)
        )
        crops = _keras_crops(kernel_size, stride_t, dil, padding.lower(), opad)
    else:
        crops = _equinox_crops(padding, output_padding, kernel_size, stride_t, dil)
    return (w,) + _to_torch_padding(crops, stride_t, dil, fw.name)


# ---------------------------------------------------------------------------------------
# The public converters: each one row of _FRAMEWORKS through the generic pair.
# ---------------------------------------------------------------------------------------


def to_flax(
    w: ArrayLike,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    stride: Stride = 1,
    dilation: Dilation = 1,
    groups: int = 1,
    transpose_kernel: bool = False,
) -> tuple[jax.Array, Pairs]:
    """PyTorch weight and padding -> Flax ``nn.ConvTranspose`` kernel and lax padding.

    Flax's kernel is ``(*K, C_in, C_out)`` spatially flipped (the forward
    kernel of ``jax.lax.conv_transpose``) with ``transpose_kernel=False``, and
    ``(*K, C_out, C_in)`` unflipped with ``transpose_kernel=True``. Its
    numeric padding pads the stride-dilated input, so PyTorch's ``padding=p``
    becomes ``dilation*(K-1) - p`` (and ``output_padding`` adds to the end).
    Flax has no groups: ``groups > 1`` gives the equivalent block-diagonal kernel.

    Args:
      w: PyTorch weight ``(C_in, C_out // groups, *K)``.
      padding: as the functions take it (``"same"`` too).
      output_padding: as the functions take it.
      stride: keyword-only; becomes the layer's ``strides``.
      dilation: keyword-only; becomes the layer's ``kernel_dilation``.
      groups: keyword-only; the PyTorch ``groups``.
      transpose_kernel: keyword-only; Flax's ``transpose_kernel`` setting.

    Returns:
      ``(kernel, padding)``: pass ``padding`` as ``nn.ConvTranspose(padding=...)``
      and put ``kernel`` in ``params["kernel"]``.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> kernel, pads = ct.layouts.to_flax(jnp.zeros((8, 4, 3, 3)), padding=1, output_padding=1,
      ...                                   stride=2)
      >>> kernel.shape, pads
      ((3, 3, 8, 4), ((1, 2), (1, 2)))
    """
    fw = _FRAMEWORKS["flax_transposed" if transpose_kernel else "flax"]
    return _to(fw, w, padding, output_padding, stride, dilation, groups)


def from_flax(
    kernel: ArrayLike,
    padding: FrameworkPadding = "SAME",
    *,
    strides: Stride = 1,
    kernel_dilation: Dilation = 1,
    transpose_kernel: bool = False,
    groups: int = 1,
) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """Flax ``nn.ConvTranspose`` kernel and padding -> PyTorch weight, padding, output_padding.

    The inverse of :func:`to_flax`. ``padding`` is Flax's: ``"SAME"``,
    ``"VALID"``, an int, or ints / ``(lo, hi)`` pairs per axis (padding of
    the stride-dilated input); ``"CIRCULAR"`` has no PyTorch equivalent.

    Args:
      kernel: ``params["kernel"]``: ``(*K, C_in, C_out)``, or ``(*K, C_out, C_in)``
        with ``transpose_kernel=True``.
      padding: the layer's ``padding``.
      strides: keyword-only; the layer's ``strides``.
      kernel_dilation: keyword-only; the layer's ``kernel_dilation``.
      transpose_kernel: keyword-only; the layer's ``transpose_kernel``.
      groups: keyword-only; keep only the diagonal blocks of a block-diagonal
        kernel (Flax has no groups; off-diagonal entries are dropped).

    Returns:
      ``(w, padding, output_padding)`` with ``w`` of shape
      ``(C_in, C_out // groups, *K)``; pass them with ``stride=strides``,
      ``dilation=kernel_dilation`` and ``groups`` to :func:`convt_jax.conv_transpose`.

    Raises:
      ValueError: a padding that extends the output at the start (lax
        padding larger than ``dilation*(K-1)``), which PyTorch cannot express.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_flax(jnp.zeros((4, 4, 8, 3)), "SAME", strides=2)
      >>> w.shape, pad, opad
      ((8, 3, 4, 4), ((1, 1), (1, 1)), (0, 0))
    """
    fw = _FRAMEWORKS["flax_transposed" if transpose_kernel else "flax"]
    return _from(
        fw, kernel, padding, None, strides, kernel_dilation, groups, "strides", "kernel_dilation"
    )


def to_haiku(
    w: ArrayLike,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    stride: Stride = 1,
    groups: int = 1,
) -> tuple[jax.Array, Pairs]:
    """PyTorch weight and padding -> Haiku ``ConvNDTranspose`` ``w`` and lax padding.

    Haiku's ``w`` is ``(*K, C_out, C_in)``, spatially flipped (the forward
    kernel of ``jax.lax.conv_transpose``); its numeric padding pads the
    stride-dilated input, as Flax's does. Haiku has no dilation and no
    groups: ``groups > 1`` gives the equivalent block-diagonal kernel.

    Args:
      w: PyTorch weight ``(C_in, C_out // groups, *K)``.
      padding: as the functions take it (``"same"`` too).
      output_padding: as the functions take it.
      stride: keyword-only; the module's ``stride``.
      groups: keyword-only; the PyTorch ``groups``.

    Returns:
      ``(w, padding)``: pass ``padding`` as ``hk.ConvNDTranspose(padding=...)``
      and put ``w`` in the module's ``"w"`` parameter.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pads = ct.layouts.to_haiku(jnp.zeros((8, 4, 3)), padding=1, stride=2)
      >>> w.shape, pads
      ((3, 4, 8), ((1, 1),))
    """
    return _to(_FRAMEWORKS["haiku"], w, padding, output_padding, stride, 1, groups)


def from_haiku(
    w: ArrayLike, padding: FrameworkPadding = "SAME", *, stride: Stride = 1, groups: int = 1
) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """Haiku ``ConvNDTranspose`` ``w`` and padding -> PyTorch weight, padding, output_padding.

    The inverse of :func:`to_haiku`. For a module built with
    ``output_shape``, pass the explicit padding Haiku derives from it
    (``haiku._src.conv.compute_adjusted_padding``), or use the functions'
    ``output_size``.

    Args:
      w: the module's ``w``: ``(*K, C_out, C_in)``.
      padding: the module's ``padding``: ``"SAME"``, ``"VALID"`` or ``(lo, hi)``
        pairs per axis.
      stride: keyword-only; the module's ``stride``.
      groups: keyword-only; keep only the diagonal blocks of a
        block-diagonal kernel (off-diagonal entries are dropped).

    Returns:
      ``(w, padding, output_padding)`` with ``w`` of shape ``(C_in, C_out // groups, *K)``.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_haiku(jnp.zeros((3, 4, 8)), "VALID", stride=2)
      >>> w.shape, pad, opad
      ((8, 4, 3), ((0, 0),), (0,))
    """
    return _from(_FRAMEWORKS["haiku"], w, padding, None, stride, 1, groups, "stride", "dilation")


def to_keras(
    w: ArrayLike,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    stride: Stride = 1,
    dilation: Dilation = 1,
    groups: int = 1,
) -> tuple[jax.Array, str, tuple[int, ...] | None]:
    """PyTorch weight and padding -> Keras ``Conv{1,2,3}DTranspose`` kernel and padding.

    Keras' kernel is ``(*K, C_out, C_in)`` (not flipped; Keras and
    TensorFlow both use ``transpose_kernel=True`` semantics). Keras has only
    ``padding="valid"`` / ``"same"`` plus ``output_padding`` (``None`` or one
    int per axis, each ``< stride``); per axis they crop the full output by

    * ``"valid"``: ``(0, -a)`` with ``a = output_padding`` (``None``:
      ``max(k, s) - k``),
    * ``"same"``, ``output_padding=None``: the crop of ``padding="same"``
      here (output ``= input * stride``),
    * ``"same"``, ``output_padding=a``: ``(k - 1 - left, k - 1 - right)`` with
      ``pad_len = k + k % 2 - 2 + a``, ``left = min(ceil(pad_len / 2), k - 1)``,
      ``right = pad_len - left``,

    where ``k = dilation*(K-1) + 1``. The PyTorch settings are matched to one
    of these; those with no Keras equivalent raise a ValueError. Notably
    PyTorch's usual exact-doubling ``K=3, stride=2, padding=1,
    output_padding=1`` (crop ``(1, 0)``) has none: Keras' ``"same"`` crops
    ``(0, 1)`` there, the same output shifted by one position. Keras has no
    groups: ``groups > 1`` gives the equivalent block-diagonal kernel.

    Args:
      w: PyTorch weight ``(C_in, C_out // groups, *K)``.
      padding: as the functions take it.
      output_padding: as the functions take it.
      stride: keyword-only; becomes the layer's ``strides``.
      dilation: keyword-only; becomes the layer's ``dilation_rate``.
      groups: keyword-only; the PyTorch ``groups``.

    Returns:
      ``(kernel, padding, output_padding)`` for the Keras layer
      (``layer.kernel.assign(kernel)``).

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> kernel, pad, opad = ct.layouts.to_keras(jnp.zeros((8, 4, 4, 4)), padding=1, stride=2)
      >>> kernel.shape, pad, opad
      ((4, 4, 4, 8), 'same', None)
    """
    return _to(_FRAMEWORKS["keras"], w, padding, output_padding, stride, dilation, groups)


def from_keras(
    kernel: ArrayLike,
    padding: str = "valid",
    output_padding: OutputPadding | None = None,
    *,
    strides: Stride = 1,
    dilation_rate: Dilation = 1,
    groups: int = 1,
) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """Keras ``Conv{1,2,3}DTranspose`` kernel and padding -> PyTorch weight and padding.

    The inverse of :func:`to_keras` (see it for Keras' padding rules).

    Args:
      kernel: ``layer.kernel``: ``(*K, C_out, C_in)``.
      padding: the layer's ``padding``, ``"valid"`` or ``"same"``.
      output_padding: the layer's ``output_padding``: ``None``, an int or one
        int per axis.
      strides: keyword-only; the layer's ``strides``.
      dilation_rate: keyword-only; the layer's ``dilation_rate``.
      groups: keyword-only; keep only the diagonal blocks of a
        block-diagonal kernel (off-diagonal entries are dropped).

    Returns:
      ``(w, padding, output_padding)`` with ``w`` of shape ``(C_in, C_out // groups, *K)``.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_keras(jnp.zeros((4, 4, 3, 8)), "same", strides=2)
      >>> w.shape, pad, opad
      ((8, 3, 4, 4), ((1, 1), (1, 1)), (0, 0))
    """
    return _from(
        _FRAMEWORKS["keras"],
        kernel,
        padding,
        output_padding,
        strides,
        dilation_rate,
        groups,
        "strides",
        "dilation_rate",
    )


def to_equinox(
    w: ArrayLike,
    padding: Padding = 0,
    output_padding: OutputPadding = 0,
    *,
    stride: Stride = 1,
    dilation: Dilation = 1,
    groups: int = 1,
) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """PyTorch weight and padding -> Equinox ``ConvTranspose`` weight, padding, output_padding.

    Equinox stores the forward kernel of the lhs-dilated convolution:
    ``(C_out, C_in // groups, *K)``, each group's channel block transposed
    and the kernel flipped. Its numeric ``padding`` and ``output_padding``
    mean what PyTorch's do, but it requires ``output_padding < stride``, so
    an ``output_padding`` that only ``dilation`` allows is moved into the
    end padding where possible.

    Args:
      w: PyTorch weight ``(C_in, C_out // groups, *K)``.
      padding: as the functions take it (``"same"`` too).
      output_padding: as the functions take it.
      stride: keyword-only; the layer's ``stride``.
      dilation: keyword-only; the layer's ``dilation``.
      groups: keyword-only; the layer's ``groups``.

    Returns:
      ``(weight, padding, output_padding)`` for ``eqx.nn.ConvTranspose``
      (replace its weight with ``eqx.tree_at(lambda l: l.weight, layer, weight)``;
      its bias has shape ``(C_out, 1, ..., 1)``).

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> weight, pad, opad = ct.layouts.to_equinox(jnp.zeros((8, 2, 3, 3)), 1, 1, stride=2,
      ...                                           groups=2)
      >>> weight.shape, pad, opad
      ((4, 4, 3, 3), ((1, 1), (1, 1)), (1, 1))
    """
    return _to(_FRAMEWORKS["equinox"], w, padding, output_padding, stride, dilation, groups)


def from_equinox(
    weight: ArrayLike,
    padding: FrameworkPadding = 0,
    output_padding: OutputPadding = 0,
    *,
    stride: Stride = 1,
    dilation: Dilation = 1,
    groups: int = 1,
) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """Equinox ``ConvTranspose`` weight and padding -> PyTorch weight, padding, output_padding.

    The inverse of :func:`to_equinox`. Equinox's ``"SAME"`` / ``"SAME_LOWER"``
    (output ``= input * stride - output_padding``) and ``"VALID"`` are
    translated to numbers; its ``padding_mode="CIRCULAR"`` is a different
    operation and is not covered.

    Args:
      weight: ``layer.weight``: ``(C_out, C_in // groups, *K)``.
      padding: the layer's ``padding`` (numbers or ``"SAME"``,
        ``"SAME_LOWER"``, ``"VALID"``).
      output_padding: the layer's ``output_padding``.
      stride: keyword-only; the layer's ``stride``.
      dilation: keyword-only; the layer's ``dilation``.
      groups: keyword-only; the layer's ``groups``.

    Returns:
      ``(w, padding, output_padding)`` with ``w`` of shape ``(C_in, C_out // groups, *K)``.

    Examples:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_equinox(jnp.zeros((4, 4, 3, 3)), "SAME", stride=2,
      ...                                        groups=2)
      >>> w.shape, pad, opad
      ((8, 2, 3, 3), ((0, 1), (0, 1)), (0, 0))
    """
    return _from(
        _FRAMEWORKS["equinox"],
        weight,
        padding,
        output_padding,
        stride,
        dilation,
        groups,
        "stride",
        "dilation",
    )
