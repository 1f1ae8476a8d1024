"""Benchmark (not a test): the auto policy on real architectures, at init and after short training.

Part 1, at init (one batch, no training), per model and init:

- ``plan``: what the plan does, counted by scheme (own init: "-");
- ``fwd`` / ``bwd``: forward and backward drift in decades over the weighted layers in
  execution order (``initlab.diagnose``, train-norm mode): log10(out_var last / first) and
  log10(grad_sq_norm first / last); 0 keeps the scale, +1 is a factor 10;
- ``logit std`` and ``loss - ln C``: the output's std and the cross-entropy on random labels
  minus ln(#classes) (0.5 for unit-variance logits; an N(0, 1) tied LM head gives ~sqrt(d)).

Part 2, short training runs with several seeds (mean ± std over seeds):

- a GPT-2 character model (``transformers``, 4 blocks, d = 64, context 64) on the Python
  standard library's own sources (``Lib/*.py`` from ``sysconfig``'s stdlib path, bytes as
  tokens), AdamW; metric: validation loss (nats per byte) on held-out text;
- a timm ResNet (BasicBlocks, channels 16-128) with BatchNorm and without any normalization on a Fashion-MNIST
  subset (``/usr/share/datasets/fashion-mnist``; sklearn's digits when absent), SGD with
  momentum, one short epoch; metric: test accuracy.

Inits: ``own`` (the model's constructor), ``auto``, and the named policies that fit the model
(``auto+gpt2``, ``fixup``, ``deepnorm``). anyinit is listed when installed (it is not part of
the zoo extra). Run: ``.venv/bin/python bench/zoo.py`` (a few minutes on 2 busy cores);
``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import math
import os
import statistics
import sysconfig
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import initlab
from initlab.layers import first_tensor
from initlab.models import zoo

warnings.simplefilter("ignore")


def post_ln_encoder(layers: int = 6, width: int = 64) -> nn.Module:
    """torch's post-LN nn.TransformerEncoder on token ids, with an embedding and a head."""

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(128, width)
            layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(width, 128)

        def forward(self, x):
            return self.head(self.encoder(self.emb(x)))

    return Encoder()


MODELS = {
    "gpt2 (tied, 2x64)": (lambda: zoo.gpt2(vocab=128), "gpt2", ("auto+gpt2",)),
    "bert (post-LN, tied)": (lambda: zoo.bert(vocab=128), "bert", ("deepnorm",)),
    "llama (RMSNorm)": (lambda: zoo.llama(vocab=128), "llama", ()),
    "timm vit (cls token)": (lambda: zoo.vit(), "vit", ()),
    "timm resnet18 (BN, w 16)": (lambda: zoo.resnet(layers=(2, 2, 2, 2)), "resnet", ()),
    "timm resnet18 (no norm, w 16)": (lambda: zoo.resnet(layers=(2, 2, 2, 2), norm=False), "resnet", ("fixup",)),
    "nn.TransformerEncoder 6 post-LN": (lambda: post_ln_encoder(), "bert", ("deepnorm",)),
}


def _decades(num: float, den: float) -> float:
    return math.log10(num / den) if num > 0 and den > 0 else math.nan


def init_row(build, kind: str, policy: str, seed: int = 0) -> dict:
    torch.manual_seed(seed)  # the models' own constructors draw from the global RNG
    model = build()
    x = zoo.example_input(kind, batch=8, length=32)
    plan = None
    if policy != "own":
        plan = initlab.initialize(model, policy, seed=seed, data=x)
    d = initlab.diagnose(model, x, plan=plan)
    fwd = _decades(d.layers[-1].out_var, d.layers[0].out_var)
    bwd = _decades(d.layers[0].grad_sq_norm, d.layers[-1].grad_sq_norm)
    model.eval()
    with torch.no_grad():
        logits = first_tensor(model(x)).float()
    classes = logits.shape[-1]
    y = torch.randint(0, classes, logits.shape[:-1], generator=torch.Generator().manual_seed(seed + 1))
    loss = F.cross_entropy(logits.reshape(-1, classes), y.reshape(-1))
    if plan is None:
        choices = "-"
    else:
        counts = collections.Counter(e.scheme for e in plan if e.param.endswith("weight") or e.scheme != "zeros")
        choices = ", ".join(f"{k} {v}" for k, v in counts.most_common(4))
    return {
        "plan": choices,
        "fwd": fwd,
        "bwd": bwd,
        "std": float(logits.std()),
        "excess": float(loss) - math.log(classes),
    }


def part1() -> None:
    print("## At init\n")
    print("| model | init | fwd drift | bwd drift | logit std | loss - ln C | plan (weights by scheme) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for label, (build, kind, named) in MODELS.items():
        for policy in ("own", "auto", *named):
            try:
                r = init_row(build, kind, policy)
            except initlab.UserError as exc:
                print(f"| {label} | {policy} | error: {str(exc)[:80]} | | | | |")
                continue
            print(
                f"| {label} | {policy} | {r['fwd']:+.2f} | {r['bwd']:+.2f} | {r['std']:.3g} | {r['excess']:+.2f} | {r['plan']} |"
            )
    print()


# --- training ------------------------------------------------------------------------------


def stdlib_text(limit: int = 600_000) -> torch.Tensor:
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))
    chunks, total = [], 0
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        chunks.append(data)
        total += len(data)
        if total >= limit:
            break
    return torch.tensor(list(b"".join(chunks)[:limit]), dtype=torch.long)


def train_lm(policy: str, seed: int, data: torch.Tensor, steps: int, context: int = 64, batch: int = 8) -> float:
    torch.manual_seed(seed)
    model = zoo.gpt2(vocab=256, width=64, depth=4, heads=4, context=context)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    g = torch.Generator().manual_seed(1000 + seed)  # data order: the same for every init at this seed
    if policy != "own":
        initlab.initialize(model, policy, seed=seed, data=train[:context].unsqueeze(0))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(train) - context - 1, (batch,), generator=g)
        x = torch.stack([train[s : s + context] for s in starts])
        y = torch.stack([train[s + 1 : s + context + 1] for s in starts])
        loss = F.cross_entropy(model(x).logits.reshape(-1, 256), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            return math.nan
    model.eval()
    gv = torch.Generator().manual_seed(7)
    starts = torch.randint(0, len(val) - context - 1, (64,), generator=gv)
    with torch.no_grad():
        x = torch.stack([val[s : s + context] for s in starts])
        y = torch.stack([val[s + 1 : s + context + 1] for s in starts])
        return float(F.cross_entropy(model(x).logits.reshape(-1, 256), y.reshape(-1)))


def _read_idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def image_data(n_train: int, n_test: int) -> tuple[torch.Tensor, ...]:
    root = "/usr/share/datasets/fashion-mnist"
    if os.path.exists(os.path.join(root, "train-images-idx3-ubyte.gz")):
        xs = [_read_idx(os.path.join(root, f"{s}-images-idx3-ubyte.gz")) for s in ("train", "t10k")]
        ys = [_read_idx(os.path.join(root, f"{s}-labels-idx1-ubyte.gz")) for s in ("train", "t10k")]
        source = "Fashion-MNIST"
    else:
        from sklearn.datasets import load_digits

        d = load_digits()
        x, y = d.images.astype(np.float32), d.target
        xs, ys, source = [x[:1400], x[1400:]], [y[:1400], y[1400:]], "digits"
    x_train = torch.tensor(xs[0][:n_train], dtype=torch.float32).unsqueeze(1)
    x_test = torch.tensor(xs[1][:n_test], dtype=torch.float32).unsqueeze(1)
    mean, std = x_train.mean(), x_train.std()
    print(f"(image data: {source}, {len(x_train)} train / {len(x_test)} test)")
    return (
        (x_train - mean) / std,
        torch.tensor(ys[0][:n_train], dtype=torch.long),
        (x_test - mean) / std,
        torch.tensor(ys[1][:n_test], dtype=torch.long),
    )


def train_resnet(policy: str, seed: int, norm: bool, data, layers, epochs: int = 1, batch: int = 64) -> float:
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = zoo.resnet(layers=layers, norm=norm, in_chans=1)
    if policy != "own":
        initlab.initialize(model, policy, seed=seed, data=x_train[:16])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1000 + seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(order) - batch + 1, batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            if not torch.isfinite(loss):
                return math.nan  # diverged
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x_test[i : i + 256]).argmax(1) for i in range(0, len(x_test), 256)])
    return float((pred == y_test).float().mean())


def _summary(values: list[float], fmt: str) -> str:
    finite = [v for v in values if math.isfinite(v)]
    diverged = len(values) - len(finite)
    if not finite:
        return f"diverged ({diverged}/{len(values)})"
    mean = statistics.fmean(finite)
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    text = f"{mean:{fmt}} ± {std:{fmt}} (n={len(finite)})"
    runs = ", ".join("nan" if not math.isfinite(v) else f"{v:{fmt}}" for v in values)
    return text + (f", {diverged} diverged" if diverged else "") + f" [{runs}]"


def part2(seeds: list[int], lm_steps: int, n_train: int, layers: tuple[int, ...]) -> None:
    print("## Short training runs\n")
    text = stdlib_text()
    print(
        f"GPT-2 char model (4 blocks, d = 64, context 64, batch 8), {lm_steps} AdamW steps (lr 2e-3) on "
        f"{len(text)} bytes of the Python stdlib's Lib/*.py; validation loss in nats per byte (lower is better)\n"
    )
    print("| init | val loss |")
    print("|---|---|")
    for policy in ("own", "auto", "auto+gpt2"):
        t = time.time()
        print(
            f"| {policy} | {_summary([train_lm(policy, s, text, lm_steps) for s in seeds], '.3f')} |"
            f" <!-- {time.time() - t:.0f} s -->"
        )
    data = image_data(n_train, 1000)
    print(
        f"\ntimm ResNet, BasicBlocks {layers}, channels 16-128, 1 epoch of SGD (lr 0.05, momentum 0.9, batch 64); test accuracy\n"
    )
    print("| normalization | init | test accuracy |")
    print("|---|---|---|")
    for norm, policies in ((True, ("own", "auto")), (False, ("own", "auto", "fixup"))):
        for policy in policies:
            accs = [train_resnet(policy, s, norm, data, layers) for s in seeds]
            print(f"| {'BatchNorm' if norm else 'none'} | {policy} | {_summary(accs, '.3f')} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--lm-steps", type=int, default=80)
    ap.add_argument("--train-images", type=int, default=2000)
    ap.add_argument("--layers", default="2,2,2,2", help="ResNet BasicBlocks per stage (3,4,6,3 = ResNet-34)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 seed, few steps")
    ap.add_argument("--skip-init", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    seeds = list(range(1 if args.quick else args.seeds))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, seeds {seeds}\n")
    if not args.skip_init:
        part1()
    if not args.skip_train:
        layers = tuple(int(v) for v in args.layers.split(","))
        part2(seeds, 10 if args.quick else args.lm_steps, 256 if args.quick else args.train_images, layers)


if __name__ == "__main__":
    main()
