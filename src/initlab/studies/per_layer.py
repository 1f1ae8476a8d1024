"""Study ``per-layer``: one scheme for every layer, or a scheme chosen per layer?

The article: "An additional misconception is that using the same initialization scheme for all
layers of a neural network will lead to optimal performance. In reality, different layers and
neurons may benefit from different weight initialization strategies."

Experiment. A network where no single scheme can be right everywhere: ``mixed_residual_mlp``,
a pre-activation residual MLP without normalization whose branch activations cycle through
ReLU, tanh, GELU and sigmoid (a tanh stem, a ReLU head; see its docstring). On it, for each
depth in ``depths`` (residual blocks), every seed trains three members that differ only in their
initial weights:

* ``he_normal`` for every weight (``N(0, 2/fan_in)``, He et al. 2015),
* ``xavier_uniform`` for every weight (``U(±sqrt(6/(fan_in+fan_out)))``, Glorot & Bengio 2010),
* ``auto``: ``initlab.plan(model, "auto")``, a scheme per layer from the activation that
  follows it (He-style for ReLU/GELU, Xavier with the tanh gain for tanh, Xavier for sigmoid),
  Xavier with gain 1 for the output layer, and zeros for the last layer of each residual branch
  (Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020). Biases are zero in all three.

Same data order per seed for all three (paired design), SGD with momentum 0.9 at one learning
rate for all, digits by default (Fashion-MNIST with ``--full``). Runs are stored as one
comparison per depth (reference ``auto``).

Control: ``auto`` differs from a single scheme in two ways, a scheme per activation *and* zeroed
residual-branch ends. ``SCHEME+zeroed_branch_ends`` (one per uniform scheme, ``controls``)
keeps SCHEME for every hidden and output weight and zeroes only the branch ends, so a gain that
comes from the zeroing alone shows up against the control, not as "a scheme per layer".

Effect: at the deepest depth, the paired difference ``acc(auto) - acc(best uniform scheme)``
(the uniform scheme with the higher mean), mean over seeds with its 95% t interval.
Verdict (``judge``, pure): *supported* when auto beats the best uniform scheme *and* the best
control (both intervals above 0: per layer beats every single scheme, zeroed branches or not);
*partly* when it beats the best uniform scheme but not the best control (the gain is the
zeroing), or only the worse uniform scheme; *not supported* otherwise. The best scheme and
control are picked on the same runs, which favours them: the test is conservative for ``auto``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.settings import accuracy_by_seed, fixed_lr_compare, fmt_ci, int_list, paired_diff, seed_list

NAME = "per-layer"
CLAIM = (
    "An additional misconception is that using the same initialization scheme for all layers of a neural "
    "network will lead to optimal performance. In reality, different layers and neurons may benefit from "
    "different weight initialization strategies."
)
ACTIVATION_CYCLE = ("relu", "tanh", "gelu", "sigmoid")  # branch activations, block i uses [i % 4]
MODEL = "initlab.studies.per_layer:mixed_residual_mlp"
POLICY = "auto"

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data_options": {},
    "width": 64,  # units per layer
    "depths": [4, 16],  # residual blocks (two Linear layers each)
    "schemes": ["he_normal", "xavier_uniform"],  # the single schemes set against "auto"
    "seeds": 10,
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.05,  # SGD, momentum 0.9
    "controls": True,  # add SCHEME+zeroed_branch_ends for every single scheme
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "data_options": {"limit_train": 10000},
    "width": 128,
    "depths": [4, 16, 32],
    "seeds": 10,
    "epochs": 10,
}


def mixed_residual_mlp(input_shape: Sequence[int], num_classes: int, width: int = 64, depth: int = 4) -> nn.Sequential:
    """``flatten → stem → stem_act (tanh) → block1 … block{depth} → act (ReLU) → out``.

    ``block{i}`` is a pre-activation residual block ``y = x + fc2(φ_i(fc1(φ_i(x))))`` without
    normalization (``initlab.models.nets.ResidualBlock``) whose activation ``φ_i`` cycles
    through ReLU, tanh, GELU and sigmoid (``ACTIVATION_CYCLE``), so a scheme tuned to one
    activation is wrong for the others, and the residual adds make the forward variance grow
    with depth unless the branches start small.
    """
    from initlab.activations import activation_module
    from initlab.models.nets import ResidualBlock, _int, _shape

    shape = _shape(input_shape)
    num_classes, width, depth = _int("num_classes", num_classes, 1), _int("width", width, 1), _int("depth", depth, 0)
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        flatten=nn.Flatten(), stem=nn.Linear(math.prod(shape), width), stem_act=activation_module("tanh")
    )
    for i in range(depth):
        layers[f"block{i + 1}"] = ResidualBlock(lambda: nn.Linear(width, width), None, ACTIVATION_CYCLE[i % 4])
    layers["act"] = activation_module("relu")
    layers["out"] = nn.Linear(width, num_classes)
    return nn.Sequential(layers)


def judge(auto_minus_best_low: float, auto_minus_control_low: float | None, auto_minus_worst_low: float) -> str:
    """Pure: the lower 95% bounds of auto − best uniform scheme, auto − best control (None: no
    control run) and auto − worst uniform scheme -> the verdict of the module docstring."""
    beats_control = auto_minus_control_low is None or auto_minus_control_low > 0
    if auto_minus_best_low > 0 and beats_control:
        return "supported"
    if auto_minus_best_low > 0 or auto_minus_worst_low > 0:
        return "partly"
    return "not supported"


def _plan_counts(width: int, depth: int, input_shape: tuple[int, ...], num_classes: int) -> dict[str, int]:
    """How many weight tensors the auto plan gives each scheme, on the deepest model."""
    from initlab.models import build
    from initlab.policy import plan

    model = build(mixed_residual_mlp, input_shape=input_shape, num_classes=num_classes, width=width, depth=depth)
    counts: dict[str, int] = {}
    for entry in plan(model, policy=POLICY).entries:
        if entry.param.endswith("weight"):
            counts[entry.scheme_text()] = counts.get(entry.scheme_text(), 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _figure(out, depths, order, stats, curves) -> Any:
    from initlab.plotting import new_figure, palette, save, style

    fig, (left, right) = new_figure(2, size=(11, 4.2))
    colors = palette(order)
    for k, scheme in enumerate(order):
        xs = [d * (1 + 0.03 * (k - 1)) for d in depths]  # a small shift keeps the error bars apart
        rows = [stats[d][scheme] for d in depths]
        means = [r["mean"] for r in rows]
        # one seed or a zero-width interval: no bar rather than a NaN one
        errs = [
            [r["mean"] - r["ci_low"] if math.isfinite(r["ci_low"]) else 0 for r in rows],
            [r["ci_high"] - r["mean"] if math.isfinite(r["ci_high"]) else 0 for r in rows],
        ]
        left.errorbar(xs, means, yerr=errs, marker="o", capsize=3, color=colors[scheme], label=scheme)
    left.set_xscale("log", base=2)
    left.set_xticks(depths, [str(d) for d in depths])
    left.set_ylim(0, 1.02)
    style(left, xlabel="residual blocks", ylabel="final test accuracy", title="mean and 95% CI over seeds", legend=True)
    for scheme in order:
        for seed, pts in curves.get(scheme, {}).items():
            pts = sorted(pts)
            right.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                color=colors[scheme],
                alpha=0.6,
                label=scheme if seed == min(curves[scheme]) else None,
            )
    right.set_ylim(0, 1.02)
    style(
        right,
        xlabel="epoch",
        ylabel="test accuracy",
        title=f"learning curves at {depths[-1]} blocks (one line per seed)",
        legend=True,
    )
    title = "per-layer: one scheme everywhere vs the auto plan (mixed activations, residual branches)"
    return save(fig, out / "per_layer.png", title=title)


@dataclass
class Measured:
    """The stored comparisons, one per depth: summary rows, per-seed accuracies, curves (deepest)."""

    stats: dict[int, dict[str, dict[str, Any]]]  # depth -> scheme -> summary row
    accuracy: dict[int, dict[str, dict[int, float]]]  # depth -> scheme -> seed -> test accuracy
    curves: dict[str, dict[int, list[tuple[int, float]]]]  # scheme -> seed -> (epoch, test acc), deepest depth
    experiments: list[str]


def measure(ctx: StudyContext, s: dict[str, Any], seeds: tuple[int, ...], depths: list[int], order: list[str]):
    """Run (or reuse) one comparison per depth, reference ``auto``."""
    stats: dict[int, dict[str, dict[str, Any]]] = {}
    accuracy: dict[int, dict[str, dict[int, float]]] = {}
    experiments: list[str] = []
    curves: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for depth in depths:
        data = fixed_lr_compare(ctx, s, seeds, order, model=MODEL, width=s["width"], depth=depth, reference=POLICY)
        experiments.append(data.experiment_id)
        accuracy[depth] = accuracy_by_seed(data)
        stats[depth] = {row["scheme"]: row for row in data.summary}
        if depth == depths[-1]:
            for e in data.epochs:
                curves.setdefault(e["scheme"], {}).setdefault(e["seed"], []).append((e["epoch"], e["test_acc"]))
    return Measured(stats, accuracy, curves, experiments)


@dataclass(frozen=True)
class Contrasts:
    """At the deepest depth: auto against the best and worst uniform scheme and the best control."""

    best: str
    worst: str
    vs_best: tuple[float, float, float]  # (mean, ci_low, ci_high) of auto − best
    vs_worst: tuple[float, float, float]
    best_control: str | None
    vs_control: tuple[float, float, float] | None


def contrasts(m: Measured, deep: int, uniform: list[str], controls: list[str]) -> Contrasts:
    """Pick the best/worst uniform scheme and best control by mean (on the same runs) and pair auto with them."""
    stats, accuracy = m.stats[deep], m.accuracy[deep]

    def finite_mean(x: str) -> float:
        return stats[x]["mean"] if math.isfinite(stats[x]["mean"]) else -1.0

    best, worst = max(uniform, key=finite_mean), min(uniform, key=finite_mean)
    best_control = max(controls, key=finite_mean) if controls else None
    return Contrasts(
        best,
        worst,
        paired_diff(accuracy[POLICY], accuracy[best]),
        paired_diff(accuracy[POLICY], accuracy[worst]),
        best_control,
        paired_diff(accuracy[POLICY], accuracy[best_control]) if best_control else None,
    )


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """One scheme for all layers (he_normal, xavier_uniform) vs the auto per-layer plan on a
    residual MLP with mixed activations; see the module docstring for the exact design."""
    from initlab.data import load
    from initlab.schemes import canonical_spec
    from initlab.sweep.config import ZEROED_BRANCH_ENDS

    s = ctx.setting(DEFAULTS, FULL)
    seeds = seed_list(s["seeds"])
    if len(seeds) < 2:
        raise UserError(f"seeds: the paired CI needs at least 2 seeds; got {list(seeds)}")
    depths = int_list("depths", s["depths"], 1)
    uniform = [canonical_spec(x) for x in (s["schemes"] if isinstance(s["schemes"], list) else [s["schemes"]])]
    controls = [u + ZEROED_BRANCH_ENDS for u in uniform] if s["controls"] else []
    order = uniform + controls + [POLICY]
    dataset = load(s["dataset"], **s["data_options"])

    m = measure(ctx, s, seeds, depths, order)
    c = contrasts(m, depths[-1], uniform, controls)
    verdict = judge(c.vs_best[1], c.vs_control[1] if c.vs_control else None, c.vs_worst[1])
    return present(ctx, s, seeds, depths, uniform, order, dataset, m, c, verdict)


def _accuracy_rows(m: Measured, depths: list[int], order: list[str]) -> tuple[dict[str, Any], list[list[str]]]:
    """The evidence's per-depth accuracies and the table rows."""
    per_depth: dict[str, Any] = {}
    rows = []
    for depth in depths:
        per_depth[str(depth)] = {}
        for scheme in order:
            st = m.stats[depth][scheme]
            entry = {
                "mean": st["mean"],
                "ci": [st["ci_low"], st["ci_high"]],
                "std": st["std"],
                "n": st["n"],
                "diverged": st["diverged"],
            }
            if scheme != POLICY:
                d = paired_diff(m.accuracy[depth][POLICY], m.accuracy[depth][scheme])
                entry["auto_minus_this"] = {"mean": d[0], "ci": [d[1], d[2]], "p_holm": st.get("p_holm")}
            per_depth[str(depth)][scheme] = entry
            auto_col = (
                "—" if scheme == POLICY else fmt_ci(*paired_diff(m.accuracy[depth][POLICY], m.accuracy[depth][scheme]))
            )
            p = st.get("p_holm")
            rows.append(
                [
                    str(depth),
                    scheme,
                    fmt_ci(st["mean"], st["ci_low"], st["ci_high"]),
                    f"{st['diverged']}/{st['n']}",
                    auto_col,
                    "—" if p is None or not math.isfinite(p) else f"{p:.3g}",
                ]
            )
    return per_depth, rows


def _summary(s, seeds, depths, uniform, m: Measured, c: Contrasts) -> str:
    deep, stats = depths[-1], m.stats
    effect, lo, hi = c.vs_best
    summary = (
        f"On a {deep}-block residual MLP mixing ReLU/tanh/GELU/sigmoid ({s['dataset']}, {len(seeds)} seeds), the auto "
        f"per-layer plan reaches {100 * stats[deep][POLICY]['mean']:.1f}% test accuracy vs "
        f"{100 * stats[deep][c.best]['mean']:.1f}% for the best single scheme ({c.best}) and "
        f"{100 * stats[deep][c.worst]['mean']:.1f}% for {c.worst}: auto − best = {100 * effect:+.1f} pp "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]."
    )
    if len(depths) > 1:
        shallow = depths[0]
        sb = max(uniform, key=lambda u: stats[shallow][u]["mean"])
        d0 = paired_diff(m.accuracy[shallow][POLICY], m.accuracy[shallow][sb])
        summary += f" At {shallow} blocks auto − {sb} = {100 * d0[0]:+.1f} pp [{100 * d0[1]:+.1f}, {100 * d0[2]:+.1f}]."
    if c.vs_control:
        summary += (
            f" Control, one scheme with zeroed branch ends ({c.best_control}): "
            f"{100 * stats[deep][c.best_control]['mean']:.1f}%; auto − control = {100 * c.vs_control[0]:+.1f} pp "
            f"[{100 * c.vs_control[1]:+.1f}, {100 * c.vs_control[2]:+.1f}]."
        )
    return summary


def present(ctx, s, seeds, depths, uniform, order, dataset, m: Measured, c: Contrasts, verdict: str) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    deep = depths[-1]
    effect, lo, hi = c.vs_best
    per_depth, rows = _accuracy_rows(m, depths, order)
    plan_counts = _plan_counts(s["width"], deep, dataset.input_shape, dataset.num_classes)
    figure = _figure(ctx.out, depths, order, m.stats, m.curves)
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"acc(auto) − acc({c.best}) at {deep} blocks",
        summary=_summary(s, seeds, depths, uniform, m, c),
        evidence={
            "depths": depths,
            "best_uniform": c.best,
            "worst_uniform": c.worst,
            "auto_minus_best": {"mean": effect, "ci": [lo, hi]},
            "auto_minus_worst": {"mean": c.vs_worst[0], "ci": [c.vs_worst[1], c.vs_worst[2]]},
            "best_control": c.best_control,
            "auto_minus_best_control": (
                None if c.vs_control is None else {"mean": c.vs_control[0], "ci": [c.vs_control[1], c.vs_control[2]]}
            ),
            "accuracy": per_depth,
            "auto_plan_weights": plan_counts,
            "steps": s["epochs"] * math.ceil(dataset.x_train.shape[0] / s["batch_size"]),
        },
        tables=[
            (
                "Final test accuracy (mean [95% CI]) and the paired difference auto − scheme",
                ["blocks", "scheme", "accuracy", "diverged", "auto − scheme", "p (Holm)"],
                rows,
            ),
            (
                f"The auto plan on the {deep}-block model (weight tensors per scheme)",
                ["scheme", "weights"],
                [[k, str(v)] for k, v in plan_counts.items()],
            ),
        ],
        figures=[figure],
        experiments=m.experiments,
        settings={**s, "seeds": list(seeds), "depths": depths, "model": MODEL},
    )
