"""The rich Console every terminal table is printed with (imports nothing heavy)."""

from __future__ import annotations

import sys
from typing import Any

PIPE_WIDTH = 1000  # columns for a table written to a pipe or file: wide enough never to wrap


def console(file: Any = None):
    """A rich Console for tables: on a terminal its width (cells wrap between words); piped or
    redirected, wide enough that no line wraps, so ``| grep`` and ``| less -S`` see whole cells
    (rich at its default 80 columns folds a cell mid-word)."""
    from rich.console import Console

    stream = file if file is not None else sys.stdout
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=file) if is_tty else Console(file=file, width=PIPE_WIDTH)
