"""Study ``symmetry``: zero and constant init leave a layer worth one unit; does gradient descent stop?

The experiment
--------------
An MLP (default: digits, 3 hidden layers of 64 ReLU units, batch 32, 5 seeds) is trained from
the symmetric initializations ``zeros`` and ``constant`` (every weight 0.01) and from the random
schemes ``he_normal`` and ``xavier_uniform``; biases start at zero in every case. The claim is
about training, so it is measured over a small sensitivity grid: SGD (momentum 0.9) and Adam,
each with its learning rate tuned per scheme on the validation split (SGD 0.01/0.05, Adam
1e-3/3e-3), at two budgets (5 and 20 epochs). One stored, tuned comparison per optimizer
(reference: the first random scheme).

Shape: settings (``CommonSettings`` + schemes) -> **measure** -> **judge** (pure) -> **present**.

1. **Distinct units after training** (per optimizer). The comparison's members, every learning
   rate of the grid, are trained again exactly as stored (``initlab.studies.weights``; the
   reproduction is checked against the stored accuracies) to read their weights. For every
   hidden layer the incoming weights and bias of unit ``i`` form the row ``[W_l[i, :], b_l[i]]``;
   two units are the same when their rows agree to ``tol`` (1e-6) × the largest entry. 1
   distinct unit: the layer computes one feature ``width`` times.
2. **Accuracy** (per optimizer and budget). ``zeros`` against the reference: the paired
   difference with its 95% CI (bootstrap over seeds and test examples) and the equivalence
   verdict (margin 0.5 points).
3. **Gradients at init.** For each activation in ``grad_activations`` and each scheme (seed 0),
   which parameters get a gradient (norm above 1e-5 × the model's largest; float32 rounding leaves
   ~1e-8 where the exact value is zero). With all weights zero the hidden activations are
   ``phi(0)``: for ReLU and tanh ``phi(0) = 0``, so only the output bias gets gradient; for
   sigmoid ``phi(0) = 1/2``, so the output weights do too. Constant init: identical output rows
   give identical logits, and the signal sent back, ``W_out^T delta = c * sum_k (p_k - y_k) = 0``.

Judge, per setting (optimizer, budget): *supported* when (a) every ``zeros``/``constant`` member
ends with one distinct unit per hidden layer while every random member keeps all units distinct,
(b) ``zeros`` is ``worse`` than the reference, and (c) zero init gives every weight matrix exactly
zero gradient at init and no zero-init member's weights moved ("inhibits gradient descent");
*partly* when (a) and (b) hold but not (c); else *not supported*. The study's verdict is
``supported`` / ``not supported`` only when every setting agrees, else ``partly`` naming the
settings that flip (``initlab.studies.grid.judge_across``). What the article calls "vanishing"
gradients is not a decay with depth: the weight gradients are exactly zero from the first step.

Source: the article's misconceptions section; Goodfellow, Bengio & Courville (2016), §8.4
("the need to break symmetry between different units").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.grid import CommonSettings, Judgement, Setting, budget_rows, common_settings, judge_across
from initlab.studies.weights import (  # noqa: F401  (distinct_units: re-exported, documented here first)
    distinct_units,
    gradients_at_init,
    hidden_layers,
    layer_units,
    retrained_members,
    stored_accuracy,
    template_model,
    with_gradient,
)

CLAIM = (
    "Initializing all weights to zero \"leads to a problem called 'symmetry breaking,' where all neurons in a "
    'layer will perform the same computations" and "poor performance"; "Initializing all weights to zero '
    'inhibits gradient descent" and "might result in vanishing gradients."'
)

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "width": 64,  # hidden units per layer
    "depth": 3,  # hidden layers
    "activation": "relu",  # the trained networks' activation
    "epochs": 20,
    "budgets": [5, 20],  # epochs at which the claim is judged
    "seeds": 5,  # a count (0..n-1) or a list of seeds
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [0.01, 0.05],  # SGD, momentum 0.9; selected per scheme on validation
    "adam_lr_grid": [1e-3, 3e-3],
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin on test accuracy (0.5 points)
    "symmetric": ["zeros", "constant"],
    "random": ["he_normal", "xavier_uniform"],
    "grad_activations": ["relu", "tanh", "sigmoid"],
    "grad_batch": 256,  # training samples for the gradient at init
    "tol": 1e-6,  # relative tolerance for two units to count as the same
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 20000,
    "width": 256,
    "epochs": 10,
    "budgets": [3, 10],
}


@dataclass(frozen=True)
class Collapse:
    """Per optimizer, over every retrained member (all lrs and seeds): the units after training."""

    one_unit: bool  # every symmetric member: one distinct unit in every hidden layer
    all_distinct: bool  # every random member: every unit distinct
    zeros_moved: int  # zero-init members whose weight matrices changed at all
    members: int  # zero-init members retrained


@dataclass(frozen=True)
class Gap:
    """``zeros`` against the reference (a random scheme) in one setting."""

    zeros_acc: float  # tuned test accuracy, mean over seeds
    reference_acc: float
    diff: float  # zeros − reference, mean paired difference
    ci: tuple[float, float]
    vs_reference: str  # better / worse / equivalent / inconclusive


@dataclass
class Measured:
    """Everything ``judge`` and ``present`` read; built by ``measure`` from real runs."""

    gaps: dict[str, Gap]  # setting label -> zeros vs the reference
    collapse: dict[str, Collapse]  # optimizer -> units after training
    zero_grad_weights: bool  # zero init: every weight matrix has exactly zero gradient at init
    units: dict[str, dict[str, dict[str, list[int]]]]  # optimizer -> scheme -> layer -> counts
    moved: dict[str, dict[str, int]]  # optimizer -> scheme -> members whose weights moved
    accuracy: dict[str, dict[str, dict[str, Any]]]  # setting -> scheme -> mean, ci, lr
    grads: dict[str, dict[str, dict[str, float]]]  # activation -> scheme -> parameter -> |grad|
    reproduced: str  # "k/n": retrained members whose accuracy equals the stored one
    experiments: list[str]
    layers: list[str]
    output_weight: str


def judge_setting(gap: Gap, collapse: Collapse, zero_grad_weights: bool) -> str:
    """One setting's verdict from its measurements (see the module docstring)."""
    if not (collapse.one_unit and collapse.all_distinct and gap.vs_reference == "worse"):
        return "not supported"
    inhibits = zero_grad_weights and collapse.zeros_moved == 0
    return "supported" if inhibits else "partly"


def judge(
    gaps: Mapping[str, Gap], collapse: Mapping[str, Collapse], zero_grad_weights: bool, optimizer_of: Mapping[str, str]
) -> Judgement:
    """Pure: per setting (label -> its optimizer in ``optimizer_of``) a verdict, then across settings."""
    return judge_across(
        {label: judge_setting(gap, collapse[optimizer_of[label]], zero_grad_weights) for label, gap in gaps.items()}
    )


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], CommonSettings, list[str], list[str], str, list[str]]:
    from initlab.activations import canonical
    from initlab.schemes import canonical_spec
    from initlab.studies.settings import as_list

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    symmetric = [canonical_spec(x) for x in as_list(s["symmetric"])]
    random_ = [canonical_spec(x) for x in as_list(s["random"])]
    if "zeros" not in symmetric:
        raise UserError(f"symmetric: must include 'zeros' (the claim is about zero init); got {s['symmetric']}")
    if not random_:
        raise UserError("random: need at least one random scheme to compare against")
    if isinstance(s["depth"], int) and s["depth"] < 1:
        raise UserError(f"depth: need at least one hidden layer to count units in; got {s['depth']}")
    grad_activations = [canonical(a) for a in as_list(s["grad_activations"])]
    return s, common, symmetric, random_, canonical(s["activation"]), grad_activations


def _collapse(retrained: list, symmetric: list[str], random_: list[str], layers, tol: float, width: int):
    """Units per scheme and layer, weights moved, and the ``Collapse`` of one optimizer's members."""
    units: dict[str, dict[str, list[int]]] = {sch: {} for sch in symmetric + random_}
    moved = dict.fromkeys(units, 0)
    for m in retrained:
        for layer, rec in layer_units(m.trained, layers, tol=tol).items():
            units[m.scheme].setdefault(layer, []).append(rec["distinct"])
        weights = [n for n, t in m.init.items() if t.dim() >= 2]
        moved[m.scheme] += any(not torch.equal(m.init[n], m.trained[n]) for n in weights)
    collapse = Collapse(
        one_unit=all(c == 1 for sch in symmetric for counts in units[sch].values() for c in counts),
        all_distinct=all(c == width for sch in random_ for counts in units[sch].values() for c in counts),
        zeros_moved=moved["zeros"],
        members=sum(m.scheme == "zeros" for m in retrained),
    )
    return units, moved, collapse


def measure(ctx: StudyContext, s: dict[str, Any], common: CommonSettings, symmetric, random_, act, grad_acts):
    """One tuned comparison per optimizer, its members retrained for their weights, gradients at init."""
    from initlab.data import load
    from initlab.sweep.config import CompareConfig

    order = symmetric + random_
    gaps, collapse, units, moved, accuracy, experiments = {}, {}, {}, {}, {}, []
    reproduced = total = 0
    config = None
    for optimizer in common.optimizers:
        kwargs = dict(schemes=tuple(order), width=s["width"], depth=s["depth"], activation=act)
        kwargs.update(reference=random_[0], paired_test="t", **common.compare_kwargs(optimizer))
        config, data = CompareConfig(**kwargs), ctx.compare(**kwargs)
        experiments.append(data.experiment_id)
        dataset = load(config.dataset, **config.data_options)
        layers = hidden_layers(template_model(config, dataset))
        stored = stored_accuracy(data)
        retrained = list(retrained_members(config, dataset))
        reproduced += sum(m.test_acc == stored.get((m.scheme, m.seed, m.lr)) for m in retrained)
        total += len(retrained)
        units[optimizer], moved[optimizer], collapse[optimizer] = _collapse(
            retrained, symmetric, random_, layers, s["tol"], s["width"]
        )
        for budget in common.budgets:
            label = Setting(optimizer, budget).label
            rows = budget_rows(data, budget)
            accuracy[label] = {
                x: {"mean": rows[x]["mean"], "ci": [rows[x]["ci_low"], rows[x]["ci_high"]], "lr": rows[x]["lr"]}
                for x in order
            }
            z = rows["zeros"]
            gaps[label] = Gap(z["mean"], rows[random_[0]]["mean"], z["diff"], tuple(z["diff_ci"]), z["vs_reference"])
    assert config is not None  # common_settings gives at least one optimizer
    grads = {
        a: {
            x: gradients_at_init(
                dataclasses.replace(config, activation=a), dataset, x, seed=common.seeds[0], batch=s["grad_batch"]
            )
            for x in order
        }
        for a in grad_acts + ([] if act in grad_acts else [act])
    }
    weight_names = [n for n, p in template_model(config, dataset).named_parameters() if p.dim() >= 2]
    return Measured(
        gaps=gaps,
        collapse=collapse,
        zero_grad_weights=all(grads[act]["zeros"][n] == 0.0 for n in weight_names),
        units=units,
        moved=moved,
        accuracy=accuracy,
        grads=grads,
        reproduced=f"{reproduced}/{total}",
        experiments=experiments,
        layers=[w.rsplit(".", 1)[0] for w, _ in layers],
        output_weight=weight_names[-1],
    )


@register("symmetry", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Zero and constant init vs random schemes, SGD and Adam with tuned lr, two budgets: distinct
    hidden units after training, accuracy, and which parameters get gradient at init (see the
    module docstring for the exact protocol)."""
    s, common, symmetric, random_, act, grad_acts = _read_settings(ctx)
    m = measure(ctx, s, common, symmetric, random_, act, grad_acts)
    optimizer_of = {st.label: st.optimizer for st in common.settings}
    judgement = judge(m.gaps, m.collapse, m.zero_grad_weights, optimizer_of)
    return present(ctx, s, common, symmetric, random_, act, m, judgement)


def _unit_rows(m: Measured, order: list[str]) -> list[list[str]]:
    rows = []
    for optimizer, per_scheme in m.units.items():
        for sch in order:
            cells = [
                str(c[0]) if min(c) == max(c) else f"{min(c)}–{max(c)}"
                for c in (per_scheme[sch].get(layer, [0]) for layer in m.layers)
            ]
            n = len(next(iter(per_scheme[sch].values()), []))
            rows.append([optimizer, sch, *cells, f"{m.moved[optimizer][sch]}/{n}"])
    return rows


def _grad_rows(m: Measured) -> list[list[str]]:
    rows = []
    for act, per in m.grads.items():
        for sch, g in per.items():
            names = with_gradient(g)
            hidden_norm = math.sqrt(sum(g[f"{layer}.weight"] ** 2 for layer in m.layers if f"{layer}.weight" in g))
            which = "all" if len(names) == len(g) else (", ".join(names) or "none")
            rows.append([act, sch, f"{len(names)}/{len(g)}", which, f"{hidden_norm:.3g}", f"{g[m.output_weight]:.3g}"])
    return rows


def _summary(s, symmetric, random_, act, m: Measured, judgement: Judgement, first: str) -> str:
    head = m.gaps[first]
    zero_params = with_gradient(m.grads[act]["zeros"])
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    collapsed = all(c.one_unit for c in m.collapse.values())
    return (
        f"Every hidden layer of every {'/'.join(symmetric)} member (each optimizer, lr and seed) "
        f"{'ends with exactly one distinct unit' if collapsed else 'does NOT always collapse to one unit'} (of "
        f"{s['width']}); zero init reaches {100 * head.zeros_acc:.1f}% against {100 * head.reference_acc:.1f}% "
        f"for {random_[0]} ({first}, lr tuned on validation). At init under zero weights ({act}) only "
        f"{', '.join(zero_params) or 'no parameter'} get{'s' if len(zero_params) == 1 else ''} a gradient: the "
        "weight gradients are exactly zero, not vanishing"
        + ("." if all(c.zeros_moved == 0 for c in m.collapse.values()) else " (yet some weights moved in training).")
        + " Verdict per setting: "
        + "; ".join(f"{k}: {v}" for k, v in judgement.by_setting.items())
        + "."
        + flips
    )


def present(ctx, s, common: CommonSettings, symmetric, random_, act, m: Measured, judgement: Judgement) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    order = symmetric + random_
    first = Setting(common.optimizers[0], common.budgets[-1]).label
    head = m.gaps[first]
    gap_rows = [
        [
            label,
            f"{100 * g.zeros_acc:.1f} (lr {m.accuracy[label]['zeros']['lr']:g})",
            f"{100 * g.reference_acc:.1f} (lr {m.accuracy[label][random_[0]]['lr']:g})",
            f"{100 * g.diff:+.2f} [{100 * g.ci[0]:+.2f}, {100 * g.ci[1]:+.2f}]",
            g.vs_reference,
            judgement.by_setting[label],
        ]
        for label, g in m.gaps.items()
    ]
    summary = _summary(s, symmetric, random_, act, m, judgement, first)
    figure = _plot(ctx.out / "symmetry.png", order, m, s["width"])
    return StudyResult(
        study="symmetry",
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=-head.diff,
        ci=(-head.ci[1], -head.ci[0]),
        effect_label=f"test accuracy {random_[0]} − zeros ({first}; paired bootstrap over seeds and test examples)",
        summary=summary,
        evidence={
            "judgement": judgement.evidence(),
            "gaps": {k: asdict(g) for k, g in m.gaps.items()},
            "collapse": {k: asdict(c) for k, c in m.collapse.items()},
            "distinct_units": m.units,
            "width": s["width"],
            "accuracy": m.accuracy,
            "params_with_gradient_at_init": {
                a: {x: with_gradient(g) for x, g in per.items()} for a, per in m.grads.items()
            },
            "zero_init_weight_gradients_all_zero": m.zero_grad_weights,
            "weights_moved_in_training": m.moved,
            "reproduced_stored_runs": m.reproduced,
            "seeds": list(common.seeds),
            "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
        },
        tables=[
            (
                f"zeros vs {random_[0]} per setting: tuned test accuracy % (selected lr), Δ pts (95% CI, paired "
                f"bootstrap over seeds and test examples), verdict with margin ±{100 * common.margin:g} pts",
                ["setting", "zeros %", f"{random_[0]} %", "Δ pts (95% CI)", "zeros is", "claim"],
                gap_rows,
            ),
            (
                f"Distinct units per hidden layer after training (of {s['width']}; range over every lr and seed), "
                "members whose weights moved",
                ["optimizer", "scheme", *m.layers, "weights moved"],
                _unit_rows(m, order),
            ),
            (
                f"Gradients at init (seed {common.seeds[0]}, {s['grad_batch']} samples): parameters with a nonzero "
                "gradient",
                [
                    "activation",
                    "scheme",
                    "params with gradient",
                    "which",
                    "|grad| hidden weights",
                    "|grad| output weight",
                ],
                _grad_rows(m),
            ),
        ],
        figures=[figure],
        experiments=m.experiments,
        settings=s,
    )


def _plot(path: Path, order: list[str], m: Measured, width: int) -> Path:
    """Left: distinct units per layer (log2 axis), per optimizer; right: tuned accuracy per setting."""
    from initlab.plotting import new_figure, palette, save, style

    fig, (ax_units, ax_acc) = new_figure(2, size=(12, 4.4))
    groups = [(opt, sch) for opt in m.units for sch in order]
    bar = 0.8 / max(len(m.layers), 1)
    for j, layer in enumerate(m.layers):
        means = [sum(c) / len(c) for c in (m.units[opt][sch].get(layer, [0]) for opt, sch in groups)]
        xs = [i + (j - (len(m.layers) - 1) / 2) * bar for i in range(len(groups))]
        ax_units.bar(xs, means, bar, label=layer)
    ax_units.set_ylim(0.7, width * 1.5)
    ax_units.axhline(width, color="0.4", ls="--", lw=1)
    ax_units.set_xticks(range(len(groups)), [f"{sch}\n{opt}" for opt, sch in groups], rotation=30, fontsize=8)
    style(
        ax_units,
        ylabel="distinct units after training (mean)",
        title=f"Distinct hidden units (of {width})",
        logy=2,
        grid="y",
        legend=True,
    )
    colors = palette(order)
    labels = list(m.accuracy)
    for k, sch in enumerate(order):
        xs = [i + (k - (len(order) - 1) / 2) * (0.8 / len(order)) for i in range(len(labels))]
        ys = [100 * m.accuracy[label][sch]["mean"] for label in labels]
        ax_acc.bar(xs, ys, 0.8 / len(order), color=colors[sch], label=sch)
    ax_acc.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax_acc.set_ylim(0, 118)  # room above the bars for the legend
    style(
        ax_acc,
        ylabel="tuned test accuracy (%, mean over seeds)",
        title="Accuracy per setting",
        grid="y",
        legend={"fontsize": 7, "loc": "upper center", "ncol": len(order)},
    )
    return save(fig, path)


__all__ = [
    "CLAIM",
    "DEFAULTS",
    "Collapse",
    "Gap",
    "Measured",
    "distinct_units",
    "judge",
    "judge_setting",
    "measure",
    "present",
    "run",
]
