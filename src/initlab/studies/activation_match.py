"""Study ``activation-match``: is Xavier best for sigmoid/tanh and He best for ReLU?

The experiment
--------------
The article's comparison table pairs Xavier with sigmoid and tanh and He with ReLU. Every
activation in {sigmoid, tanh, ReLU, GELU} is crossed with every scheme in {``xavier_uniform``
(gain 1), ``he_normal`` (gain sqrt 2, fan-in), ``lecun_normal`` (``Var W = 1/fan_in``),
``orthogonal`` (gain 1)}; biases zero. Default model and training: digits, an MLP of 4 hidden
layers of 128 units (deep enough for the scale of the weights to matter, shallow enough to be
the kind of net the article's table speaks of), SGD with momentum 0.9 at lr 0.05, batch 32,
10 epochs, 10 seeds. One stored comparison per activation; the response is the final test
accuracy.

Tests: for each activation the article names, the scheme it recommends (Xavier for sigmoid
and tanh, He for ReLU) is paired by seed against each of the other three schemes (paired
t-tests on the accuracy differences; all 9 p-values Holm-corrected together). Per activation:

- **supported**: the recommended scheme beats the article's alternative (He for sigmoid/tanh,
  Xavier for ReLU) with Holm-adjusted p < 0.05 and no scheme beats it significantly;
- **contradicted**: some scheme beats the recommended one significantly;
- **no clear difference** otherwise.

Verdict: ``supported`` when every named activation is supported, ``not supported`` when none
is, ``partly`` otherwise. Effect: the matched-minus-mismatched advantage, per seed the mean
over the named activations of ``acc(recommended) - acc(alternative)``, with its Student t 95% CI
over seeds. GELU (not in the article's table) is measured and reported without a test.

Source: the article's "Comparison of Initialization Techniques" table; Glorot & Bengio (2010)
derive Xavier for symmetric activations linear at 0 (tanh; sigmoid is neither); He et al.
(2015) derive the factor 2 for ReLU.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register

CLAIM = (
    "\"Xavier initialization is effective for networks with sigmoid or hyperbolic tangent activation functions\"; "
    "He initialization is \"an improved initialization technique for networks using the Rectified Linear Unit (ReLU)\" "
    "(the table: Xavier — Sigmoid, Tanh; He — ReLU)."
)

# The article's pairing: activation -> (recommended scheme, the alternative it is preferred to)
RECOMMENDED = {"sigmoid": ("xavier_uniform", "he_normal"), "tanh": ("xavier_uniform", "he_normal"),
               "relu": ("he_normal", "xavier_uniform")}
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,  # training samples kept (None: all)
    "activations": ["sigmoid", "tanh", "relu", "gelu"],
    "schemes": ["xavier_uniform", "he_normal", "lecun_normal", "orthogonal"],
    "width": 128,
    "depth": 4,  # hidden layers
    "epochs": 10,
    "seeds": 10,
    "lr": 0.05,  # SGD, momentum 0.9
    "batch_size": 32,
}
FULL: dict[str, Any] = {"dataset": "fashion-mnist", "limit_train": 20000, "width": 256, "epochs": 5}
ALPHA = 0.05


def _plot(path: Path, activations: list[str], schemes: list[str], accuracy: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(activations) + 1), 4.3))
    bar = 0.8 / len(schemes)
    colors = plt.get_cmap("tab10").colors
    for j, sch in enumerate(schemes):
        xs, means, errs = [], [], []
        for i, act in enumerate(activations):
            m, _, hi = mean_ci(accuracy[act][sch])
            xs.append(i + (j - (len(schemes) - 1) / 2) * bar)
            means.append(100 * m)
            errs.append(0.0 if not math.isfinite(hi) else 100 * (hi - m))
        ax.bar(xs, means, bar, yerr=errs, capsize=2, label=sch, color=colors[j % len(colors)])
    for i, act in enumerate(activations):
        if act in RECOMMENDED:
            ax.annotate("article: " + RECOMMENDED[act][0].split("_")[0], (i, 101), ha="center", fontsize=8)
    ax.set_xticks(range(len(activations)), activations)
    ax.set_ylim(0, 108)
    ax.set_ylabel("final test accuracy (%, mean and 95% CI)")
    ax.set_title("Scheme x activation")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(schemes))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register("activation-match", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Activations {sigmoid, tanh, ReLU, GELU} x schemes {Xavier, He, LeCun, orthogonal}: is the
    article's recommended scheme the best one? (protocol and verdict rule in the module docstring)"""
    from initlab.activations import canonical
    from initlab.schemes import canonical_spec
    from initlab.stats import holm, paired_test
    from initlab.studies.settings import as_list, seed_list

    s = ctx.setting(DEFAULTS, FULL)
    activations = [canonical(a) for a in as_list(s["activations"])]
    schemes = [canonical_spec(x) for x in as_list(s["schemes"])]
    if "xavier_uniform" not in schemes or "he_normal" not in schemes:
        raise UserError(f"schemes: must include xavier_uniform and he_normal (the article's pair); got {s['schemes']}")
    named = [a for a in activations if a in RECOMMENDED]
    if not named:
        raise UserError(f"activations: need at least one of {', '.join(RECOMMENDED)}; got {s['activations']}")
    seeds = seed_list(s["seeds"])
    data_options = {"limit_train": int(s["limit_train"])} if s["limit_train"] else {}

    accuracy: dict[str, dict[str, list[float]]] = {}
    experiments = []
    for act in activations:
        reference = RECOMMENDED.get(act, ("he_normal",))[0]
        data = ctx.compare(schemes=tuple(schemes), seeds=seeds, dataset=s["dataset"], width=s["width"],
                           depth=s["depth"], activation=act, epochs=s["epochs"], lr=s["lr"],
                           batch_size=s["batch_size"], reference=reference, paired_test="t",
                           data_options=data_options)
        experiments.append(data.experiment_id)
        runs = {(r["scheme"], r["seed"]): r["test_acc"] for r in data.runs}
        accuracy[act] = {sch: [runs[(sch, k)] for k in seeds] for sch in schemes}

    tests = []  # (activation, recommended, other, mean diff, ci, p)
    for act in named:
        rec = RECOMMENDED[act][0]
        for other in schemes:
            if other == rec:
                continue
            diffs = [a - b for a, b in zip(accuracy[act][rec], accuracy[act][other])]
            mean, lo, hi = mean_ci(diffs)
            _, p = paired_test(accuracy[act][rec], accuracy[act][other], "t")
            tests.append({"activation": act, "recommended": rec, "other": other, "mean": mean, "ci": [lo, hi], "p": p})
    for t, p_holm in zip(tests, holm([t["p"] for t in tests])):
        t["p_holm"] = p_holm

    outcome = {}
    for act in named:
        rec, alt = RECOMMENDED[act]
        mine = [t for t in tests if t["activation"] == act]
        beaten = [t["other"] for t in mine if t["mean"] < 0 and t["p_holm"] < ALPHA]
        beats_alt = any(t["other"] == alt and t["mean"] > 0 and t["p_holm"] < ALPHA for t in mine)
        outcome[act] = ("contradicted" if beaten else "supported" if beats_alt else "no clear difference")
    n_supported = sum(o == "supported" for o in outcome.values())
    verdict = "supported" if n_supported == len(named) else "not supported" if n_supported == 0 else "partly"

    per_seed = [sum(accuracy[a][RECOMMENDED[a][0]][i] - accuracy[a][RECOMMENDED[a][1]][i] for a in named) / len(named)
                for i in range(len(seeds))]
    effect, lo, hi = mean_ci(per_seed)

    def best(act: str) -> str:
        return max(schemes, key=lambda x: mean_ci(accuracy[act][x])[0])

    evidence = {
        "accuracy": accuracy,
        "mean_accuracy": {a: {x: mean_ci(accuracy[a][x])[0] for x in schemes} for a in activations},
        "best_scheme": {a: best(a) for a in activations},
        "tests": tests,
        "outcome": outcome,
        "matched_minus_mismatched": {"mean": effect, "ci": [lo, hi], "per_seed": per_seed},
        "seeds": list(seeds),
    }

    acc_rows = []
    for act in activations:
        top = best(act)
        row = [act + ("" if act in RECOMMENDED else " (no claim)")]
        for sch in schemes:
            m, a, b = mean_ci(accuracy[act][sch])
            mark = "*" if sch == top else ""
            ci = f" [{100 * a:.1f}, {100 * b:.1f}]" if len(seeds) > 1 else ""
            row.append(f"{100 * m:.1f}{mark}{ci}")
        row.append(RECOMMENDED[act][0] if act in RECOMMENDED else "—")
        acc_rows.append(row)
    test_rows = [[t["activation"], t["recommended"], t["other"],
                  f"{100 * t['mean']:+.1f} [{100 * t['ci'][0]:+.1f}, {100 * t['ci'][1]:+.1f}]",
                  f"{t['p']:.2g}", f"{t['p_holm']:.2g}", outcome[t["activation"]]] for t in tests]
    figure = _plot(ctx.out / "activation_match.png", activations, schemes, accuracy)
    parts = [f"{a}: {outcome[a]} (best {best(a)}, {100 * mean_ci(accuracy[a][best(a)])[0]:.1f}%; "
             f"{RECOMMENDED[a][0]} {100 * mean_ci(accuracy[a][RECOMMENDED[a][0]])[0]:.1f}% vs "
             f"{RECOMMENDED[a][1]} {100 * mean_ci(accuracy[a][RECOMMENDED[a][1]])[0]:.1f}%)" for a in named]
    summary = (f"Depth-{s['depth']} MLPs on {s['dataset']}, {len(seeds)} seeds. " + "; ".join(parts) + ". "
               + (f"GELU's best: {best('gelu')}." if "gelu" in activations else ""))
    return StudyResult(
        study="activation-match", claim=CLAIM, verdict=verdict, effect=effect, ci=(lo, hi),
        effect_label="test accuracy, recommended − alternative scheme, mean over " + "/".join(named)
                     + " (paired by seed)",
        summary=summary, evidence=evidence,
        tables=[
            (f"Final test accuracy % (mean [95% CI], {len(seeds)} seeds; * best per activation)",
             ["activation", *schemes, "article recommends"], acc_rows),
            ("The recommended scheme vs each other scheme: Δ accuracy pts (95% CI), paired t, Holm over all tests",
             ["activation", "recommended", "vs", "Δ pts (95% CI)", "p", "p Holm", "outcome"], test_rows),
        ],
        figures=[figure], experiments=experiments, settings=s,
    )
