"""MkDocs hook: the Performance page shows the plots of notebooks/04_performance.ipynb.

The notebook is committed with its outputs (`notebooks/build.py` executes it), so its
PNG outputs are what `benchmarks/RESULTS.md` looks like now. This hook copies them into
the site at build time (nothing is duplicated in the repository) and puts them where
`docs/performance.md` has the marker comment; on GitHub the comment shows nothing and
the page's link to the notebook stands alone.
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
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                png = "".join(png) if isinstance(png, list) else png
                path = f"assets/performance/plot{len(_plots) + 1}.png"
                files.append(File.generated(config, path, content=base64.b64decode(png)))
                _plots.append((caption, path))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != PAGE or MARKER not in markdown:
        return markdown
    figures = "\n\n".join(
        f"![{caption.replace('`', '')}]({path})\n\n*{caption}* (from the "
        f"[performance notebook](notebooks/04_performance.ipynb))"
        for caption, path in _plots
    )
    return markdown.replace(MARKER, figures)
