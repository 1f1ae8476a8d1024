"""Study ``activation-match``: is Xavier best for sigmoid/tanh and He best for ReLU?

The experiment
--------------
The article's comparison table pairs Xavier with sigmoid and tanh and He with ReLU. Every
activation in {sigmoid, tanh, ReLU} is crossed with {``xavier_uniform`` (gain 1), ``he_normal``
(gain sqrt 2, fan-in)}; biases zero; digits, an MLP of 4 hidden layers of 128 units, batch 32,
5 seeds. The claim is about training, so it is judged over a small sensitivity grid: SGD
(momentum 0.9) and Adam, each with its learning rate tuned per scheme on the validation split
(SGD 0.01/0.03/0.1, Adam 3e-4/1e-3/3e-3), at two budgets (5 and 20 epochs). One stored,
tuned comparison per (optimizer, activation).

Shape: settings (``CommonSettings`` + activations, schemes) -> **measure** (the comparisons,
reduced to one ``Outcome`` per setting and activation: the alternative scheme's paired
difference to the recommended one, its bootstrap CI over seeds and test examples, and the
equivalence verdict) -> **judge** (pure) -> **present** (tables, plot).

Judge: per setting and activation the recommended scheme is *supported* when the alternative is
``worse`` than it, *contradicted* when ``better``, else *no difference* (``equivalent``) or
*inconclusive*. A setting supports the claim when every named activation does, does not when
none does, else partly; the study's verdict is ``supported`` / ``not supported`` only when every
setting agrees, else ``partly`` with the flipping settings named (``initlab.studies.grid``).

Source: the article's "Comparison of Initialization Techniques" table; Glorot & Bengio (2010)
derive Xavier for symmetric activations linear at 0 (tanh; sigmoid is neither); He et al.
(2015) derive the factor 2 for ReLU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.grid import (
    CommonSettings,
    Judgement,
    Setting,
    budget_rows,
    common_settings,
    judge_across,
)

CLAIM = (
    '"Xavier initialization is effective for networks with sigmoid or hyperbolic tangent activation functions"; '
    'He initialization is "an improved initialization technique for networks using the Rectified Linear Unit (ReLU)" '
    "(the table: Xavier — Sigmoid, Tanh; He — ReLU)."
)

# The article's pairing: activation -> (recommended scheme, the alternative it is preferred to)
RECOMMENDED = {
    "sigmoid": ("xavier_uniform", "he_normal"),
    "tanh": ("xavier_uniform", "he_normal"),
    "relu": ("he_normal", "xavier_uniform"),
}
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "activations": ["sigmoid", "tanh", "relu"],
    "schemes": ["xavier_uniform", "he_normal"],
    "width": 128,
    "depth": 4,  # hidden layers
    "epochs": 20,
    "budgets": [5, 20],  # epochs at which the claim is judged
    "seeds": 5,
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [0.01, 0.03, 0.1],  # SGD, momentum 0.9; selected per scheme on validation
    "adam_lr_grid": [3e-4, 1e-3, 3e-3],
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin on test accuracy (0.5 points)
}
FULL: dict[str, Any] = {"dataset": "fashion-mnist", "limit_train": 20000, "width": 256, "epochs": 8, "budgets": [2, 8]}
OUTCOME_OF_VERDICT = {
    "worse": "supported",
    "better": "contradicted",
    "equivalent": "no difference",
    "inconclusive": "inconclusive",
}


@dataclass(frozen=True)
class Outcome:
    """The alternative scheme against the recommended one, in one setting, for one activation."""

    activation: str
    recommended: str
    alternative: str
    recommended_acc: float  # tuned test accuracy, mean over seeds
    alternative_acc: float
    diff: float  # alternative − recommended, mean paired difference
    ci: tuple[float, float]
    vs_recommended: str  # the alternative's equivalence verdict: better / worse / equivalent / inconclusive


def judge(outcomes: Mapping[str, Sequence[Outcome]]) -> tuple[Judgement, dict[str, dict[str, str]]]:
    """Pure: setting label -> outcomes per named activation  ->  the study's judgement and, per
    setting, each activation's outcome (supported / contradicted / no difference / inconclusive)."""
    per_activation = {
        label: {o.activation: OUTCOME_OF_VERDICT[o.vs_recommended] for o in outs} for label, outs in outcomes.items()
    }
    by_setting = {}
    for label, acts in per_activation.items():
        n_supported = sum(v == "supported" for v in acts.values())
        by_setting[label] = (
            "supported" if n_supported == len(acts) else "not supported" if n_supported == 0 else "partly"
        )
    return judge_across(by_setting), per_activation


def measure(
    ctx: StudyContext, common: CommonSettings, activations: list[str], schemes: list[str], width: int, depth: int
) -> tuple[dict[str, list[Outcome]], dict[str, Any], list[str]]:
    """Run (or reuse) one tuned comparison per (optimizer, activation); outcomes per setting label,
    the tuned accuracy tables, and the experiment ids."""
    outcomes: dict[str, list[Outcome]] = {s.label: [] for s in common.settings}
    accuracy: dict[str, dict[str, dict[str, Any]]] = {}
    experiments = []
    for optimizer in common.optimizers:
        for act in activations:
            recommended, alternative = RECOMMENDED.get(act, ("he_normal", "xavier_uniform"))
            data = ctx.compare(
                schemes=tuple(schemes),
                width=width,
                depth=depth,
                activation=act,
                reference=recommended,
                paired_test="t",
                **common.compare_kwargs(optimizer),
            )
            experiments.append(data.experiment_id)
            for budget in common.budgets:
                setting = Setting(optimizer, budget)
                rows = budget_rows(data, budget)
                accuracy.setdefault(setting.label, {})[act] = {
                    s: {"mean": rows[s]["mean"], "lr": rows[s]["lr"], "ci": [rows[s]["ci_low"], rows[s]["ci_high"]]}
                    for s in schemes
                }
                if act not in RECOMMENDED or rows[alternative].get("vs_reference") is None:
                    continue
                alt = rows[alternative]
                outcomes[setting.label].append(
                    Outcome(
                        act,
                        recommended,
                        alternative,
                        rows[recommended]["mean"],
                        alt["mean"],
                        alt["diff"],
                        tuple(alt["diff_ci"]),
                        alt["vs_reference"],
                    )
                )
    return outcomes, accuracy, experiments


@register("activation-match", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Activations {sigmoid, tanh, ReLU} x {Xavier, He}, tuned lr, SGD and Adam, two budgets: is
    the article's recommended scheme the better one? (protocol and verdict rule in the module docstring)"""
    from initlab.activations import canonical
    from initlab.schemes import canonical_spec
    from initlab.studies.settings import as_list

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    activations = [canonical(a) for a in as_list(s["activations"])]
    schemes = [canonical_spec(x) for x in as_list(s["schemes"])]
    if "xavier_uniform" not in schemes or "he_normal" not in schemes:
        raise UserError(f"schemes: must include xavier_uniform and he_normal (the article's pair); got {s['schemes']}")
    named = [a for a in activations if a in RECOMMENDED]
    if not named:
        raise UserError(f"activations: need at least one of {', '.join(RECOMMENDED)}; got {s['activations']}")

    outcomes, accuracy, experiments = measure(ctx, common, activations, schemes, s["width"], s["depth"])
    judgement, per_activation = judge(outcomes)
    return present(ctx, s, common, named, outcomes, accuracy, judgement, per_activation, experiments)


def present(
    ctx: StudyContext,
    s: dict,
    common: CommonSettings,
    named: list[str],
    outcomes: dict[str, list[Outcome]],
    accuracy: dict,
    judgement: Judgement,
    per_activation: dict,
    experiments: list[str],
) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    final = Setting(common.optimizers[0], common.budgets[-1]).label
    # Effect: not pooled over activations (one can dominate): the first named activation's
    # recommended − alternative difference in the first optimizer's final setting, with its CI.
    headline = next((o for o in outcomes[final] if o.activation == named[0]), None)
    effect = -headline.diff if headline else math.nan
    lo, hi = (-headline.ci[1], -headline.ci[0]) if headline else (math.nan, math.nan)
    rows = _outcome_rows(outcomes, per_activation)
    lr_rows = _lr_rows(accuracy, s["schemes"])
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    summary = (
        f"Depth-{s['depth']} MLPs on {s['dataset']}, {len(common.seeds)} seeds, lr tuned per scheme on "
        f"validation; verdict per setting: "
        + "; ".join(f"{k}: {v}" for k, v in judgement.by_setting.items())
        + "."
        + flips
    )
    figure = _plot(ctx.out / "activation_match.png", outcomes)
    return StudyResult(
        study="activation-match",
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=(
            f"test accuracy {RECOMMENDED[named[0]][0]} − {RECOMMENDED[named[0]][1]}, {named[0]} ({final}; "
            "paired bootstrap over seeds and test examples; the other activations in the table)"
        ),
        summary=summary,
        evidence={
            "judgement": judgement.evidence(),
            "outcome": per_activation,
            "outcomes": {k: [asdict(o) for o in v] for k, v in outcomes.items()},
            "accuracy": accuracy,
            "seeds": list(common.seeds),
            "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
        },
        tables=[
            (
                "The alternative vs the recommended scheme per setting: Δ accuracy pts (95% CI, paired bootstrap over "
                "seeds and test examples), verdict with margin ±"
                f"{100 * common.margin:g} pts",
                [
                    "setting",
                    "activation",
                    "recommended",
                    "%",
                    "alternative",
                    "%",
                    "Δ pts (95% CI)",
                    "alternative is",
                    "claim",
                ],
                rows,
            ),
            (
                "Tuned test accuracy % per setting (selected lr in brackets)",
                ["setting", "activation", *s["schemes"]],
                lr_rows,
            ),
        ],
        figures=[figure],
        experiments=experiments,
        settings=s,
    )


def _outcome_rows(outcomes: Mapping[str, Sequence[Outcome]], per_activation: dict) -> list[list[str]]:
    return [
        [
            label,
            o.activation,
            o.recommended,
            f"{100 * o.recommended_acc:.1f}",
            o.alternative,
            f"{100 * o.alternative_acc:.1f}",
            f"{100 * o.diff:+.2f} [{100 * o.ci[0]:+.2f}, {100 * o.ci[1]:+.2f}]",
            o.vs_recommended,
            per_activation[label][o.activation],
        ]
        for label, outs in outcomes.items()
        for o in outs
    ]


def _lr_rows(accuracy: dict, schemes: Sequence[str]) -> list[list[str]]:
    return [
        [
            label,
            act,
            *(f"{100 * accuracy[label][act][x]['mean']:.1f} (lr {accuracy[label][act][x]['lr']:g})" for x in schemes),
        ]
        for label in accuracy
        for act in accuracy[label]
    ]


def _plot(path: Path, outcomes: Mapping[str, Sequence[Outcome]]) -> Path:
    """Δ (alternative − recommended) with its CI per setting and activation; the margin shaded."""
    from initlab.plotting import new_figure, palette, save, style

    fig, (ax,) = new_figure(size=(8.0, 4.2))
    labels = list(outcomes)
    acts = sorted({o.activation for outs in outcomes.values() for o in outs})
    width = 0.8 / max(len(acts), 1)
    colors = list(palette(acts).values())
    for j, act in enumerate(acts):
        for i, label in enumerate(labels):
            o = next((o for o in outcomes[label] if o.activation == act), None)
            if o is None:
                continue
            x = i + (j - (len(acts) - 1) / 2) * width
            ax.errorbar(
                [x],
                [100 * o.diff],
                yerr=[[100 * (o.diff - o.ci[0])], [100 * (o.ci[1] - o.diff)]],
                fmt="o",
                color=colors[j % len(colors)],
                label=act if i == 0 else None,
                capsize=3,
            )
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    style(
        ax,
        ylabel="alternative − recommended (pts, 95% CI)",
        title="Below 0: the article's recommended scheme is better",
        grid="y",
        legend=True,
    )
    return save(fig, path)


__all__ = ["CLAIM", "DEFAULTS", "Outcome", "judge", "measure", "present", "run"]
