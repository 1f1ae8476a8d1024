"""Study ``depth``: is He better than Xavier in deep ReLU networks (and what does depth do to tanh)?

The experiment
--------------
Plain MLPs (no normalization, no skip connections) of ``depth`` hidden layers of ``width``
units, for every depth in ``depths`` (default 2, 10, 30), activation in {ReLU, tanh} and scheme
in {``xavier_uniform`` (gain 1: ``Var W = 2 / (fan_in + fan_out)``), ``he_normal``
(``Var W = 2 / fan_in``)}; biases zero; digits, width 64, batch 32, 5 seeds. The claim is about
training, so it is judged over a small sensitivity grid: SGD (momentum 0.9) and Adam, the
learning rate tuned per scheme on the validation split (SGD 3e-4/1e-3/3e-3: deep plain nets
need a small step, at SGD 0.01 even the He ReLU net of depth 30 trains erratically on digits;
Adam 1e-4/3e-4/1e-3: with 3e-4/1e-3/3e-3, the depth-30 ReLU nets selected 3e-4, the grid's
lower edge), two budgets (5 and 20 epochs). One stored, tuned comparison per
(optimizer, activation, depth), holding both schemes; seed s fixes the data order in all of
them, so runs pair by seed across depths.

- **Trainability**: tuned test accuracy after the budget; a run *trained* when it ends above
  twice chance (``2 / classes``).
- **Gradient ratio at init**: from the first optimizer's comparisons' signal-at-init record
  (``diagnose`` at seed 0 on 256 training samples, summed cross-entropy): ``grad_var`` of a layer
  is ``mean(g^2)`` of the per-sample gradient w.r.t. its output; the ratio is first hidden layer
  over last hidden layer, shown as ``log10``. With ReLU, each layer multiplies the backward second
  moment by ``fan_out Var(W) / 2``: 1 for He, ``1/2`` for Xavier on square layers, so Xavier's
  ratio at depth ``L`` is about ``2^-(L-1)`` (He et al. 2015, eq. 13).

Shape: settings (``CommonSettings`` + depths, activations, width) -> **measure** -> **judge**
(pure) -> **present**.

Judge, per setting (optimizer, budget), on ReLU only, with ``Delta = acc(He) - acc(Xavier)``:
(i) at the deepest depth He is ``better`` than Xavier (paired bootstrap over seeds and test
examples, equivalence margin ``margin``); (ii) ``Delta`` grows with depth:
``Delta(deepest) - Delta(shallowest)`` per seed (tuned runs paired by seed) has a Student t 95% CI
above 0 (with a single depth, (i) alone decides). ``supported`` when both hold, ``partly`` when
one does, else ``not supported`` (``judge_gaps``). The study's verdict is ``supported`` / ``not
supported`` only when every setting agrees, else ``partly`` naming the settings where it flips
(``initlab.studies.grid.judge_across``). tanh is measured the same way and reported beside it,
never pooled into the ReLU verdict (the article recommends Xavier there). Effect: ``Delta`` at the
deepest depth for ReLU in the first optimizer's final setting.

Source: the article's comparison table ("He Initialization — ReLU — performs well in deeper
networks"); He et al. (2015), "Delving Deep into Rectifiers", §2.2 and Figure 3 (a 30-layer ReLU
net stalls under Xavier's init and trains under theirs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register, signed_points
from initlab.studies.grid import CommonSettings, Judgement, Setting, common_settings, judge_across

CLAIM = (
    'He initialization "performs better than Xavier initialization in deeper networks with ReLU" '
    '(the article\'s table: He — ReLU — "Performs well in deeper networks").'
)

NAME = "depth"
XAVIER, HE = "xavier_uniform", "he_normal"
SCHEMES = (XAVIER, HE)
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "depths": [2, 10, 30],  # hidden layers
    "activations": ["relu", "tanh"],
    "width": 64,
    "seeds": 5,
    "epochs": 20,
    "budgets": [5, 20],  # epochs at which the claim is judged
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [3e-4, 1e-3, 3e-3],  # SGD, momentum 0.9; selected per scheme on validation
    "adam_lr_grid": [1e-4, 3e-4, 1e-3],  # the deep nets want small steps (see the module docstring)
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin on test accuracy (0.5 points)
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 10000,
    "depths": [2, 10, 30, 50],
    "width": 128,
    "epochs": 5,
    "budgets": [2, 5],
}


@dataclass(frozen=True)
class Gap:
    """He − Xavier for one (activation, depth) in one setting."""

    activation: str
    depth: int
    xavier_acc: float  # tuned test accuracy, mean over seeds
    he_acc: float
    xavier_lr: float
    he_lr: float
    diff: float  # He − Xavier, mean paired difference (seeds and test examples)
    ci: tuple[float, float]  # paired bootstrap 95% CI over seeds and test examples
    verdict: str  # He against Xavier: better / worse / equivalent / inconclusive
    per_seed: tuple[float, ...]  # He − Xavier per seed (tuned runs, seeds in order)
    trained: tuple[int, int]  # runs above twice chance: Xavier, He


def judge_gaps(deep_verdict: str, growth: Sequence[float] | None) -> str:
    """Pure: He's verdict against Xavier at the deepest depth, and ``Delta(deepest) −
    Delta(shallowest)`` per seed (None: one depth)  ->  ``supported`` when He is ``better`` and the
    growth's t CI lies above 0, ``partly`` when one holds, else ``not supported``."""
    deep_holds = deep_verdict == "better"
    if growth is None:  # one depth: the deepest verdict alone decides
        return "supported" if deep_holds else "not supported"
    grows = len(growth) > 1 and mean_ci(list(growth))[1] > 0
    return "supported" if deep_holds and grows else "partly" if deep_holds or grows else "not supported"


def growth_of(by_depth: Mapping[int, Gap]) -> list[float] | None:
    """``Delta(deepest) − Delta(shallowest)`` per seed; None with one depth."""
    depths = sorted(by_depth)
    if len(depths) < 2:
        return None
    return [d - s for d, s in zip(by_depth[depths[-1]].per_seed, by_depth[depths[0]].per_seed)]


def judge(relu_gaps: Mapping[str, Mapping[int, Gap]]) -> Judgement:
    """Pure: setting label -> depth -> ReLU ``Gap``  ->  ``judge_gaps`` per setting, then ``judge_across``."""
    by_setting = {}
    for label, by_depth in relu_gaps.items():
        deepest = by_depth[max(by_depth)]
        by_setting[label] = judge_gaps(deepest.verdict, growth_of(by_depth))
    return judge_across(by_setting)


def gradient_profile(signal: list[dict]) -> list[float]:
    """``grad_var`` of each hidden layer, first to last (the output layer dropped); NaN where missing."""
    return [math.nan if row.get("grad_var") is None else float(row["grad_var"]) for row in signal[:-1]]


def log10_ratio(first: float, last: float) -> float:
    """``log10(first / last)``: NaN when either is missing, not finite or not positive."""
    if not (math.isfinite(first) and math.isfinite(last)) or first <= 0 or last <= 0:
        return math.nan
    return math.log10(first / last)


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], CommonSettings, list[int], list[str]]:
    from initlab.activations import canonical
    from initlab.studies.settings import as_list

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    try:
        depths = sorted({int(str(d)) for d in as_list(s["depths"])})
    except (TypeError, ValueError):
        depths = []
    if not depths or depths[0] < 1:
        raise UserError(f"depths: hidden-layer counts >= 1; got {s['depths']!r}")
    activations = [canonical(a) for a in as_list(s["activations"])]
    if "relu" not in activations:
        raise UserError(f"activations: must include 'relu' (the claim is about ReLU); got {s['activations']}")
    return s, common, depths, activations


@dataclass
class Measured:
    gaps: dict[str, dict[str, dict[int, Gap]]]  # setting label -> activation -> depth -> Gap
    profiles: dict[str, dict[int, dict[str, list[float]]]]  # activation -> depth -> scheme -> grad_var per layer
    experiments: list[str]
    chance: float


def _gap(data: Any, act: str, depth: int, budget: int, common: CommonSettings, chance: float) -> Gap:
    from initlab.studies.grid import budget_rows
    from initlab.studies.settings import paired_versus, tuned_by_seed, tuned_runs

    runs = tuned_runs(data, budget)
    p = paired_versus(runs[HE], runs[XAVIER], budget, common.margin)
    acc = tuned_by_seed(data, budget)
    seeds = [k for k in common.seeds if k in acc[HE] and k in acc[XAVIER]]
    rows = budget_rows(data, budget)
    return Gap(
        activation=act,
        depth=depth,
        xavier_acc=rows[XAVIER]["mean"],
        he_acc=rows[HE]["mean"],
        xavier_lr=rows[XAVIER]["lr"],
        he_lr=rows[HE]["lr"],
        diff=p.diff,
        ci=(p.ci_low, p.ci_high),
        verdict=p.verdict,
        per_seed=tuple(acc[HE][k] - acc[XAVIER][k] for k in seeds),
        trained=(sum(acc[XAVIER][k] > 2 * chance for k in seeds), sum(acc[HE][k] > 2 * chance for k in seeds)),
    )


def measure(ctx: StudyContext, s: dict[str, Any], common: CommonSettings, depths: list[int], activations: list[str]):
    """One tuned comparison per (optimizer, activation, depth); gaps per setting, paired by seed."""
    from initlab.data import load

    chance = 1.0 / load(common.dataset, **common.data_options).num_classes
    gaps: dict[str, dict[str, dict[int, Gap]]] = {st.label: {a: {} for a in activations} for st in common.settings}
    profiles: dict[str, dict[int, dict[str, list[float]]]] = {a: {} for a in activations}
    experiments = []
    for optimizer in common.optimizers:
        for act in activations:
            for depth in depths:
                data = ctx.compare(
                    schemes=SCHEMES,
                    model="mlp",
                    width=s["width"],
                    depth=depth,
                    activation=act,
                    reference=HE,
                    paired_test="t",
                    **common.compare_kwargs(optimizer),
                )
                experiments.append(data.experiment_id)
                if optimizer == common.optimizers[0]:  # the init does not depend on the optimizer
                    profiles[act][depth] = {sch: gradient_profile(data.signal.get(sch, [{}])) for sch in SCHEMES}
                for budget in common.budgets:
                    gaps[Setting(optimizer, budget).label][act][depth] = _gap(data, act, depth, budget, common, chance)
    return Measured(gaps, profiles, experiments, chance)


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Depth x {Xavier, He} x {ReLU, tanh}, SGD and Adam with tuned lr, two budgets: accuracy and the
    per-layer gradient ratio at init (see the module docstring for the protocol and the verdict rule)."""
    s, common, depths, activations = _read_settings(ctx)
    m = measure(ctx, s, common, depths, activations)
    judgement = judge({label: by_act["relu"] for label, by_act in m.gaps.items()})
    return present(ctx, s, common, depths, activations, m, judgement)


def _ratio(m: Measured, act: str, depth: int, sch: str) -> float:
    prof = m.profiles[act][depth][sch]
    return log10_ratio(prof[0], prof[-1]) if prof else math.nan


def _pts(diff: float, ci: Sequence[float]) -> str:
    return signed_points(diff, ci[0], ci[1])


def _growth_text(by_depth: Mapping[int, Gap]) -> str:
    growth = growth_of(by_depth)
    if growth is None:
        return "one depth"
    return signed_points(*mean_ci(growth))


def _summary(s, common: CommonSettings, depths, activations, m: Measured, judgement: Judgement) -> str:
    deepest, shallowest = depths[-1], depths[0]
    per_setting = []
    for label, by_act in m.gaps.items():
        relu = by_act["relu"][deepest]
        text = (
            f"{label}: Xavier {100 * relu.xavier_acc:.1f}% vs He {100 * relu.he_acc:.1f}% "
            f"(He − Xavier {_pts(relu.diff, relu.ci)} pts, He {relu.verdict}; growth from depth {shallowest} "
            f"{_growth_text(by_act['relu'])}) -> {judgement.by_setting[label]}"
        )
        if "tanh" in by_act:
            tanh = by_act["tanh"][deepest]
            text += f"; tanh He − Xavier {_pts(tanh.diff, tanh.ci)} ({tanh.verdict})"
        per_setting.append(text)
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    return (
        f"Plain {s['width']}-wide MLPs on {common.dataset}, {len(common.seeds)} seeds, lr tuned per scheme on "
        f"validation (grids {', '.join(f'{o} {list(g)}' for o, g in common.lr_grids.items())}). At depth "
        f"{deepest} with ReLU (log10 gradient ratio first/last hidden layer at init: Xavier "
        f"{_ratio(m, 'relu', deepest, XAVIER):+.1f}, He {_ratio(m, 'relu', deepest, HE):+.1f}), per setting: "
        + "; ".join(per_setting)
        + "."
        + flips
    )


def present(ctx, s, common: CommonSettings, depths, activations, m: Measured, judgement: Judgement) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    deepest = depths[-1]
    first = Setting(common.optimizers[0], common.budgets[-1]).label
    head = m.gaps[first]["relu"][deepest]
    n = len(common.seeds)
    rows = [
        [
            label,
            g.activation,
            str(g.depth),
            f"{100 * g.xavier_acc:.1f} (lr {g.xavier_lr:g})",
            f"{100 * g.he_acc:.1f} (lr {g.he_lr:g})",
            _pts(g.diff, g.ci),
            g.verdict,
            f"{g.trained[0]}/{n} | {g.trained[1]}/{n}",
        ]
        for label, by_act in m.gaps.items()
        for act in activations
        for g in by_act[act].values()
    ]
    verdict_rows = [
        [
            label,
            by_act["relu"][deepest].verdict,
            _growth_text(by_act["relu"]),
            judgement.by_setting[label],
            f"{by_act['tanh'][deepest].verdict}" if "tanh" in by_act else "-",
        ]
        for label, by_act in m.gaps.items()
    ]
    ratio_rows = [
        [act, str(d), f"{_ratio(m, act, d, XAVIER):+.1f}", f"{_ratio(m, act, d, HE):+.1f}"]
        for act in activations
        for d in depths
    ]
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=head.diff,
        ci=head.ci,
        effect_label=(
            f"test accuracy He − Xavier, ReLU, depth {deepest} ({first}; paired bootstrap over seeds and test "
            "examples; the other settings in the table)"
        ),
        summary=_summary(s, common, depths, activations, m, judgement),
        evidence=_evidence(common, depths, activations, m, judgement),
        tables=[
            (
                "Tuned test accuracy % per setting (selected lr), He − Xavier pts (95% CI, paired bootstrap over "
                f"seeds and test examples), He's verdict with margin ±{100 * common.margin:g} pts, runs above 2x "
                "chance (Xavier | He)",
                ["setting", "activation", "depth", XAVIER, HE, "He − Xavier (pts)", "He is", "trained X | He"],
                rows,
            ),
            (
                f"ReLU verdict per setting: He at depth {deepest}, growth of He − Xavier from depth {depths[0]} "
                "(pts, t 95% CI over seeds); tanh beside it (not judged)",
                ["setting", f"ReLU He at depth {deepest}", "growth with depth", "setting verdict", "tanh He is"],
                verdict_rows,
            ),
            (
                "log10 gradient ratio first/last hidden layer at init (seed 0)",
                ["activation", "depth", XAVIER, HE],
                ratio_rows,
            ),
        ],
        figures=[_plot(ctx.out / "depth.png", depths, activations, m)],
        experiments=m.experiments,
        settings={**s, "seeds": list(common.seeds), "depths": depths, "activations": activations},
    )


def _evidence(common: CommonSettings, depths, activations, m: Measured, judgement: Judgement) -> dict[str, Any]:
    growth = {}
    for label, by_act in m.gaps.items():
        g = growth_of(by_act["relu"])
        mean, lo, hi = mean_ci(g) if g is not None else (math.nan, math.nan, math.nan)
        growth[label] = {"from_depth": depths[0], "to_depth": depths[-1], "mean": mean, "ci": [lo, hi]}
    return {
        "judgement": judgement.evidence(),
        "depths": depths,
        "gaps": {
            label: {act: {str(d): asdict(g) for d, g in per.items()} for act, per in by_act.items()}
            for label, by_act in m.gaps.items()
        },
        "relu_gap_growth": growth,
        "log10_grad_ratio_first_over_last": {
            act: {str(d): {sch: _ratio(m, act, d, sch) for sch in SCHEMES} for d in depths} for act in activations
        },
        "chance": m.chance,
        "seeds": list(common.seeds),
        "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
    }


def _plot(path: Path, depths: list[int], activations: list[str], m: Measured) -> Path:
    """He − Xavier against depth per setting (one panel per activation, 95% CIs), and the backward
    signal at init per hidden layer at the deepest depth."""
    from initlab.plotting import new_figure, palette, save, style

    fig, axes = new_figure(len(activations) + 1, size=(5.0 * (len(activations) + 1), 4.3))
    labels = list(m.gaps)
    colors = palette(labels)
    for ax, act in zip(axes, activations):
        for j, label in enumerate(labels):
            per = m.gaps[label][act]
            xs = [d * (1 + 0.04 * (j - (len(labels) - 1) / 2)) for d in depths]  # small offsets: CIs overlap
            ys = [100 * per[d].diff for d in depths]
            err = [
                [100 * (per[d].diff - per[d].ci[0]) for d in depths],
                [100 * (per[d].ci[1] - per[d].diff) for d in depths],
            ]
            ax.errorbar(xs, ys, yerr=err, fmt="o-", color=colors[label], capsize=3, label=label)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xticks([], minor=True)
        style(ax, xlabel="hidden layers", ylabel="He − Xavier, test accuracy pts", title=act, legend=True, grid="y")
    ax_grad = axes[-1]
    deepest = max(depths)
    act_colors = palette(activations)
    for act in activations:
        for sch, line in ((XAVIER, "--"), (HE, "-")):
            prof = m.profiles[act][deepest][sch]
            last = prof[-1] if prof else math.nan
            ys = [p / last if math.isfinite(last) and last > 0 else math.nan for p in prof]
            ax_grad.plot(range(1, len(ys) + 1), ys, line, color=act_colors[act], label=f"{act}, {sch}")
    style(
        ax_grad,
        xlabel="hidden layer",
        ylabel="grad_var / grad_var of the last hidden layer",
        title=f"Backward signal at init, depth {deepest} (seed 0)",
        logy=True,
        legend=True,
    )
    return save(fig, path, title="depth: He − Xavier against depth per setting (tuned lr), and the signal at init")


__all__ = ["CLAIM", "DEFAULTS", "Gap", "Measured", "judge", "judge_gaps", "measure", "present", "run"]
