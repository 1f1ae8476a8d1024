"""``initlab schemes``: the registry as a table (name, aliases, formula, reference)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schemes", help="list the registered initialization schemes")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    p.add_argument("name", nargs="?", help="show one scheme in full (parameters, docstring)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from initlab.schemes import ARTICLE_NAMES, definitions, resolve

    defs = [resolve(args.name)] if args.name else definitions()
    rows = [
        {
            "name": d.name,
            "aliases": list(d.aliases),
            "params": {p.name: p.default for p in d.params},
            "shapes": d.dims_text(),
            "formula": d.formula,
            "reference": d.reference,
            "article": ARTICLE_NAMES.get(d.name),
        }
        for d in defs
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.name:
        d = defs[0]
        print(f"{d.name}  ({d.dims_text()})")
        if d.aliases:
            print(f"aliases:   {', '.join(d.aliases)}")
        for p in d.params:
            print(f"param:     {p.name} = {p.default!r}  ({p.allowed})")
        print(f"formula:   {d.formula}")
        print(f"reference: {d.reference}")
        if d.sample.__doc__:
            import inspect

            print()
            print(inspect.cleandoc(d.sample.__doc__))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"initlab schemes ({len(rows)}; * = the article's ten)", show_lines=False)
    for col in ("name", "aliases", "formula", "reference"):
        table.add_column(col, overflow="fold")
    for r in rows:
        star = " *" if r["article"] else ""
        table.add_row(*(escape(x) for x in (r["name"] + star, ", ".join(r["aliases"]), r["formula"], r["reference"])))
    Console().print(table)
    return 0
