"""Non-zero padding modes as exact adjoints of the padded forward convolution.

(To be completed by the layers issue: ``check`` validates ``padding_mode``
and returns ``parsed.padding``, the per-axis ``(lo, hi)`` padding; ``fold`` folds the border of
the full transposed convolution back onto the interior.)
"""

from __future__ import annotations

PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def check(padding_mode, parsed):
    raise NotImplementedError("padding_mode other than 'zeros' is not implemented yet")


def fold(y, pads, padding_mode, *, channels_last):
    raise NotImplementedError("padding_mode other than 'zeros' is not implemented yet")
