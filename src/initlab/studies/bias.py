"""Study ``bias``: zero, constant or random biases, with random weights and with zero weights.

The article: "some individuals believe that using random initialization for the biases of a
neural network is unnecessary and can be set to a constantly fixed value, such as zero. [...]
Random initialization for biases is recommended to ensure the model's ability to learn diverse
representations [...] Randomly initializing biases helps avoid symmetry issues."

Experiment. An MLP (``depth`` hidden layers of ``width`` units, digits by default) for each
activation in ``activations`` (ReLU and tanh), each bias initialization in ``biases``
(``zeros``; ``constant(val=0.1)``: every bias 0.1; ``normal(std=0.1)``: ``N(0, 0.1²)`` per bias)
and two weight initializations: a random scheme matched to the activation (``he_normal`` for
ReLU-like activations, ``xavier_uniform`` otherwise) and ``zeros``. Each seed fixes the data
order for every member (paired design); SGD with momentum 0.9. One stored comparison per
(activation, bias), holding both weight schemes.

Measured: final test accuracy; for the zero-weight members, retrained identically through the
engine to read their weights, the number of *distinct units* per hidden layer after training
(``initlab.studies.symmetry.distinct_units``: units ``i``, ``j`` are the same when their
incoming weights and bias agree to ``1e-6·max|entry|``) and the rank of the layer's weight
matrix (``torch.linalg.matrix_rank``): a layer whose units stay identical computes one feature
however wide it is.

Why it can matter: with zero weights, ``∂L/∂W_l = δ_l h_{l-1}^T`` and
``δ_l = (W_{l+1}^T δ_{l+1}) ⊙ φ'(z_l)``: the hidden weights get no gradient until the layer
above has weights, and units with equal biases receive equal updates forever (one distinct
unit). Random biases make ``h = φ(b)`` differ per unit and so break that tie; with random
weights the tie is already broken and the bias is one more parameter.

Effect: with random weights, ``acc(random bias) − acc(zero bias)`` per seed (the random bias:
the first ``normal``/``uniform``/``trunc_normal`` entry of ``biases``), averaged over the
activations, mean over seeds with its 95% t interval (the article's recommendation in the
setting people use). Verdict: *supported* when that interval lies above 0; *partly* when it
does not but the same difference with zero weights does (random biases help only when nothing
else breaks the symmetry); *not supported* otherwise.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register
from initlab.studies.settings import accuracy_by_seed, fmt_ci, seed_list
from initlab.studies.symmetry import distinct_units  # one definition of "distinct units" for both studies

NAME = "bias"
CLAIM = (
    "Random initialization for biases is recommended to ensure the model's ability to learn diverse "
    "representations and capture complex patterns; randomly initializing biases helps avoid symmetry issues "
    "(rather than setting them to a fixed value such as zero)."
)
ZERO_BIAS = "zeros"
ZERO_WEIGHTS = "zeros"

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data_options": {},
    "width": 64,  # hidden units per layer
    "depth": 2,  # hidden layers
    "activations": ["relu", "tanh"],
    "biases": ["zeros", "constant(val=0.1)", "normal(std=0.1)"],  # the first is the baseline
    "seeds": 10,
    "epochs": 20,
    "batch_size": 32,
    "lr": 0.05,  # SGD, momentum 0.9
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "data_options": {"limit_train": 10000},
    "width": 128,
    "seeds": 10,
    "epochs": 10,
}


def random_weights_for(activation: str) -> str:
    """The random scheme the article pairs with ``activation``: He for rectifiers, else Xavier."""
    from initlab.activations import canonical
    from initlab.layers import RECTIFIERS

    return "he_normal" if canonical(activation) in RECTIFIERS else "xavier_uniform"


def hidden_layer_units(state: dict[str, torch.Tensor], depth: int) -> list[dict[str, int]]:
    """Per hidden layer ``fc{i}`` of an ``initlab`` MLP state dict: distinct units and weight rank."""
    out = []
    for i in range(1, depth + 1):
        w, b = state[f"fc{i}.weight"], state.get(f"fc{i}.bias")
        out.append(
            {
                "distinct": distinct_units(w, b),
                "rank": int(torch.linalg.matrix_rank(w.double())),
                "width": int(w.shape[0]),
            }
        )
    return out


def zero_weight_units(
    s: dict[str, Any],
    activation: str,
    bias: str,
    seeds: tuple[int, ...],
    dataset: Any,
) -> tuple[list[list[dict[str, int]]], dict[int, float]]:
    """Train the zero-weight members exactly as the comparison did and read their hidden layers.

    Returns the per-member hidden-layer records and the retrained test accuracy per seed (the
    caller checks it against the stored run)."""
    from initlab.engine import Member, TrainConfig, member_state_dict, train
    from initlab.models import build
    from initlab.schemes import scheme_from_spec

    factory = functools.partial(
        build,
        "mlp",
        input_shape=tuple(dataset.input_shape),
        num_classes=dataset.num_classes,
        width=s["width"],
        depth=s["depth"],
        activation=activation,
    )
    members = [Member(scheme_from_spec(ZERO_WEIGHTS), seed, name=ZERO_WEIGHTS) for seed in seeds]
    config = TrainConfig(
        epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], momentum=0.9, bias_init=scheme_from_spec(bias)
    )
    result = train(factory, members, dataset, config)
    layers = [hidden_layer_units(member_state_dict(result.state, e), s["depth"]) for e in range(len(members))]
    return layers, {m.seed: m.test_acc for m in result.members}


def _figure(out, activations, biases, acc, units) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3), gridspec_kw={"width_ratios": [3, 2]})
    colors = {b: plt.get_cmap("tab10")(i) for i, b in enumerate(biases)}
    groups = [(a, w) for a in activations for w in ("random", "zero")]
    bar = 0.8 / len(biases)
    for k, b in enumerate(biases):
        xs, ys, errs = [], [], []
        for g, (a, w) in enumerate(groups):
            m, lo, hi = acc[a][w][b]
            xs.append(g + (k - (len(biases) - 1) / 2) * bar)
            ys.append(m)
            errs.append(0.0 if not math.isfinite(lo) else (hi - lo) / 2)
        left.bar(xs, ys, width=bar, yerr=errs, capsize=2, color=colors[b], label=f"bias {b}")
    left.set_xticks(range(len(groups)), [f"{a}\n{w} weights" for a, w in groups])
    left.set_ylabel("final test accuracy (mean, 95% CI)")
    left.set_ylim(0, 1.05)
    left.grid(axis="y", alpha=0.3)
    left.legend(fontsize=8, loc="upper right")
    left.set_title("accuracy")
    for k, b in enumerate(biases):
        xs = [i + (k - (len(biases) - 1) / 2) * bar for i in range(len(activations))]
        ys = [sum(u[0]["distinct"] for u in units[a][b]) / len(units[a][b]) for a in activations]
        ranks = [sum(u[0]["rank"] for u in units[a][b]) / len(units[a][b]) for a in activations]
        right.bar(xs, ys, width=bar, color=colors[b], label=f"bias {b}")
        right.scatter(xs, ranks, marker="D", color="black", s=18, zorder=3, label="weight rank" if k == 0 else None)
        for x, y in zip(xs, ys):
            right.annotate(f"{y:.0f}", (x, y), ha="center", va="bottom", fontsize=8)
    right.set_xticks(range(len(activations)), activations)
    right.set_ylabel("hidden layer 1 after training (mean over seeds)")
    right.set_title("zero weights: distinct units (bars) and rank (◆)")
    right.grid(axis="y", alpha=0.3)
    right.set_ylim(0, 1.55 * max(u[0]["width"] for a in activations for b in biases for u in units[a][b]))
    right.legend(fontsize=8, loc="upper center", ncol=2)
    fig.suptitle("bias: zero vs constant vs random biases, with random and with zero weights")
    fig.tight_layout()
    path = out / "bias.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Biases zero vs constant vs random, with random weights and with zero weights; see the
    module docstring for the exact design."""
    from initlab.data import load
    from initlab.schemes import canonical_spec

    s = ctx.setting(DEFAULTS, FULL)
    seeds = seed_list(s["seeds"])
    if len(seeds) < 2:
        raise UserError(f"seeds: the paired CI needs at least 2 seeds; got {list(seeds)}")
    activations = list(s["activations"]) if isinstance(s["activations"], (list, tuple)) else [s["activations"]]
    biases = [canonical_spec(b) for b in (s["biases"] if isinstance(s["biases"], (list, tuple)) else [s["biases"]])]
    if len(biases) < 2 or biases[0] != ZERO_BIAS:
        raise UserError(f"biases: the zero baseline first, then at least one other; got {s['biases']!r}")
    random_bias = next((b for b in biases if b.startswith(("normal", "uniform", "trunc_normal"))), biases[-1])
    from initlab.data.split import DEFAULT_FRACTION, with_validation

    # The comparisons train without their validation split: retrain on exactly that training set.
    dataset = with_validation(load(s["dataset"], **s["data_options"]), DEFAULT_FRACTION)

    # acc_seed[a][w][b] = {seed: acc}; w is "random" or "zero"
    acc_seed: dict[str, dict[str, dict[str, dict[int, float]]]] = {}
    diverged: dict[str, dict[str, dict[str, int]]] = {}
    units: dict[str, dict[str, list[list[dict[str, int]]]]] = {}
    experiments, weight_scheme = [], {}
    retrain_gap = 0.0  # largest |retrained - stored| zero-weight accuracy: 0 when the rerun matches
    for a in activations:
        weight_scheme[a] = canonical_spec(random_weights_for(a))
        acc_seed[a] = {"random": {}, "zero": {}}
        diverged[a] = {"random": {}, "zero": {}}
        units[a] = {}
        for b in biases:
            data = ctx.compare(
                schemes=(weight_scheme[a], ZERO_WEIGHTS),
                seeds=seeds,
                dataset=s["dataset"],
                data_options=s["data_options"],
                model="mlp",
                width=s["width"],
                depth=s["depth"],
                activation=a,
                bias_init=b,
                epochs=s["epochs"],
                batch_size=s["batch_size"],
                lr=s["lr"],
                reference=weight_scheme[a],
                chunk_size=2 * len(seeds),
            )
            experiments.append(data.experiment_id)
            by_seed = accuracy_by_seed(data)
            acc_seed[a]["random"][b] = by_seed[weight_scheme[a]]
            acc_seed[a]["zero"][b] = by_seed[ZERO_WEIGHTS]
            rows = {r["scheme"]: r for r in data.summary}
            diverged[a]["random"][b] = rows[weight_scheme[a]]["diverged"]
            diverged[a]["zero"][b] = rows[ZERO_WEIGHTS]["diverged"]
            units[a][b], retrained = zero_weight_units(s, a, b, seeds, dataset)
            retrain_gap = max(retrain_gap, max(abs(retrained[k] - acc_seed[a]["zero"][b][k]) for k in seeds))

    def diff_per_seed(w: str, b: str) -> list[float]:
        """Per seed: acc(bias b) − acc(zero bias) under weights w, averaged over activations."""
        out = []
        for seed in seeds:
            d = [acc_seed[a][w][b][seed] - acc_seed[a][w][ZERO_BIAS][seed] for a in activations]
            out.append(sum(d) / len(d))
        return out

    effect, lo, hi = mean_ci(diff_per_seed("random", random_bias))
    zero_effect = mean_ci(diff_per_seed("zero", random_bias))
    if lo > 0:
        verdict = "supported"
    elif zero_effect[1] > 0:
        verdict = "partly"
    else:
        verdict = "not supported"

    acc_ci = {
        a: {w: {b: mean_ci(list(acc_seed[a][w][b].values())) for b in biases} for w in ("random", "zero")}
        for a in activations
    }
    acc_rows, diff_rows, unit_rows = [], [], []
    evidence_acc: dict[str, Any] = {}
    for a in activations:
        evidence_acc[a] = {}
        for w in ("random", "zero"):
            label = weight_scheme[a] if w == "random" else ZERO_WEIGHTS
            evidence_acc[a][w] = {"weights": label}
            for b in biases:
                m, lo, hi = acc_ci[a][w][b]
                entry: dict[str, Any] = {"mean": m, "ci": [lo, hi], "diverged": diverged[a][w][b]}
                if b != ZERO_BIAS:
                    seeds_ = sorted(acc_seed[a][w][b])
                    d = mean_ci([acc_seed[a][w][b][k] - acc_seed[a][w][ZERO_BIAS][k] for k in seeds_])
                    entry["minus_zero_bias"] = {"mean": d[0], "ci": [d[1], d[2]]}
                    diff_rows.append([a, label, b, fmt_ci(*d)])
                evidence_acc[a][w][b] = entry
                acc_rows.append([a, label, b, fmt_ci(m, lo, hi), str(diverged[a][w][b])])
        for b in biases:
            per_layer = [[u[i] for u in units[a][b]] for i in range(s["depth"])]
            cells = [
                f"{min(x['distinct'] for x in layer)}–{max(x['distinct'] for x in layer)} / rank "
                f"{min(x['rank'] for x in layer)}–{max(x['rank'] for x in layer)}"
                for layer in per_layer
            ]
            unit_rows.append([a, b, *cells])
    zero_units = {
        a: {
            b: {
                "distinct_per_layer": [[u[i]["distinct"] for u in units[a][b]] for i in range(s["depth"])],
                "rank_per_layer": [[u[i]["rank"] for u in units[a][b]] for i in range(s["depth"])],
            }
            for b in biases
        }
        for a in activations
    }
    figure = _figure(ctx.out, activations, biases, acc_ci, units)

    def units_text(b: str) -> str:
        return ", ".join(f"{a}: {sum(u[0]['distinct'] for u in units[a][b]) / len(seeds):.0f}" for a in activations)

    others = "; ".join(f"{b} biases {units_text(b)}" for b in biases if b != random_bias)
    summary = (
        f"With random weights, {random_bias} biases change accuracy by {100 * effect:+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}] vs zero "
        f"biases (mean over {', '.join(activations)}; {s['dataset']}, {len(seeds)} seeds). With zero weights they "
        f"change it by {100 * zero_effect[0]:+.1f} pp [{100 * zero_effect[1]:+.1f}, {100 * zero_effect[2]:+.1f}]. "
        f"Distinct units in "
        f"hidden layer 1 after training from zero weights (of {s['width']}): {others}; {random_bias} biases "
        f"{units_text(random_bias)}."
    )
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"acc({random_bias} bias) − acc(zero bias), random weights",
        summary=summary,
        evidence={
            "random_bias": random_bias,
            "random_weights": weight_scheme,
            "random_weights_effect": {"mean": effect, "ci": [lo, hi]},
            "zero_weights_effect": {"mean": zero_effect[0], "ci": [zero_effect[1], zero_effect[2]]},
            "accuracy": evidence_acc,
            "zero_weight_units": zero_units,
            "width": s["width"],
            "retrained_accuracy_max_gap": retrain_gap,
        },
        tables=[
            (
                "Final test accuracy (mean [95% CI])",
                ["activation", "weights", "bias", "accuracy", "diverged"],
                acc_rows,
            ),
            (
                "Paired difference to zero biases (same seeds)",
                ["activation", "weights", "bias", "acc − acc(zero bias)"],
                diff_rows,
            ),
            (
                "Zero weights after training: distinct units / weight rank per hidden layer (min–max over seeds)",
                ["activation", "bias", *[f"layer {i + 1}" for i in range(s["depth"])]],
                unit_rows,
            ),
        ],
        figures=[figure],
        experiments=experiments,
        settings={**s, "seeds": list(seeds), "biases": biases, "activations": activations},
    )
