"""``initlab suggest-lr FILE.py:fn --dataset digits``: the learning rate that goes with a model's init.

The target is loaded like ``plan``'s (``module:function`` or ``path/to/file.py:function``); the
model is used as it is built (its factory's init: call ``initlab.initialize`` inside it to judge
initlab's). Only the dataset's training split is passed to ``initlab.suggest_lr``, which carves
its validation split from it; the test split is never read.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "suggest-lr",
        help="learning rate for a model from its current init",
        description="Train copies of a model at a grid of learning rates on a validation split and suggest one.",
    )
    p.add_argument("target", help='"module:function" or "path/to/file.py:function" returning an nn.Module')
    p.add_argument("--dataset", default="digits", help="dataset name (initlab.data; default digits)")
    p.add_argument("--optimizer", default="adam", help="adam (default) or sgd (momentum 0.9)")
    p.add_argument(
        "--grid",
        default=None,
        metavar="LR,LR,...",
        help="learning rates to try (default: adaptive, coarse then refined)",
    )
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per rate (default: 3 epochs)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flatten", action="store_true", help="flatten the inputs to (N, features) (MLPs)")
    p.add_argument("--plot", default=None, metavar="PNG", help="save the validation curve to this file")
    p.add_argument("--json", action="store_true", help="print the suggestion as JSON")
    p.set_defaults(func=run)


def parse_grid(text: str | None) -> list[float] | None:
    from initlab.errors import UserError

    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--grid takes learning rates separated by commas (e.g. 1e-4,1e-3); got {text!r}") from None


def suggest_for_dataset(model, dataset, **kwargs):
    """``suggest_lr`` on the dataset's training split only (its test split is never passed)."""
    from initlab.lr import suggest_lr

    return suggest_lr(model, dataset.x_train, dataset.y_train, **kwargs)


def run(args: argparse.Namespace) -> int:
    from initlab.cli.plan_cmd import build_target
    from initlab.data import load

    grid = parse_grid(args.grid)
    model = build_target(args.target)
    dataset = load(args.dataset, flatten=args.flatten)
    result = suggest_for_dataset(
        model,
        dataset,
        optimizer=args.optimizer,
        grid=grid,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    if args.plot:
        result.plot(args.plot)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print(result)
    return 0
