"""MkDocs hooks: the README is the site's home page, so there is one text to keep up to date.

The README links into ``docs/`` from the repository root; on the site those pages sit at the
root, so ``docs/`` is taken off relative links and images, and a link to a folder points at
that folder's ``index.md``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_README = Path(__file__).resolve().parent.parent / "README.md"
_LINK = re.compile(r"\]\(docs/(?P<target>[^)\s]*)\)")


def readme_for_site(text: str) -> str:
    def relink(match: re.Match[str]) -> str:
        target = match["target"]
        if target == "" or target.endswith("/"):
            target += "index.md"
        return f"]({target})"

    return _LINK.sub(relink, text)


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "index.md":
        return readme_for_site(_README.read_text(encoding="utf-8"))
    return markdown
