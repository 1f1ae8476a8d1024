"""Small pieces several commands share: the built-in model's options and the plot path check.

Imports nothing heavy (``initlab --help`` stays torch-free).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | None) -> None:
    """``UserError`` unless ``--plot`` is absent or names a .png, .svg or .pdf file."""
    from initlab.errors import UserError

    if path and Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"--plot {path!r}: the file name must end in .png, .svg or .pdf")


def model_options(args: argparse.Namespace, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """The built-in model's options from the ``--num-classes``, ``--width``, ``--depth`` and
    ``--activation`` flags: what ``initlab.models.build`` and its memory check both take."""
    return {
        "input_shape": input_shape,
        "num_classes": args.num_classes,
        "width": args.width,
        "depth": args.depth,
        "activation": args.activation,
    }
