"""MkDocs hooks: the repository's own texts are the site's, so there is one copy of each to keep.

- ``README.md`` is the home page. It links into ``docs/`` from the repository root; on the site
  those pages sit at the root, so ``docs/`` is taken off relative links and images, and a link
  to a folder points at that folder's ``index.md``.
- ``CHANGELOG.md``, ``CONTRIBUTING.md`` and ``LICENSE`` become pages of their own, and the
  README's links to them point there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
# repository file -> (site page, how its text becomes Markdown)
ROOT_PAGES = {
    "CHANGELOG.md": ("changelog.md", lambda text: text),
    "CONTRIBUTING.md": ("contributing.md", lambda text: text),
    "LICENSE": ("license.md", lambda text: f"# License\n\n```text\n{text}```\n"),
}
_DOCS_LINK = re.compile(r"\]\(docs/(?P<target>[^)\s]*)\)")
_ROOT_LINK = re.compile(r"\]\((?P<target>" + "|".join(re.escape(name) for name in ROOT_PAGES) + r")\)")


def readme_for_site(text: str) -> str:
    def relink(match: re.Match[str]) -> str:
        target = match["target"]
        if target == "" or target.endswith("/"):
            target += "index.md"
        return f"]({target})"

    text = _DOCS_LINK.sub(relink, text)
    return _ROOT_LINK.sub(lambda m: f"]({ROOT_PAGES[m['target']][0]})", text)


def on_files(files: Files, *, config: Any) -> Files:
    for name, (page, to_markdown) in ROOT_PAGES.items():
        content = to_markdown((ROOT / name).read_text(encoding="utf-8"))
        files.append(File.generated(config, page, content=content))
    return files


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "index.md":
        return readme_for_site((ROOT / "README.md").read_text(encoding="utf-8"))
    return markdown
