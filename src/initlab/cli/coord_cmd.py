"""``initlab diagnose --coord-check --widths 64,128,256,512,1024``: μP's coordinate check.

    initlab diagnose --coord-check --widths 64,128,256,512,1024 --parametrization sp --plot sp.png
    initlab diagnose --coord-check --widths 64,128,256,512,1024 --base-width 64 --lr 0.01 --json

The model (``--model``, ``--depth``, ``--activation``, ``--input-shape``, ``--num-classes``) is
built at each width, initialized by μP (``auto+mup``) or standard parametrization (``sp``: auto
init, one global lr), trained ``--steps`` steps on one Gaussian batch with random labels, and
per layer the mean |activation| and |Δ activation| are fitted against width (``initlab.mup.coord``).
"""

from __future__ import annotations

import argparse
import json
import sys

from initlab.cli._common import check_plot_path, model_options
from initlab.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("coordinate check (μP, Yang et al. 2022)")
    g.add_argument("--coord-check", action="store_true", help="run the coordinate check over --widths instead")
    g.add_argument("--widths", help="at least three increasing widths, e.g. 64,128,256,512,1024")
    g.add_argument(
        "--parametrization",
        choices=("mup", "sp"),
        default="mup",
        help="mup (auto+mup init, per-layer lrs) or sp (auto init, one lr); default mup",
    )
    g.add_argument("--base-width", type=int, help="μP base width (default the smallest of --widths)")
    g.add_argument("--steps", type=int, default=3, help="optimizer steps (default 3)")
    g.add_argument("--lr", type=float, default=0.01, help="base learning rate (default 0.01)")
    g.add_argument("--optimizer", choices=("adam", "sgd"), default="adam", help="default adam")


def run_coord_check(args: argparse.Namespace, shape: tuple[int, ...]) -> int:
    from initlab.models import build
    from initlab.mup.coord import check_widths, coord_check

    if not args.coord_check:
        raise UserError("--widths needs --coord-check")
    if not args.widths:
        raise UserError("--coord-check needs --widths, e.g. --widths 64,128,256,512,1024")
    widths = check_widths(args.widths)
    check_plot_path(args.plot)
    if not args.lr > 0:
        raise UserError(f"--lr={args.lr} is invalid; allowed: a number > 0")
    if args.batch < 2:
        raise UserError(f"--batch={args.batch} is invalid; allowed: an integer >= 2")
    if len(shape) != 1:
        raise UserError(f"--coord-check draws flat Gaussian inputs: --input-shape must be one number; got {shape}")

    options = model_options(args, shape)

    def factory(width: int):
        return build(args.model, **{**options, "width": width}, seed=args.seed)

    policy = "auto+mup" if args.parametrization == "mup" else "sp"
    result = coord_check(
        factory,
        widths,
        policy=policy,
        base_width=args.base_width,
        steps=args.steps,
        lr=args.lr,
        optimizer=args.optimizer,
        seed=args.seed,
        batch=args.batch,
    )
    if args.json:
        print(
            json.dumps(
                {"model": args.model, "activation": args.activation, "seed": args.seed, **result.to_dict()}, indent=2
            )
        )
    else:
        print(f"{args.model} {args.activation}: batch {args.batch} of N(0, 1) inputs {shape}, seed {args.seed}")
        print(result.summary())
    if args.plot:
        path = result.plot(args.plot, title=f"{args.model} {args.activation}: coordinate check")
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
