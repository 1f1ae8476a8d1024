"""A Griffe extension for the API reference: initlab's reStructuredText-flavoured docstrings as Markdown.

The docstrings follow ``torch/nn/init.py``: formulas in ``.. math::`` blocks and ``:math:`…```
roles, code in double backticks, ``>>>`` examples. mkdocstrings renders Markdown, so before it
does, this extension rewrites (in the docs build only; the source is untouched):

- ``.. math::`` blocks and ``:math:`` roles -> MathML (``latex2mathml``), rendered by the browser
  itself: no JavaScript, no web font, nothing fetched, so the site works offline;
- ````code```` -> ```code```;
- ``>>>`` example runs -> fenced ``pycon`` blocks.

A formula that does not convert stops the build (a formula shown as raw TeX is a bug).
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe
from latex2mathml.converter import convert

_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")
_MATH_ROLE = re.compile(r":math:`(?P<tex>[^`]+)`")
_DOUBLE_BACKTICKS = re.compile(r"(?<!`)``(?P<code>[^`]+?)``(?!`)")


_TEXT_ARG = re.compile(r"\\(text|mathrm|operatorname)\{([^{}]*)\}")


def tex_to_mathml(tex: str, *, display: str) -> str:
    """One LaTeX formula as a single-line ``<math>`` element; ``ValueError`` when it does not convert."""
    # latex2mathml keeps the backslash of "\_" inside \text{...}: unescape it there first.
    tex = _TEXT_ARG.sub(lambda m: f"\\{m[1]}{{{m[2].replace(chr(92) + '_', '_')}}}", tex)
    try:
        out: str = convert(tex.strip(), display=display)
    except Exception as exc:  # latex2mathml raises its own exception types
        raise ValueError(f"formula does not convert to MathML: {tex!r} ({exc})") from exc
    if "<merror" in out:
        raise ValueError(f"formula does not convert to MathML: {tex!r}")
    # Entities for the characters Markdown would read as emphasis inside an inline formula.
    return out.replace("\n", "").replace("_", "&#x0005F;").replace("*", "&#x0002A;")


def _math_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _MATH_DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match["indent"]
        body = [match["first"]] if match["first"].strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
            body.append(lines[i])
            i += 1
        # RST: blank lines separate equations inside one math block.
        equations = [eq for eq in re.split(r"\n[ \t]*\n", textwrap.dedent("\n".join(body)).strip()) if eq.strip()]
        out.append("")
        out.extend(indent + tex_to_mathml(" ".join(eq.split("\n")), display="block") for eq in equations)
        out.append("")
    return out


def _doctest_fences(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if not stripped.startswith(">>>") or (out and out[-1].lstrip().startswith("```")):
            out.append(lines[i])
            i += 1
            continue
        indent = lines[i][: len(lines[i]) - len(stripped)]
        out.extend(["", f"{indent}```pycon"])
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.extend([f"{indent}```", ""])
    return out


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with RST math, double backticks and doctests in Markdown (see module doc)."""
    lines = _math_blocks(text.split("\n"))
    lines = _doctest_fences(lines)
    text = "\n".join(lines)
    text = _MATH_ROLE.sub(lambda m: tex_to_mathml(m["tex"], display="inline"), text)
    return _DOUBLE_BACKTICKS.sub(lambda m: f"`{m['code']}`", text)


class RstDocstrings(griffe.Extension):
    """Rewrite every loaded object's docstring with ``rst_to_markdown``."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
