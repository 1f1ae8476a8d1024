"""Benchmark (not a test): the ensemble engine against the machine's matmul rate and the idiomatic loop.

The article's workload: an MLP 784-256-256-10 (ReLU), batch 128, SGD with momentum, one epoch of
Fashion-MNIST-shaped data, at least 20 members. The data are random: 60,000 x 784 standard
normal inputs (already standardized) and uniform random labels in 0..9, 10,000 test samples;
the throughput does not depend on the values. Everything below is measured in this one run:

1. the machine's fp32 matmul rate: an ``(E*128, 784) x (784, 256)`` product (the first layer of
   all members at once) and a large square product; the larger is the reference rate;
2. the engine (``initlab.engine.train``, backend ``mlp``): training GFLOP/s counted as
   6 x parameters x samples x members / seconds (the usual convention), and as the matmul FLOPs
   it actually executes (the first layer needs no input gradient: 4 x, not 6 x, its weights),
   each as a fraction of the matmul rate; the seconds are a whole ``train`` call (member
   initialization and the test evaluation included);
3. the idiomatic loop, one model at a time: ``nn.Sequential`` + ``DataLoader(TensorDataset,
   batch_size=128, shuffle=True)`` + ``torch.optim.SGD``, plus the same test evaluation. A few
   models are timed and the median per model is multiplied by the number of members;
4. the speed-up of the engine over that loop.

The run is made of rounds; each round measures the matmul rate, the engine and the loop once, one
after the other, and figures are medians over rounds (ratios are taken within a round). Two
timings are given for each side: the whole run, and the median time of one step (each step is
timed, batch fetch included) times the number of steps. On a machine shared with other work the
second is the one to read: a median over hundreds of steps ignores the moments when the cores
were taken by someone else, where a whole run absorbs them unevenly. Run:
``.venv/bin/python bench/engine.py`` (about two minutes on 2 cores; ``--quick`` for a
10,000-sample, one-round smoke run).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from initlab.engine import Member, TrainConfig, train

IN, HIDDEN, OUT, BATCH = 784, 256, 10, 128
LAYERS = [(IN, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, OUT)]
PARAMS = sum(i * o + o for i, o in LAYERS)  # 269,322


class Data:
    """Fashion-MNIST-shaped random data (see the module docstring)."""

    def __init__(self, n_train: int, n_test: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x_train = torch.randn(n_train, IN, generator=g)
        self.y_train = torch.randint(0, OUT, (n_train,), generator=g)
        self.x_test = torch.randn(n_test, IN, generator=g)
        self.y_test = torch.randint(0, OUT, (n_test,), generator=g)


def make_mlp() -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, OUT)
    )


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_rates(members: int, square: int, repeats: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(members * BATCH, IN, generator=g)
    b = torch.randn(IN, HIDDEN, generator=g)
    out = torch.empty(members * BATCH, HIDDEN)
    inner = 20  # products per timing: each one is only a few milliseconds
    t_shape = median_time(lambda: [torch.mm(a, b, out=out) for _ in range(inner)], repeats) / inner
    s1 = torch.randn(square, square, generator=g)
    s2 = torch.randn(square, square, generator=g)
    s_out = torch.empty(square, square)
    t_square = median_time(lambda: torch.mm(s1, s2, out=s_out), repeats)
    return {
        f"({members}*{BATCH}, {IN}) x ({IN}, {HIDDEN})": 2 * members * BATCH * IN * HIDDEN / t_shape / 1e9,
        f"({square}, {square}) x ({square}, {square})": 2 * square**3 / t_square / 1e9,
    }


def executed_flops_per_sample() -> int:
    """Matmul FLOPs the mlp backend executes per sample: forward and weight gradient of every
    layer, input gradient of every layer but the first (nothing needs d loss / d x)."""
    return sum(2 * i * o * (2 if k == 0 else 3) for k, (i, o) in enumerate(LAYERS))


def idiomatic_one_model(data: Data, epochs: int, lr: float, seed: int, stamps: list[float] | None = None) -> None:
    """The usual PyTorch way to train one model (its own seeded generators; global RNG spared).

    ``stamps`` receives ``time.perf_counter()`` after each step (batch fetch included)."""
    with torch.random.fork_rng():  # nn.Linear's constructor draws from the global RNG
        torch.manual_seed(seed)
        model = make_mlp()
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            if stamps is not None:
                stamps.append(time.perf_counter())
        model.eval()
        with torch.no_grad():
            for start in range(0, data.x_test.shape[0], 1024):
                model(data.x_test[start:start + 1024]).argmax(dim=-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20, help="ensemble size (default 20)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per training (default 1)")
    parser.add_argument("--quick", action="store_true", help="10,000 training samples, one round")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch intra-op threads (default: min(2, cores))")
    parser.add_argument("--loop-models", type=int, default=3, help="idiomatic models timed per round (default 3)")
    parser.add_argument("--rounds", type=int, default=None, help="measurement rounds (default 3; 1 with --quick)")
    parser.add_argument("--vmap", action="store_true", help="also time the vmap backend in each round")
    args = parser.parse_args(argv)
    if min(args.members, args.epochs, args.loop_models, args.threads, args.rounds or 1) < 1:
        parser.error("--members, --epochs, --loop-models, --threads and --rounds must be positive")
    torch.set_num_threads(args.threads)
    rounds = args.rounds or (1 if args.quick else 3)
    n_train, n_test = (10_000, 2_000) if args.quick else (60_000, 10_000)
    data = Data(n_train, n_test)
    lr = 0.01
    config = TrainConfig(epochs=args.epochs, batch_size=BATCH, optimizer="sgd", lr=lr, momentum=0.9)
    members = [Member("he_normal", seed) for seed in range(args.members)]
    samples = n_train * args.epochs * args.members
    work = 6 * PARAMS * samples / 1e9  # GFLOP by the 6PN convention
    executed_work = executed_flops_per_sample() * samples / 1e9

    print(f"initlab engine benchmark: MLP {IN}-{HIDDEN}-{HIDDEN}-{OUT} ReLU ({PARAMS:,} parameters), batch {BATCH}, "
          f"SGD momentum 0.9, {args.members} members x {args.epochs} epoch(s) x {n_train:,} samples")
    print(f"data: random N(0,1) inputs, uniform random labels (Fashion-MNIST-shaped); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {rounds} round(s), each measuring everything once, in turn, so that "
          f"load from other work hits every side alike; figures are medians over rounds")
    load_start = os.getloadavg()[0]

    steps = math.ceil(n_train / BATCH) * args.epochs

    def median_step(stamps: list[float]) -> float:
        # Steps are timed one by one (stamp to stamp; the first, after setup, is left out): their
        # median ignores the moments when other work on the machine took the cores.
        return statistics.median(b - a for a, b in zip(stamps, stamps[1:]))

    def engine(backend: str) -> tuple[float, float]:
        stamps: list[float] = []
        start = time.perf_counter()
        train(make_mlp, members, data, config, backend=backend, progress=lambda done, total: stamps.append(time.perf_counter()))
        return time.perf_counter() - start, median_step(stamps)

    def loop_per_model(seed_base: int) -> tuple[float, float]:
        times, step_medians = [], []
        for k in range(args.loop_models):
            stamps: list[float] = []
            start = time.perf_counter()
            idiomatic_one_model(data, args.epochs, lr, seed=seed_base + k, stamps=stamps)
            times.append(time.perf_counter() - start)
            step_medians.append(median_step(stamps))
        return statistics.median(times), statistics.median(step_medians)

    # Warm-up, untimed: first-touch allocations, MKL and DataLoader initialisation.
    warm = Data(BATCH * 8, 64)
    train(make_mlp, members, warm, config, backend="mlp")
    idiomatic_one_model(warm, 1, lr, seed=999)

    rows: list[dict[str, float]] = []
    for r in range(rounds):
        row = matmul_rates(args.members, 1024 if args.quick else 2048, repeats=3)
        row["engine"], row["engine_step"] = engine("mlp")
        if args.vmap:
            row["vmap"], row["vmap_step"] = engine("vmap")
        row["loop"], row["loop_step"] = loop_per_model(100 * r)
        row["loop"] *= args.members  # one model at a time: E models take E times one
        row["loop_step"] *= args.members
        rows.append(row)
        print(f"  round {r + 1}: engine {row['engine']:.2f} s ({row['engine_step'] * 1e3:.1f} ms/step), idiomatic "
              f"{row['loop'] / args.members:.2f} s per model ({row['loop_step'] / args.members * 1e3:.2f} ms/step); "
              f"speed-up {row['loop'] / row['engine']:.2f}x whole runs, {row['loop_step'] / row['engine_step']:.2f}x "
              f"median steps")

    def med(fn) -> float:
        return statistics.median(fn(row) for row in rows)

    shapes = [k for k in rows[0] if k.startswith("(")]
    peak = lambda row: max(row[k] for k in shapes)  # noqa: E731
    for shape in shapes:
        print(f"  machine fp32 matmul {shape:<34} {med(lambda row: row[shape]):7.1f} GFLOP/s")
    print(f"  reference matmul rate (the larger)                     {med(peak):7.1f} GFLOP/s")
    print(f"  {'':22} {'whole run (s, GFLOP/s 6PN, of matmul)':>40}   {'median step x steps (contention-robust)':>42}")

    def line(label: str, key: str, flops: float = work) -> None:
        whole, step = med(lambda row: row[key]), med(lambda row: row[key + "_step"])
        frac = med(lambda row: flops / row[key] / peak(row))
        frac_step = med(lambda row: flops / (row[key + "_step"] * steps) / peak(row))
        print(f"  {label:<22} {whole:9.2f} s {work / whole:8.1f} GFLOP/s {frac:5.2f}      "
              f"{step * steps:9.2f} s {work / (step * steps):8.1f} GFLOP/s {frac_step:5.2f}")

    line("engine, mlp backend", "engine")
    if args.vmap:
        line("engine, vmap backend", "vmap")
    line(f"idiomatic loop (x {args.members})", "loop")
    executed = med(lambda row: executed_work / (row["engine_step"] * steps) / peak(row))
    print(f"  engine, executed matmul FLOPs (first layer has no input gradient): {executed:.2f} of the matmul rate "
          f"(median step)")
    speedup = med(lambda row: row["loop"] / row["engine"])
    speedup_step = med(lambda row: row["loop_step"] / row["engine_step"])
    fraction = med(lambda row: work / (row["engine_step"] * steps) / peak(row))
    print(f"  speed-up over the idiomatic loop: {speedup:.2f}x whole runs, {speedup_step:.2f}x median steps "
          f"(goal >= 3x, median steps: {'met' if speedup_step >= 3 else 'NOT met'})")
    print(f"  fraction of the matmul rate (6PN, median step): {fraction:.2f} (goal >= 0.6: "
          f"{'met' if fraction >= 0.6 else 'NOT met'}; stretch 0.8: {'met' if fraction >= 0.8 else 'not met'})")
    print(f"  1-minute load average at start / end: {load_start:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          f"(other work on a shared machine slows every figure)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
