"""Errors a user can cause and fix.

``UserError`` is a ``ValueError`` so library callers can catch the usual type; the CLI turns it
(and ``ValueError``/``FileNotFoundError`` from validation) into one line on stderr and exit 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input: the message names the value received and what is allowed."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The registered names nearest to ``name`` (difflib ratio), best first."""
    choices = list(choices)
    hits = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not hits:
        hits = [c for c in choices if name and (name in c or c in name)][:n]
    return hits


def unknown(kind: str, name: object, choices: Iterable[str]) -> UserError:
    """``UserError`` for an unknown name, suggesting the closest registered ones."""
    choices = sorted(choices)
    near = closest(str(name), choices)
    hint = f" Did you mean {', '.join(repr(h) for h in near)}?" if near else ""
    return UserError(f"unknown {kind} {name!r}.{hint} Allowed: {', '.join(choices)}.")
