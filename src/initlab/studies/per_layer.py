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
from typing import Any

from torch import nn

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.settings import accuracy_by_seed, fmt_ci, int_list, paired_diff, seed_list

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {s: plt.get_cmap("tab10")(i) for i, s in enumerate(order)}
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
    left.set_xlabel("residual blocks")
    left.set_ylabel("final test accuracy")
    left.set_ylim(0, 1.02)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    left.set_title("mean and 95% CI over seeds")
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
    right.set_xlabel("epoch")
    right.set_ylabel("test accuracy")
    right.set_ylim(0, 1.02)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    right.set_title(f"learning curves at {depths[-1]} blocks (one line per seed)")
    fig.suptitle("per-layer: one scheme everywhere vs the auto plan (mixed activations, residual branches)")
    fig.tight_layout()
    path = out / "per_layer.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """One scheme for all layers (he_normal, xavier_uniform) vs the auto per-layer plan on a
    residual MLP with mixed activations; see the module docstring for the exact design."""
    from initlab.data import load
    from initlab.schemes import canonical_spec

    s = ctx.setting(DEFAULTS, FULL)
    seeds = seed_list(s["seeds"])
    if len(seeds) < 2:
        raise UserError(f"seeds: the paired CI needs at least 2 seeds; got {list(seeds)}")
    depths = int_list("depths", s["depths"], 1)
    uniform = [canonical_spec(x) for x in (s["schemes"] if isinstance(s["schemes"], list) else [s["schemes"]])]
    from initlab.sweep.config import ZEROED_BRANCH_ENDS

    controls = [u + ZEROED_BRANCH_ENDS for u in uniform] if s["controls"] else []
    order = uniform + controls + [POLICY]
    dataset = load(s["dataset"], **s["data_options"])

    stats: dict[int, dict[str, dict[str, float]]] = {}
    accuracy: dict[int, dict[str, dict[int, float]]] = {}
    experiments, curves = [], {}
    for depth in depths:
        data = ctx.compare(
            schemes=tuple(order),
            seeds=seeds,
            dataset=s["dataset"],
            data_options=s["data_options"],
            model=MODEL,
            width=s["width"],
            depth=depth,
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            lr=s["lr"],
            reference=POLICY,
            chunk_size=len(order) * len(seeds),
        )
        experiments.append(data.experiment_id)
        accuracy[depth] = accuracy_by_seed(data)
        stats[depth] = {row["scheme"]: row for row in data.summary}
        if depth == depths[-1]:
            for e in data.epochs:
                curves.setdefault(e["scheme"], {}).setdefault(e["seed"], []).append((e["epoch"], e["test_acc"]))

    deep = depths[-1]
    means = {u: stats[deep][u]["mean"] for u in uniform}
    best = max(uniform, key=lambda u: means[u] if math.isfinite(means[u]) else -1.0)
    worst = min(uniform, key=lambda u: means[u] if math.isfinite(means[u]) else -1.0)
    effect, lo, hi = paired_diff(accuracy[deep][POLICY], accuracy[deep][best])
    vs_worst = paired_diff(accuracy[deep][POLICY], accuracy[deep][worst])
    best_control, vs_control = None, None
    if controls:
        best_control = max(
            controls, key=lambda c: stats[deep][c]["mean"] if math.isfinite(stats[deep][c]["mean"]) else -1.0
        )
        vs_control = paired_diff(accuracy[deep][POLICY], accuracy[deep][best_control])
    verdict = judge(lo, vs_control[1] if vs_control else None, vs_worst[1])

    per_depth = {}
    rows = []
    for depth in depths:
        per_depth[str(depth)] = {}
        for scheme in order:
            st = stats[depth][scheme]
            entry = {
                "mean": st["mean"],
                "ci": [st["ci_low"], st["ci_high"]],
                "std": st["std"],
                "n": st["n"],
                "diverged": st["diverged"],
            }
            if scheme != POLICY:
                d = paired_diff(accuracy[depth][POLICY], accuracy[depth][scheme])
                entry["auto_minus_this"] = {"mean": d[0], "ci": [d[1], d[2]], "p_holm": st.get("p_holm")}
            per_depth[str(depth)][scheme] = entry
            auto_col = (
                "—" if scheme == POLICY else fmt_ci(*paired_diff(accuracy[depth][POLICY], accuracy[depth][scheme]))
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
    plan_counts = _plan_counts(s["width"], deep, dataset.input_shape, dataset.num_classes)
    figure = _figure(ctx.out, depths, order, stats, curves)

    summary = (
        f"On a {deep}-block residual MLP mixing ReLU/tanh/GELU/sigmoid ({s['dataset']}, {len(seeds)} seeds), the auto "
        f"per-layer plan reaches {100 * stats[deep][POLICY]['mean']:.1f}% test accuracy vs {100 * means[best]:.1f}% for "
        f"the best single scheme ({best}) and {100 * means[worst]:.1f}% for {worst}: auto − best = {100 * effect:+.1f} pp "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]."
    )
    if len(depths) > 1:
        shallow = depths[0]
        sb = max(uniform, key=lambda u: stats[shallow][u]["mean"])
        d0 = paired_diff(accuracy[shallow][POLICY], accuracy[shallow][sb])
        summary += f" At {shallow} blocks auto − {sb} = {100 * d0[0]:+.1f} pp [{100 * d0[1]:+.1f}, {100 * d0[2]:+.1f}]."
    if vs_control:
        summary += (
            f" Control, one scheme with zeroed branch ends ({best_control}): "
            f"{100 * stats[deep][best_control]['mean']:.1f}%; auto − control = {100 * vs_control[0]:+.1f} pp "
            f"[{100 * vs_control[1]:+.1f}, {100 * vs_control[2]:+.1f}]."
        )
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"acc(auto) − acc({best}) at {deep} blocks",
        summary=summary,
        evidence={
            "depths": depths,
            "best_uniform": best,
            "worst_uniform": worst,
            "auto_minus_best": {"mean": effect, "ci": [lo, hi]},
            "auto_minus_worst": {"mean": vs_worst[0], "ci": [vs_worst[1], vs_worst[2]]},
            "best_control": best_control,
            "auto_minus_best_control": (
                None if vs_control is None else {"mean": vs_control[0], "ci": [vs_control[1], vs_control[2]]}
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
        experiments=experiments,
        settings={**s, "seeds": list(seeds), "depths": depths, "model": MODEL},
    )
