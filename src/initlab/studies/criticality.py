"""Study ``criticality``: which weight scales train a deep tanh network, and does mean-field theory know?

The article: "If weights are set too large or too small, the network may struggle to learn and
take longer to converge. Optimal weight initialization can prevent issues such as vanishing or
exploding gradients." Mean-field theory makes this quantitative (Poole et al. 2016; Schoenholz,
Gilmer, Ganguli & Sohl-Dickstein, "Deep Information Propagation", ICLR 2017): a network with
``W_ij ~ N(0, σ_w²/fan_in)``, ``b_i ~ N(0, σ_b²)`` propagates the correlation between two inputs
over about ``ξ_c`` layers, and Schoenholz et al. found networks trainable up to a depth of about
``6 ξ_c``; ``ξ_c`` diverges on the critical line ``χ_1 = 1`` (``σ_w² ≈ 1.76`` for tanh at
``σ_b² = 0.05``), is short in the ordered phase (small weights: vanishing gradients) and in the
chaotic phase (large weights: exploding gradients).

The experiment
--------------
Tanh MLPs (``initlab.models.mlp``, ``width`` units, ``depth`` hidden layers, digits by default)
over a grid of ``σ_w²`` (``sigma_w2``) and ``depth`` (``depths``): every weight, output layer
included, drawn from ``variance_scaling(scale=σ_w², mode=fan_in, distribution=normal)``
(``N(0, σ_w²/fan_in)``), every bias from ``normal(std=sqrt(σ_b²))`` with ``σ_b² = 0.05``. The
claim is about training, so it is measured over a small sensitivity grid: SGD (momentum 0.9) and
Adam, the learning rate tuned per ``σ_w²`` on the validation split (SGD 0.002/0.01, Adam
1e-4/1e-3), two budgets (2 and 8 epochs: "take longer to converge" is the short one). One stored,
tuned comparison per (optimizer, depth); its schemes are the ``σ_w²`` values (reference: the
value nearest the critical point). ``ξ_c`` comes from ``initlab.theory.depth_scales("tanh",
σ_w², σ_b²)``; a cell is *inside* when ``depth <= 6 ξ_c``.

Shape: settings (``CommonSettings`` + the grid) -> **measure** -> **judge** (pure) -> **present**.

Effect, per setting (optimizer, budget): inside minus outside accuracy at equal depth. For each
seed, at every depth where the grid has cells on both sides of ``6 ξ_c``, the mean accuracy of
the inside cells minus that of the outside cells, averaged over those depths; then the mean over
seeds with its 95% t interval. Comparing at equal depth keeps depth itself (deeper trains
slower) out of the effect. A setting supports the claim when that interval lies above 0; the
study's verdict is ``supported`` / ``not supported`` only when every setting agrees, else
``partly`` naming the settings that flip (Adam rescales each step, so it may train outside the
line where SGD cannot). Evidence adds how often the ``6 ξ_c`` line predicts whether a cell
trains (mean accuracy above halfway between chance and the best cell), and the outside accuracy
on the small-weight and the large-weight side separately.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from initlab import checks
from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register, signed_points
from initlab.studies.grid import CommonSettings, Judgement, Setting, common_settings, judge_across
from initlab.studies.settings import int_list, positive_list

NAME = "criticality"
CLAIM = (
    "If weights are set too large or too small, the network may struggle to learn and take longer to converge. "
    "Optimal weight initialization can prevent issues such as vanishing or exploding gradients."
)
ACTIVATION = "tanh"
TRAINABLE_DEPTH_FACTOR = 6.0  # Schoenholz et al. 2017: trainable up to about 6 xi_c layers

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "width": 64,  # units per hidden layer
    "depths": [4, 8, 16, 32, 48],  # hidden tanh layers
    "sigma_w2": [0.5, 1.0, 1.76, 4.0, 8.0],  # weight variance x fan_in
    "sigma_b2": 0.05,  # bias variance
    "seeds": 3,
    "epochs": 8,
    "budgets": [2, 8],  # epochs at which the claim is judged
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [0.002, 0.01],  # SGD, momentum 0.9; selected per sigma_w2 on validation
    "adam_lr_grid": [1e-4, 1e-3],
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin of the comparisons' own verdicts (not used by the judge)
    "curve_points": 25,  # sigma_w2 values at which the 6 xi_c line of the figure is computed
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 10000,
    "width": 128,
    "depths": [4, 8, 16, 32, 64, 128],
    "sigma_w2": [0.5, 1.0, 1.25, 1.5, 1.76, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0],
    "seeds": 5,
    "epochs": 5,
    "budgets": [2, 5],
}


def weight_scheme(sigma_w2: float) -> str:
    """``N(0, σ_w²/fan_in)`` as a scheme spec (canonical form)."""
    from initlab.schemes import canonical_spec

    return canonical_spec(f"variance_scaling(scale={sigma_w2!r}, mode=fan_in, distribution=normal)")


def bias_scheme(sigma_b2: float) -> str:
    """``N(0, σ_b²)`` as a scheme spec; ``zeros`` when ``σ_b² = 0``."""
    from initlab.schemes import canonical_spec

    return "zeros" if sigma_b2 == 0 else canonical_spec(f"normal(std={math.sqrt(sigma_b2)!r})")


def trainable_depth(sigma_w2: float, sigma_b2: float, cache: dict[float, float] | None = None) -> float:
    """``6 ξ_c`` for tanh at ``(σ_w², σ_b²)`` (``math.inf`` on the critical line)."""
    from initlab import theory

    if cache is not None and sigma_w2 in cache:
        return cache[sigma_w2]
    _, xi_c = theory.depth_scales(ACTIVATION, sigma_w2, sigma_b2)
    value = TRAINABLE_DEPTH_FACTOR * xi_c
    if cache is not None:
        cache[sigma_w2] = value
    return value


def _phase(sigma_w2: float, critical: float) -> str:
    """Ordered / critical (within 1% of the critical σ_w²) / chaotic."""
    if abs(math.log(sigma_w2 / critical)) < 0.01:
        return "critical"
    return "ordered" if sigma_w2 < critical else "chaotic"


def _num(x: float) -> str:
    return f"{100 * x:.1f}%" if math.isfinite(x) else "n/a (no such cell)"


def depth_matched_effect(
    acc: dict[int, dict[float, dict[int, float]]], inside: dict[int, dict[float, bool]], seeds: tuple[int, ...]
) -> tuple[list[float], list[int]]:
    """Per seed: mean over the depths with cells on both sides of mean(inside) − mean(outside).

    ``acc[depth][σ_w²][seed]``, ``inside[depth][σ_w²]``. Returns the per-seed values and the depths used.
    """
    depths = [d for d in sorted(acc) if any(inside[d].values()) and not all(inside[d].values())]
    per_seed = []
    for seed in seeds:
        diffs = []
        for d in depths:
            ins = [acc[d][sw][seed] for sw in acc[d] if inside[d][sw]]
            outs = [acc[d][sw][seed] for sw in acc[d] if not inside[d][sw]]
            diffs.append(sum(ins) / len(ins) - sum(outs) / len(outs))
        per_seed.append(sum(diffs) / len(diffs) if diffs else math.nan)
    return per_seed, depths


@dataclass(frozen=True)
class Effect:
    """Inside − outside accuracy at equal depth in one setting: per seed, and its mean with a t CI."""

    per_seed: list[float]
    mean: float
    ci: tuple[float, float]
    depths: list[int]  # the depths with cells on both sides of 6 ξ_c


def judge(effects: Mapping[str, Effect]) -> Judgement:
    """Pure: per setting ``supported`` when the inside − outside CI lies above 0, else ``not
    supported``; then across settings (``judge_across``)."""
    return judge_across({label: "supported" if e.ci[0] > 0 else "not supported" for label, e in effects.items()})


@dataclass
class Grid:
    """The (σ_w², depth) grid and its theory: what the runs are compared against."""

    sigmas: list[float]
    depths: list[int]
    sigma_b2: float
    bound: dict[float, float]  # σ_w² -> 6 ξ_c
    inside: dict[int, dict[float, bool]]
    critical: float


@dataclass
class Measured:
    acc: dict[str, dict[int, dict[float, dict[int, float]]]]  # setting -> depth -> σ_w² -> seed -> accuracy
    lr: dict[str, dict[int, dict[float, float | None]]]  # setting -> depth -> σ_w² -> selected lr
    diverged: dict[str, dict[int, dict[float, int]]]  # optimizer -> depth -> σ_w² -> diverged members
    effects: dict[str, Effect]
    chance: float
    steps: int  # SGD steps of the final budget
    experiments: list[str]


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], CommonSettings, Grid]:
    from initlab import theory

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    depths = int_list("depths", s["depths"], 1)
    sigmas = positive_list("sigma_w2", s["sigma_w2"])
    sigma_b2 = checks.real("sigma_b2", s["sigma_b2"], low=0.0)
    checks.integer("curve_points", s["curve_points"], minimum=2)
    bound = {sw: trainable_depth(sw, sigma_b2) for sw in sigmas}
    inside = {d: {sw: d <= bound[sw] for sw in sigmas} for d in depths}
    if not any(any(v.values()) and not all(v.values()) for v in inside.values()):
        raise UserError(
            f"no depth in {depths} has sigma_w2 values on both sides of 6 xi_c "
            f"({', '.join(f'{sw:g}: {bound[sw]:.3g}' for sw in sigmas)}); widen depths or sigma_w2"
        )
    critical = theory.critical_sigma_w2(ACTIVATION, sigma_b2) if sigma_b2 > 0 else 1.0
    return s, common, Grid(sigmas, depths, sigma_b2, bound, inside, critical)


def measure(ctx: StudyContext, s: dict[str, Any], common: CommonSettings, grid: Grid) -> Measured:
    """One tuned comparison per (optimizer, depth); accuracies per setting at the lr selected for it."""
    from initlab.data import load
    from initlab.studies.settings import tuned_by_seed

    specs = {sw: weight_scheme(sw) for sw in grid.sigmas}
    reference = specs[min(grid.sigmas, key=lambda sw: abs(math.log(sw / grid.critical)))]
    acc: dict[str, dict] = {st.label: {} for st in common.settings}
    lr: dict[str, dict] = {st.label: {} for st in common.settings}
    diverged: dict[str, dict[int, dict[float, int]]] = {}
    experiments = []
    for optimizer in common.optimizers:
        for d in grid.depths:
            data = ctx.compare(
                schemes=tuple(specs.values()),
                model="mlp",
                activation=ACTIVATION,
                width=s["width"],
                depth=d,
                bias_init=bias_scheme(grid.sigma_b2),
                reference=reference,
                chunk_size=len(specs) * len(common.seeds) * len(common.lr_grids[optimizer]),
                **common.compare_kwargs(optimizer),
            )
            experiments.append(data.experiment_id)
            rows = {r["scheme"]: r for r in data.summary}
            diverged.setdefault(optimizer, {})[d] = {sw: rows[specs[sw]]["diverged"] for sw in grid.sigmas}
            for budget in common.budgets:
                label = Setting(optimizer, budget).label
                by_seed = tuned_by_seed(data, budget)
                acc[label][d] = {sw: by_seed[specs[sw]] for sw in grid.sigmas}
                lr[label][d] = {sw: data.tuning.selected[budget][specs[sw]] for sw in grid.sigmas}
    effects = {}
    for label, by_depth in acc.items():
        per_seed, matched = depth_matched_effect(by_depth, grid.inside, common.seeds)
        mean, lo, hi = mean_ci(per_seed)
        effects[label] = Effect(per_seed, mean, (lo, hi), matched)
    data_options = common.data_options
    dataset = load(common.dataset, **data_options)
    steps = common.epochs * math.ceil(dataset.x_train.shape[0] / common.batch_size)
    return Measured(acc, lr, diverged, effects, 1.0 / dataset.num_classes, steps, experiments)


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Tanh MLPs over a (σ_w², depth) grid at σ_b² = 0.05, SGD and Adam with tuned lr, two budgets:
    accuracy against the mean-field trainable depth 6 ξ_c; see the module docstring for the design."""
    s, common, grid = _read_settings(ctx)
    m = measure(ctx, s, common, grid)
    return present(ctx, s, common, grid, m, judge(m.effects))


def mean_grid(m: Measured, label: str) -> dict[int, dict[float, float]]:
    """depth -> σ_w² -> mean accuracy over seeds in one setting."""
    return {d: {sw: sum(v.values()) / len(v) for sw, v in row.items()} for d, row in m.acc[label].items()}


def _agreement(grid: Grid, means: dict[int, dict[float, float]], chance: float) -> dict[str, float]:
    """How often the 6 ξ_c line predicts whether a cell trains; inside and outside means."""
    best = max(v for row in means.values() for v in row.values())
    trains_at = chance + 0.5 * (best - chance)
    cells = [(d, sw) for d in grid.depths for sw in grid.sigmas]

    def side(pred) -> float:
        vals = [means[d][sw] for d, sw in cells if pred(d, sw)]
        return sum(vals) / len(vals) if vals else math.nan

    return {
        "trains_threshold": trains_at,
        "prediction_agreement": sum((means[d][sw] >= trains_at) == grid.inside[d][sw] for d, sw in cells) / len(cells),
        "inside_mean": side(lambda d, sw: grid.inside[d][sw]),
        "outside_small_weights_mean": side(lambda d, sw: not grid.inside[d][sw] and sw < grid.critical),
        "outside_large_weights_mean": side(lambda d, sw: not grid.inside[d][sw] and sw > grid.critical),
    }


def _tables(s, common: CommonSettings, grid: Grid, m: Measured, final: list[str], judgement: Judgement) -> list:
    from initlab import theory

    tables = []
    for label in final:
        means, optimizer = mean_grid(m, label), label.split(",")[0]
        rows = [
            [str(d)]
            + [
                f"{means[d][sw]:.3f}{'' if grid.inside[d][sw] else ' ✗'} (lr {m.lr[label][d][sw]:g})"
                + (f" ({m.diverged[optimizer][d][sw]} div)" if m.diverged[optimizer][d][sw] else "")
                for sw in grid.sigmas
            ]
            for d in grid.depths
        ]
        header = ["depth"] + [f"σw²={sw:g} (6ξc={grid.bound[sw]:.3g})" for sw in grid.sigmas]
        tables.append((f"Mean test accuracy per (depth, σw²), {label} (selected lr); ✗ = beyond 6ξc", header, rows))
    effect_rows = [
        [
            label,
            signed_points(e.mean, e.ci[0], e.ci[1]),
            ", ".join(map(str, e.depths)),
            judgement.by_setting[label],
        ]
        for label, e in m.effects.items()
    ]
    tables.append(
        (
            "Inside − outside 6ξc at equal depth, per setting (pts, 95% t CI over seeds)",
            ["setting", "inside − outside pts", "depths matched", "claim"],
            effect_rows,
        )
    )
    theory_rows = [
        [
            f"{sw:g}",
            f"{theory.chi1(ACTIVATION, sw, grid.sigma_b2):.3f}",
            f"{grid.bound[sw] / TRAINABLE_DEPTH_FACTOR:.3g}",
            f"{grid.bound[sw]:.3g}",
            _phase(sw, grid.critical),
        ]
        for sw in grid.sigmas
    ]
    tables.append(
        (f"Mean-field theory for tanh at σb² = {grid.sigma_b2:g}", ["σw²", "χ1", "ξc", "6ξc", "phase"], theory_rows)
    )
    return tables


def present(ctx, s, common: CommonSettings, grid: Grid, m: Measured, judgement: Judgement) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    final = [Setting(o, common.budgets[-1]).label for o in common.optimizers]
    head = m.effects[final[0]]
    agreement = {label: _agreement(grid, mean_grid(m, label), m.chance) for label in final}
    a0 = agreement[final[0]]
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    summary = (
        f"Tanh MLPs ({s['dataset']}, width {s['width']}, {len(common.seeds)} seeds, lr tuned per σw² on validation). "
        f"{final[0]}: cells inside the mean-field trainable depth 6ξc reach {100 * a0['inside_mean']:.1f}% mean test "
        f"accuracy, cells beyond it {_num(a0['outside_small_weights_mean'])} on the small-weight side and "
        f"{_num(a0['outside_large_weights_mean'])} on the large-weight side; the line predicts whether a cell trains "
        f"for {a0['prediction_agreement']:.0%} of the cells. Inside − outside at equal depth per setting: "
        + "; ".join(f"{k}: {100 * e.mean:+.1f} pp ({judgement.by_setting[k]})" for k, e in m.effects.items())
        + "."
        + flips
    )
    from initlab.studies.criticality_plot import figure as draw_figure

    figure = draw_figure(ctx.out / "criticality.png", s, grid, m, final)
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=head.mean,
        ci=head.ci,
        effect_label=f"acc inside 6ξc − acc outside (equal depth; {final[0]}; the other settings in the table)",
        summary=summary,
        evidence={
            "judgement": judgement.evidence(),
            "critical_sigma_w2": grid.critical,
            "sigma_b2": grid.sigma_b2,
            "trainable_depth": {f"{sw:g}": grid.bound[sw] for sw in grid.sigmas},
            "inside": {str(d): {f"{sw:g}": grid.inside[d][sw] for sw in grid.sigmas} for d in grid.depths},
            "mean_accuracy": {
                label: {str(d): {f"{sw:g}": v for sw, v in row.items()} for d, row in mean_grid(m, label).items()}
                for label in m.acc
            },
            "effects": {label: asdict(e) for label, e in m.effects.items()},
            "agreement": agreement,
            "steps": m.steps,
            "seeds": list(common.seeds),
            "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
        },
        tables=_tables(s, common, grid, m, final, judgement),
        figures=[figure],
        experiments=m.experiments,
        settings={**s, "seeds": list(common.seeds), "depths": grid.depths, "sigma_w2": grid.sigmas},
    )


__all__ = [
    "CLAIM",
    "DEFAULTS",
    "Effect",
    "Grid",
    "Measured",
    "depth_matched_effect",
    "judge",
    "measure",
    "present",
    "run",
]
