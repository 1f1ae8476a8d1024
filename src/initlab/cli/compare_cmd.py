"""``initlab compare``: the main job — schemes x seeds, statistics, tables, plots, report."""

from __future__ import annotations

import argparse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer > 0; got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected an integer > 0; got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0; got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from initlab.sweep import DEFAULT_STORE
    from initlab.sweep.config import CompareConfig

    d = CompareConfig()
    p = sub.add_parser(
        "compare", help="train schemes x seeds and compare them (the main job)",
        description="Train every scheme on every seed, then summarize with statistics, tables, plots and a "
                    "report. Defaults: the article's ten schemes x 10 seeds on digits with a 2x128 ReLU MLP.",
    )
    g = p.add_argument_group("what to compare")
    g.add_argument("--schemes", default=",".join(d.schemes),
                   help="comma list of schemes (see `initlab schemes`), with parameters as NAME(key=value, ...), "
                        "or 'auto' (the per-layer policy)")
    g.add_argument("--seeds", default=str(len(d.seeds)), help="a count (10), a range (10-19) or a list (1,2,3)")
    g.add_argument("--bias-init", default=d.bias_init, help="scheme for biases (default zeros)")
    g.add_argument("--reference", default=None,
                   help="scheme the others are paired against (default: he_normal if compared, else the first)")
    g.add_argument("--paired-test", default=d.paired_test, choices=("wilcoxon", "t"))
    g = p.add_argument_group("data and model")
    g.add_argument("--dataset", default=d.dataset, help="digits | fashion-mnist | mnist1d | synthetic")
    g.add_argument("--data-dir", default=None, help="where dataset files are (Fashion-MNIST IDX files)")
    g.add_argument("--limit-train", type=_positive_int, default=None, help="use a stratified subset of the training set")
    g.add_argument("--model", default=d.model, help="mlp | cnn | resmlp | rescnn | module:function")
    g.add_argument("--width", type=_positive_int, default=d.width)
    g.add_argument("--depth", type=int, default=d.depth, help="hidden layers (blocks)")
    g.add_argument("--activation", default=d.activation)
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=d.epochs)
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    g.add_argument("--optimizer", default=d.optimizer, choices=("sgd", "adam"))
    g.add_argument("--lr", type=_positive_float, default=None,
                   help=f"one fixed learning rate for every scheme (default {d.lr:g}); see --lr-grid")
    g.add_argument("--lr-grid", default=None, metavar="LR,LR,...",
                   help="learning rates tried per scheme, e.g. 0.001,0.003,0.01,0.03,0.1: every (scheme, lr, seed) "
                        "trains, and each scheme's lr is selected on the validation split (never on test data)")
    g.add_argument("--budgets", default=None, metavar="EPOCHS,...",
                   help="epochs at which to summarize, e.g. 5,10,20 (default: a quarter of --epochs and --epochs; "
                        "the final epoch is always one)")
    g.add_argument("--margin", type=float, default=100 * d.margin,
                   help=f"equivalence margin in percentage points of test accuracy (default {100 * d.margin:g}): "
                        "a scheme is 'equivalent' to the reference when the 95%% CI of the difference lies inside it")
    g.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help=f"share of the training set held out for validation (stratified, fixed; default "
                        f"{d.val_fraction:g})")
    g.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    g.add_argument("--target", type=float, default=d.target, help="test accuracy for convergence speed (fraction)")
    g.add_argument("--chunk-size", type=_positive_int, default=d.chunk_size, help="members trained together per cell")
    g = p.add_argument_group("output and execution")
    g.add_argument("--out", default=None, help="report directory (default runs/<experiment id>)")
    g.add_argument("--store", default=DEFAULT_STORE, help=f"SQLite results store (default {DEFAULT_STORE})")
    g.add_argument("--resume", nargs="?", const=True, default=False, metavar="ID",
                   help="continue the stored experiment with this config (or experiment ID)")
    g.add_argument("--backend", default="local", choices=("local", "ray"))
    g.add_argument("--address", default=None, help="Ray cluster address (HOST:PORT, auto, ray://...); default: $RAY_ADDRESS if set, "
                        "else a new local Ray instance")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads for training (default: 1 for small models, every core for large ones)")
    g.add_argument("--json", action="store_true", help="print the JSON summary on stdout, nothing else")
    p.set_defaults(func=run)


# CompareConfig fields whose errors the CLI reports under its flag (the library names the field).
FLAG_OF_FIELD = {"lr_grid": "--lr-grid", "budgets": "--budgets", "margin": "--margin", "val_fraction": "--val-fraction",
                 "seeds": "--seeds", "schemes": "--schemes", "epochs": "--epochs", "batch_size": "--batch-size",
                 "chunk_size": "--chunk-size", "width": "--width", "depth": "--depth", "momentum": "--momentum",
                 "target": "--target", "optimizer": "--optimizer"}


def as_flag_error(exc: ValueError) -> ValueError:
    """The library's ``field: ...`` message as ``--flag: ...`` (same type), for the CLI's one line."""
    text = str(exc)
    field, sep, rest = text.partition(":")
    if sep and field in FLAG_OF_FIELD:
        return type(exc)(f"{FLAG_OF_FIELD[field]}:{rest}")
    return exc


def build_config(args: argparse.Namespace):
    """The ``CompareConfig`` of the command line; errors name the flags."""
    from initlab.errors import UserError
    from initlab.schemes import split_specs
    from initlab.sweep.config import CompareConfig, parse_float_list, parse_int_list, parse_seeds

    schemes = tuple(split_specs(args.schemes))
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise as_flag_error(exc) from None
    if args.depth < 0:
        raise UserError(f"--depth: must be an integer >= 0; got {args.depth}")
    if args.lr_grid is not None and args.lr is not None:
        raise UserError(f"--lr {args.lr:g} and --lr-grid {args.lr_grid} both given; use --lr for one fixed rate or "
                        f"--lr-grid to select one per scheme on validation")
    lr_grid = parse_float_list("--lr-grid", args.lr_grid) if args.lr_grid is not None else ()
    budgets = parse_int_list("--budgets", args.budgets) if args.budgets is not None else ()
    if not args.margin > 0 or args.margin != args.margin or args.margin >= 100:
        raise UserError(f"--margin: percentage points in (0, 100); got {args.margin:g}")
    try:
        return CompareConfig(
            schemes=schemes, seeds=seeds, dataset=args.dataset, model=args.model,
            width=args.width, depth=args.depth, activation=args.activation, bias_init=args.bias_init,
            epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
            **({"lr": args.lr} if args.lr is not None else {}), momentum=args.momentum, target=args.target,
            reference=args.reference, paired_test=args.paired_test, chunk_size=args.chunk_size,
            data_options={"limit_train": args.limit_train} if args.limit_train else {},
            lr_grid=lr_grid, budgets=budgets, margin=args.margin / 100, val_fraction=args.val_fraction,
        )
    except ValueError as exc:
        raise as_flag_error(exc) from None


def run(args: argparse.Namespace) -> int:
    from initlab.cli._output import publish
    from initlab.sweep import check_writable_dir, compare

    config = build_config(args)
    if args.out is not None:
        check_writable_dir(args.out)
    data = compare(config, store=args.store, out=None, resume=args.resume, backend=args.backend,
                   address=args.address, data_dir=args.data_dir, progress=not args.json, threads=args.threads)
    files = publish(data, args.out, as_json=args.json)
    if not args.json:
        print(f"experiment {data.experiment_id} in {args.store}; report: {files['html']} (and report.md, *.png, runs.csv)")
    return 0
