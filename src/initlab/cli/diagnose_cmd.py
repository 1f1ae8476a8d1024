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
import json
import sys
from typing import Any

from initlab import checks
from initlab.checks import parse_shape
from initlab.cli._common import check_plot_path, model_options
from initlab.errors import UserError


def _params(items: list[str] | None, flag: str) -> dict[str, Any]:
    from initlab.schemes import parse_value

    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UserError(f"{flag}: got {item!r}; expected KEY=VALUE, e.g. {flag} scale=2")
        if key in params:
            raise UserError(f"{flag}: got {key!r} twice; expected each parameter once")
        params[key] = parse_value(value)
    return params


def _scheme(spec: str | None, items: list[str] | None, flag: str, param_flag: str) -> tuple[str | None, dict[str, Any]]:
    """(name, parameters) from ``--scheme NAME(key=value, ...)`` and its repeatable ``--param`` items."""
    from initlab.schemes import parse_spec

    extra = _params(items, param_flag)
    if spec is None:
        if extra:
            raise UserError(f"{param_flag} needs {flag}")
        return None, {}
    name, params = parse_spec(spec)
    twice = sorted(set(params) & set(extra))
    if twice:
        raise UserError(f"{param_flag}: {twice[0]!r} is already set by {flag} {spec!r}; expected each parameter once")
    return name, {**params, **extra}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="signal propagation at init: per-layer table, flags, theory",
        description="Run one forward and backward pass of a freshly initialized model on Gaussian inputs and report, "
        "per weighted layer, the forward and backward second moments (with mean-field predictions), "
        "dead, saturated and symmetric units, and flags.",
    )
    p.add_argument(
        "--model",
        default="mlp",
        help="built-in model (mlp, cnn, resmlp, rescnn) or a 'package.module:function' factory (default mlp)",
    )
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


def _initialize(model, seed: int, weight: tuple[str | None, dict], bias: tuple[str | None, dict]) -> None:
    from initlab.diagnose import layer_kind
    from initlab.schemes import get_scheme
    from initlab.schemes.fill import fill_model_

    weight_spec = get_scheme(weight[0], **weight[1]) if weight[0] else None
    bias_name = bias[0] or ("zeros" if weight[0] else None)
    bias_spec = get_scheme(bias_name, **bias[1]) if bias_name else None
    samplers = {}
    for name, module in model.named_modules():
        if layer_kind(module) is None:
            continue
        prefix = f"{name}." if name else ""
        if weight_spec is not None:
            samplers[prefix + "weight"] = weight_spec
        module_bias = getattr(module, "bias", None)
        if bias_spec is not None and module_bias is not None and module_bias.numel():
            samplers[prefix + "bias"] = bias_spec
    fill_model_(model, samplers, seed=seed)


def run(args: argparse.Namespace) -> int:
    import torch

    from initlab.diagnose import diagnose
    from initlab.engine.memory import check_builtin_model
    from initlab.models import build
    from initlab.schemes import format_spec
    from initlab.seeding import derive_generator

    shape = parse_shape("--input-shape", args.input_shape)
    if args.coord_check or args.widths:
        from initlab.cli.coord_cmd import run_coord_check

        return run_coord_check(args, shape)
    check_plot_path(args.plot)
    for name in ("batch", "num_classes", "jacobian_samples"):
        checks.integer("--" + name.replace("_", "-"), getattr(args, name), minimum=2 if name == "batch" else 1)
    weight = _scheme(args.scheme, args.param, "--scheme", "--param")
    bias = _scheme(args.bias_scheme, args.bias_param, "--bias-scheme", "--bias-param")
    options = model_options(args, shape)
    check_builtin_model(
        args.model, **options, batch_size=args.batch, what="diagnose", lower="--batch, --width or --depth"
    )
    model = build(args.model, **options, seed=args.seed)
    _initialize(model, args.seed, weight, bias)
    inputs = torch.randn((args.batch, *shape), generator=derive_generator(args.seed, "inputs"))
    result = diagnose(
        model,
        inputs,
        jacobian=args.jacobian,
        generator=derive_generator(args.seed, "projection"),
        train=args.train_mode,
        jacobian_samples=args.jacobian_samples,
    )
    scheme_name, params = weight
    scheme = format_spec(scheme_name, params) if scheme_name else "torch_default"
    label = f"{args.model} {args.activation} {scheme}"
    if args.json:
        payload = {
            "model": args.model,
            "activation": args.activation,
            "scheme": scheme_name or "torch_default",
            "params": params,
            "bias_scheme": bias[0],
            "seed": args.seed,
            "input_shape": list(shape),
            **result.to_dict(),
        }
        print(json.dumps(payload, indent=2))
    else:
        print(
            f"{label}: batch {args.batch} of N(0, 1) inputs {shape}, seed {args.seed}, {result.mode} mode, "
            f"backward signal: {result.loss}"
        )
        print(result.summary())
    if args.plot:
        path = result.plot(args.plot, title=label)
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0
