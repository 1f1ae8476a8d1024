"""Study ``depth``: is He better than Xavier in deep ReLU networks (and what does depth do to tanh)?

The experiment
--------------
Plain MLPs (no normalization, no skip connections) of ``depth`` hidden layers of ``width``
units, for every depth in ``depths`` (default 2, 10, 30), activation in {ReLU, tanh} and scheme
in {``xavier_uniform`` (gain 1: ``Var W = 2 / (fan_in + fan_out)``), ``he_normal``
(``Var W = 2 / fan_in``)}; biases zero. Default data and training: digits, width 64, SGD with
momentum 0.9 at lr 0.001 (deep plain nets need a small step: at lr 0.01 even the He ReLU net
of depth 30 trains erratically on digits), batch 32, 10 epochs (450 steps), 5 seeds. Each
(activation, depth) is one stored comparison of the two schemes over the seeds.

- **Trainability**: test accuracy after the fixed number of steps; a run *trained* when it
  ends above twice chance (``2 / classes``).
- **Gradient ratio at init**: from the comparison's signal-at-init record (``diagnose`` at seed
  0 on 256 training samples, summed cross-entropy): ``grad_var`` of a layer is ``mean(g^2)``
  of the per-sample gradient w.r.t. its output; the ratio is first hidden layer over last
  hidden layer, shown as ``log10``. With ReLU, each layer multiplies the backward second moment
  by ``fan_out Var(W) / 2``: 1 for He, ``1/2`` for Xavier on square layers, so Xavier's ratio
  at depth ``L`` is about ``2^-(L-1)`` (He et al. 2015, eq. 13).

Verdict on the article's claim (He "performs better than Xavier initialization in deeper
networks with ReLU"), with ``Delta = acc(He) - acc(Xavier)`` paired by seed:
``supported`` when (i) at the deepest depth ``Delta`` has a Student t 95% CI above 0 and
(ii) ``Delta`` grows with depth: ``Delta(deepest) - Delta(shallowest)``, per seed, has a CI
above 0 (with a single depth, (i) alone decides); ``partly`` when only one holds; ``not
supported`` when neither (``judge_gaps``, pure). The claim is about training, so the ReLU
comparisons are repeated with Adam (``adam_lr``, default 1e-3) when ``optimizers`` lists it (the
default): the study's verdict is ``supported`` / ``not supported`` only when SGD and Adam agree,
else ``partly`` naming the optimizer where it flips (``initlab.studies.grid.judge_across``).
Effect: ``Delta`` at the deepest depth for ReLU with SGD. tanh is reported beside it (the
article recommends Xavier there).

Source: the article's comparison table ("He Initialization — ReLU — performs well in deeper
networks"); He et al. (2015), "Delving Deep into Rectifiers", §2.2 and Figure 3 (a 30-layer ReLU
net stalls under Xavier's init and trains under theirs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register
from initlab.studies.grid import Judgement, judge_across

CLAIM = (
    'He initialization "performs better than Xavier initialization in deeper networks with ReLU" '
    '(the article\'s table: He — ReLU — "Performs well in deeper networks").'
)

SCHEMES = ("xavier_uniform", "he_normal")
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "depths": [2, 10, 30],  # hidden layers
    "activations": ["relu", "tanh"],
    "width": 64,
    "epochs": 10,
    "seeds": 5,
    "lr": 0.001,  # SGD, momentum 0.9
    "batch_size": 32,
    "optimizers": ["sgd", "adam"],  # sgd first (the main protocol); adam repeats the ReLU comparisons
    "adam_lr": 0.001,
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 10000,
    "depths": [2, 5, 10, 20, 30, 50],
    "width": 128,
    "epochs": 5,
}


def judge_gaps(deep_gap: list[float], growth: list[float] | None) -> str:
    """Pure: He − Xavier per seed at the deepest depth, and its growth from the shallowest (None:
    one depth) -> ``supported`` when both CIs lie above 0, ``partly`` when one does, else
    ``not supported``."""
    deep_holds = mean_ci(deep_gap)[1] > 0
    grows = True if growth is None else mean_ci(growth)[1] > 0
    return "supported" if deep_holds and grows else "partly" if deep_holds or grows else "not supported"


def gradient_profile(signal: list[dict]) -> list[float]:
    """``grad_var`` of each hidden layer, first to last (the output layer dropped); NaN where missing."""
    return [math.nan if row.get("grad_var") is None else float(row["grad_var"]) for row in signal[:-1]]


def log10_ratio(first: float, last: float) -> float:
    """``log10(first / last)``: NaN when either is missing, not finite or not positive."""
    if not (math.isfinite(first) and math.isfinite(last)) or first <= 0 or last <= 0:
        return math.nan
    return math.log10(first / last)


def _ci_text(values: list[float], scale: float = 100.0, signed: bool = False) -> str:
    m, lo, hi = mean_ci(values)
    fmt = "+.1f" if signed else ".1f"
    if len(values) < 2:
        return f"{scale * m:{fmt}}"
    return f"{scale * m:{fmt}} [{scale * lo:{fmt}}, {scale * hi:{fmt}}]"


def _plot(path: Path, depths: list[int], activations: list[str], accuracy: dict, profiles: dict) -> Path:
    from initlab.plotting import new_figure, palette, save, style

    fig, (ax_acc, ax_grad) = new_figure(2, size=(11, 4.3))
    styles = {"xavier_uniform": "--", "he_normal": "-"}
    colors = palette(activations)
    for act in activations:
        for sch in SCHEMES:
            means = [100 * mean_ci(accuracy[act][d][sch])[0] for d in depths]
            ax_acc.plot(depths, means, styles[sch], marker="o", color=colors[act], label=f"{act}, {sch}")
    ax_acc.set_ylim(-2, 102)
    style(
        ax_acc,
        xlabel="hidden layers",
        ylabel="test accuracy after fixed steps (%)",
        title="Trainability vs depth (mean over seeds)",
        legend=True,
    )
    deepest = max(depths)
    for act in activations:
        for sch in SCHEMES:
            prof = profiles[act][deepest][sch]
            last = prof[-1] if prof else math.nan
            ys = [p / last if last and math.isfinite(last) and last > 0 else math.nan for p in prof]
            ax_grad.plot(range(1, len(ys) + 1), ys, styles[sch], color=colors[act], label=f"{act}, {sch}")
    style(
        ax_grad,
        xlabel="hidden layer",
        ylabel="grad_var / grad_var of the last hidden layer",
        title=f"Backward signal at init, depth {deepest} (seed 0)",
        logy=True,
        legend=True,
    )
    return save(fig, path)


def _read_settings(ctx: StudyContext):
    from initlab.activations import canonical
    from initlab.studies.settings import as_list, seed_list

    s = ctx.setting(DEFAULTS, FULL)
    try:
        depths = sorted({int(str(d)) for d in as_list(s["depths"])})
    except (TypeError, ValueError):
        depths = []
    if not depths or depths[0] < 1:
        raise UserError(f"depths: hidden-layer counts >= 1; got {s['depths']!r}")
    activations = [canonical(a) for a in as_list(s["activations"])]
    if "relu" not in activations:
        raise UserError(f"activations: must include 'relu' (the claim is about ReLU); got {s['activations']}")
    seeds = seed_list(s["seeds"])
    data_options = {"limit_train": int(s["limit_train"])} if s["limit_train"] else {}
    optimizers = [str(o) for o in as_list(s["optimizers"])]
    if not optimizers or optimizers[0] != "sgd" or not set(optimizers) <= {"sgd", "adam"}:
        raise UserError(f"optimizers: 'sgd' first, then optionally 'adam'; got {s['optimizers']!r}")
    return s, depths, activations, seeds, data_options, optimizers


@dataclass
class Measured:
    accuracy: dict[str, dict[int, dict[str, list[float]]]]  # activation -> depth -> scheme -> per seed (SGD)
    profiles: dict[str, dict[int, dict[str, list[float]]]]  # activation -> depth -> scheme -> grad_var per layer
    adam_gaps: dict[int, list[float]]  # depth -> He − Xavier per seed, ReLU, Adam
    experiments: list[str]
    chance: float


def _compare(ctx: StudyContext, s, seeds, data_options, depth: int, act: str, optimizer: str, lr: float):
    """One stored comparison of the two schemes over the seeds (reference He, paired t)."""
    return ctx.compare(
        schemes=SCHEMES,
        seeds=seeds,
        dataset=s["dataset"],
        width=s["width"],
        depth=depth,
        activation=act,
        epochs=s["epochs"],
        optimizer=optimizer,
        lr=lr,
        batch_size=s["batch_size"],
        reference="he_normal",
        paired_test="t",
        data_options=data_options,
    )


def measure(ctx: StudyContext, s, depths, activations, seeds, data_options, optimizers) -> Measured:
    """SGD: every (activation, depth); Adam: the ReLU comparisons again."""
    from initlab.data import load

    accuracy: dict[str, dict[int, dict[str, list[float]]]] = {}
    profiles: dict[str, dict[int, dict[str, list[float]]]] = {}
    experiments = []
    for act in activations:
        accuracy[act], profiles[act] = {}, {}
        for depth in depths:
            data = _compare(ctx, s, seeds, data_options, depth, act, "sgd", s["lr"])
            experiments.append(data.experiment_id)
            by_seed = data.accuracy_by_seed()
            accuracy[act][depth] = {sch: [by_seed[sch][k] for k in seeds] for sch in SCHEMES}
            profiles[act][depth] = {sch: gradient_profile(data.signal.get(sch, [{}])) for sch in SCHEMES}
    chance = 1.0 / load(s["dataset"], **data_options).num_classes
    adam_gaps: dict[int, list[float]] = {}
    if "adam" in optimizers:
        for depth in depths:
            data = _compare(ctx, s, seeds, data_options, depth, "relu", "adam", s["adam_lr"])
            experiments.append(data.experiment_id)
            by_seed = data.accuracy_by_seed()
            adam_gaps[depth] = [by_seed["he_normal"][k] - by_seed["xavier_uniform"][k] for k in seeds]
    return Measured(accuracy, profiles, adam_gaps, experiments, chance)


def gap(accuracy: dict, act: str, depth: int) -> list[float]:
    """He − Xavier test accuracy per seed."""
    return [h - x for h, x in zip(accuracy[act][depth]["he_normal"], accuracy[act][depth]["xavier_uniform"])]


def judge(gaps: Mapping[str, Mapping[int, list[float]]]) -> Judgement:
    """Pure: optimizer label -> depth -> He − Xavier per seed (ReLU)  ->  ``judge_gaps`` per optimizer
    (the deepest gap and its growth from the shallowest depth), then ``judge_across``."""
    by_optimizer = {}
    for label, by_depth in gaps.items():
        depths = sorted(by_depth)
        deep = by_depth[depths[-1]]
        growth = [d - g for d, g in zip(deep, by_depth[depths[0]])] if len(depths) > 1 else None
        by_optimizer[label] = judge_gaps(deep, growth)
    return judge_across(by_optimizer)


@register("depth", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Depth x {Xavier, He} x {ReLU, tanh}: accuracy after fixed steps and the per-layer gradient
    ratio at init (see the module docstring for the protocol and the verdict rule)."""
    s, depths, activations, seeds, data_options, optimizers = _read_settings(ctx)
    m = measure(ctx, s, depths, activations, seeds, data_options, optimizers)
    gaps = {f"sgd (lr {s['lr']:g})": {d: gap(m.accuracy, "relu", d) for d in depths}}
    if m.adam_gaps:
        gaps[f"adam (lr {s['adam_lr']:g})"] = m.adam_gaps
    return present(ctx, s, depths, activations, seeds, m, judge(gaps))


def _evidence(depths, activations, seeds, m: Measured, judgement: Judgement) -> dict[str, Any]:
    deepest, shallowest = depths[-1], depths[0]
    effect, lo, hi = mean_ci(gap(m.accuracy, "relu", deepest))
    if len(depths) > 1:
        growth = [d - g for d, g in zip(gap(m.accuracy, "relu", deepest), gap(m.accuracy, "relu", shallowest))]
        growth_mean, growth_lo, growth_hi = mean_ci(growth)
        grows = growth_lo > 0
    else:
        growth_mean, growth_lo, growth_hi, grows = math.nan, math.nan, math.nan, True
    return {
        "depths": depths,
        "accuracy": {act: {str(d): m.accuracy[act][d] for d in depths} for act in activations},
        "gap_he_minus_xavier": {
            act: {str(d): dict(zip(("mean", "ci_low", "ci_high"), mean_ci(gap(m.accuracy, act, d)))) for d in depths}
            for act in activations
        },
        "trained_runs": {
            act: {str(d): {sch: _trained(m.accuracy[act][d][sch], m.chance) for sch in SCHEMES} for d in depths}
            for act in activations
        },
        "log10_grad_ratio_first_over_last": {
            act: {str(d): {sch: _ratio(m, act, d, sch) for sch in SCHEMES} for d in depths} for act in activations
        },
        "relu_deepest_gap": {"depth": deepest, "mean": effect, "ci": [lo, hi], "holds": lo > 0},
        "relu_gap_growth": {
            "from_depth": shallowest,
            "to_depth": deepest,
            "mean": growth_mean,
            "ci": [growth_lo, growth_hi],
            "holds": grows,
        },
        "chance": m.chance,
        "seeds": list(seeds),
        "judgement": judgement.evidence(),
        "adam_relu_gap": {str(d): dict(zip(("mean", "ci_low", "ci_high"), mean_ci(g))) for d, g in m.adam_gaps.items()},
    }


def _ratio(m: Measured, act: str, depth: int, sch: str) -> float:
    prof = m.profiles[act][depth][sch]
    return log10_ratio(prof[0], prof[-1]) if prof else math.nan


def _trained(values: list[float], chance: float) -> int:
    return sum(v > 2 * chance for v in values)


def _summary(s, depths, activations, m: Measured, judgement: Judgement) -> str:
    deepest, shallowest = depths[-1], depths[0]

    def mean_acc(act: str, depth: int, sch: str) -> float:
        return mean_ci(m.accuracy[act][depth][sch])[0]

    tanh_note = ""
    if "tanh" in activations:
        t_mean, t_lo, t_hi = mean_ci(gap(m.accuracy, "tanh", deepest))
        tanh_note = (
            f" With tanh at depth {deepest}, He − Xavier = {100 * t_mean:+.1f} pts "
            f"[{100 * t_lo:+.1f}, {100 * t_hi:+.1f}]."
        )
    adam = m.adam_gaps
    return (
        f"At depth {deepest} with ReLU, Xavier reaches {100 * mean_acc('relu', deepest, 'xavier_uniform'):.1f}% "
        f"and He {100 * mean_acc('relu', deepest, 'he_normal'):.1f}% after {s['epochs']} epochs "
        f"(log10 gradient ratio first/last hidden layer at init: {_ratio(m, 'relu', deepest, 'xavier_uniform'):+.1f} vs "
        f"{_ratio(m, 'relu', deepest, 'he_normal'):+.1f}); at depth {shallowest} the gap is "
        f"{100 * mean_ci(gap(m.accuracy, 'relu', shallowest))[0]:+.1f} pts."
        + tanh_note
        + (
            f" With Adam (lr {s['adam_lr']:g}), He − Xavier at depth {deepest} = "
            f"{100 * mean_ci(adam[deepest])[0]:+.1f} pts [{100 * mean_ci(adam[deepest])[1]:+.1f}, "
            f"{100 * mean_ci(adam[deepest])[2]:+.1f}]; verdict per optimizer: "
            + ", ".join(f"{k}: {v}" for k, v in judgement.by_setting.items())
            + "."
            if adam
            else ""
        )
    )


def present(ctx, s, depths, activations, seeds, m: Measured, judgement: Judgement) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    deepest = depths[-1]
    effect, lo, hi = mean_ci(gap(m.accuracy, "relu", deepest))
    rows = []
    for act in activations:
        for d in depths:
            acc = m.accuracy[act][d]
            rows.append(
                [
                    act,
                    str(d),
                    _ci_text(acc["xavier_uniform"]),
                    _ci_text(acc["he_normal"]),
                    _ci_text(gap(m.accuracy, act, d), signed=True),
                    f"{_trained(acc['xavier_uniform'], m.chance)}/{len(seeds)} | "
                    f"{_trained(acc['he_normal'], m.chance)}/{len(seeds)}",
                    f"{_ratio(m, act, d, 'xavier_uniform'):+.1f} | {_ratio(m, act, d, 'he_normal'):+.1f}",
                ]
            )
    figure = _plot(ctx.out / "depth.png", depths, activations, m.accuracy, m.profiles)
    return StudyResult(
        study="depth",
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"test accuracy He − Xavier, ReLU, depth {deepest} (paired by seed)",
        summary=_summary(s, depths, activations, m, judgement),
        evidence=_evidence(depths, activations, seeds, m, judgement),
        tables=[
            (
                f"Test accuracy % after {s['epochs']} epochs (mean, 95% CI over {len(seeds)} seeds), runs above "
                "2x chance, and log10 of the gradient ratio first/last hidden layer at init (Xavier | He)",
                [
                    "activation",
                    "depth",
                    "xavier_uniform",
                    "he_normal",
                    "He − Xavier (pts)",
                    "trained X | He",
                    "log10 grad ratio X | He",
                ],
                rows,
            )
        ],
        figures=[figure],
        experiments=m.experiments,
        settings=s,
    )
