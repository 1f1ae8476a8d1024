"""``initlab report ID``: rebuild an experiment's report from the store alone."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from initlab.sweep import DEFAULT_STORE

    p = sub.add_parser("report", help="rebuild the report of a stored experiment")
    p.add_argument("experiment", help="experiment id (or a unique prefix, 4+ characters)")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument("--out", default=None, help="report directory (default runs/<experiment id>)")
    p.add_argument("--json", action="store_true", help="print the JSON summary instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from initlab.cli._output import publish
    from initlab.errors import UserError
    from initlab.store import open_store
    from initlab.sweep import check_writable_dir, report_data

    if not Path(args.store).exists():
        raise UserError(f"no store at {args.store!r}; pass --store PATH")
    if args.out is not None:
        check_writable_dir(args.out)
    with open_store(args.store, create=False) as db:
        data = report_data(db, db.get_experiment(args.experiment).id)
    if not data.runs:
        raise UserError(
            f"experiment {data.experiment_id} has no committed runs yet; resume it with `initlab compare --resume`"
        )
    files = publish(data, args.out, as_json=args.json)
    if not args.json:
        print(f"report: {files['html']}")
    return 0
