"""``initlab compare``: the main job — schemes x seeds, statistics, tables, plots, report."""

from __future__ import annotations

import argparse

from initlab import checks


def _argument(check, text: str, **bounds):
    """A flag's value through ``initlab.checks``; argparse names the flag in its message."""
    from initlab.errors import UserError

    try:
        return check("", text, **bounds)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None


def _positive_int(text: str) -> int:
    return _argument(checks.parse_int, text, minimum=1)


def _positive_float(text: str) -> float:
    return _argument(checks.parse_real, text, low=0.0, low_open=True)


def register(sub: argparse._SubParsersAction) -> None:
    from initlab.sweep.config import CompareConfig

    defaults = CompareConfig()
    p = sub.add_parser(
        "compare",
        help="train schemes x seeds and compare them (the main job)",
        description="Train every scheme on every seed, then summarize with statistics, tables, plots and a "
        "report. Defaults: the article's ten schemes x 10 seeds on digits with a 2x128 ReLU MLP.",
    )
    _what_to_compare(p, defaults)
    _data_and_model(p, defaults)
    _training(p, defaults)
    _output_and_execution(p)
    p.set_defaults(func=run)


def _what_to_compare(p: argparse.ArgumentParser, d) -> None:
    g = p.add_argument_group("what to compare")
    g.add_argument(
        "--schemes",
        default=",".join(d.schemes),
        help="comma list of schemes (see `initlab schemes`), with parameters as NAME(key=value, ...), "
        "or 'auto' (the per-layer policy)",
    )
    g.add_argument("--seeds", default=str(len(d.seeds)), help="a count (10), a range (10-19) or a list (1,2,3)")
    g.add_argument("--bias-init", default=d.bias_init, help="scheme for biases (default zeros)")
    g.add_argument(
        "--reference",
        default=None,
        help="scheme the others are paired against (default: he_normal if compared, else the first)",
    )
    g.add_argument("--paired-test", default=d.paired_test, choices=("wilcoxon", "t"))


def _data_and_model(p: argparse.ArgumentParser, d) -> None:
    g = p.add_argument_group("data and model")
    g.add_argument(
        "--dataset",
        default=d.dataset,
        help="digits | fashion-mnist | mnist1d | synthetic | cifar10 | mnist (under --data-dir), or your own: "
        "a .npz/.pt/.csv/.parquet file, an image folder, a text file (--task lm), module:function",
    )
    g.add_argument(
        "--data-dir", default=None, help="where dataset files are (Fashion-MNIST, MNIST IDX files, CIFAR-10 batches)"
    )
    g.add_argument(
        "--limit-train", type=_positive_int, default=None, help="use a stratified subset of the training set"
    )
    g.add_argument(
        "--task",
        default=d.task,
        choices=("classification", "regression", "lm"),
        help="classification (metric: accuracy), regression (test MSE, R²), lm (test loss, nats/token)",
    )
    g.add_argument("--target-column", default=None, help="the label / target column of a .csv or .parquet table")
    g.add_argument("--image-size", type=_positive_int, default=None, help="resize an image folder's images to NxN")
    g.add_argument("--context", type=_positive_int, default=None, help="lm: tokens per window (default 64)")
    g.add_argument(
        "--text-level", default=None, choices=("char", "byte"), help="lm: character (default) or byte tokens"
    )
    g.add_argument("--heads", type=_positive_int, default=None, help="--model transformer: attention heads (default 4)")
    g.add_argument("--model", default=d.model, help="mlp | cnn | resmlp | rescnn | transformer (lm) | module:function")
    g.add_argument("--width", type=_positive_int, default=d.width)
    g.add_argument("--depth", type=int, default=d.depth, help="hidden layers (blocks)")
    g.add_argument("--activation", default=d.activation)


def _training(p: argparse.ArgumentParser, d) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=_positive_int, default=d.epochs)
    g.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    g.add_argument("--optimizer", default=d.optimizer, choices=("sgd", "adam"))
    g.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help=f"one fixed learning rate for every scheme (default {d.lr:g}); see --lr-grid",
    )
    g.add_argument(
        "--lr-grid",
        default=None,
        metavar="LR,LR,...",
        help="learning rates tried per scheme, e.g. 0.001,0.003,0.01,0.03,0.1: every (scheme, lr, seed) "
        "trains, and each scheme's lr is selected on the validation split (never on test data)",
    )
    g.add_argument(
        "--budgets",
        default=None,
        metavar="EPOCHS,...",
        help="epochs at which to summarize, e.g. 5,10,20 (default: a quarter of --epochs and --epochs; "
        "the final epoch is always one)",
    )
    g.add_argument(
        "--margin",
        type=float,
        default=100 * d.margin,
        help=f"equivalence margin in percentage points of test accuracy (default {100 * d.margin:g}): "
        "a scheme is 'equivalent' to the reference when the 95%% CI of the difference lies inside it",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help=f"share of the training set held out for validation (stratified, fixed; default {d.val_fraction:g})",
    )
    g.add_argument("--momentum", type=float, default=d.momentum, help="SGD momentum")
    g.add_argument(
        "--target",
        type=float,
        default=None,
        help="convergence speed target: a test accuracy (fraction, default 0.9) for classification; "
        "a test MSE or loss to get below for regression and lm (default: none)",
    )
    g.add_argument(
        "--dtype",
        default="fp32",
        choices=("fp32", "bf16"),
        help="fp32 (default) or bf16: the training step under bfloat16 autocast (evaluation in fp32)",
    )
    g.add_argument("--chunk-size", type=_positive_int, default=d.chunk_size, help="members trained together per cell")


def _output_and_execution(p: argparse.ArgumentParser) -> None:
    from initlab.sweep import DEFAULT_STORE

    g = p.add_argument_group("output and execution")
    g.add_argument("--out", default=None, help="report directory (default runs/<experiment id>)")
    g.add_argument("--store", default=DEFAULT_STORE, help=f"SQLite results store (default {DEFAULT_STORE})")
    g.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        metavar="ID",
        help="continue the stored experiment with this config (or experiment ID)",
    )
    g.add_argument("--backend", default="local", choices=("local", "ray"))
    g.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (HOST:PORT, auto, ray://...); default: $RAY_ADDRESS if set, "
        "else a new local Ray instance",
    )
    g.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads for training (default: 1 for small models, every core for large ones)",
    )
    g.add_argument(
        "--device",
        default="auto",
        help="where to train: auto (CUDA if available, else CPU; default), cpu, cuda, cuda:N, mps",
    )
    g.add_argument(
        "--checkpoint-every",
        default=None,
        metavar="WHEN",
        help="checkpoint a cell in flight every WHEN: a time (120s, default; 5m), epochs (1ep) or never",
    )
    g.add_argument("--json", action="store_true", help="print the JSON summary on stdout, nothing else")


def task_options(args: argparse.Namespace) -> tuple[dict, dict]:
    """``data_options`` and ``model_options`` from the data and task flags (only those given)."""
    from initlab.errors import UserError

    data = {"limit_train": args.limit_train, "target_column": args.target_column, "image_size": args.image_size}
    model = {}
    if args.task == "lm":
        data["context"] = args.context or 64
        data["level"] = args.text_level or "char"
    else:
        for flag, value in (("--context", args.context), ("--text-level", args.text_level)):
            if value is not None:
                raise UserError(f"{flag} {value} applies to --task lm only; got --task {args.task}")
    if args.model == "transformer":
        if args.task != "lm":
            raise UserError(f"--model transformer is a language model: it needs --task lm; got --task {args.task}")
        model["heads"] = args.heads or 4
    elif args.heads is not None:
        raise UserError(f"--heads {args.heads} applies to --model transformer only; got --model {args.model}")
    return {k: v for k, v in data.items() if v is not None}, model


def build_config(args: argparse.Namespace):
    """The ``CompareConfig`` of the command line; errors name the parameters (``seeds: ...``),
    which ``initlab``'s error printer shows as flags (``cli/_flags.py``)."""
    from initlab.errors import UserError
    from initlab.schemes import split_specs
    from initlab.sweep.config import CompareConfig, parse_float_list, parse_int_list, parse_seeds

    schemes = tuple(split_specs(args.schemes))
    seeds = parse_seeds(args.seeds)
    checks.integer("depth", args.depth, minimum=0)
    if args.lr_grid is not None and args.lr is not None:
        raise UserError(
            f"--lr {args.lr:g} and --lr-grid {args.lr_grid} both given; use --lr for one fixed rate or "
            f"--lr-grid to select one per scheme on validation"
        )
    lr_grid = parse_float_list("lr_grid", args.lr_grid) if args.lr_grid is not None else ()
    budgets = parse_int_list("budgets", args.budgets) if args.budgets is not None else ()
    if not args.margin > 0 or args.margin != args.margin or args.margin >= 100:
        raise UserError(f"--margin: percentage points in (0, 100); got {args.margin:g}")
    data_options, model_options = task_options(args)
    return CompareConfig(
        schemes=schemes,
        seeds=seeds,
        dataset=args.dataset,
        model=args.model,
        width=args.width,
        depth=args.depth,
        activation=args.activation,
        bias_init=args.bias_init,
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        **({"lr": args.lr} if args.lr is not None else {}),
        momentum=args.momentum,
        target=args.target,
        reference=args.reference,
        paired_test=args.paired_test,
        chunk_size=args.chunk_size,
        data_options=data_options,
        model_options=model_options,
        task=args.task,
        lr_grid=lr_grid,
        budgets=budgets,
        margin=args.margin / 100,
        val_fraction=args.val_fraction,
        autocast="bf16" if args.dtype == "bf16" else None,
    )


def run(args: argparse.Namespace) -> int:
    from initlab.cli._output import publish
    from initlab.engine.device import resolve_device
    from initlab.sweep import check_writable_dir, compare
    from initlab.sweep.checkpoints import CheckpointPolicy

    config = build_config(args)
    resolve_device(args.device)  # refused before anything is written
    CheckpointPolicy.parse(args.checkpoint_every)
    if args.out is not None:
        check_writable_dir(args.out)
    data = compare(
        config,
        store=args.store,
        out=None,
        resume=args.resume,
        backend=args.backend,
        address=args.address,
        data_dir=args.data_dir,
        progress=not args.json,
        threads=args.threads,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
    )
    files = publish(data, args.out, as_json=args.json)
    if not args.json:
        for backend, reason in sorted({(r.backend, r.backend_reason) for r in data.all_runs}, key=str):
            print(f"engine backend: {backend}" + (f" ({reason})" if reason else ""))
        print(
            f"experiment {data.experiment_id} in {args.store}; report: {files['html']} (and report.md, *.png, runs.csv)"
        )
    return 0
