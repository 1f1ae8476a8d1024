"""``initlab diagnose``: signal propagation of a model at init, per layer, with flags and theory.

    initlab diagnose --model mlp --depth 30 --width 512 --activation relu --scheme xavier_uniform
    initlab diagnose --model mypkg.nets:make --input-shape 3,32,32 --scheme he_normal --plot sp.png
    initlab diagnose --depth 20 --activation tanh --scheme variance_scaling \
        --param scale=4 --param distribution=normal --bias-scheme normal --bias-param std=0.2236

Inputs are a batch of standard Gaussian vectors of ``--input-shape`` drawn from the seed; the
backward signal is a random projection of the output (``initlab.diagnose``, ``targets=None``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
import json
import sys
from typing import Any

from initlab.errors import UserError


def _shape(text: str) -> tuple[int, ...]:
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise UserError(f"--input-shape {text!r} is invalid; allowed: positive integers like 784 or 1,28,28")
    return shape


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _params(items: list[str] | None, flag: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {item!r} is invalid; allowed: KEY=VALUE, e.g. {flag} scale=2")
        params[key.strip()] = _value(value.strip())
    return params


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose", help="signal propagation at init: per-layer table, flags, theory",
        description="Run one forward and backward pass of a freshly initialized model on Gaussian inputs and report, "
                    "per weighted layer, the forward and backward second moments (with mean-field predictions), "
                    "dead, saturated and symmetric units, and flags.",
    )
    p.add_argument("--model", default="mlp",
                   help="built-in model (mlp, cnn, resmlp, rescnn) or a 'package.module:function' factory (default mlp)")
    p.add_argument("--depth", type=int, help="hidden layers / blocks (the model's default when omitted)")
    p.add_argument("--width", type=int, help="units / channels per hidden layer (the model's default when omitted)")
    p.add_argument("--activation", default="relu", help="activation name (relu, tanh, gelu, ...; default relu)")
    p.add_argument("--scheme", help="weight scheme for every weighted layer (default: keep PyTorch's default init)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="scheme parameter (repeatable), e.g. scale=2")
    p.add_argument("--bias-scheme", help="bias scheme (default: zeros when --scheme is given, else PyTorch's default)")
    p.add_argument("--bias-param", action="append", metavar="KEY=VALUE", help="bias scheme parameter (repeatable)")
    p.add_argument("--input-shape", default="784", help="shape of one input, e.g. 784 or 1,28,28 (default 784)")
    p.add_argument("--num-classes", type=int, default=10, help="output size (default 10)")
    p.add_argument("--batch", type=int, default=256, help="inputs in the batch (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, inputs and projection (default 0)")
    p.add_argument("--train-mode", action="store_true", help="run the model in train mode (default eval)")
    p.add_argument("--jacobian", action="store_true", help="singular values of the input-output Jacobian")
    p.add_argument("--jacobian-samples", type=int, default=16, help="inputs the Jacobian is computed for (default 16)")
    p.add_argument("--plot", metavar="PATH", help="write the signal-propagation plot (png, svg, pdf)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON instead of the table")
    from initlab.cli.coord_cmd import add_arguments as add_coord_arguments

    add_coord_arguments(p)
    p.set_defaults(func=run)


def _initialize(model, args: argparse.Namespace) -> None:
    from initlab.diagnose import layer_kind
    from initlab.schemes import init_
    from initlab.seeding import derive_generator

    weight_params = _params(args.param, "--param")
    bias_params = _params(args.bias_param, "--bias-param")
    if weight_params and not args.scheme:
        raise UserError("--param needs --scheme")
    if bias_params and not args.bias_scheme:
        raise UserError("--bias-param needs --bias-scheme")
    bias_scheme = args.bias_scheme or ("zeros" if args.scheme else None)
    for name, module in model.named_modules():
        if layer_kind(module) is None:
            continue
        prefix = f"{name}." if name else ""
        if args.scheme:
            init_(module.weight, args.scheme, generator=derive_generator(args.seed, prefix + "weight"), **weight_params)
        bias = getattr(module, "bias", None)
        if bias_scheme and bias is not None and bias.numel():
            init_(bias, bias_scheme, generator=derive_generator(args.seed, prefix + "bias"), **bias_params)


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.diagnose import diagnose
    from initlab.models import build
    from initlab.seeding import derive_generator

    shape = _shape(args.input_shape)
    if args.coord_check or args.widths:
        from initlab.cli.coord_cmd import run_coord_check

        return run_coord_check(args, shape)
    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UserError(f"--plot {args.plot!r}: the file name must end in .png, .svg or .pdf")
    for name in ("batch", "num_classes", "jacobian_samples"):
        value = getattr(args, name)
        minimum = 2 if name == "batch" else 1
        if value < minimum:
            raise UserError(f"--{name.replace('_', '-')}={value} is invalid; allowed: an integer >= {minimum}")
    model = build(args.model, input_shape=shape, num_classes=args.num_classes, width=args.width, depth=args.depth,
                  activation=args.activation, seed=args.seed)
    _initialize(model, args)
    inputs = torch.randn((args.batch, *shape), generator=derive_generator(args.seed, "inputs"))
    result = diagnose(model, inputs, jacobian=args.jacobian, generator=derive_generator(args.seed, "projection"),
                      train=args.train_mode, jacobian_samples=args.jacobian_samples)
    params = _params(args.param, "--param")
    scheme = args.scheme or "torch_default"
    if params:
        scheme += "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
    label = f"{args.model} {args.activation} {scheme}"
    if args.json:
        payload = {"model": args.model, "activation": args.activation, "scheme": args.scheme or "torch_default",
                   "params": params, "bias_scheme": args.bias_scheme, "seed": args.seed,
                   "input_shape": list(shape), **result.to_dict()}
        print(json.dumps(payload, indent=2))
    else:
        print(f"{label}: batch {args.batch} of N(0, 1) inputs {shape}, seed {args.seed}, {result.mode} mode, "
              f"backward signal: {result.loss}")
        print(result.summary())
    if args.plot:
        path = result.plot(args.plot, title=label)
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
