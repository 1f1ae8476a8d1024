"""The one table from the library's parameter names to the command line's flags.

The library's errors name the parameter they are about (``seeds: expected a count ...``,
``resume: no experiment in ...``); ``initlab``'s error printer shows the same line with the
flag the user typed (``--seeds: expected a count ...``). Only a leading ``param:`` is mapped,
and only for a command that has that flag, so a message about anything else passes unchanged.
This module imports nothing heavy: ``initlab --help`` loads it without torch.
"""

from __future__ import annotations

# CompareConfig's fields and compare()'s arguments under their ``initlab compare`` flags.
_COMPARE = {
    "address": "--address",
    "backend": "--backend",
    "batch_size": "--batch-size",
    "budgets": "--budgets",
    "chunk_size": "--chunk-size",
    "context": "--context",
    "depth": "--depth",
    "epochs": "--epochs",
    "image_size": "--image-size",
    "lr_grid": "--lr-grid",
    "margin": "--margin",
    "momentum": "--momentum",
    "optimizer": "--optimizer",
    "out": "--out",
    "resume": "--resume",
    "schemes": "--schemes",
    "seeds": "--seeds",
    "target": "--target",
    "task": "--task",
    "val_fraction": "--val-fraction",
    "width": "--width",
}

FLAGS_BY_COMMAND: dict[str, dict[str, str]] = {
    "compare": _COMPARE,
    "diagnose": {"widths": "--widths"},
    "report": {"out": "--out"},
    "study": {"out": "--out"},
}


def as_flags(command: str | None, message: str) -> str:
    """``message`` with its leading ``param:`` written as the command's flag (``--param:``)."""
    param, sep, rest = message.partition(":")
    flag = FLAGS_BY_COMMAND.get(command or "", {}).get(param)
    return f"{flag}:{rest}" if sep and flag else message
