"""MkDocs hook: the Performance page shows the plots of notebooks/04_performance.ipynb.

The notebook is committed with its outputs (`notebooks/build.py` executes it), so its
PNG outputs are what `benchmarks/RESULTS.md` looked like when it was last built. This
hook copies them into the site at build time (nothing is duplicated in the repository)
and puts them where `docs/performance.md` has the marker comment, and the first one
(the summary) where `docs/index.md` has its marker; on GitHub the comments show nothing
and the pages' links to the notebook stand alone.

Each plot's caption is the heading of the notebook's section that draws it, followed by
the Markdown the plotting cell displays (the machine, date and commit of the plotted
tables).
"""

from __future__ import annotations

import base64
import json
import pathlib
import re

from mkdocs.structure.files import File

NOTEBOOK = "notebooks/04_performance.ipynb"
PAGE = "performance.md"
MARKER = "<!-- performance plots -->"
LANDING = "index.md"
LANDING_MARKER = "<!-- performance summary plot -->"
_plots: list[tuple[str, str]] = []  # (caption, site path)


def on_files(files, config):
    _plots.clear()
    root = pathlib.Path(config.config_file_path).parent
    cells = json.loads((root / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    caption = "Plot"
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            heading = re.search(r"^##+ (.+)$", source, re.M)
            caption = heading.group(1).strip() if heading else caption
        outputs = cell.get("outputs", [])
        notes = " ".join(
            _text(o["data"]["text/markdown"]).strip()
            for o in outputs
            if "text/markdown" in o.get("data", {})
        )
        for output in outputs:
            png = output.get("data", {}).get("image/png")
            if png:
                path = f"assets/performance/plot{len(_plots) + 1}.png"
                content = base64.b64decode(_text(png))
                files.append(File.generated(config, path, content=content))
                _plots.append((f"{caption}. {notes}" if notes else caption, path))
    return files


def _text(value):
    return "".join(value) if isinstance(value, list) else value


def _figure(caption, path):
    alt = re.sub(r"[`*\[\]]", "", caption.split(". ")[0])
    return (
        f"![{alt}]({path})\n\n*{caption}* (from the "
        f"[performance notebook](notebooks/04_performance.ipynb))"
    )


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == PAGE and MARKER in markdown:
        return markdown.replace(MARKER, "\n\n".join(_figure(*p) for p in _plots))
    if page.file.src_uri == LANDING and LANDING_MARKER in markdown and _plots:
        return markdown.replace(LANDING_MARKER, _figure(*_plots[0]))
    return markdown
