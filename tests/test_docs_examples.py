"""The README's and docs' Python examples run, and show what they print.

Every fenced ```` ```python ```` block in ``README.md`` and ``docs/**/*.md`` runs, in a fresh
working directory; the blocks of one file share one namespace, in order, like one session.
What a block shows is checked:

- ``>>>`` lines are doctests: each output shown must be printed (``...`` elides, whitespace
  is normalised);
- an expression statement with a trailing comment that starts with a Python literal
  (``initlab.gain("gelu")   # 1.5335, numeric``) must evaluate to it: floats to the decimals
  written (|value - shown| <= half a unit of the last digit), containers element by element,
  anything else by ``==``. Comments that start with words are prose, not checked;
- a ```` ```text ```` block right after a python block is its output: its lines must appear,
  in order and contiguously, in what the python block printed.

Conventions for authors:

- ``<!-- no-test: REASON -->`` on the line before the fence skips a block that is not runnable
  Python (a signature listing, pseudo-code with ``...``) or needs data a test machine lacks;
- a block whose first line is ``# NAME.py`` is a file: the lines up to the first ``>>>`` are
  written to NAME.py in the working directory (importable), the rest runs as doctests.
"""

from __future__ import annotations

import ast
import contextlib
import decimal
import doctest
import io
import math
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<info>[^`]*)$")
NO_TEST = re.compile(r"<!--\s*no-test\b")
FILE_BLOCK = re.compile(r"^#\s*(?P<name>[\w.]+\.py)\s*$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip: bool
    output: str | None  # the plain block that follows, if any

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _fences(lines: list[str]) -> list[tuple[int, int, str]]:
    """(open index, close index, info string) of every top-level fenced block."""
    out: list[tuple[int, int, str]] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not FENCE.match(lines[j]):
            j += 1
        out.append((i, j, match["info"].strip()))
        i = j + 1
    return out


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").split("\n")
    fences = _fences(lines)
    out: list[Block] = []
    for k, (start, end, info) in enumerate(fences):
        if info.split()[:1] != ["python"]:
            continue
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        output = None
        if k + 1 < len(fences):
            nxt_start, nxt_end, nxt_info = fences[k + 1]
            if nxt_info == "text" and all(not ln.strip() for ln in lines[end + 1 : nxt_start]):
                output = "\n".join(lines[nxt_start + 1 : nxt_end])
        code = textwrap.dedent("\n".join(lines[start + 1 : end]))
        out.append(Block(path, start + 1, code, bool(NO_TEST.search(before)), output))
    return out


def doc_files() -> list[Path]:
    """The Markdown files with at least one runnable python block."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [f for f in files if any(not b.skip for b in blocks_of(f))]


# --- checking a shown value ---------------------------------------------------------------------


def shown_literal(comment: str) -> tuple[bool, Any]:
    """The longest prefix of ``comment`` that is a Python literal, if one ends at a word boundary."""
    for end in range(len(comment), 0, -1):
        prefix = comment[:end].rstrip()
        if not prefix or prefix.endswith(",") or (end < len(comment) and comment[end].isalnum()):
            continue
        try:
            return True, ast.literal_eval(prefix)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return False, None


def _half_ulp(shown: float) -> float:
    exponent = decimal.Decimal(repr(shown)).as_tuple().exponent
    return 0.5001 * 10.0 ** int(exponent) if isinstance(exponent, int) else 0.0


def matches(actual: Any, shown: Any) -> bool:
    if hasattr(actual, "tolist") and not isinstance(shown, str):
        actual = actual.tolist()
    if isinstance(shown, bool) or shown is None:
        return bool(actual == shown) and type(actual) is type(shown)
    if isinstance(shown, float) or (isinstance(shown, int) and isinstance(actual, float)):
        return isinstance(actual, (int, float)) and math.isclose(actual, shown, rel_tol=0, abs_tol=_half_ulp(shown))
    if isinstance(shown, (list, tuple)):
        return (
            isinstance(actual, (list, tuple))
            and len(actual) == len(shown)
            and all(matches(a, s) for a, s in zip(actual, shown))
        )
    if isinstance(shown, dict):
        return (
            isinstance(actual, dict)
            and actual.keys() == shown.keys()
            and all(matches(actual[k], shown[k]) for k in shown)
        )
    return bool(actual == shown)


# --- running a block ------------------------------------------------------------------------------


def _comment_of(source_line: str) -> str | None:
    """The trailing ``# comment`` of one physical line of code (tokenize-free: strings respected)."""
    in_string: str | None = None
    for i, ch in enumerate(source_line):
        if in_string:
            if ch == in_string and source_line[i - 1] != "\\":
                in_string = None
        elif ch in "'\"":
            in_string = ch
        elif ch == "#":
            return source_line[i + 1 :].strip()
    return None


def run_script(block: Block, namespace: dict[str, Any]) -> str:
    tree = ast.parse(block.code, filename=block.where)
    code_lines = block.code.split("\n")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for stmt in tree.body:
            where = f"{block.path.relative_to(ROOT)}:{block.line + stmt.lineno}"
            comment = _comment_of(code_lines[(stmt.end_lineno or stmt.lineno) - 1])
            is_value, shown = shown_literal(comment) if comment else (False, None)
            if isinstance(stmt, ast.Expr) and is_value:
                actual = eval(compile(ast.Expression(stmt.value), where, "eval"), namespace)
                assert matches(actual, shown), f"{where}: shows {shown!r}, gives {actual!r}"
            else:
                exec(compile(ast.Module([stmt], type_ignores=[]), where, "exec"), namespace)
    return printed.getvalue()


def run_doctests(block: Block, text: str, namespace: dict[str, Any]) -> None:
    test = doctest.DocTestParser().get_doctest(text, namespace, block.where, str(block.path), block.line)
    printed = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=printed.write, clear_globs=False)
    namespace.update(test.globs)  # DocTest ran on a copy: later blocks see what this one defined
    assert runner.failures == 0, f"{block.where}: doctest failed\n{printed.getvalue()}"


def run_block(block: Block, namespace: dict[str, Any], workdir: Path) -> None:
    code = block.code
    first = code.split("\n", 1)[0]
    file_match = FILE_BLOCK.match(first)
    if file_match:
        body, _, rest = code.partition("\n>>>")
        (workdir / file_match["name"]).write_text(body + "\n", encoding="utf-8")
        code = ">>>" + rest if rest else ""
    if ">>>" in code:
        run_doctests(block, code, namespace)
        return
    printed = run_script(block, namespace)
    if block.output is not None:
        shown = [ln.rstrip() for ln in block.output.strip("\n").split("\n")]
        got = [ln.rstrip() for ln in printed.split("\n")]
        windows = (got[i : i + len(shown)] for i in range(len(got) - len(shown) + 1))
        assert any(w == shown for w in windows), (
            f"{block.where}: the output block below it is not in what it prints:\n{printed}"
        )


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run_and_show_what_they_print(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, Any] = {"__name__": "__docs_example__"}
    for block in blocks_of(path):
        if not block.skip:
            run_block(block, namespace, tmp_path)


# --- the runner itself ----------------------------------------------------------------------------


def test_shown_values_are_read_from_the_comment_and_compared_to_its_precision() -> None:
    assert shown_literal("1.3868, as torch.nn.init.calculate_gain") == (True, 1.3868)
    assert shown_literal("(1.748, 3.627) = (ξ_q, ξ_c)") == (True, (1.748, 3.627))
    assert shown_literal("True") == (True, True)
    assert shown_literal("fills in place, returns w")[0] is False
    assert shown_literal("(16, k) per sample")[0] is False
    assert matches(1.38675, 1.3868) and not matches(1.3862, 1.3868)
    assert matches((1.7481, 3.6266), (1.748, 3.627)) and not matches((1.7481,), (1.748, 3.627))
    assert matches({"a": 2.0, "b": "x"}, {"a": 2.0, "b": "x"}) and not matches({"a": 2.1}, {"a": 2.0})
    assert not matches(1, True)


def test_a_wrong_shown_value_fails(tmp_path: Path) -> None:
    block = Block(ROOT / "README.md", 1, "x = 2.0\nx * 2   # 4.5, wrong on purpose\n", False, None)
    with pytest.raises(AssertionError, match="shows 4.5, gives 4.0"):
        run_block(block, {}, tmp_path)


def test_an_output_block_that_is_not_printed_fails(tmp_path: Path) -> None:
    block = Block(ROOT / "README.md", 1, "print('a')\nprint('b')\n", False, "a\nc")
    with pytest.raises(AssertionError, match="not in what it prints"):
        run_block(block, {}, tmp_path)
    run_block(Block(ROOT / "README.md", 1, "print('a')\nprint('b')\n", False, "a\nb"), {}, tmp_path)
