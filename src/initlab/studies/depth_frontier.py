"""Study ``depth-frontier``: how deep does a plain network train, per initialization?

The experiment
--------------
Plain MLPs (no normalization, no residual connection) of ``depth`` linear layers of ``width``
units on digits, for activation in {tanh, ReLU} and the schemes of ``schemes`` (torch's default
``U(±1/sqrt(fan_in))``, Xavier uniform with the activation's gain, He normal, orthogonal at gain
1, ``auto`` = ``initlab.initialize(net, "auto")``, and for ReLU ``looks_linear``); biases zero.
Per (activation, scheme, depth, seed):

1. the network is initialized (per-parameter generators from the seed);
2. the learning rate is chosen by ``initlab.suggest_lr`` (Adam) from that init, on a validation
   split carved from the training set (``lr_grid``: a fixed grid, or None for the adaptive one);
3. a copy trains ``epochs`` epochs on the whole training set at that rate (Adam, batch
   ``batch_size``) and is tested once on the test set.

Next to it, the theory at init: ``6 xi_c`` (the mean-field depth scale of Schoenholz et al. 2017,
``initlab.theory.depth_scales``, for the scheme's ``sigma_w^2`` on square layers: 1/3 torch
default, g^2 Xavier with gain g, 2 He, 1 orthogonal, sigma_crit^2 auto; infinite at criticality),
the spread ``log10(s_max/s_min)`` of the input-output Jacobian's singular values at init
(``initlab.diagnose.jacobian``, exact, mean over 8 training samples), and the selected learning
rate against depth with a fitted power law ``lr = a * depth^b`` per scheme.

Judge (``judge``): a run *trains* when its test accuracy exceeds twice chance (0.2 on 10
classes). Per (activation, scheme) the *frontier* is the smallest measured depth at which no
seed trains (None: trains at every measured depth). The article says a good initialization
"can prevent issues such as vanishing or exploding gradients, which can hinder training":
``supported`` when, for some activation and depth, one scheme trains and another falls to
chance (the init decides whether the network trains); ``not supported`` when every scheme
trains at every depth or none does; the effect is the largest accuracy gap between schemes at
the deepest depth. Runs and their settings are written to ``depth_frontier.json`` in the
study's directory.

Sources: Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017), Deep information propagation;
Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid; Xiao et al. (2018),
Dynamical isometry and a mean field theory of CNNs (10,000 layers); Balduzzi et al. (2017).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from initlab.studies.base import StudyContext, StudyResult, register

CLAIM = (
    '"Optimal weight initialization can prevent issues such as vanishing or exploding gradients, '
    'which can hinder training progress." (the article, on why initialization matters)'
)
SCHEMES = {
    "tanh": ["torch_default", "xavier_uniform", "orthogonal", "auto"],
    "relu": ["torch_default", "he_normal", "orthogonal", "auto", "looks_linear"],
}
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,
    "activations": ["tanh", "relu"],
    "schemes": SCHEMES,
    "depths": [10, 30, 100, 300],
    "width": 128,
    "epochs": 3,
    "batch_size": 64,
    "lr_grid": None,  # None: suggest_lr's adaptive grid
    "lr_steps": None,  # suggest_lr's budget (None: 3 epochs of its training part)
    "seeds": 1,
}
QUICK = {
    "depths": [10, 30, 100],
    "width": 32,
    "limit_train": 600,
    "epochs": 2,
    "lr_grid": [1e-4, 1e-3, 1e-2],
    "lr_steps": 10,
    "schemes": {"tanh": ["torch_default", "xavier_uniform", "auto"], "relu": ["he_normal", "looks_linear"]},
}
FULL = {"depths": [10, 30, 100, 300, 1000, 3000, 10000], "seeds": 2}
TRAINED_FACTOR = 2.0  # trained: test accuracy above twice chance


def plain_mlp(activation: str, depth: int, width: int, inputs: int, classes: int):
    """``depth`` Linear layers (depth - 1 hidden activations), no normalization, no skip."""
    from torch import nn

    from initlab.activations import activation_module

    layers: list[nn.Module] = [nn.Linear(inputs, width), activation_module(activation)]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), activation_module(activation)]
    return nn.Sequential(*layers, nn.Linear(width, classes))


def looks_linear_policy(model) -> dict[str, Any]:
    """looks_linear on every weight (first / hidden / last positions), biases zero."""
    from torch import nn

    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    policy: dict[str, Any] = {}
    for i, name in enumerate(linears):
        position = "first" if i == 0 else "last" if i == len(linears) - 1 else "hidden"
        policy[f"{name}.weight"] = {"name": "looks_linear", "params": {"position": position}}
    return policy


def initialize(model, scheme: str, activation: str, seed: int) -> None:
    import initlab

    if scheme == "auto":
        initlab.initialize(model, "auto", seed=seed)
    elif scheme == "looks_linear":
        initlab.initialize(model, looks_linear_policy(model), seed=seed)
    elif scheme == "xavier_uniform":
        gain = initlab.gain(activation)
        initlab.initialize(model, {"*.weight": {"name": "xavier_uniform", "params": {"gain": gain}}}, seed=seed)
    elif scheme == "he_normal":
        initlab.initialize(
            model, {"*.weight": {"name": "he_normal", "params": {"nonlinearity": activation}}}, seed=seed
        )
    else:
        initlab.initialize(model, scheme, seed=seed)


def sigma_w2(scheme: str, activation: str, depth: int) -> float | None:
    """The weight variance times fan_in on square layers (the mean-field sigma_w^2); None: not Gaussian-like."""
    import initlab
    from initlab.policy import depth_critical_gain

    if scheme == "torch_default":
        return 1.0 / 3.0
    if scheme == "xavier_uniform":
        return initlab.gain(activation) ** 2
    if scheme == "he_normal":
        return initlab.gain(activation) ** 2
    if scheme == "orthogonal":
        return 1.0
    if scheme == "auto":
        if activation == "relu":
            return 2.0  # auto gives He to homogeneous activations
        sigma = depth_critical_gain(activation, None, depth - 1)
        return None if sigma is None else sigma * sigma
    return None  # looks_linear: a linear map at init, no mean-field depth scale


def six_xi_c(scheme: str, activation: str, depth: int) -> float:
    from initlab import theory

    s2 = sigma_w2(scheme, activation, depth)
    if s2 is None:
        return math.inf
    return 6.0 * theory.depth_scales(activation, s2, 0.0)[1]


def jacobian_spread(model, x) -> float:
    """Mean over samples of log10(s_max / s_min) of the input-output Jacobian."""
    import torch

    from initlab.diagnose.jacobian import jacobian_singular_values

    with torch.random.fork_rng(devices=[]):
        try:
            singular, _ = jacobian_singular_values(model, x)
        except RuntimeError:  # a non-finite Jacobian (chaotic init overflowing float32): no finite spread
            return math.inf
    ratio = singular[:, 0].double() / singular[:, -1].double().clamp_min(1e-300)
    spread = float(torch.log10(ratio).mean())
    return spread if math.isfinite(spread) else math.inf


def run_cell(activation: str, scheme: str, depth: int, seed: int, s: dict[str, Any], data) -> dict[str, Any]:
    """One (activation, scheme, depth, seed): lr from suggest_lr, then train and test once."""
    import copy
    from types import SimpleNamespace

    from initlab.engine import Member, TrainConfig, train
    from initlab.lr import suggest_lr

    start = time.perf_counter()
    classes = int(data.y_train.max()) + 1
    model = plain_mlp(activation, depth, s["width"], data.x_train.shape[1], classes)
    initialize(model, scheme, activation, seed)
    spread = jacobian_spread(model, data.x_train[:8])
    suggestion = suggest_lr(
        model,
        data.x_train,
        data.y_train,
        optimizer="adam",
        grid=s["lr_grid"],
        steps=s["lr_steps"],
        batch_size=s["batch_size"],
        seed=seed,
    )
    state = {n: t.detach().clone() for n, t in model.state_dict().items()}

    def as_initialized(copy_, _seed):
        copy_.load_state_dict(state)

    config = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], optimizer="adam", lr=suggestion.lr)
    result = train(
        lambda: copy.deepcopy(model),
        [Member(as_initialized, seed, name=scheme)],
        SimpleNamespace(x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test),
        config,
    )
    member = result.members[0]
    return {
        "activation": activation,
        "scheme": scheme,
        "depth": depth,
        "seed": seed,
        "lr": suggestion.lr,
        "lr_ok": suggestion.ok,
        "test_acc": member.test_acc,
        "status": member.status,
        "jacobian_spread": spread,
        "six_xi_c": six_xi_c(scheme, activation, depth),
        "seconds": time.perf_counter() - start,
    }


def fit_power_law(depths: list[int], lrs: list[float]) -> tuple[float, float] | None:
    """(a, b) of lr = a * depth^b by least squares in log-log; None with fewer than 2 depths."""
    if len(set(depths)) < 2:
        return None
    xs, ys = [math.log(d) for d in depths], [math.log(v) for v in lrs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - b * mx), b


def judge(rows: list[dict[str, Any]], classes: int) -> dict[str, Any]:
    """Frontiers and verdict from measured rows (see the module docstring)."""
    threshold = TRAINED_FACTOR / classes
    frontier: dict[str, dict[str, int | None]] = {}
    gaps: list[tuple[str, int, float]] = []
    decides = False
    for activation in sorted({r["activation"] for r in rows}):
        mine = [r for r in rows if r["activation"] == activation]
        depths = sorted({r["depth"] for r in mine})
        frontier[activation] = {}
        for scheme in sorted({r["scheme"] for r in mine}):
            falls = None
            for d in depths:
                accs = [r["test_acc"] for r in mine if r["scheme"] == scheme and r["depth"] == d]
                if accs and not any(a > threshold for a in accs):
                    falls = d
                    break
            frontier[activation][scheme] = falls
        for d in depths:
            by_scheme: dict[str, float] = {}
            for r in mine:
                if r["depth"] == d:
                    by_scheme[r["scheme"]] = max(by_scheme.get(r["scheme"], -1.0), r["test_acc"])
            if any(a > threshold for a in by_scheme.values()) and any(a <= threshold for a in by_scheme.values()):
                decides = True
        deepest = depths[-1]
        accs = [r["test_acc"] for r in mine if r["depth"] == deepest]
        gaps.append((activation, deepest, max(accs) - min(accs)))
    verdict = "supported" if decides else "not supported"
    activation, deepest, gap = max(gaps, key=lambda g: g[2])
    return {
        "verdict": verdict,
        "frontier": frontier,
        "threshold": threshold,
        "effect": gap,
        "effect_where": f"{activation}, depth {deepest}",
    }


@register("depth-frontier", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Trainable depth per scheme for plain tanh and ReLU MLPs, learning rate from suggest_lr."""
    from initlab.data import load

    s = ctx.setting(DEFAULTS, FULL)
    if ctx.quick:
        s.update({k: v for k, v in QUICK.items() if k not in ctx.overrides})
    data = load(s["dataset"], flatten=True, limit_train=s["limit_train"])
    classes = int(data.y_train.max()) + 1
    rows = []
    for activation in s["activations"]:
        for depth in s["depths"]:
            for scheme in s["schemes"][activation]:
                for seed in range(s["seeds"]):
                    row = run_cell(activation, scheme, depth, seed, s, data)
                    rows.append(row)
                    if ctx.progress:
                        print(
                            f"depth-frontier: {activation} {scheme} depth {depth} seed {seed}: "
                            f"lr {row['lr']:.3g}, test {row['test_acc']:.3f}, {row['seconds']:.1f} s",
                            flush=True,
                        )
    verdict = judge(rows, classes)
    fits = {}
    for activation in s["activations"]:
        for scheme in s["schemes"][activation]:
            trained = [
                r
                for r in rows
                if r["activation"] == activation and r["scheme"] == scheme and r["test_acc"] > verdict["threshold"]
            ]
            fit = fit_power_law([r["depth"] for r in trained], [r["lr"] for r in trained])
            if fit is not None:
                fits[f"{activation}/{scheme}"] = {"a": fit[0], "b": fit[1]}
    (ctx.out / "depth_frontier.json").write_text(
        json.dumps({"settings": s, "rows": rows, "fits": fits, "judge": verdict}, indent=1, default=str)
    )
    figures = [_plot(rows, s, verdict["threshold"], ctx.out)]
    table_rows = [
        [
            r["activation"],
            r["scheme"],
            str(r["depth"]),
            str(r["seed"]),
            f"{r['lr']:.3g}",
            f"{r['test_acc']:.3f}",
            f"{r['jacobian_spread']:.2f}",
            "inf" if math.isinf(r["six_xi_c"]) else f"{r['six_xi_c']:.0f}",
            f"{r['seconds']:.0f}",
        ]
        for r in rows
    ]
    frontier_rows = [
        [a, sch, "trains at every depth" if d is None else str(d)]
        for a, per in verdict["frontier"].items()
        for sch, d in per.items()
    ]
    summary = (
        f"Test accuracy after {s['epochs']} epoch(s) at the learning rate suggest_lr picked, depths "
        f"{s['depths']}, {s['seeds']} seed(s); a run trains above {verdict['threshold']:.2f}. "
        f"Largest gap between schemes at the deepest depth: {verdict['effect']:.2f} ({verdict['effect_where']})."
    )
    return StudyResult(
        study="depth-frontier",
        claim=CLAIM,
        verdict=verdict["verdict"],
        effect=verdict["effect"],
        ci=(math.nan, math.nan),
        effect_label="accuracy gap between schemes at the deepest depth",
        summary=summary,
        evidence={"frontier": verdict["frontier"], "fits": fits, "rows": rows},
        tables=[
            (
                "Runs",
                ["activation", "scheme", "depth", "seed", "lr", "test acc", "log10 J spread", "6 xi_c", "s"],
                table_rows,
            ),
            ("Depth at which each scheme falls to chance", ["activation", "scheme", "falls at depth"], frontier_rows),
            (
                "Selected lr against depth: lr = a * depth^b",
                ["activation/scheme", "a", "b"],
                [[k, f"{v['a']:.3g}", f"{v['b']:.2f}"] for k, v in fits.items()],
            ),
        ],
        figures=figures,
        settings=s,
    )


def _plot(rows: list[dict[str, Any]], s: dict[str, Any], threshold: float, out):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    acts = s["activations"]
    fig, axes = plt.subplots(len(acts), 3, figsize=(13, 3.6 * len(acts)), squeeze=False)
    for i, activation in enumerate(acts):
        for scheme in s["schemes"][activation]:
            mine = sorted(
                (r for r in rows if r["activation"] == activation and r["scheme"] == scheme), key=lambda r: r["depth"]
            )
            depths = [r["depth"] for r in mine]
            axes[i][0].plot(depths, [r["test_acc"] for r in mine], "o-", label=scheme)
            axes[i][1].plot(depths, [r["jacobian_spread"] for r in mine], "o-", label=scheme)
            axes[i][2].plot(depths, [r["lr"] for r in mine], "o-", label=scheme)
        axes[i][0].axhline(threshold, color="grey", linestyle=":")
        axes[i][0].set_ylabel(f"{activation}: test accuracy")
        axes[i][1].set_ylabel("log10 s_max/s_min (Jacobian at init)")
        axes[i][2].set_ylabel("selected lr (Adam)")
        axes[i][2].set_yscale("log")
        for ax in axes[i]:
            ax.set_xscale("log")
            ax.set_xlabel("depth (linear layers)")
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "depth_frontier.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
