"""Study ``bias``: zero, constant or random biases, with random weights and with zero weights.

The article: "some individuals believe that using random initialization for the biases of a
neural network is unnecessary and can be set to a constantly fixed value, such as zero. [...]
Random initialization for biases is recommended to ensure the model's ability to learn diverse
representations [...] Randomly initializing biases helps avoid symmetry issues."

The experiment
--------------
An MLP (``depth`` hidden layers of ``width`` units, digits by default) for each activation in
``activations`` (ReLU and tanh), each bias initialization in ``biases`` (``zeros``;
``constant(val=0.1)``: every bias 0.1; ``normal(std=0.1)``: ``N(0, 0.1²)`` per bias) and two
weight initializations: a random scheme matched to the activation (``he_normal`` for rectifiers,
``xavier_uniform`` otherwise) and ``zeros``. The claim is about training, so it is measured over
a small sensitivity grid: SGD (momentum 0.9) and Adam, the learning rate tuned per scheme on the
validation split (SGD 0.01/0.05, Adam 1e-3/3e-3), two budgets (5 and 20 epochs). One stored,
tuned comparison per (optimizer, activation, bias), holding both weight schemes; seed s fixes
the data order in all of them, so runs pair by seed across comparisons.

Shape: settings (``CommonSettings`` + activations, biases) -> **measure** -> **judge** (pure)
-> **present**.

Measured, per setting and activation: ``acc(random bias) − acc(zero bias)``, with random weights
and with zero weights, paired by seed and test example (bootstrap 95% CI over both) with its
equivalence verdict (margin 0.5 points); and, for the zero-weight members of the first optimizer
(every lr and seed, retrained exactly as stored: ``initlab.studies.weights``), the number of
*distinct units* per hidden layer and the weight matrix's rank after training.

Why it can matter: with zero weights, ``∂L/∂W_l = δ_l h_{l-1}^T`` and
``δ_l = (W_{l+1}^T δ_{l+1}) ⊙ φ'(z_l)``: units with equal biases receive equal updates forever
(one distinct unit). Random biases make ``h = φ(b)`` differ per unit and so break that tie;
with random weights the tie is already broken and the bias is one more parameter.

Judge, per setting: *supported* when, with random weights, the random bias is ``better`` than the
zero bias for every activation (effects are not pooled over activations); *partly* when it is for
some, or for none but with zero weights for every activation (random biases then help only when
nothing else breaks the symmetry); else *not supported*. The study's verdict is ``supported`` /
``not supported`` only when every setting agrees, else ``partly`` naming the settings that flip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.grid import CommonSettings, Judgement, Setting, common_settings, judge_across
from initlab.studies.weights import distinct_units  # noqa: F401  (one definition for symmetry and bias)

NAME = "bias"
CLAIM = (
    "Random initialization for biases is recommended to ensure the model's ability to learn diverse "
    "representations and capture complex patterns; randomly initializing biases helps avoid symmetry issues "
    "(rather than setting them to a fixed value such as zero)."
)
ZERO_BIAS = "zeros"
ZERO_WEIGHTS = "zeros"
WEIGHTS = ("random", "zero")

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "width": 64,  # hidden units per layer
    "depth": 2,  # hidden layers
    "activations": ["relu", "tanh"],
    "biases": ["zeros", "constant(val=0.1)", "normal(std=0.1)"],  # the first is the baseline
    "seeds": 5,
    "epochs": 20,
    "budgets": [5, 20],  # epochs at which the claim is judged
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [0.01, 0.05],  # SGD, momentum 0.9; selected per scheme on validation
    "adam_lr_grid": [1e-3, 3e-3],
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin on test accuracy (0.5 points)
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 10000,
    "width": 128,
    "epochs": 10,
    "budgets": [3, 10],
}


def random_weights_for(activation: str) -> str:
    """The random scheme the article pairs with ``activation``: He for rectifiers, else Xavier."""
    from initlab.activations import canonical
    from initlab.layers import RECTIFIERS

    return "he_normal" if canonical(activation) in RECTIFIERS else "xavier_uniform"


@dataclass(frozen=True)
class BiasEffect:
    """acc(``bias``) − acc(zero bias) for one activation and weight init, in one setting."""

    activation: str
    weights: str  # "random" or "zero"
    bias: str
    acc: float  # tuned test accuracy with this bias, mean over seeds
    zero_bias_acc: float
    diff: float  # mean paired difference (seeds and test examples)
    ci: tuple[float, float]
    verdict: str  # better / worse / equivalent / inconclusive


@dataclass
class Measured:
    effects: dict[str, list[BiasEffect]]  # setting label -> every (activation, weights, non-zero bias)
    units: dict[str, dict[str, list[dict[str, dict[str, int]]]]]  # activation -> bias -> members' layers
    weight_scheme: dict[str, str]  # activation -> its random weight scheme
    retrain_gap: float  # largest |retrained − stored| zero-weight accuracy: 0 when the rerun matches
    experiments: list[str]


def judge_setting(effects: Sequence[BiasEffect], random_bias: str) -> str:
    """One setting's verdict from the ``random_bias`` effects per activation (see the module docstring)."""
    chosen = [e for e in effects if e.bias == random_bias]
    with_random = [e.verdict == "better" for e in chosen if e.weights == "random"]
    with_zero = [e.verdict == "better" for e in chosen if e.weights == "zero"]
    if with_random and all(with_random):
        return "supported"
    if any(with_random) or (with_zero and all(with_zero)):
        return "partly"
    return "not supported"


def judge(effects: Mapping[str, Sequence[BiasEffect]], random_bias: str) -> Judgement:
    """Pure: setting label -> measured effects  ->  the study's judgement across settings."""
    return judge_across({label: judge_setting(es, random_bias) for label, es in effects.items()})


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], CommonSettings, list[str], list[str], str]:
    from initlab.activations import canonical
    from initlab.schemes import canonical_spec
    from initlab.studies.settings import as_list

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    activations = [canonical(a) for a in as_list(s["activations"])]
    biases = [canonical_spec(b) for b in as_list(s["biases"])]
    if len(biases) < 2 or biases[0] != ZERO_BIAS:
        raise UserError(f"biases: the zero baseline first, then at least one other; got {s['biases']!r}")
    random_bias = next((b for b in biases if b.startswith(("normal", "uniform", "trunc_normal"))), biases[-1])
    return s, common, activations, biases, random_bias


def _zero_weight_units(config: Any, data: Any) -> tuple[list, float]:
    """The zero-weight members retrained: their hidden layers' units, and the largest accuracy gap
    to the stored runs."""
    from initlab.data import load
    from initlab.studies.weights import hidden_layers, layer_units, retrained_members, stored_accuracy, template_model

    dataset = load(config.dataset, **config.data_options)
    layers = hidden_layers(template_model(config, dataset))
    stored = stored_accuracy(data)
    records, gap = [], 0.0
    for m in retrained_members(config, dataset, {ZERO_WEIGHTS}):
        records.append(layer_units(m.trained, layers))
        gap = max(gap, abs(m.test_acc - stored[(m.scheme, m.seed, m.lr)]))
    return records, gap


def measure(ctx: StudyContext, s: dict[str, Any], common: CommonSettings, activations: list[str], biases: list[str]):
    """One tuned comparison per (optimizer, activation, bias); effects paired across them by seed."""
    from initlab.studies.settings import finite_mean, paired_versus, tuned_runs
    from initlab.sweep.config import CompareConfig

    effects: dict[str, list[BiasEffect]] = {st.label: [] for st in common.settings}
    units: dict[str, dict[str, list]] = {}
    weight_scheme = {a: random_weights_for(a) for a in activations}
    experiments, gap = [], 0.0
    for optimizer in common.optimizers:
        for a in activations:
            runs: dict[str, Any] = {}
            for b in biases:
                kwargs = dict(schemes=(weight_scheme[a], ZERO_WEIGHTS), model="mlp", width=s["width"])
                kwargs.update(depth=s["depth"], activation=a, bias_init=b, reference=weight_scheme[a])
                kwargs.update(common.compare_kwargs(optimizer))
                data = ctx.compare(**kwargs)
                experiments.append(data.experiment_id)
                runs[b] = data
                if optimizer == common.optimizers[0]:
                    units.setdefault(a, {})[b], g = _zero_weight_units(CompareConfig(**kwargs), data)
                    gap = max(gap, g)
            for budget in common.budgets:
                label = Setting(optimizer, budget).label
                tuned = {b: tuned_runs(runs[b], budget) for b in biases}
                for w, scheme in zip(WEIGHTS, (weight_scheme[a], ZERO_WEIGHTS)):
                    base = tuned[ZERO_BIAS][scheme]
                    for b in biases[1:]:
                        p = paired_versus(tuned[b][scheme], base, budget, common.margin)
                        acc = finite_mean([r.test_curve.get(budget) for r in tuned[b][scheme].values()])
                        acc0 = finite_mean([r.test_curve.get(budget) for r in base.values()])
                        effects[label].append(BiasEffect(a, w, b, acc, acc0, p.diff, (p.ci_low, p.ci_high), p.verdict))
    return Measured(effects, units, weight_scheme, gap, experiments)


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Biases zero vs constant vs random, with random weights and with zero weights, SGD and Adam
    with tuned lr, two budgets; see the module docstring for the exact design."""
    s, common, activations, biases, random_bias = _read_settings(ctx)
    m = measure(ctx, s, common, activations, biases)
    judgement = judge(m.effects, random_bias)
    return present(ctx, s, common, activations, biases, random_bias, m, judgement)


def _unit_rows(m: Measured, activations: list[str], biases: list[str]) -> list[list[str]]:
    rows = []
    for a in activations:
        for b in biases:
            members = m.units[a][b]
            cells = []
            for layer in members[0]:
                d = [u[layer]["distinct"] for u in members]
                r = [u[layer]["rank"] for u in members]
                cells.append(f"{min(d)}–{max(d)} / rank {min(r)}–{max(r)}")
            rows.append([a, b, *cells])
    return rows


def _units_evidence(m: Measured) -> dict[str, Any]:
    return {
        a: {
            b: {
                "distinct_per_layer": [[u[layer]["distinct"] for u in members] for layer in members[0]],
                "rank_per_layer": [[u[layer]["rank"] for u in members] for layer in members[0]],
            }
            for b, members in per_bias.items()
        }
        for a, per_bias in m.units.items()
    }


def present(ctx, s, common: CommonSettings, activations, biases, random_bias, m: Measured, judgement) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    first = Setting(common.optimizers[0], common.budgets[-1]).label
    head = next(e for e in m.effects[first] if e.weights == "random" and e.bias == random_bias)
    zero_head = next(
        e for e in m.effects[first] if e.weights == "zero" and e.bias == random_bias and e.activation == head.activation
    )
    rows = [
        [
            label,
            e.activation,
            m.weight_scheme[e.activation] if e.weights == "random" else ZERO_WEIGHTS,
            e.bias,
            f"{100 * e.acc:.1f}",
            f"{100 * e.zero_bias_acc:.1f}",
            f"{100 * e.diff:+.2f} [{100 * e.ci[0]:+.2f}, {100 * e.ci[1]:+.2f}]",
            e.verdict,
        ]
        for label, es in m.effects.items()
        for e in es
    ]
    first_layer = {
        a: {b: [next(iter(u.values()))["distinct"] for u in m.units[a][b]] for b in biases} for a in activations
    }
    units_text = "; ".join(
        f"{b}: " + ", ".join(f"{a} {sum(first_layer[a][b]) / len(first_layer[a][b]):.0f}" for a in activations)
        for b in biases
    )
    flips = f" It flips in: {', '.join(judgement.flips)}." if judgement.flips else ""
    summary = (
        f"With random weights, {random_bias} biases change {head.activation}'s test accuracy by "
        f"{100 * head.diff:+.1f} pp [{100 * head.ci[0]:+.1f}, {100 * head.ci[1]:+.1f}] vs zero biases ({first}); with "
        f"zero weights by {100 * zero_head.diff:+.1f} pp. Distinct units in hidden layer 1 after training from zero "
        f"weights ({common.optimizers[0]}, of {s['width']}): {units_text}. Verdict per setting: "
        + "; ".join(f"{k}: {v}" for k, v in judgement.by_setting.items())
        + "."
        + flips
    )
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=judgement.verdict,
        effect=head.diff,
        ci=head.ci,
        effect_label=(
            f"test accuracy {random_bias} bias − zero bias, {head.activation}, random weights ({first}; paired "
            "bootstrap over seeds and test examples; the other activations in the table)"
        ),
        summary=summary,
        evidence={
            "judgement": judgement.evidence(),
            "random_bias": random_bias,
            "random_weights": m.weight_scheme,
            "effects": {k: [asdict(e) for e in es] for k, es in m.effects.items()},
            "zero_weight_units": _units_evidence(m),
            "units_optimizer": common.optimizers[0],
            "width": s["width"],
            "retrained_accuracy_max_gap": m.retrain_gap,
            "seeds": list(common.seeds),
            "lr_grids": {k: list(v) for k, v in common.lr_grids.items()},
        },
        tables=[
            (
                "Bias init vs zero bias per setting: tuned test accuracy % (lr selected on validation), Δ pts (95% CI, "
                f"paired bootstrap over seeds and test examples), verdict with margin ±{100 * common.margin:g} pts",
                ["setting", "activation", "weights", "bias", "%", "zero bias %", "Δ pts (95% CI)", "bias is"],
                rows,
            ),
            (
                f"Zero weights after training ({common.optimizers[0]}, every lr and seed): distinct units / weight "
                "rank per hidden layer (min–max)",
                ["activation", "bias", *[f"layer {i + 1}" for i in range(s["depth"])]],
                _unit_rows(m, activations, biases),
            ),
        ],
        figures=[_figure(ctx.out / "bias.png", activations, biases, random_bias, m)],
        experiments=m.experiments,
        settings={**s, "seeds": list(common.seeds), "biases": biases, "activations": activations},
    )


def _figure(path: Path, activations: list[str], biases: list[str], random_bias: str, m: Measured) -> Path:
    """Left: Δ (random bias − zero bias) with its CI per setting, activation and weights; right:
    distinct units and rank of hidden layer 1 after training from zero weights."""
    from initlab.plotting import new_figure, palette, save, style

    fig, (left, right) = new_figure(2, size=(12, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    labels = list(m.effects)
    series = [(a, w) for a in activations for w in WEIGHTS]
    colors = palette([f"{a} {w}" for a, w in series])
    step = 0.8 / len(series)
    for j, (a, w) in enumerate(series):
        for i, label in enumerate(labels):
            e = next(x for x in m.effects[label] if (x.activation, x.weights, x.bias) == (a, w, random_bias))
            x = i + (j - (len(series) - 1) / 2) * step
            left.errorbar(
                [x],
                [100 * e.diff],
                yerr=[[100 * (e.diff - e.ci[0])], [100 * (e.ci[1] - e.diff)]],
                fmt="o" if w == "random" else "s",
                color=colors[f"{a} {w}"],
                capsize=3,
                label=f"{a}, {w} weights" if i == 0 else None,
            )
    left.axhline(0, color="black", lw=0.8)
    left.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    style(
        left,
        ylabel=f"acc({random_bias} bias) − acc(zero bias), pts",
        grid="y",
        legend=True,
        title="Above 0: the random bias helps (95% CI)",
    )
    bias_colors = palette(biases)
    bar = 0.8 / len(biases)
    for k, b in enumerate(biases):
        xs = [i + (k - (len(biases) - 1) / 2) * bar for i in range(len(activations))]
        first = [[next(iter(u.values())) for u in m.units[a][b]] for a in activations]
        ys = [sum(u["distinct"] for u in us) / len(us) for us in first]
        ranks = [sum(u["rank"] for u in us) / len(us) for us in first]
        right.bar(xs, ys, width=bar, color=bias_colors[b], label=f"bias {b}")
        right.scatter(xs, ranks, marker="D", color="black", s=18, zorder=3, label="weight rank" if k == 0 else None)
        for x, y in zip(xs, ys):
            right.annotate(f"{y:.0f}", (x, y), ha="center", va="bottom", fontsize=8)
    right.set_xticks(range(len(activations)), activations)
    right.set_ylim(0, 1.55 * max(next(iter(u.values()))["width"] for a in activations for u in m.units[a][biases[0]]))
    style(
        right,
        ylabel="hidden layer 1 after training (mean)",
        title="zero weights: distinct units (bars), rank (◆)",
        grid="y",
        legend={"loc": "upper center", "ncol": 2},
    )
    return save(fig, path, title="bias: zero vs constant vs random biases, with random and with zero weights")


__all__ = ["CLAIM", "DEFAULTS", "BiasEffect", "Measured", "judge", "judge_setting", "measure", "present", "run"]
