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
COMMANDS = ("schemes", "gain", "plan", "diagnose", "compare", "runs", "report", "study")


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
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", 2)  # store.guard.Terminated carries SIGTERM's number
        print(f"initlab: interrupted ({'SIGTERM' if signum == 15 else 'SIGINT'})", file=sys.stderr)
        return 128 + signum
    except (ValueError, OSError, ImportError) as exc:
        print(f"initlab: error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        print(f"initlab: error: out of memory ({_first_line(exc)[:200]}); lower --chunk-size, --width or "
              f"--batch-size, or set INITLAB_MEMORY_LIMIT so the pre-flight check refuses such runs", file=sys.stderr)
        return 2


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.filename}: {exc.strerror}"
    return text.splitlines()[0] if text else type(exc).__name__


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation failure (CPU or accelerator) rather than a bug."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return any(s in text for s in ("can't allocate memory", "out of memory", "not enough memory"))


def entry() -> None:
    sys.exit(main())
