"""Benchmark: ``initlab.diagnose`` on a 50-layer, width-512 ReLU MLP (He init), batch 256.

Prints the median wall time of ``diagnose`` (and with ``jacobian=True``) and its ratio to one
plain forward+backward pass of the same model on the same batch, measured in the same run, so
the overhead of the hooks, statistics and symmetry search is visible whatever the machine.

    .venv/bin/python bench/diagnose.py [--repeats 7] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from initlab.diagnose import diagnose
from initlab.models import build
from initlab.schemes import get_scheme
from initlab.schemes.fill import fill_model_

DEPTH, WIDTH, BATCH, IN_FEATURES, CLASSES = 50, 512, 256, 784, 10


def _model(seed: int = 0) -> torch.nn.Module:
    model = build(
        "mlp",
        input_shape=(IN_FEATURES,),
        num_classes=CLASSES,
        width=WIDTH,
        depth=DEPTH - 1,
        activation="relu",
        seed=seed,
    )
    he, zeros = get_scheme("he_normal"), get_scheme("zeros")
    return fill_model_(
        model, {name: he if name.endswith("weight") else zeros for name, _ in model.named_parameters()}, seed=seed
    )


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, lazy imports
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = _model()
    inputs = torch.randn(BATCH, IN_FEATURES, generator=torch.Generator().manual_seed(1))
    projection = torch.randn(BATCH, CLASSES, generator=torch.Generator().manual_seed(2))

    def plain() -> None:  # what a training step costs before the optimizer: forward + backward
        model.zero_grad(set_to_none=True)
        (model(inputs) * projection).sum().backward()

    base = _median_seconds(plain, args.repeats)
    diag = _median_seconds(lambda: diagnose(model, inputs, generator=torch.Generator().manual_seed(0)), args.repeats)
    jac = _median_seconds(
        lambda: diagnose(model, inputs, jacobian=True, generator=torch.Generator().manual_seed(0)),
        max(3, args.repeats // 2),
    )
    result = diagnose(model, inputs, generator=torch.Generator().manual_seed(0))
    print(
        f"model: {DEPTH} Linear layers (width {WIDTH}, ReLU, He), batch {BATCH}; torch threads {torch.get_num_threads()}"
    )
    print(f"forward+backward (plain)       {1e3 * base:8.1f} ms   1.00x")
    print(f"diagnose                       {1e3 * diag:8.1f} ms   {diag / base:.2f}x")
    print(f"diagnose(jacobian=True)        {1e3 * jac:8.1f} ms   {jac / base:.2f}x   (16 samples, exact: 10 outputs)")
    print(f"flags: {[str(f) for f in result.flags] or 'none'}")


if __name__ == "__main__":
    main()
