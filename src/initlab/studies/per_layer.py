"""Study ``per-layer``: one scheme for every layer, or a scheme chosen per layer?

The article: "An additional misconception is that using the same initialization scheme for all
layers of a neural network will lead to optimal performance. In reality, different layers and
neurons may benefit from different weight initialization strategies."

The experiment
--------------
A network where no single scheme can be right everywhere: ``mixed_residual_mlp``, a
pre-activation residual MLP without normalization whose branch activations cycle through ReLU,
tanh, GELU and sigmoid (a tanh stem, a ReLU head; see its docstring), ``width`` 64, at each depth
in ``depths`` (4 and 16 residual blocks). Members differ only in their initial weights:

* ``he_normal`` for every weight (``N(0, 2/fan_in)``, He et al. 2015),
* ``xavier_uniform`` for every weight (``U(±sqrt(6/(fan_in+fan_out)))``, Glorot & Bengio 2010),
* ``auto`` (the reference): ``initlab.plan(model, "auto")``, a scheme per layer from the
  activation that follows it (He-style for ReLU/GELU, Xavier with the tanh gain for tanh, Xavier
  for sigmoid), Xavier with gain 1 for the output layer, and zeros for the last layer of each
  residual branch (Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020). Biases are zero in all.

Control: ``auto`` differs from a single scheme in two ways, a scheme per activation *and* zeroed
residual-branch ends. ``SCHEME+zeroed_branch_ends`` (one per uniform scheme, ``controls``) keeps
SCHEME for every hidden and output weight and zeroes only the branch ends, so a gain that comes
from the zeroing alone shows up against the control, not as "a scheme per layer".

The grid. The claim is about training, so it is judged over a small sensitivity grid: SGD
(momentum 0.9) and Adam, the learning rate tuned per scheme on the validation split, at two
budgets (3 and 10 epochs), digits, 5 seeds (Fashion-MNIST with ``--full``). The rates: SGD
0.01 and 0.05 (0.05: the single rate this study used to run, where Xavier everywhere fails at 16
blocks; at 0.01 an independent trial found Xavier everywhere within 0.3 points of auto, so a grid
without it would flatter auto), Adam 3e-4 and 1e-3 (Adam's default and the smaller rate deep nets
without normalization often need). Two rates keep the default run near five minutes at one thread. One stored,
tuned comparison per (optimizer, depth), reference ``auto``; seed s fixes the data order in all
of them (paired design).

Shape: settings (``CommonSettings`` + width, depths, schemes, controls) -> **measure** ->
**judge** (pure) -> **present**.

Judge, per setting (optimizer, budget), at the deepest depth: the *best uniform scheme* and the
*best control* are those with the highest tuned mean test accuracy at that budget. They are
picked on the same runs they are then compared on, which favours them: the test is conservative
for ``auto``. Auto against each: the paired difference ``acc(auto) − acc(best)``, a bootstrap
95% CI over seeds and test examples, and its equivalence verdict at ``margin`` (0.5 points;
``vs_reference`` of the scheme's row, reference ``auto``: ``worse`` means auto is better).
The setting's verdict: *supported* when auto is better than the best uniform scheme *and* the
best control (a scheme per layer beats every single scheme, zeroed branch ends or not);
*partly* when auto is better than the best uniform scheme but not than the best control (the
gain is the zeroing), or no control was run (the gain cannot be told from the zeroing);
*not supported* when auto is not better than the best uniform scheme. The study's verdict is
``supported`` / ``not supported`` only when every setting agrees, else ``partly`` naming the
settings that flip (``initlab.studies.grid.judge_across``). Reported, not judged: the shallower
depths per setting, and every rate of the grid untuned at the deepest depth and final budget
(what one fixed rate would have shown). The figure is drawn by ``initlab.studies.per_layer_plot``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register, signed_points
from initlab.studies.grid import CommonSettings, Judgement, Setting, budget_rows, common_settings, judge_across

NAME = "per-layer"
CLAIM = (
    "An additional misconception is that using the same initialization scheme for all layers of a neural "
    "network will lead to optimal performance. In reality, different layers and neurons may benefit from "
    "different weight initialization strategies."
)
ACTIVATION_CYCLE = ("relu", "tanh", "gelu", "sigmoid")  # branch activations, block i uses [i % 4]
MODEL = "initlab.studies.per_layer:mixed_residual_mlp"
POLICY = "auto"
# vs_reference of a scheme against auto, read from auto's side
AUTO_IS = {"better": "worse", "worse": "better", "equivalent": "equivalent", "inconclusive": "inconclusive"}

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "width": 64,  # units per layer
    "depths": [4, 16],  # residual blocks (two Linear layers each); the deepest is judged
    "schemes": ["he_normal", "xavier_uniform"],  # the single schemes set against "auto"
    "controls": True,  # add SCHEME+zeroed_branch_ends for every single scheme
    "seeds": 5,
    "epochs": 10,
    "budgets": [3, 10],  # epochs at which the claim is judged
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [0.01, 0.05],  # SGD, momentum 0.9; selected per scheme on validation
    "adam_lr_grid": [3e-4, 1e-3],
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin on test accuracy (0.5 points)
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 10000,
    "width": 128,
    "depths": [4, 16, 32],
    "epochs": 10,
    "budgets": [3, 10],
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


@dataclass(frozen=True)
class Row:
    """One scheme in one setting at one depth: tuned test accuracy, and auto against it."""

    scheme: str
    mean: float  # test accuracy at the budget, mean over seeds, at the lr selected on validation
    ci: tuple[float, float]
    lr: float | None  # the selected rate
    diverged: int  # seeds whose run diverged (at the selected rate)
    n: int
    auto_minus: float | None = None  # acc(auto) − acc(scheme), mean paired difference; None for auto
    auto_minus_ci: tuple[float, float] | None = None  # bootstrap 95% CI over seeds and test examples
    auto_is: str | None = None  # auto against this scheme: better / worse / equivalent / inconclusive


@dataclass(frozen=True)
class Pick:
    """One setting, judged at the deepest depth: the best uniform scheme and control, and the verdict."""

    best_uniform: str
    best_control: str | None
    verdict: str


@dataclass
class Measured:
    """Everything ``judge`` and ``present`` read; built by ``measure`` from real runs."""

    rows: dict[str, dict[int, dict[str, Row]]]  # setting label -> depth -> scheme -> row
    experiments: list[str]
    # deepest depth, final budget, untuned: optimizer -> scheme -> lr -> mean test accuracy over seeds
    by_rate: dict[str, dict[str, dict[float, float]]]


def best_of(rows: Mapping[str, Row], candidates: Sequence[str]) -> str | None:
    """The candidate with the highest tuned mean (NaN counts as lowest; ties: the first); None if none."""
    if not candidates:
        return None
    return max(candidates, key=lambda x: rows[x].mean if math.isfinite(rows[x].mean) else -1.0)


def judge_setting(rows: Mapping[str, Row], uniform: Sequence[str], controls: Sequence[str]) -> Pick:
    """Pure: one setting's rows at the deepest depth -> the picks and the verdict (module docstring)."""
    best = best_of(rows, uniform)
    if best is None:
        raise ValueError("judge_setting needs at least one uniform scheme")
    control = best_of(rows, controls)
    if rows[best].auto_is != "better":
        verdict = "not supported"
    elif control is not None and rows[control].auto_is == "better":
        verdict = "supported"
    else:
        verdict = "partly"
    return Pick(best, control, verdict)


def judge(
    rows: Mapping[str, Mapping[int, Mapping[str, Row]]], deep: int, uniform: Sequence[str], controls: Sequence[str]
) -> tuple[Judgement, dict[str, Pick]]:
    """Pure: setting label -> depth -> scheme -> row  ->  the study's judgement and each setting's picks."""
    picks = {label: judge_setting(by_depth[deep], uniform, controls) for label, by_depth in rows.items()}
    return judge_across({label: p.verdict for label, p in picks.items()}), picks


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], CommonSettings, list[int], list[str], list[str]]:
    from initlab.schemes import canonical_spec
    from initlab.studies.settings import as_list, int_list
    from initlab.sweep.config import ZEROED_BRANCH_ENDS

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    depths = int_list("depths", s["depths"], 1)
    given = as_list(s["schemes"])
    uniform = [canonical_spec(x) for x in given if x != POLICY]
    if not uniform or len(uniform) < len(given):
        raise UserError(f"schemes: one or more single schemes to set against {POLICY!r} (not it); got {s['schemes']!r}")
    if not isinstance(s["controls"], bool):
        raise UserError(f"controls: true or false; got {s['controls']!r}")
    controls = [u + ZEROED_BRANCH_ENDS for u in uniform] if s["controls"] else []
    return s, common, depths, uniform, controls


def _rows(data: Any, budget: int, order: list[str]) -> dict[str, Row]:
    """scheme -> ``Row`` of one comparison at ``budget`` (auto's side of every paired difference)."""
    from initlab.studies.settings import tuned_runs

    by_scheme = budget_rows(data, budget)
    runs = tuned_runs(data, budget)
    out = {}
    for x in order:
        b = by_scheme[x]
        diverged = sum(r.diverged_step is not None for r in runs.get(x, {}).values())
        versus: dict[str, Any] = {}
        if x != POLICY:  # no paired difference (no per-example correctness kept): inconclusive
            paired = b.get("diff") is not None and b.get("diff_ci")
            lo, hi = b["diff_ci"] if paired else (math.nan, math.nan)
            versus = dict(auto_minus=-b["diff"] if paired else None, auto_minus_ci=(-hi, -lo) if paired else None)
            versus["auto_is"] = AUTO_IS.get(b["vs_reference"], "inconclusive") if paired else "inconclusive"
        out[x] = Row(x, b["mean"], (b["ci_low"], b["ci_high"]), b["lr"], diverged, b["n"], **versus)
    return out


def measure(ctx: StudyContext, s: dict[str, Any], common: CommonSettings, depths: list[int], order: list[str]):
    """One tuned comparison per (optimizer, depth), reference ``auto``; rows per setting and depth."""
    rows: dict[str, dict[int, dict[str, Row]]] = {st.label: {} for st in common.settings}
    experiments, by_rate = [], {}
    for optimizer in common.optimizers:
        for depth in depths:
            model = dict(model=MODEL, width=s["width"], depth=depth)
            data = ctx.compare(schemes=tuple(order), reference=POLICY, **model, **common.compare_kwargs(optimizer))
            experiments.append(data.experiment_id)
            for budget in common.budgets:
                rows[Setting(optimizer, budget).label][depth] = _rows(data, budget, order)
            if depth == depths[-1]:
                by_rate[optimizer] = _by_rate(data, common.budgets[-1])
    return Measured(rows, experiments, by_rate)


def _by_rate(data: Any, budget: int) -> dict[str, dict[float, float]]:
    """scheme -> lr -> mean test accuracy after ``budget`` at every rate of the grid (no selection)."""
    from initlab.studies.settings import finite_mean

    accs: dict[str, dict[float, list[float]]] = {}
    for r in data.all_runs:
        accs.setdefault(r.scheme, {}).setdefault(r.lr, []).append(r.test_curve.get(budget, math.nan))
    return {x: {lr: finite_mean(v) for lr, v in sorted(per.items())} for x, per in accs.items()}


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """One scheme for all layers (he_normal, xavier_uniform; with and without zeroed branch ends) vs the
    auto per-layer plan, SGD and Adam with tuned lr, two budgets; see the module docstring."""
    s, common, depths, uniform, controls = _read_settings(ctx)
    order = uniform + controls + [POLICY]
    m = measure(ctx, s, common, depths, order)
    judgement, picks = judge(m.rows, depths[-1], uniform, controls)
    return present(ctx, s, common, depths, order, m, judgement, picks)


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


def _pts(row: Row | None) -> str:
    """``auto − scheme`` in points with its CI, e.g. ``+2.0 [+0.1, +3.9]``."""
    if row is None or row.auto_minus is None or row.auto_minus_ci is None:
        return "—"
    return signed_points(row.auto_minus, *row.auto_minus_ci)


def _acc(row: Row) -> str:
    lr = "" if row.lr is None else f" (lr {row.lr:g})"
    return ("n/a" if not math.isfinite(row.mean) else f"{100 * row.mean:.1f}") + lr


def _depth_table(m: Measured, depth: int, order: list[str], judged: bool, margin: float):
    rows = [
        [label, x, _acc(r), f"{r.diverged}/{r.n}", _pts(r), r.auto_is or "—"]
        for label, by_depth in m.rows.items()
        for x, r in ((x, by_depth[depth][x]) for x in order)
    ]
    title = (
        f"{depth} blocks{' (judged)' if judged else ' (reported, not judged)'}: tuned test accuracy % (lr selected on "
        "validation), diverged seeds (by the last epoch), auto − scheme pts (95% CI, paired bootstrap over seeds and "
        f"test examples), auto is (margin ±{100 * margin:g} pts)"
    )
    return title, ["setting", "scheme", "accuracy %", "diverged", "auto − scheme, pts", "auto is"], rows


def _head_text(label: str, rows: Mapping[str, Row], pick: Pick) -> str:
    u = rows[pick.best_uniform]
    text = (
        f"{label}: auto {100 * rows[POLICY].mean:.1f}% vs {pick.best_uniform} {100 * u.mean:.1f}% "
        f"(auto − it {_pts(u)} pts, auto {u.auto_is})"
    )
    if pick.best_control is not None:
        c = rows[pick.best_control]
        text += f", vs {pick.best_control} {100 * c.mean:.1f}% ({_pts(c)}, auto {c.auto_is})"
    return text + f": {pick.verdict}"


def _summary(common: CommonSettings, depths: list[int], m: Measured, judgement: Judgement, picks, shown) -> str:
    deep = depths[-1]
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    versus_best = [m.rows[label][deep][p.best_uniform] for label, p in picks.items()]
    counts = ", ".join(f"{w} in {sum(r.auto_is == w for r in versus_best)}" for w in AUTO_IS)
    largest = max((abs(r.auto_minus) for r in versus_best if r.auto_minus is not None), default=math.nan)
    summary = (
        f"{deep}-block residual MLP mixing ReLU/tanh/GELU/sigmoid ({common.dataset}, {len(common.seeds)} seeds, lr "
        "tuned on validation per scheme; best uniform scheme and best control picked on the same runs). Auto against "
        f"the best uniform scheme, over {len(picks)} settings: {counts} (largest |Δ| {100 * largest:.1f} pts; margin "
        f"±{100 * common.margin:g}). "
        + "; ".join(_head_text(label, m.rows[label][deep], p) for label, p in picks.items())
        + "."
        + flips
    )
    per_rate = [
        f"{o} {lr:g}: " + " / ".join(f"{100 * m.by_rate[o][x][lr]:.1f}" for x in shown)
        for o in m.by_rate
        for lr in m.by_rate[o][POLICY]
    ]
    summary += (
        f" Untuned, at {deep} blocks after {common.budgets[-1]} epochs ({' / '.join(shown)}): "
        + "; ".join(per_rate)
        + "."
    )
    if len(depths) > 1:
        shallow = depths[0]
        cells = []
        for label, by_depth in m.rows.items():
            rows = by_depth[shallow]
            best = best_of(rows, [x for x in rows if x != POLICY])
            if best is not None:
                cells.append(f"{label}: auto − {best} {_pts(rows[best])} pts")
        summary += f" At {shallow} blocks (not judged), auto − the best other member: " + "; ".join(cells) + "."
    return summary


def _pick_evidence(rows: Mapping[str, Row], pick: Pick) -> dict[str, Any]:
    def versus(x: str | None) -> dict[str, Any] | None:
        if x is None:
            return None
        r = rows[x]
        return {"scheme": x, "mean": r.auto_minus, "ci": r.auto_minus_ci, "auto_is": r.auto_is, "lr": r.lr}

    return {
        "verdict": pick.verdict,
        "auto": {"mean": rows[POLICY].mean, "lr": rows[POLICY].lr},
        "auto_minus_best_uniform": versus(pick.best_uniform),
        "auto_minus_best_control": versus(pick.best_control),
    }


def present(ctx, s, common: CommonSettings, depths, order, m: Measured, judgement: Judgement, picks) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    from initlab.data import load
    from initlab.studies.per_layer_plot import figure
    from initlab.sweep.config import ZEROED_BRANCH_ENDS

    shown = [POLICY] + [x for x in order if x != POLICY and not x.endswith(ZEROED_BRANCH_ENDS)]  # auto, uniform

    deep = depths[-1]
    head_label = Setting(common.optimizers[0], common.budgets[-1]).label
    head = m.rows[head_label][deep][picks[head_label].best_uniform]
    dataset = load(common.dataset, **common.data_options)
    plan_counts = _plan_counts(s["width"], deep, dataset.input_shape, dataset.num_classes)

    def versus(x: str | None, label: str) -> str:
        return "—" if x is None else f"{_pts(m.rows[label][deep][x])} ({m.rows[label][deep][x].auto_is})"

    verdict_rows = [
        [label, p.best_uniform, versus(p.best_uniform, label), p.best_control or "—", versus(p.best_control, label)]
        + [p.verdict]
        for label, p in picks.items()
    ]
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=math.nan if head.auto_minus is None else head.auto_minus,
        ci=(math.nan, math.nan) if head.auto_minus_ci is None else head.auto_minus_ci,
        effect_label=(
            f"test accuracy auto − {head.scheme} (the best uniform scheme) at {deep} blocks ({head_label}; paired "
            "bootstrap over seeds and test examples)"
        ),
        summary=_summary(common, depths, m, judgement, picks, shown),
        evidence={
            "judgement": judgement.evidence(),
            "judged_depth": deep,
            "depths": depths,
            "by_setting": {label: _pick_evidence(m.rows[label][deep], p) for label, p in picks.items()},
            "accuracy": {
                label: {str(d): {x: asdict(r) for x, r in rows.items()} for d, rows in by_depth.items()}
                for label, by_depth in m.rows.items()
            },
            "untuned_by_rate": {
                o: {x: {f"{lr:g}": a for lr, a in per.items()} for x, per in by.items()} for o, by in m.by_rate.items()
            },
            "auto_plan_weights": plan_counts,
            "seeds": list(common.seeds),
            "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
            "margin": common.margin,
        },
        tables=[
            (
                f"Verdict per setting at {deep} blocks: auto − best uniform scheme and auto − best control, pts "
                "(95% CI; best = highest tuned mean, picked on the same runs)",
                ["setting", "best uniform", "auto − it", "best control", "auto − it", "verdict"],
                verdict_rows,
            ),
            *[_depth_table(m, d, order, d == deep, common.margin) for d in reversed(depths)],
            (
                f"Every rate of the grid, untuned, at {deep} blocks after {common.budgets[-1]} epochs: test accuracy % "
                "(mean over seeds); the tables above use the rate selected on validation",
                ["optimizer", "scheme", "accuracy % per lr"],
                [
                    [o, x, ", ".join(f"{lr:g}: {100 * a:.1f}" for lr, a in by_scheme[x].items())]
                    for o, by_scheme in m.by_rate.items()
                    for x in order
                ],
            ),
            (
                f"The auto plan on the {deep}-block model (weight tensors per scheme)",
                ["scheme", "weights"],
                [[k, str(v)] for k, v in plan_counts.items()],
            ),
        ],
        figures=[figure(ctx.out / "per_layer.png", deep, order, m, picks, common.margin)],
        experiments=m.experiments,
        settings={**s, "seeds": list(common.seeds), "depths": depths, "model": MODEL},
    )


__all__ = [
    "CLAIM",
    "DEFAULTS",
    "Measured",
    "Pick",
    "Row",
    "best_of",
    "judge",
    "judge_setting",
    "measure",
    "mixed_residual_mlp",
    "present",
    "run",
]
