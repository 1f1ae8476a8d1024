"""The ``initlab`` command line: a thin layer over the library.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; the module's handler is set with ``parser.set_defaults(func=...)``
and returns an exit code. User errors (``ValueError``, missing files) print one line on
stderr and exit 2, never a traceback, with the same prefix as argparse's own errors:
``initlab COMMAND: error: ...``; a library message that names a parameter (``seeds: ...``) is
shown with its flag (``--seeds: ...``, the one table in ``cli/_flags.py``).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

# Order is the order of ``initlab --help``.
COMMANDS = ("schemes", "gain", "plan", "diagnose", "suggest-lr", "compare", "runs", "report", "study")
# One line per command for ``initlab --help``, which then imports no command module (they
# import torch, ~2 s). Each module's ``register`` uses the same text (tests/test_cli_startup.py).
SUMMARIES = {
    "schemes": "list the registered initialization schemes",
    "gain": "recommended gain for an activation",
    "plan": "per-layer initialization plan of a model, with reasons",
    "diagnose": "signal propagation at init: per-layer table, flags, theory",
    "suggest-lr": "learning rate for a model from its current init",
    "compare": "train schemes x seeds and compare them (the main job)",
    "runs": "list the stored experiments",
    "report": "rebuild the report of a stored experiment",
    "study": "test one of the article's claims by experiment (or all)",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``initlab compare: error: ...`` and exit 2, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.partition(" ")[2] or None
        self.exit(2, f"{error_prefix(command)} {message} (see {self.prog} --help)\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command registered, or (``only``) with that command registered
    and the others as one-line stubs: only the module of the command that runs is imported."""
    from initlab import __version__

    parser = _Parser(
        prog="initlab",
        description="Pick, check and benchmark neural-network weight initialization.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is None or name == only:
            _import_without_collections(f"initlab.cli.{name.replace('-', '_')}_cmd").register(sub)
        else:
            sub.add_parser(name, help=SUMMARIES[name])
    return parser


def _import_without_collections(module: str):
    """Import ``module`` (a command module imports torch: about a million objects) with the
    cyclic garbage collector paused: an import makes almost no garbage, yet its growth
    triggers full collections that walk everything imported so far (2 during ``import torch``)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return importlib.import_module(module)
    finally:
        if enabled:
            gc.enable()


def _command_name(argv: list[str]) -> list[str]:
    """``argv`` with its command spelled as registered (``Compare`` -> ``compare``), through the
    registries' one lookup; an unknown command raises ``UserError`` with the closest ones."""
    from initlab.errors import lookup

    if argv and not argv[0].startswith("-"):
        return [lookup("command", argv[0], COMMANDS), *argv[1:]]
    return argv


def main(argv: list[str] | None = None, *, owns_process: bool = False) -> int:
    """Run ``initlab *argv``; the exit code. ``owns_process`` (the console script): the
    process ends after this call, so what is imported at start-up is frozen out of the
    garbage collector's full passes (``gc.freeze``)."""
    from initlab.errors import UserError

    try:
        argv = _command_name(list(sys.argv[1:] if argv is None else argv))
    except UserError as exc:
        print(f"{error_prefix(None)} {exc}", file=sys.stderr)
        return 2
    first = argv[0] if argv else ""
    parser = build_parser(only=first if first in COMMANDS else "")
    if owns_process:
        gc.freeze()
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
        from initlab.cli._flags import as_flags

        print(f"{error_prefix(args.command)} {as_flags(args.command, _first_line(exc))}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        print(
            f"{error_prefix(args.command)} out of memory ({_first_line(exc)[:200]}); lower --chunk-size, --width or "
            f"--batch-size, or set INITLAB_MEMORY_LIMIT so the pre-flight check refuses such runs",
            file=sys.stderr,
        )
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


def error_prefix(command: str | None) -> str:
    """The one prefix of every user error, argparse's and initlab's: ``initlab compare: error:``."""
    return f"initlab {command}: error:" if command else "initlab: error:"


def entry() -> None:
    code = main(owns_process=True)
    # The interpreter's finalization runs full collections over every object left (torch,
    # scipy, matplotlib: about 0.5 s of CPU); frozen objects are skipped, and are freed by
    # reference counting or with the process all the same. Nothing is cut short: atexit
    # handlers, open files' flushes and non-daemon threads run as before.
    gc.freeze()
    sys.exit(code)
