"""Benchmark (not a test): signal drift at init, initlab's auto policy against anyinit and torch's default.

The question (issue 6): after ``initlab.initialize(model, "auto")``, does the signal keep its
scale from the first layer to the last, forward and backward, on models where a single global
scheme fails? And how does that compare with anyinit (PyPI), which solves per-layer scales
from its own moment propagation, and with PyTorch's default init?

Models (all at init, no training):

- deep MLPs, 20 hidden layers of 256 units on 256 inputs, with tanh, ReLU, GELU and SELU;
- a residual MLP: 256 inputs, a stem, 16 pre-activation blocks (ReLU, two 256x256 Linears),
  no normalization (``initlab.models.resmlp``);
- a CNN (VGG-style): 3x32x32 inputs, four stages of two conv(3x3, 32 channels, padding 1)-ReLU
  layers, 2x2 max-pooling after the first three stages, global average pooling, a Linear head.

Measure, on one fixed batch x ~ N(0, 1) of 256 samples, with forward hooks on the probes (each
hidden Linear/Conv output, i.e. the pre-activations; for the residual net, the stem and each
block's output, i.e. the residual stream), and a backward pass of a fixed Gaussian cotangent
at the model output:

    forward drift  = |log(Var[last probe] / Var[first probe])|
    backward drift = |log(Var[d/d first probe] / Var[d/d last probe])|

0 means the signal keeps its scale over depth; 2.3 means a factor 10. Each figure is the mean
over 5 seeds (weights and batch). Methods:

- ``torch default``: PyTorch's own Linear/Conv init, U(+-1/sqrt(fan_in)) for weights and
  biases, drawn from named generators (``initlab.models.default_init_``);
- ``anyinit``: ``anyinit.initialize(model, seed=s)`` (analytic mode, its default);
- ``initlab auto``: ``initlab.initialize(model, "auto", seed=s)``;
- ``initlab auto+lsuv``: the same, then LSUV on the batch (Mishkin & Matas 2016).

When anyinit is not installed its column says so. Run: ``.venv/bin/python bench/vs_anyinit.py``
(about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections.abc import Callable

import torch
from torch import nn

from initlab.models import default_init_, mlp, resmlp
from initlab.models.nets import ResidualBlock
from initlab.policy import initialize

WIDTH, DEPTH, BATCH, SEEDS = 256, 20, 256, (0, 1, 2, 3, 4)

try:
    import anyinit
except ImportError:  # the comparison degrades to torch's default only
    anyinit = None


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    """A model and its input shape. Construction draws from a forked, seeded RNG (weights are
    overwritten by every method below, so the construction draws do not matter)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if name.endswith("MLP") and name != "residual MLP":
            act = name.split()[1].lower()
            return mlp(WIDTH, 10, WIDTH, DEPTH, act), (WIDTH,)
        if name == "residual MLP":
            return resmlp(WIDTH, 10, WIDTH, 16, "relu"), (WIDTH,)
        if name == "CNN":
            return vgg(), (3, 32, 32)
    raise ValueError(name)


MODELS = ("deep tanh MLP", "deep ReLU MLP", "deep GELU MLP", "deep SELU MLP", "residual MLP", "CNN")


def vgg(width: int = 32, stages: int = 4) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for stage in range(stages):
        for _ in range(2):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        if stage < stages - 1:
            layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))


def probes(model: nn.Module) -> list[nn.Module]:
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    if blocks:
        return [model.stem, *blocks]
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    return layers[:-1]  # the hidden layers; the output layer's scale is a separate choice


def drift(model: nn.Module, x: torch.Tensor, cotangent_seed: int) -> tuple[float, float]:
    outs: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        outs.append(output)

    handles = [m.register_forward_hook(keep) for m in probes(model)]
    try:
        y = model(x)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(cotangent_seed)))
    finally:
        for h in handles:
            h.remove()
    first, last = outs[0], outs[-1]
    fwd = math.log(last.detach().var().item() / first.detach().var().item())
    bwd = math.log(first.grad.var().item() / last.grad.var().item())
    return abs(fwd), abs(bwd)


def method_torch(model: nn.Module, seed: int, x: torch.Tensor) -> None:
    default_init_(model, seed=seed)


def method_anyinit(model: nn.Module, seed: int, x: torch.Tensor) -> None:
    with torch.random.fork_rng(devices=[]):  # whatever anyinit does, our RNG stays ours
        anyinit.initialize(model, seed=seed)


def method_auto(model: nn.Module, seed: int, x: torch.Tensor) -> None:
    initialize(model, "auto", seed=seed)


def method_auto_lsuv(model: nn.Module, seed: int, x: torch.Tensor) -> None:
    initialize(model, "auto+lsuv", seed=seed, data=x)


METHODS: dict[str, Callable[[nn.Module, int, torch.Tensor], None] | None] = {
    "torch default": method_torch,
    "anyinit": method_anyinit if anyinit is not None else None,
    "initlab auto": method_auto,
    "initlab auto+lsuv": method_auto_lsuv,
}


def measure(name: str, method: Callable, seeds: tuple[int, ...]) -> tuple[float, float]:
    fwd, bwd = [], []
    for seed in seeds:
        model, shape = build(name)
        x = torch.randn((BATCH, *shape), generator=torch.Generator().manual_seed(1000 + seed))
        method(model, seed, x)
        model.train()
        f, b = drift(model, x, 2000 + seed)
        fwd.append(f)
        bwd.append(b)
    return statistics.mean(fwd), statistics.mean(bwd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds per cell (default 5)")
    args = parser.parse_args(argv)
    seeds = tuple(range(args.seeds))
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    version = getattr(anyinit, "__version__", None)
    print(
        f"torch {torch.__version__}; anyinit {version or 'not installed'}; {len(seeds)} seeds; "
        f"batch {BATCH}; drift = |log variance ratio| last vs first probe (0 = kept, 2.3 = x10)"
    )
    names = [m for m, fn in METHODS.items() if fn is not None]
    header = "| model | " + " | ".join(f"{m} fwd | {m} bwd" for m in names) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(names)))
    totals = {m: [0.0, 0.0] for m in names}
    for model_name in MODELS:
        cells = []
        for m in names:
            f, b = measure(model_name, METHODS[m], seeds)
            totals[m][0] += f
            totals[m][1] += b
            cells += [f"{f:.2f}", f"{b:.2f}"]
        print(f"| {model_name} | " + " | ".join(cells) + " |", flush=True)
    cells = [f"**{v:.2f}**" for m in names for v in totals[m]]
    print("| **sum** | " + " | ".join(cells) + " |")
    if anyinit is None:
        print("anyinit is not installed (pip install anyinit): its columns are missing", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
