"""``initlab gain NAME [PARAM] [--method moment]``: torch's gains, and numeric ones for any activation."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gain", help="recommended gain for an activation")
    p.add_argument("nonlinearity", help="activation name (relu, tanh, leaky_relu, gelu, silu, ...)")
    p.add_argument("param", nargs="?", type=float, help="activation parameter (leaky ReLU slope, ELU alpha)")
    p.add_argument(
        "--method",
        choices=("torch", "moment"),
        default="torch",
        help="torch: calculate_gain's values where torch has one; moment: 1/sqrt(E[phi(z)^2])",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from initlab.schemes import gain

    print(f"{gain(args.nonlinearity, args.param, method=args.method):.6g}")
    return 0
