"""``initlab plan "module:function" [--json]``: the per-layer initialization plan of a model, with reasons.

The target is ``package.module:factory`` or ``path/to/file.py:factory``; the factory is called
without arguments and must return a ``torch.nn.Module`` (a Module class is instantiated).
``--model mlp`` (or cnn, resmlp, rescnn) builds one of initlab's models instead
(``initlab.models.build``). Nothing is written
to the model; the plan is printed as a table, or as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from initlab.checks import parse_shape
from initlab.cli._common import model_options
from initlab.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="per-layer initialization plan of a model, with reasons",
        description="Print the per-layer initialization plan of a model (scheme, parameters, reason).",
    )
    p.add_argument("target", nargs="?", help='"module:function" or "path/to/file.py:function" returning an nn.Module')
    p.add_argument(
        "--policy",
        default="auto",
        help="auto (default), lsuv, auto+lsuv, auto+gpt2, fixup, t-fixup, deepnorm, or a scheme name for every weight",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATTERN=SCHEME",
        help="override: parameter name or glob pattern = scheme name (repeatable), e.g. '*.bias=zeros'",
    )
    p.add_argument(
        "--input-shape",
        metavar="SHAPE",
        help="shape of one input sample, e.g. 3,32,32: used to read the model with forward "
        "hooks when torch.fx cannot trace it (and by --model; default 1,28,28 there)",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--base-width", type=int, help="for --policy mup / auto+mup: the width the lr was tuned at")
    g = p.add_argument_group("built-in model (instead of a target; needs initlab.models)")
    g.add_argument("--model", metavar="NAME", help="mlp, cnn, resmlp or rescnn (initlab.models.build)")
    g.add_argument("--depth", type=int, help="hidden layers or blocks (the builder's default when omitted)")
    g.add_argument("--width", type=int, help="hidden width or channels (the builder's default when omitted)")
    g.add_argument("--activation", default="relu", help="activation name (default relu)")
    g.add_argument("--num-classes", type=int, default=10, help="outputs (default 10)")
    p.set_defaults(func=run)


def build_target(target: str) -> Any:
    from torch import nn

    from initlab.loader import call_factory, load_object

    factory = load_object(target)
    if isinstance(factory, nn.Module):
        model = factory
    elif callable(factory):
        model = call_factory(factory, repr(target))
    else:
        model = factory
    if not isinstance(model, nn.Module):
        raise UserError(f"{target} must return a torch.nn.Module; got {type(model).__name__}")
    return model


def build_builtin(name: str, args: argparse.Namespace, input_shape: tuple[int, ...]) -> Any:
    try:
        models = importlib.import_module("initlab.models")
    except ImportError:
        raise UserError("--model needs initlab.models, which this installation does not have") from None
    from initlab.engine.memory import check_builtin_model

    options = model_options(args, input_shape)
    check_builtin_model(name, **options, batch_size=0, backward=False, what="plan", lower="--width or --depth")
    return models.build(name, **options)


def parse_overrides(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"--set takes PATTERN=SCHEME (e.g. '*.bias=zeros'); got {item!r}")
        out[key.strip()] = value.strip()
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.policy import plan

    if args.model and args.target:
        raise UserError('give either a target "module:function" or --model, not both')
    shape = parse_shape("--input-shape", args.input_shape) if args.input_shape else None
    if args.model:
        shape = shape or (1, 28, 28)
        model = build_builtin(args.model, args, shape)
    elif args.target:
        model = build_target(args.target)
    else:
        raise UserError('give a target "module:function" (or --model mlp)')
    example = None
    if shape is not None:
        example = torch.randn((2, *shape), generator=torch.Generator().manual_seed(0))
    overrides = parse_overrides(args.overrides)
    if overrides and args.policy != "auto":
        raise UserError("--set overrides combine with --policy auto only")
    result = plan(model, overrides or args.policy, example_input=example, base_width=args.base_width)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result)
    return 0
