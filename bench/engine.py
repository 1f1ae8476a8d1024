"""Benchmark (not a test): the ensemble engine against the idiomatic loop and the machine's matmul rate.

Workloads (each: E members of one model, SGD momentum 0.9, random inputs and labels of the
stated shapes: throughput does not depend on the values):

* ``digits``  MLP 64-128-128-10 ReLU, batch 32, 1,437 x 64 samples, 5 epochs: per-step
  overhead dominates, where training members together should win by far;
* ``fashion`` MLP 784-256-256-10 ReLU, batch 128, 60,000 x 784 samples, 1 epoch (the article's);
* ``cnn``     ``initlab.models.cnn((1, 16, 16), 10, width=16, depth=2)``, batch 32;
* ``rescnn``  ``initlab.models.rescnn((1, 16, 16), 10, width=16, depth=2)``, batch 32;
* ``transformer`` a 2-layer pre-LN transformer classifier (d=32, 2 heads, MLP 64, mean-pooled),
  on sequences of 16 tokens x 8 features (an MNIST-1D-sized sequence task), batch 32;
* ``e2e`` a whole ``initlab compare`` process (``fashion`` config: 20 members = 2 schemes x 10
  seeds, one epoch of the real Fashion-MNIST when ``/usr/share/datasets/fashion-mnist`` has it),
  wall time as a user sees it, and where it goes (start-up, data, signal at init, training,
  summary, report and plots). Its work is what compare computes: 6 x parameters per sample on
  the training samples left after compare's validation split, plus 2 x parameters per sample
  for the epoch's test and validation passes; its reference is the median matmul rate over
  1.5 s windows just before and just after the process. It also prints the ceiling: the
  fraction the process would reach if every phase but ``import torch`` and training took no time.

Each round measures, one after the other: the machine's fp32 matmul rate (the median over half
a second of large square products), the engine (``initlab.engine.train``, backend ``auto``; the backend it took is shown)
and the idiomatic loop, one model at a time: ``nn.Module`` + ``DataLoader(TensorDataset,
shuffle=True)`` + ``torch.optim.SGD``, with the same test evaluation (a few models timed, the
median multiplied by E). Figures are medians over rounds; ratios are taken within a round.
Three timings per side: the whole run (what a user waits), the median step times the number
of steps (robust to moments when other work takes the cores), and the process CPU time (on a
busy machine the fairest for one-thread workloads: it counts only the work this process did;
with several threads it also counts their spinning). Training FLOPs: 6 x parameters x samples for the MLPs
(the usual convention), and for the others the forward and backward FLOPs of one idiomatic
step counted by ``torch.utils.flop_counter``; "of matmul" is that rate over the matmul rate.

Run: ``python bench/engine.py`` (all workloads, 3 rounds; several minutes on 2 cores),
``--quick`` (small data, 1 round: a smoke run), ``--only cnn,rescnn``, ``--device cuda``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from initlab.engine import Member, TrainConfig, train
from initlab.engine.device import reproducible, resolve_device
from initlab.report.data import json_ready

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class TinyTransformer(nn.Module):
    """Pre-LN transformer classifier: token embedding + learned positions, ``layers`` blocks of
    self-attention and a GELU MLP (each with a residual), mean over tokens, linear head."""

    def __init__(
        self, tokens: int, features: int, classes: int, d: int = 32, heads: int = 2, layers: int = 2, hidden: int = 64
    ) -> None:
        super().__init__()
        self.heads = heads
        self.embed = nn.Linear(features, d)
        self.pos = nn.Parameter(torch.zeros(tokens, d))
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm1": nn.LayerNorm(d),
                    "qkv": nn.Linear(d, 3 * d),
                    "proj": nn.Linear(d, d),
                    "norm2": nn.LayerNorm(d),
                    "fc1": nn.Linear(d, hidden),
                    "fc2": nn.Linear(hidden, d),
                }
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos
        b, t, d = h.shape
        for blk in self.blocks:
            q, k, v = blk["qkv"](blk["norm1"](h)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), dim=-1)
            h = h + blk["proj"]((att @ v).transpose(1, 2).reshape(b, t, d))
            h = h + blk["fc2"](F.gelu(blk["fc1"](blk["norm2"](h))))
        return self.head(self.norm(h).mean(dim=1))


def _mlp(*widths: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
        return nn.Sequential(*layers)

    return build


def _cnn() -> nn.Module:
    from initlab.models import cnn

    return cnn((1, 16, 16), 10, width=16, depth=2)


def _rescnn() -> nn.Module:
    from initlab.models import rescnn

    return rescnn((1, 16, 16), 10, width=16, depth=2)


@dataclass(frozen=True)
class Workload:
    name: str
    factory: Callable[[], nn.Module]
    shape: tuple[int, ...]
    batch: int
    n_train: int  # full run; --quick divides (below)
    n_test: int
    epochs: int
    quick_train: int
    mlp_params: int | None = None  # 6PN convention when set

    def describe(self) -> str:
        return f"{self.name}: {self.n_train:,} x {self.shape} samples, batch {self.batch}, {self.epochs} epoch(s)"


WORKLOADS = {
    "digits": Workload(
        "digits",
        _mlp(64, 128, 128, 10),
        (64,),
        32,
        1437,
        360,
        5,
        1437,
        mlp_params=64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10,
    ),
    "fashion": Workload(
        "fashion",
        _mlp(784, 256, 256, 10),
        (784,),
        128,
        60_000,
        10_000,
        1,
        10_000,
        mlp_params=784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10,
    ),
    "cnn": Workload("cnn", _cnn, (1, 16, 16), 32, 4_000, 1_000, 1, 1_000),
    "rescnn": Workload("rescnn", _rescnn, (1, 16, 16), 32, 2_000, 500, 1, 500),
    "transformer": Workload("transformer", lambda: TinyTransformer(16, 8, 10), (16, 8), 32, 4_000, 1_000, 1, 1_000),
}


class Data:
    def __init__(self, shape: tuple[int, ...], n_train: int, n_test: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x_train = torch.randn(n_train, *shape, generator=g)
        self.y_train = torch.randint(0, 10, (n_train,), generator=g)
        self.x_test = torch.randn(n_test, *shape, generator=g)
        self.y_test = torch.randint(0, 10, (n_test,), generator=g)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


MATMUL_WINDOW_S = 1.5


def matmul_rate_window(device: torch.device, size: int, seconds: float = MATMUL_WINDOW_S) -> list[float]:
    """fp32 GFLOP/s of every (size x size) product run back to back for ``seconds``: a
    reference beside a long measurement. On a shared VM the rate of one product swings by 30%
    from one second to the next (measured here: 200 to 283 GFLOP/s over 20 s, quiet machine), so
    a few products can catch a fast or a slow moment; the caller takes the median of windows
    before and after what it times."""
    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(size, size, generator=g).to(device) for _ in range(2))
    out = torch.empty(size, size, device=device)
    inner = 1 if device.type == "cpu" else 10  # a GPU product is short against a launch and a sync
    rates: list[float] = []
    with reproducible(device):
        torch.mm(a, b, out=out)  # warm
        ended = time.perf_counter() + seconds
        while time.perf_counter() < ended or len(rates) < 3:
            _sync(device)
            start = time.perf_counter()
            for _ in range(inner):
                torch.mm(a, b, out=out)
            _sync(device)
            rates.append(inner * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return rates


def matmul_rate(device: torch.device, size: int) -> float:
    """The median rate of a half-second window of products (``matmul_rate_window``)."""
    return statistics.median(matmul_rate_window(device, size, seconds=0.5))


def train_flops_per_sample(w: Workload) -> float:
    """6 x parameters (MLPs), else forward + backward FLOPs of one idiomatic step per sample."""
    if w.mlp_params is not None:
        return 6.0 * w.mlp_params
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng():
        model = w.factory()
    x = torch.randn(w.batch, *w.shape)
    y = torch.zeros(w.batch, dtype=torch.int64)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / w.batch


def _median_step(stamps: list[float]) -> float:
    return statistics.median(b - a for a, b in itertools.pairwise(stamps))


def run_engine(w: Workload, data: Data, members: int, device: torch.device) -> tuple[float, float, float, str]:
    config = TrainConfig(epochs=w.epochs, batch_size=w.batch, lr=0.01, momentum=0.9)
    stamps: list[float] = []

    def step(done: int, total: int) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    start, cpu = time.perf_counter(), time.process_time()
    result = train(
        w.factory, [Member("he_normal", s) for s in range(members)], data, config, progress=step, device=device
    )
    return time.perf_counter() - start, _median_step(stamps), time.process_time() - cpu, result.backend


def run_idiomatic(w: Workload, data: Data, seed: int, device: torch.device) -> tuple[float, float, float]:
    """The usual PyTorch way to train one model; its own seeded generators (global RNG spared)."""
    stamps: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = w.factory().to(device)
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=w.batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    with reproducible(device):
        for _ in range(w.epochs):
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                optimizer.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                optimizer.step()
                _sync(device)
                stamps.append(time.perf_counter())
            model.eval()
            with torch.no_grad():
                for k in range(0, data.x_test.shape[0], 1024):
                    model(data.x_test[k : k + 1024].to(device)).argmax(dim=-1)
        _sync(device)
    return time.perf_counter() - start, _median_step(stamps), time.process_time() - cpu


def set_threads(args, step_flops: float) -> int:
    """``--threads``, or compare's rule (``initlab.sweep.choose_threads``) for an ensemble step."""
    from initlab.sweep.driver import SMALL_STEP_FLOPS

    if args.threads != "auto":
        n = int(args.threads)
    else:
        n = 1 if step_flops < SMALL_STEP_FLOPS else min(2, os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def bench_workload(w: Workload, args, device: torch.device) -> dict:
    n_train = w.quick_train if args.quick else w.n_train
    n_test = max(64, w.n_test * n_train // w.n_train)
    data = Data(w.shape, n_train, n_test)
    per_sample = train_flops_per_sample(w)
    flops = per_sample * n_train * w.epochs * args.members
    threads = set_threads(args, per_sample * w.batch * args.members)
    steps = math.ceil(n_train / w.batch) * w.epochs
    warm = Data(w.shape, w.batch * 4, 64)  # untimed: first-touch allocations, kernels, DataLoader
    run_engine(Workload(**{**w.__dict__, "epochs": 1}), warm, args.members, device)
    run_idiomatic(Workload(**{**w.__dict__, "epochs": 1}), warm, 999, device)
    rows = []
    for r in range(args.rounds):
        row = {"matmul": matmul_rate(device, args.square)}
        row["engine"], row["engine_step"], row["engine_cpu"], backend = run_engine(w, data, args.members, device)
        loops = [run_idiomatic(w, data, 100 * r + k, device) for k in range(args.loop_models)]
        row["loop"] = statistics.median(t for t, _, _ in loops) * args.members
        row["loop_step"] = statistics.median(s for _, s, _ in loops) * args.members
        row["loop_cpu"] = statistics.median(c for _, _, c in loops) * args.members
        rows.append(row)

    def med(f):
        return statistics.median(f(row) for row in rows)

    out = {
        "workload": w.name,
        "backend": backend,
        "threads": threads,
        "samples": n_train,
        "steps": steps,
        "gflop": flops / 1e9,
        "matmul": med(lambda r: r["matmul"]),
        "engine_s": med(lambda r: r["engine"]),
        "loop_s": med(lambda r: r["loop"]),
        "speedup": med(lambda r: r["loop"] / r["engine"]),
        "speedup_step": med(lambda r: r["loop_step"] / r["engine_step"]),
        "speedup_cpu": med(lambda r: r["loop_cpu"] / r["engine_cpu"]),
        "engine_cpu_s": med(lambda r: r["engine_cpu"]),
        "loop_cpu_s": med(lambda r: r["loop_cpu"]),
        "engine_frac": med(lambda r: flops / r["engine"] / 1e9 / r["matmul"]),
        "engine_frac_step": med(lambda r: flops / (r["engine_step"] * steps) / 1e9 / r["matmul"]),
        "loop_frac": med(lambda r: flops / r["loop"] / 1e9 / r["matmul"]),
    }
    print(
        f"  {w.name:<12} {backend:<8} {threads} thr  engine {out['engine_s']:7.2f} s ({out['engine_frac']:.2f} of matmul), "
        f"idiomatic x{args.members} {out['loop_s']:7.2f} s ({out['loop_frac']:.2f}); speed-up "
        f"{out['speedup']:.2f}x whole, {out['speedup_step']:.2f}x median step, {out['speedup_cpu']:.2f}x CPU time",
        flush=True,
    )
    return out


def bench_end_to_end(args, device: torch.device) -> dict | None:
    """A whole ``initlab compare`` process on the ``fashion`` workload, and where its time goes."""
    w = WORKLOADS["fashion"]
    real = (FASHION_DIR / "train-images-idx3-ubyte.gz").exists()
    dataset = "fashion-mnist" if real else "synthetic"
    limit = ["--limit-train", "10000"] if args.quick else []
    extra = [] if real else ["--width", "256"]
    seeds = max(1, args.members // 2)
    set_threads(args, 6.0 * w.mlp_params * w.batch * 2 * seeds)
    cli = [
        "compare",
        "--dataset",
        dataset,
        "--schemes",
        "he_normal,xavier_uniform",
        "--seeds",
        str(seeds),
        "--epochs",
        str(args.e2e_epochs),
        "--width",
        "256",
        "--depth",
        "2",
        "--batch-size",
        "128",
        "--lr",
        "0.01",
        "--chunk-size",
        str(2 * seeds),
        "--device",
        str(device),
        "--threads",
        str(torch.get_num_threads()),
        *limit,
        *extra,
    ]
    if not real:
        print("  e2e: Fashion-MNIST not found; skipped (apt-get install dataset-fashion-mnist)")
        return None
    work = _end_to_end_flops(w.mlp_params, 10_000 if args.quick else 60_000, 10_000, 2 * seeds, args.e2e_epochs)
    rounds = []
    for _ in range(args.rounds):
        one = _end_to_end_round(cli, device, args.square, work)
        if one is None:
            return None
        rounds.append(one)
        print(
            f"  e2e          initlab compare ({2 * seeds} members, {args.e2e_epochs} epoch(s), {work['n_fit']:,} training samples after "
            f"the {work['n_val']:,}-sample validation split): {one['wall_s']:.2f} s wall, {one['frac']:.2f} of the "
            f"matmul rate; {one['mb_written']:.1f} MB on disk",
            flush=True,
        )
        print(
            f"               work {work['flops'] / 1e12:.3f} TFLOP (training 6PN {work['train_flops'] / 1e12:.3f} + "
            f"each epoch's test and validation passes 2PN {work['eval_flops'] / 1e12:.3f}); matmul rate "
            f"{one['matmul']:.0f} GFLOP/s (median of the {MATMUL_WINDOW_S:g} s before and after: "
            f"{one['matmul_before']:.0f} before, {one['matmul_after']:.0f} after)"
        )
        print(
            "               where the time goes (a second fresh process, wall s / CPU s): "
            + ", ".join(f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in one["phases"].items())
        )
        print(
            f"               ceiling: that process reached {one['probe_frac']:.2f} of the matmul rate; with every "
            f"phase but `import torch` and training at zero ({one['floor_s']:.2f} s) it would reach "
            f"{one['ceiling_frac']:.2f}"
        )
    # Each figure is the median over rounds on its own: the fraction follows the reference, which
    # moves independently of the wall time.
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0] if k != "phases"}
    phases = {
        k: tuple(statistics.median(r["phases"][k][i] for r in rounds) for i in (0, 1)) for k in rounds[0]["phases"]
    }
    if len(rounds) > 1:
        fracs = ", ".join(f"{r['frac']:.2f}" for r in rounds)
        ceilings = ", ".join(f"{r['ceiling_frac']:.2f}" for r in rounds)
        print(
            f"  e2e          medians of {len(rounds)} rounds: {median['wall_s']:.2f} s wall, {median['frac']:.2f} of "
            f"the matmul rate (rounds: {fracs}); ceiling {median['ceiling_frac']:.2f} (rounds: {ceilings})"
        )
    return {
        "workload": "e2e",
        "threads": torch.get_num_threads(),
        "epochs": args.e2e_epochs,
        "quick": args.quick,
        **median,
        "rounds": rounds,
        **work,
        **{f"{k}_s": w for k, (w, _) in phases.items()},
        **{f"{k}_cpu_s": c for k, (_, c) in phases.items()},
    }


def _end_to_end_round(cli: list[str], device: torch.device, square: int, work: dict[str, float]) -> dict | None:
    """One timed ``initlab compare`` process between two reference windows, then its phases."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        before = matmul_rate_window(device, square)
        start = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "-m", "initlab", *cli, "--store", f"{tmp}/s.sqlite", "--out", f"{tmp}/out", "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.perf_counter() - start
        after = matmul_rate_window(device, square)
        if res.returncode != 0:
            print(f"  e2e: initlab compare failed: {res.stderr.strip().splitlines()[-1:]}")
            return None
        written = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        phases = _phases_in_fresh_process(cli, tmp, env)
    rate = statistics.median(before + after)
    # The most the probe process could reach if every phase but `import torch` and training took
    # no time; beside it, the fraction the probe process itself reached (same command, same work).
    floor_s = phases["import torch"][0] + phases["training (+ commit)"][0]
    return {
        "wall_s": wall,
        "frac": work["flops"] / wall / 1e9 / rate,
        "probe_wall_s": phases["total"][0],
        "probe_frac": work["flops"] / phases["total"][0] / 1e9 / rate,
        "floor_s": floor_s,
        "ceiling_frac": work["flops"] / floor_s / 1e9 / rate,
        "matmul": rate,
        "matmul_before": statistics.median(before),
        "matmul_after": statistics.median(after),
        "mb_written": written / 1e6,
        "phases": phases,
    }


def _end_to_end_flops(params: int, n_train: int, n_test: int, members: int, epochs: int = 1) -> dict[str, float]:
    """The work of an ``epochs``-epoch ``compare``: compare holds out its default validation share
    of the training set, trains on the rest (6 x parameters per sample, the usual convention), and
    evaluates every member on the test and validation sets after each epoch (2 x parameters per
    sample)."""
    from initlab.data.split import validation_size
    from initlab.sweep.config import CompareConfig

    n_val = validation_size(CompareConfig.val_fraction, n_train)  # the field's default
    n_fit = n_train - n_val
    train_flops = 6.0 * params * n_fit * members * epochs
    eval_flops = 2.0 * params * (n_test + n_val) * members * epochs
    return {
        "n_fit": n_fit,
        "n_val": n_val,
        "train_flops": train_flops,
        "eval_flops": eval_flops,
        "flops": train_flops + eval_flops,
    }


def _phases_in_fresh_process(cli: list[str], tmp: str, env: dict[str, str]) -> dict[str, tuple[float, float]]:
    """The same command again in a fresh process (``bench/e2e_probe.py``), timed by phase: every
    second of the process is named, from the interpreter's start to its exit."""
    out = Path(tmp) / "phases.json"
    start = time.monotonic()
    subprocess.run(
        [sys.executable, str(Path(__file__).with_name("e2e_probe.py")), str(out), *cli, "--store", f"{tmp}/p.sqlite"]
        + ["--out", f"{tmp}/p", "--json"],
        stdout=subprocess.DEVNULL,
        env=env,
        check=True,
    )
    ended = time.monotonic()
    record = json.loads(out.read_text())
    phases = {k: (float(w), float(c)) for k, (w, c) in record["phases"].items()}
    phases["exit"] = (ended - record["atexit_monotonic"], float("nan"))
    phases["total"] = (ended - start, float("nan"))
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20, help="ensemble size (default 20)")
    parser.add_argument("--quick", action="store_true", help="small data, one round, one loop model: a smoke run")
    parser.add_argument("--only", default=",".join([*WORKLOADS, "e2e"]), help="comma list of workloads")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument(
        "--threads",
        default="auto",
        help="torch intra-op threads for both sides; auto (default): compare's rule, one thread "
        "when an ensemble step is under 2 GFLOP, else min(2, cores)",
    )
    parser.add_argument("--loop-models", type=int, default=None, help="idiomatic models timed per round (default 3)")
    parser.add_argument("--rounds", type=int, default=None, help="measurement rounds (default 3; 1 with --quick)")
    parser.add_argument(
        "--e2e-epochs", type=int, default=1, help="epochs of the e2e compare (default 1, the issue's workload)"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    args.rounds = (1 if args.quick else 3) if args.rounds is None else args.rounds
    args.loop_models = (1 if args.quick else 3) if args.loop_models is None else args.loop_models
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS and n != "e2e"]
    threads = 1 if args.threads == "auto" else int(args.threads) if args.threads.isdigit() else 0
    if unknown or min(args.members, threads, args.rounds, args.loop_models, args.e2e_epochs) < 1:
        parser.error(
            f"unknown workload(s) {unknown}; allowed: {', '.join([*WORKLOADS, 'e2e'])}"
            if unknown
            else "--members, --threads, --rounds, --loop-models and --e2e-epochs must be positive"
        )
    device = resolve_device(args.device)
    args.square = 4096 if device.type == "cuda" else (1024 if args.quick else 2048)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (os.uname().machine + " CPU")
    print(
        f"initlab engine benchmark: {args.members} members, device {device} ({name}), torch {torch.__version__}, "
        f"threads {args.threads}, {args.rounds} round(s){', QUICK (small data)' if args.quick else ''}"
    )
    print(f"  load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other work slows every figure)")
    results = [bench_workload(WORKLOADS[n], args, device) for n in names if n in WORKLOADS]
    if "e2e" in names:
        e2e = bench_end_to_end(args, device)
        if e2e is not None:
            results.append(e2e)
    print(
        f"\n| workload | backend | threads | engine s | idiomatic s (x{args.members}) | speed-up whole | speed-up median step "
        f"| speed-up CPU time | engine of matmul | idiomatic of matmul |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r["workload"] == "e2e":
            print(
                f"| e2e `initlab compare` | mlp | {r['threads']} | {r['wall_s']:.2f} (process) | | | | | {r['frac']:.2f} | |"
            )
            continue
        print(
            f"| {r['workload']} | {r['backend']} | {r['threads']} | {r['engine_s']:.2f} | {r['loop_s']:.2f} | {r['speedup']:.2f}x | "
            f"{r['speedup_step']:.2f}x | {r['speedup_cpu']:.2f}x | {r['engine_frac']:.2f} | {r['loop_frac']:.2f} |"
        )
    # Rates by thread count: a one-thread and a two-thread rate have no meaningful common median.
    by_threads: dict[int, list[float]] = {}
    for r in results:
        by_threads.setdefault(r["threads"], []).append(r["matmul"])
    rates = ", ".join(f"{n} thread(s) {min(v):.0f}-{max(v):.0f} GFLOP/s" for n, v in sorted(by_threads.items()))
    print(f"\nmatmul rate of the workloads' rounds: {rates or 'none'}; load average at end {os.getloadavg()[0]:.2f}")
    goals = {"digits": 5.0, "cnn": 1.5}
    for r in results:
        if r["workload"] in goals:
            goal = goals[r["workload"]]
            print(
                f"goal: {r['workload']} speed-up >= {goal}x (whole run): {r['speedup']:.2f}x, "
                f"{'met' if r['speedup'] >= goal else 'NOT met'} (CPU time {r['speedup_cpu']:.2f}x, median step "
                f"{r['speedup_step']:.2f}x; on a loaded machine a median step favours steps shorter than a "
                f"scheduler time slice, i.e. the idiomatic loop's)"
            )
        if r["workload"] == "e2e":
            verdict = "met" if r["frac"] >= 0.7 else "NOT met"
            if r["epochs"] != 1 or r["quick"]:
                verdict = "not judged: the goal is for 1 epoch of the full data"
            print(f"goal: e2e >= 0.7 of the matmul rate: {r['frac']:.2f}, {verdict} (ceiling {r['ceiling_frac']:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(json_ready(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
