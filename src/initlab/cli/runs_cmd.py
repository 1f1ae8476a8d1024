"""``initlab runs``: the experiments in a store."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from initlab.sweep import DEFAULT_STORE

    p = sub.add_parser("runs", help="list the stored experiments")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from initlab.errors import UserError
    from initlab.store import open_store
    from initlab.store.guard import effective_status

    if not Path(args.store).exists():
        raise UserError(f"no store at {args.store!r}; run `initlab compare` first or pass --store PATH")
    with open_store(args.store, create=False) as db:
        rows = []
        for e in db.list_experiments():
            c = e.config
            rows.append(
                {
                    "id": e.id,
                    "created": e.created_at,
                    "status": effective_status(e.status, e.extra),
                    "dataset": c.get("dataset"),
                    # a study's experiment (depth-frontier) names its network family, not a model
                    "model": f"{c.get('model') or c.get('family') or '?'} {c.get('depth')}x{c.get('width')} "
                    f"{c.get('activation')}",
                    "schemes": len(c.get("schemes", [])),
                    "seeds": len(c.get("seeds", [])),
                    "cells": len(db.committed_cells(e.id)),
                    # one cell per (scheme, seed) and, in a tuned comparison, per learning rate
                    "cells_total": len(c.get("schemes", []))
                    * len(c.get("seeds", []))
                    * max(1, len(c.get("lr_grid") or [])),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no experiments in {args.store}")
        return 0
    from initlab.report.tables import print_rich

    header = ["id", "created", "status", "dataset", "model", "schemes", "seeds", "cells done"]
    print_rich(
        f"experiments in {args.store}",
        header,
        [
            [
                r["id"],
                r["created"],
                r["status"],
                r["dataset"],
                r["model"],
                str(r["schemes"]),
                str(r["seeds"]),
                f"{r['cells']}/{r['cells_total']}" if r["cells_total"] else str(r["cells"]),
            ]
            for r in rows
        ],
    )
    return 0
