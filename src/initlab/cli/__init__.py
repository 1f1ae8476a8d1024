"""The ``initlab`` command line: a thin layer over the library.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; the module's handler is set with ``parser.set_defaults(func=...)``
and returns an exit code. User errors (``ValueError``, missing files) print one line on
stderr and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Order is the order of ``initlab --help``.
COMMANDS = ("schemes", "gain", "plan", "diagnose", "suggest_lr", "compare", "runs", "report", "study")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``initlab compare: error: ...`` and exit 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from initlab import __version__

    parser = _Parser(
        prog="initlab",
        description="Pick, check and benchmark neural-network weight initialization.",
    )
    parser.add_argument("--version", action="version", version=f"initlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"initlab.cli.{name}_cmd").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # stdout closed early (`initlab compare --json | head`): silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("initlab: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError, ImportError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"initlab: error: {msg}", file=sys.stderr)
        return 2


def entry() -> None:
    sys.exit(main())
