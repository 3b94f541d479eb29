"""Weight-layout converters between the PyTorch layout and other frameworks.

The PyTorch layout of a transposed-convolution weight is ``(C_in, C_out //
groups, *kernel)``; every function of :mod:`convt_jax` takes that layout.
Converters are named ``from_X`` (X's layout -> PyTorch) and ``to_X``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _args, _shapes
from ._args import _int

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


def _rank_check(name: str, w, min_rank: int, rule: str) -> None:
    if w.ndim < min_rank:
        raise ValueError(f"{name} of shape {tuple(w.shape)} must have rank >= {min_rank}: {rule}")


def from_megengine(w: ArrayLike) -> jax.Array:
    """MegEngine's grouped weight ``(groups, C_in//g, C_out//g, *K)`` -> ``(C_in, C_out//g, *K)``.

    Args:
      w: MegEngine grouped ``ConvTranspose*d`` weight (``groups`` is its first axis).

    Returns:
      The PyTorch-layout weight; pass ``groups=w.shape[0]`` to the functions.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> ct.layouts.from_megengine(jnp.zeros((4, 2, 3, 5, 5))).shape
      (8, 3, 5, 5)
    """
    w = jnp.asarray(w)
    _rank_check("w", w, 4, "(groups, C_in // groups, C_out // groups, *kernel)")
    g, cig, cog, *kernel = w.shape
    return w.reshape(g * cig, cog, *kernel)


def to_megengine(w: ArrayLike, groups: int) -> jax.Array:
    """PyTorch ``(C_in, C_out//g, *K)`` -> MegEngine's grouped ``(groups, C_in//g, C_out//g, *K)``.

    Args:
      w: PyTorch-layout weight.
      groups: the number of groups (must divide ``w.shape[0]``).

    Returns:
      MegEngine's grouped weight layout.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> ct.layouts.to_megengine(jnp.zeros((8, 3, 5, 5)), groups=4).shape
      (4, 2, 3, 5, 5)
    """
    w = jnp.asarray(w)
    _rank_check("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _int("groups", groups)
    if g < 1 or w.shape[0] % g:
        raise ValueError(f"groups={groups!r} must be >= 1 and divide w.shape[0]={w.shape[0]}")
    return w.reshape(g, w.shape[0] // g, *w.shape[1:])


# ---------------------------------------------------------------------------------------
# Shared helpers: groups as block-diagonal kernels, padding as crops.
#
# Every framework below computes the same operation as PyTorch's (SPEC §1),
# described per axis by the *crop* ``(lo, hi)`` of the full transposed
# convolution (``hi`` negative = extended, which is how ``output_padding``
# shows up).  lax-based frameworks (Flax, Haiku, Keras' JAX backend) take the
# padding ``(k - 1 - lo, k - 1 - hi)`` of the stride-dilated input instead
# (``k = dilation * (K - 1) + 1``); Equinox takes PyTorch's numbers.
# ---------------------------------------------------------------------------------------

Pairs = tuple[tuple[int, int], ...]


def _array(name: str, w: Any, min_rank: int, rule: str) -> jax.Array:
    w = jnp.asarray(w)
    _rank_check(name, w, min_rank, rule)
    return w


def _groups(groups: Any, channels: int, name: str) -> int:
    g = _int("groups", groups)
    if g < 1 or channels % g:
        raise ValueError(f"groups={groups!r} must be >= 1 and divide {name}={channels}")
    return g


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
    if c_out % groups:
        raise ValueError(f"groups={groups} must divide the kernel's {c_out} output channels")
    cig, cog = c_in // groups, c_out // groups
    blocks = w.reshape(groups, cig, groups, cog, *kernel)
    idx = jnp.arange(groups)
    return blocks[idx, :, idx].reshape(c_in, cog, *kernel)


def _flip(w: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    return jnp.flip(w, axes) if axes else w


def _torch_crops(w: jax.Array, padding: Any, output_padding: Any, stride: Any, dilation: Any,
                 groups: int) -> tuple[tuple[tuple[int, int], ...], Any]:
    """Validate PyTorch-style settings (the functions' parser) and return the crops."""
    n = w.ndim - 2
    if isinstance(padding, str):
        length = 1
    else:
        pairs = _args._padding_pairs(padding, n)
        length = 1 + max(max(lo, 0) + max(hi, 0) for lo, hi in pairs)
    parsed = _args.parse((1, w.shape[0]) + (length,) * n, w.shape, None, stride, padding,
                         output_padding, groups, dilation, None, False)
    return parsed.config.crops, parsed


def _lax_pads(crops, kernel, dilation) -> Pairs:
    return tuple(_shapes.lax_padding(k, d, c) for k, d, c in zip(kernel, dilation, crops))


def _crops_from_lax(pads: Pairs, kernel, dilation) -> tuple[tuple[int, int], ...]:
    # lax_padding is its own inverse: crop = k - 1 - pad.
    return _lax_pads(pads, kernel, dilation)


def _lax_string_pads(mode: str, kernel, stride, dilation) -> Pairs:
    """``jax.lax.conv_transpose``'s ``"SAME"`` / ``"VALID"`` (``_conv_transpose_padding``)."""
    out = []
    for k, s, d in zip(kernel, stride, dilation):
        k = d * (k - 1) + 1
        if mode == "SAME":
            pad_len = k + s - 2
            pad_a = k - 1 if s > k - 1 else -(-pad_len // 2)
        else:
            pad_len = k + s - 2 + max(k - s, 0)
            pad_a = k - 1
        out.append((pad_a, pad_len - pad_a))
    return tuple(out)


def _to_torch_padding(crops, stride, dilation, framework: str, *,
                      symmetric: bool = True) -> tuple[Pairs, tuple[int, ...]]:
    """Crops -> ``(padding pairs, output_padding)`` the functions accept, or a ValueError.

    Prefers PyTorch's own form, symmetric padding plus output padding
    (``(lo, lo)`` and ``lo - hi``), so the result also works in
    ``torch.nn.ConvTranspose*d``; otherwise (or with ``symmetric=False``)
    ``(lo, max(hi, 0))`` pairs with the smallest output padding.
    """
    pads, opad = [], []
    for ax, ((lo, hi), s, d) in enumerate(zip(crops, stride, dilation)):
        if lo < 0 or (hi < 0 and -hi >= max(s, d)):
            raise ValueError(
                f"{framework}'s padding extends the output by {-lo if lo < 0 else -hi} "
                f"position(s) at the {'start' if lo < 0 else 'end'} of spatial axis {ax} "
                f"(crop {(lo, hi)}): PyTorch semantics can only crop the start and extend the "
                f"end by output_padding < max(stride, dilation) = {max(s, d)}"
            )
        if symmetric and 0 <= lo - hi < max(s, d):
            pads.append((lo, lo))
            opad.append(lo - hi)
        else:
            pads.append((lo, max(hi, 0)))
            opad.append(max(-hi, 0))
    return tuple(pads), tuple(opad)


def _canonical_padding(value: Any, n: int, framework: str) -> Any:
    """Flax/Haiku-style ``padding``: a string, an int, or ints / (lo, hi) pairs per axis."""
    if isinstance(value, str):
        mode = value.upper()
        if mode == "CIRCULAR":
            raise ValueError(
                f"padding={value!r}: {framework}'s CIRCULAR transposed convolution wraps a "
                "VALID result onto a period of input * stride; it has no PyTorch-style "
                "equivalent here (use padding_mode='circular' for the adjoint of a circular "
                "convolution)"
            )
        if mode not in ("SAME", "VALID"):
            raise ValueError(f"padding={value!r} must be 'SAME', 'VALID' or numbers")
        return mode
    return _args._padding_pairs(value, n)


# ---------------------------------------------------------------------------------------
# Flax linen ``nn.ConvTranspose``
# ---------------------------------------------------------------------------------------

def to_flax(w: ArrayLike, padding: Any = 0, output_padding: Any = 0, *, stride: Any = 1,
            dilation: Any = 1, groups: int = 1,
            transpose_kernel: bool = False) -> tuple[jax.Array, Pairs]:
    """PyTorch weight and padding -> Flax ``nn.ConvTranspose`` kernel and lax padding.

    Flax's kernel is ``(*K, C_in, C_out)`` spatially flipped (the forward
    kernel of ``jax.lax.conv_transpose``) with ``transpose_kernel=False``, and
    ``(*K, C_out, C_in)`` unflipped with ``transpose_kernel=True``. Its
    numeric padding pads the stride-dilated input, so PyTorch's ``padding=p``
    becomes ``dilation*(K-1) - p`` (and ``output_padding`` adds to the end).
    Flax has no groups: ``groups > 1`` gives the equivalent block-diagonal kernel.

    Args:
      w: PyTorch weight ``(C_in, C_out // groups, *K)``.
      padding, output_padding: as the functions take them (``"same"`` too).
      stride, dilation: keyword-only; the layer's ``strides`` and ``kernel_dilation``.
      groups: keyword-only; the PyTorch ``groups``.
      transpose_kernel: keyword-only; Flax's ``transpose_kernel`` setting.

    Returns:
      ``(kernel, padding)``: pass ``padding`` as ``nn.ConvTranspose(padding=...)``
      and put ``kernel`` in ``params["kernel"]``.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> kernel, pads = ct.layouts.to_flax(jnp.zeros((8, 4, 3, 3)), padding=1, output_padding=1,
      ...                                   stride=2)
      >>> kernel.shape, pads
      ((3, 3, 8, 4), ((1, 2), (1, 2)))
    """
    w = _array("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _groups(groups, w.shape[0], "w.shape[0]")
    crops, parsed = _torch_crops(w, padding, output_padding, stride, dilation, g)
    pads = _lax_pads(crops, w.shape[2:], parsed.config.dilation)
    n = w.ndim - 2
    dense = _dense(w, g)
    if transpose_kernel:
        kernel = jnp.moveaxis(dense, (0, 1), (n + 1, n))
    else:
        kernel = jnp.moveaxis(_flip(dense, tuple(range(2, n + 2))), (0, 1), (n, n + 1))
    return kernel, pads


def from_flax(kernel: ArrayLike, padding: Any = "SAME", *, strides: Any = 1,
              kernel_dilation: Any = 1, transpose_kernel: bool = False,
              groups: int = 1) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """Flax ``nn.ConvTranspose`` kernel and padding -> PyTorch weight, padding, output_padding.

    The inverse of :func:`to_flax`. ``padding`` is Flax's: ``"SAME"``,
    ``"VALID"``, an int, or ints / ``(lo, hi)`` pairs per axis (padding of
    the stride-dilated input); ``"CIRCULAR"`` has no PyTorch equivalent.

    Args:
      kernel: ``params["kernel"]``: ``(*K, C_in, C_out)``, or ``(*K, C_out, C_in)``
        with ``transpose_kernel=True``.
      padding: the layer's ``padding``.
      strides, kernel_dilation: keyword-only; the layer's settings.
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

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_flax(jnp.zeros((4, 4, 8, 3)), "SAME", strides=2)
      >>> w.shape, pad, opad
      ((8, 3, 4, 4), ((1, 1), (1, 1)), (0, 0))
    """
    k = _array("kernel", kernel, 3, "(*kernel, C_in, C_out)")
    n = k.ndim - 2
    if transpose_kernel:
        dense = jnp.moveaxis(k, (n + 1, n), (0, 1))
    else:
        dense = _flip(jnp.moveaxis(k, (n, n + 1), (0, 1)), tuple(range(2, n + 2)))
    g = _groups(groups, dense.shape[0], "C_in")
    w = _grouped(dense, g)
    stride = _args.int_tuple("strides", strides, n)
    dilation = _args.int_tuple("kernel_dilation", kernel_dilation, n)
    pad = _canonical_padding(padding, n, "Flax")
    pads = _lax_string_pads(pad, w.shape[2:], stride, dilation) if isinstance(pad, str) else pad
    crops = _crops_from_lax(pads, w.shape[2:], dilation)
    return (w,) + _to_torch_padding(crops, stride, dilation, "Flax")


# ---------------------------------------------------------------------------------------
# Haiku ``hk.ConvNDTranspose`` (and Conv1DTranspose / Conv2DTranspose / Conv3DTranspose)
# ---------------------------------------------------------------------------------------

def to_haiku(w: ArrayLike, padding: Any = 0, output_padding: Any = 0, *, stride: Any = 1,
             groups: int = 1) -> tuple[jax.Array, Pairs]:
    """PyTorch weight and padding -> Haiku ``ConvNDTranspose`` ``w`` and lax padding.

    Haiku's ``w`` is ``(*K, C_out, C_in)``, spatially flipped (the forward
    kernel of ``jax.lax.conv_transpose``); its numeric padding pads the
    stride-dilated input, as Flax's does. Haiku has no dilation and no
    groups: ``groups > 1`` gives the equivalent block-diagonal kernel.

    Args:
      w: PyTorch weight ``(C_in, C_out // groups, *K)``.
      padding, output_padding: as the functions take them (``"same"`` too).
      stride: keyword-only; the module's ``stride``.
      groups: keyword-only; the PyTorch ``groups``.

    Returns:
      ``(w, padding)``: pass ``padding`` as ``hk.ConvNDTranspose(padding=...)``
      and put ``w`` in the module's ``"w"`` parameter.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pads = ct.layouts.to_haiku(jnp.zeros((8, 4, 3)), padding=1, stride=2)
      >>> w.shape, pads
      ((3, 4, 8), ((1, 1),))
    """
    w = _array("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _groups(groups, w.shape[0], "w.shape[0]")
    crops, _ = _torch_crops(w, padding, output_padding, stride, 1, g)
    n = w.ndim - 2
    pads = _lax_pads(crops, w.shape[2:], (1,) * n)
    kernel = jnp.moveaxis(_flip(_dense(w, g), tuple(range(2, n + 2))), (0, 1), (n + 1, n))
    return kernel, pads


def from_haiku(w: ArrayLike, padding: Any = "SAME", *, stride: Any = 1,
               groups: int = 1) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
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

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_haiku(jnp.zeros((3, 4, 8)), "VALID", stride=2)
      >>> w.shape, pad, opad
      ((8, 4, 3), ((0, 0),), (0,))
    """
    k = _array("w", w, 3, "(*kernel, C_out, C_in)")
    n = k.ndim - 2
    dense = _flip(jnp.moveaxis(k, (n + 1, n), (0, 1)), tuple(range(2, n + 2)))
    g = _groups(groups, dense.shape[0], "C_in")
    wt = _grouped(dense, g)
    stride_t = _args.int_tuple("stride", stride, n)
    ones = (1,) * n
    pad = _canonical_padding(padding, n, "Haiku")
    pads = _lax_string_pads(pad, wt.shape[2:], stride_t, ones) if isinstance(pad, str) else pad
    crops = _crops_from_lax(pads, wt.shape[2:], ones)
    return (wt,) + _to_torch_padding(crops, stride_t, ones, "Haiku")


# ---------------------------------------------------------------------------------------
# Keras 3 / TensorFlow ``Conv{1,2,3}DTranspose``
# ---------------------------------------------------------------------------------------

def _keras_lax_pads(kernel: int, stride: int, dilation: int, padding: str,
                    output_padding: int | None) -> tuple[int, int]:
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
        _shapes.lax_padding(k, d, _keras_lax_pads(k, s, d, padding, a))
        for k, s, d, a in zip(kernel, stride, dilation, output_padding))


def _keras_reachable(kernel: int, stride: int, dilation: int) -> list[str]:
    """The PyTorch settings of one axis that some Keras padding / output_padding gives."""
    found = set()
    for mode in ("valid", "same"):
        for a in (None, *range(stride)):
            crop = _keras_crops((kernel,), (stride,), (dilation,), mode, (a,))
            (pad,), (op,) = _to_torch_padding(crop, (stride,), (dilation,), "Keras")
            found.add(f"padding={pad} output_padding={op}")
    return sorted(found)


def to_keras(w: ArrayLike, padding: Any = 0, output_padding: Any = 0, *, stride: Any = 1,
             dilation: Any = 1, groups: int = 1
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
      padding, output_padding: as the functions take them.
      stride, dilation: keyword-only; the layer's ``strides`` and ``dilation_rate``.
      groups: keyword-only; the PyTorch ``groups``.

    Returns:
      ``(kernel, padding, output_padding)`` for the Keras layer
      (``layer.kernel.assign(kernel)``).

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> kernel, pad, opad = ct.layouts.to_keras(jnp.zeros((8, 4, 4, 4)), padding=1, stride=2)
      >>> kernel.shape, pad, opad
      ((4, 4, 4, 8), 'same', None)
    """
    w = _array("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _groups(groups, w.shape[0], "w.shape[0]")
    crops, parsed = _torch_crops(w, padding, output_padding, stride, dilation, g)
    n = w.ndim - 2
    kernel_size = w.shape[2:]
    stride_t, dil = parsed.config.stride, parsed.config.dilation
    kernel = jnp.moveaxis(_dense(w, g), (0, 1), (n + 1, n))
    for mode in ("valid", "same"):
        if _keras_crops(kernel_size, stride_t, dil, mode, (None,) * n) == crops:
            return kernel, mode, None
        options = []
        for ax in range(n):
            found = [a for a in range(stride_t[ax])
                     if _keras_crops(kernel_size[ax:ax + 1], stride_t[ax:ax + 1], dil[ax:ax + 1],
                                     mode, (a,)) == crops[ax:ax + 1]]
            if not found:
                break
            options.append(found[0])
        else:
            return kernel, mode, tuple(options)
    reachable = "; ".join(
        f"axis {ax}: " + ", ".join(_keras_reachable(kernel_size[ax], stride_t[ax], dil[ax]))
        for ax in range(n))
    raise ValueError(
        f"padding={padding!r} with output_padding={output_padding!r} (crop {crops}) has no "
        f"Keras equivalent: Keras only has padding='valid'/'same' plus output_padding < stride; "
        f"the settings it can express are {reachable}"
    )


def from_keras(kernel: ArrayLike, padding: str = "valid", output_padding: Any = None, *,
               strides: Any = 1, dilation_rate: Any = 1,
               groups: int = 1) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
    """Keras ``Conv{1,2,3}DTranspose`` kernel and padding -> PyTorch weight and padding.

    The inverse of :func:`to_keras` (see it for Keras' padding rules).

    Args:
      kernel: ``layer.kernel``: ``(*K, C_out, C_in)``.
      padding: the layer's ``padding``, ``"valid"`` or ``"same"``.
      output_padding: the layer's ``output_padding``: ``None``, an int or one
        int per axis.
      strides, dilation_rate: keyword-only; the layer's settings.
      groups: keyword-only; keep only the diagonal blocks of a
        block-diagonal kernel (off-diagonal entries are dropped).

    Returns:
      ``(w, padding, output_padding)`` with ``w`` of shape ``(C_in, C_out // groups, *K)``.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_keras(jnp.zeros((4, 4, 3, 8)), "same", strides=2)
      >>> w.shape, pad, opad
      ((8, 3, 4, 4), ((1, 1), (1, 1)), (0, 0))
    """
    k = _array("kernel", kernel, 3, "(*kernel, C_out, C_in)")
    n = k.ndim - 2
    dense = jnp.moveaxis(k, (n + 1, n), (0, 1))
    g = _groups(groups, dense.shape[0], "C_in")
    w = _grouped(dense, g)
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"padding={padding!r} must be 'valid' or 'same' (Keras' padding)")
    stride = _args.int_tuple("strides", strides, n)
    dilation = _args.int_tuple("dilation_rate", dilation_rate, n)
    opad = (None,) * n if output_padding is None else _args.int_tuple(
        "output_padding", output_padding, n)
    crops = _keras_crops(w.shape[2:], stride, dilation, padding.lower(), opad)
    return (w,) + _to_torch_padding(crops, stride, dilation, "Keras")


# ---------------------------------------------------------------------------------------
# Equinox ``eqx.nn.ConvTranspose`` (and ConvTranspose1d/2d/3d)
# ---------------------------------------------------------------------------------------

def _swap_groups(w: jax.Array, groups: int) -> jax.Array:
    """``(A, B//g, *K)`` -> ``(B, A//g, *K)``: transpose each group's channel block."""
    a, bg, *kernel = w.shape
    w = w.reshape(groups, a // groups, bg, *kernel)
    return jnp.swapaxes(w, 1, 2).reshape(groups * bg, a // groups, *kernel)


def to_equinox(w: ArrayLike, padding: Any = 0, output_padding: Any = 0, *, stride: Any = 1,
               dilation: Any = 1, groups: int = 1
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
      padding, output_padding: as the functions take them (``"same"`` too).
      stride, dilation: keyword-only; the layer's settings.
      groups: keyword-only; the layer's ``groups``.

    Returns:
      ``(weight, padding, output_padding)`` for ``eqx.nn.ConvTranspose``
      (replace its weight with ``eqx.tree_at(lambda l: l.weight, layer, weight)``;
      its bias has shape ``(C_out, 1, ..., 1)``).

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> weight, pad, opad = ct.layouts.to_equinox(jnp.zeros((8, 2, 3, 3)), 1, 1, stride=2,
      ...                                           groups=2)
      >>> weight.shape, pad, opad
      ((4, 4, 3, 3), ((1, 1), (1, 1)), (1, 1))
    """
    w = _array("w", w, 3, "(C_in, C_out // groups, *kernel)")
    g = _groups(groups, w.shape[0], "w.shape[0]")
    crops, parsed = _torch_crops(w, padding, output_padding, stride, dilation, g)
    stride_t, dil = parsed.config.stride, parsed.config.dilation
    if all(a < s for a, s in zip(parsed.output_padding, stride_t)):
        pads, opad = parsed.padding, parsed.output_padding
    else:
        pads, opad = _to_torch_padding(crops, stride_t, dil, "PyTorch", symmetric=False)
        if any(a >= s for a, s in zip(opad, stride_t)):
            raise ValueError(
                f"output_padding={output_padding!r} with padding={padding!r} needs an output "
                f"padding of {opad}, but Equinox requires output_padding < stride={stride_t}"
            )
    n = w.ndim - 2
    return _flip(_swap_groups(w, g), tuple(range(2, n + 2))), pads, opad


def from_equinox(weight: ArrayLike, padding: Any = 0, output_padding: Any = 0, *,
                 stride: Any = 1, dilation: Any = 1,
                 groups: int = 1) -> tuple[jax.Array, Pairs, tuple[int, ...]]:
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
      stride, dilation: keyword-only; the layer's settings.
      groups: keyword-only; the layer's ``groups``.

    Returns:
      ``(w, padding, output_padding)`` with ``w`` of shape ``(C_in, C_out // groups, *K)``.

    Example:
      >>> import jax.numpy as jnp, convt_jax as ct
      >>> w, pad, opad = ct.layouts.from_equinox(jnp.zeros((4, 4, 3, 3)), "SAME", stride=2,
      ...                                        groups=2)
      >>> w.shape, pad, opad
      ((8, 2, 3, 3), ((0, 1), (0, 1)), (0, 0))
    """
    k = _array("weight", weight, 3, "(C_out, C_in // groups, *kernel)")
    n = k.ndim - 2
    g = _groups(groups, k.shape[0], "weight.shape[0]")
    w = _swap_groups(_flip(k, tuple(range(2, n + 2))), g)
    stride_t = _args.int_tuple("stride", stride, n)
    dil = _args.int_tuple("dilation", dilation, n)
    opad = _args.int_tuple("output_padding", output_padding, n)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("SAME", "SAME_LOWER", "VALID"):
            raise ValueError(
                f"padding={padding!r} must be 'SAME', 'SAME_LOWER', 'VALID' or numbers")
        crops = []
        for kk, s, d, a in zip(w.shape[2:], stride_t, dil, opad):
            if mode == "VALID":
                crops.append((0, -a))
                continue
            p_sum = d * (kk - 1) - s + a + 1
            a_eff = -p_sum if p_sum < 0 else 0
            p_sum = max(p_sum, 0)
            lo = (p_sum + (mode == "SAME_LOWER")) // 2
            crops.append((lo, p_sum - lo - a_eff))
    else:
        crops = [(lo, hi - a) for (lo, hi), a in zip(_args._padding_pairs(padding, n), opad)]
    return (w,) + _to_torch_padding(tuple(crops), stride_t, dil, "Equinox")
