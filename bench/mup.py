"""Benchmark: the optimal-learning-rate drift with width under SP and under μP, in one run.

Runs the ``lr-transfer`` study's grid (``initlab.studies.lr_transfer``: MLPs on digits, an Adam
lr grid x seeds per width on the ensemble engine) and prints, for each parametrization, the
optimal lr per width with its bootstrap interval and the drift log2(opt lr smallest / largest
width), plus the wall time. Default: the quick grid (widths 16..64); ``--full``: widths 64..1024.

    .venv/bin/python bench/mup.py [--full] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from initlab.studies.lr_transfer import DEFAULTS, QUICK, run_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="widths 64..1024, 11 lrs, 3 seeds, 3 epochs")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = dict(DEFAULTS) if args.full else {**DEFAULTS, **QUICK}
    start = time.perf_counter()
    grid = run_grid(settings)
    wall = time.perf_counter() - start
    for par, result in grid.items():
        print(f"{par}:")
        for width, row in result["rows"].items():
            lo, hi = row["ci"]
            print(f"  width {width:5d}: optimal lr {row['opt']:.3g}  (95% bootstrap [{lo:.3g}, {hi:.3g}])")
        print(
            f"  drift log2(opt lr smallest / largest width) = {result['drift']:+.2f}  "
            f"({2 ** abs(result['drift']):.3g}x)"
        )
    print(
        f"drift SP {grid['sp']['drift']:+.2f}, μP {grid['mup']['drift']:+.2f} log2; "
        f"{wall:.0f} s wall, {args.threads} thread(s) (shared machine: times are indicative)"
    )


if __name__ == "__main__":
    main()
