"""Benchmark: ``initlab.plan`` (and ``initialize``) time against depth on a plain tanh ``nn.Sequential``.

For each depth it builds a width-128 tanh MLP (digits shape: 64 inputs, 10 outputs), clears the
critical-gain cache and times ``plan`` (wall and CPU seconds), then times ``initialize`` and the
floor of that: torch's own ``orthogonal_`` on every hidden weight in a loop (a QR per layer),
measured in the same run. It ends with the growth exponents b of time ~ depth^b fitted on the
plan and the initialize times (b = 1 is linear) and checks the 2-second bound of plan at the
largest depth; initialize is compared with its floor (the QR decompositions torch's own
``orthogonal_`` needs: initlab draws the same bits, so it cannot do less).

    .venv/bin/python bench/plan_speed.py [--depths 1000 3000 10000] [--no-initialize]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import initlab
from initlab.policy import rules

BOUND_SECONDS = 2.0  # issue #19.4: plan on 10,000 layers


def plain_tanh(depth: int, width: int = 128) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(64, width), nn.Tanh()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def torch_orthogonal_floor(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in list(model)[2:-1:2]:
            nn.init.orthogonal_(module.weight, generator=g)


def growth_exponent(depths: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) on log(depth)."""
    xs, ys = [math.log(d) for d in depths], [math.log(max(s, 1e-9)) for s in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--no-initialize", action="store_true", help="time plan only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{'depth':>6} {'plan s':>7} {'plan cpu':>8} {'cached':>7} {'init s':>7} {'init cpu':>8} "
        f"{'orth floor':>10} {'floor cpu':>9}"
    )
    plan_seconds: list[float] = []
    init_seconds: list[float] = []
    floor_seconds: list[float] = []
    for depth in args.depths:
        model = plain_tanh(depth)
        rules.depth_critical_gain.cache_clear()
        wall, cpu = timed(lambda m=model: initlab.plan(m))
        cached, _ = timed(lambda m=model: initlab.plan(m))
        plan_seconds.append(wall)
        init_s = floor_s = init_cpu = floor_cpu = float("nan")
        if not args.no_initialize:
            init_s, init_cpu = timed(lambda m=model: initlab.initialize(m, seed=0))
            floor_s, floor_cpu = timed(lambda m=model: torch_orthogonal_floor(m))
            init_seconds.append(init_cpu)  # CPU seconds: on a shared machine wall time measures the neighbours
            floor_seconds.append(floor_cpu)
        print(
            f"{depth:>6} {wall:>7.2f} {cpu:>8.2f} {cached:>7.2f} {init_s:>7.2f} {init_cpu:>8.2f} "
            f"{floor_s:>10.2f} {floor_cpu:>9.2f}",
            flush=True,
        )
    if len(args.depths) > 1:
        print(f"growth exponent of plan time (time ~ depth^b): b = {growth_exponent(args.depths, plan_seconds):.2f}")
        if init_seconds:
            b = growth_exponent(args.depths, init_seconds)
            print(f"growth exponent of initialize CPU time: b = {b:.2f}")
    if init_seconds:
        ratio = init_seconds[-1] / floor_seconds[-1]
        print(
            f"initialize at {args.depths[-1]} layers: {init_seconds[-1]:.2f} s CPU = {ratio:.2f} x torch's "
            f"orthogonal_ floor ({floor_seconds[-1]:.2f} s CPU)"
        )
    verdict = "within" if plan_seconds[-1] < BOUND_SECONDS else "OVER"
    print(f"plan at {args.depths[-1]} layers: {plan_seconds[-1]:.2f} s, {verdict} the {BOUND_SECONDS:g} s bound")


if __name__ == "__main__":
    main()
