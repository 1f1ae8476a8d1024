"""Errors a user can cause and fix.

``UserError`` is a ``ValueError`` so library callers can catch the usual type; the CLI turns it
(and ``ValueError``/``FileNotFoundError`` from validation) into one line on stderr and exit 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


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


def normalize_name(name: str) -> str:
    """The form names are compared in by every registry: stripped, lower case, ``-`` and spaces as ``_``.

    So ``"Fashion-MNIST"``, ``"fashion_mnist"`` and ``" fashion-mnist "`` name the same dataset,
    ``"He_Normal"`` the same scheme.
    """
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def lookup(kind: str, name: object, names: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """The registered name ``name`` means (directly or by an alias), compared after ``normalize_name``.

    The one lookup of every registry (schemes, activations, datasets, models, studies):
    an unknown name raises ``unknown(kind, ...)``, which suggests the closest registered ones.
    """
    names = list(names)
    aliases = dict(aliases or {})
    if not isinstance(name, str):
        raise UserError(f"{kind} name must be a string; got {name!r}")
    table = {normalize_name(n): n for n in names}
    table.update({normalize_name(a): target for a, target in aliases.items()})
    key = normalize_name(name)
    if key not in table:
        raise unknown(kind, name, names + list(aliases))
    return table[key]
