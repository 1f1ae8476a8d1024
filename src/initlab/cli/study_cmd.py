"""``initlab study NAME|all``: the article's claims, tested by experiment."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    from initlab.sweep import DEFAULT_STORE

    p = sub.add_parser("study", help="test one of the article's claims by experiment (or all)")
    p.add_argument("name", nargs="?", help="a study name or 'all' (--list shows the names and claims)")
    p.add_argument("--list", action="store_true", help="list the studies and the claims they test")
    p.add_argument(
        "--page",
        action="store_true",
        help="only assemble OUT/index.md from the results saved under --out (runs nothing)",
    )
    p.add_argument("--full", action="store_true", help="the larger version (e.g. Fashion-MNIST)")
    p.add_argument("--quick", action="store_true", help="the smallest version, where a study has one (depth-frontier)")
    p.add_argument("--out", default=None, help="directory for the figures and the page (default runs/studies)")
    p.add_argument("--store", default=DEFAULT_STORE)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a study setting (e.g. --set epochs=2); repeatable",
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads outside comparisons (which choose their own); default 1"
    )
    p.add_argument(
        "--device",
        default="auto",
        help="where comparisons train: auto (CUDA if available, else CPU; default), cpu, cuda, cuda:N, mps",
    )
    p.add_argument("--json", action="store_true", help='print {"study", "verdict", "claim", "evidence"} on stdout')
    p.set_defaults(func=run)


def _parse_sets(items: list[str]) -> dict:
    from initlab.errors import UserError

    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _command_for(name: str, args: argparse.Namespace) -> str:
    """The command that reruns just this study with these options (for the page)."""
    parts = ["initlab", "study", name]
    parts += ["--full"] * bool(args.full) + ["--quick"] * bool(args.quick)
    parts += ["--out", str(args.out or "runs/studies"), "--store", str(args.store)]
    for item in args.set:
        parts += ["--set", item]
    return " ".join(shlex.quote(p) for p in parts)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from initlab import studies
    from initlab.errors import UserError
    from initlab.report.tables import print_rich
    from initlab.studies.page import save_result, write_page
    from initlab.sweep.driver import check_writable_dir, torch_threads

    if args.page:
        from initlab.studies.page import load_results

        if args.name:
            raise UserError(f"--page assembles the saved results and takes no study name; got {args.name!r}")
        out_dir = Path(args.out or "runs/studies")
        if not load_results(out_dir, studies.names()):
            raise UserError(f"--page: no saved study result (<study>/result.json) under {out_dir}")
        print(f"page: {write_page([], out_dir, order=studies.names())}")
        return 0
    if args.list or not args.name:
        if not args.list:
            raise UserError(f"name a study or 'all'; one of: {', '.join(studies.names())}")
        for name in studies.names():
            claim = studies.get(name).claim
            print(f"{name:18s} {claim if len(claim) < 100 else claim[:97] + '...'}")
        return 0
    if args.threads < 1:
        raise UserError(f"--threads: must be an integer >= 1; got {args.threads}")
    from initlab.engine.device import resolve_device

    resolve_device(args.device)  # a device that does not exist is refused before any work

    names = studies.names() if args.name == "all" else [studies.get(args.name).name]
    out = check_writable_dir(args.out or "runs/studies")
    overrides = _parse_sets(args.set)
    results = []
    for name in names:
        study = studies.get(name)
        ctx = studies.StudyContext(
            out=check_writable_dir(out / name),
            store=Path(args.store),
            full=args.full,
            progress=not args.json,
            overrides=overrides,
            device=args.device,
            quick=args.quick,
        )
        started = time.perf_counter()
        with torch_threads(args.threads):
            result = study.run(ctx)
        results.append(result)
        save_result(result, out, command=_command_for(name, args), wall_s=time.perf_counter() - started)
        if not args.json:
            print(f"\n{name}: {result.verdict.upper()} — {result.summary}")
            print(f"effect: {result.effect_text()}")
            for title, header, rows in result.tables:
                print_rich(title, header, rows)
    page = write_page(results, out, order=studies.names())
    if args.json:
        payload = [r.to_json() for r in results]
        json.dump(payload[0] if args.name != "all" else payload, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(f"\npage: {page}")
    return 0
