"""MkDocs hook: Sphinx roles in the docstrings read as plain code on the API pages.

The docstrings name other objects the Sphinx way (:func:`conv_transpose`,
:class:`~convt_jax.nn.ConvTranspose2d`), which `help()` and editors show as they are
and mkdocstrings renders as the role's name followed by the code. This hook drops
the role, and for a `~` reference keeps only the last component, as Sphinx shows it.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj|const):<code>(~?)([^<]*)</code>")


def _plain(match: re.Match[str]) -> str:
    tilde, name = match.groups()
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html, page, config, files):
    return _ROLE.sub(_plain, html)
