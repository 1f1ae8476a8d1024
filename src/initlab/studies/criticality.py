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

Experiment. Tanh MLPs (``initlab.models.mlp``, ``width`` units, ``depth`` hidden layers, digits by
default) over a grid of ``σ_w²`` (``sigma_w2``) and ``depth`` (``depths``): every weight, output
layer included, drawn from ``variance_scaling(scale=σ_w², mode=fan_in, distribution=normal)``
(``N(0, σ_w²/fan_in)``), every bias from ``normal(std=sqrt(σ_b²))`` with ``σ_b² = 0.05``. Each
cell trains ``seeds`` networks for a fixed number of SGD steps (``epochs`` passes, momentum 0.9,
one small learning rate for the whole grid, as in Schoenholz et al.) and records the final test
accuracy. One stored comparison per depth (its schemes are the ``σ_w²`` values; reference: the
value nearest the critical point). ``ξ_c`` comes from ``initlab.theory.depth_scales("tanh", σ_w²,
σ_b²)``; a cell is *inside* when ``depth <= 6 ξ_c``.

Effect: inside minus outside accuracy at equal depth. For each seed, at every depth where the
grid has cells on both sides of ``6 ξ_c``, the mean accuracy of the inside cells minus that of
the outside cells, averaged over those depths; then the mean over seeds with its 95% t
interval. Comparing at equal depth keeps depth itself (deeper trains slower) out of the effect.
Verdict: *supported* when the interval lies above 0. Evidence adds how often the ``6 ξ_c`` line
predicts whether a cell trains (mean accuracy above halfway between chance and the best cell),
and the outside accuracy on the small-weight and the large-weight side separately.
"""

from __future__ import annotations

import math
from typing import Any

from initlab import checks
from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register
from initlab.studies.settings import accuracy_by_seed, int_list, positive_list, seed_list

NAME = "criticality"
CLAIM = (
    "If weights are set too large or too small, the network may struggle to learn and take longer to converge. "
    "Optimal weight initialization can prevent issues such as vanishing or exploding gradients."
)
ACTIVATION = "tanh"
TRAINABLE_DEPTH_FACTOR = 6.0  # Schoenholz et al. 2017: trainable up to about 6 xi_c layers

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data_options": {},
    "width": 64,  # units per hidden layer
    "depths": [4, 8, 16, 32, 48],  # hidden tanh layers
    "sigma_w2": [0.5, 1.0, 1.5, 1.76, 2.5, 4.0, 8.0],  # weight variance x fan_in
    "sigma_b2": 0.05,  # bias variance
    "seeds": 3,
    "epochs": 8,
    "batch_size": 32,
    "lr": 0.002,  # SGD, momentum 0.9: small enough for the 48-layer nets near criticality
    "curve_points": 25,  # sigma_w2 values at which the 6 xi_c line of the figure is computed
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "data_options": {"limit_train": 10000},
    "width": 128,
    "depths": [4, 8, 16, 32, 64, 128],
    "sigma_w2": [0.5, 1.0, 1.25, 1.5, 1.76, 2.0, 2.5, 3.0, 4.0, 6.0, 8.0],
    "seeds": 5,
    "epochs": 5,
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


def _figure(out, sigmas, depths, mean_acc, curve, critical, chance, sigma_b2) -> Any:
    """Heatmap on evenly spaced cells; the 6 ξ_c line is placed by log-linear interpolation
    between the cell centres (σ_w² and depth are both roughly geometric grids)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    log_s = np.log(np.asarray(sigmas, dtype=float))
    log_d = np.log2(np.asarray(depths, dtype=float))

    def x_of(sigma: float) -> float:
        return float(np.interp(math.log(sigma), log_s, np.arange(len(sigmas)))) if len(sigmas) > 1 else 0.0

    def y_of(depth: float) -> float:
        if not math.isfinite(depth):
            return len(depths) - 0.5
        y = float(np.interp(math.log2(depth), log_d, np.arange(len(depths)))) if len(depths) > 1 else 0.0
        if depth > depths[-1]:
            y = len(depths) - 0.5  # above the grid: draw along its top edge
        elif depth < depths[0]:
            y = -0.5
        return y

    grid = np.array([[mean_acc[d][sw] for sw in sigmas] for d in depths])
    fig, ax = plt.subplots(figsize=(8.5, 5.6))
    mesh = ax.imshow(
        grid,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=chance,
        vmax=1.0,
        extent=(-0.5, len(sigmas) - 0.5, -0.5, len(depths) - 0.5),
    )
    for i in range(len(depths)):
        for j in range(len(sigmas)):
            value = grid[i, j]
            ax.text(
                j,
                i,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value < (chance + 1) / 2 else "black",
            )
    ax.plot(
        [x_of(x) for x, _ in curve],
        [y_of(y) for _, y in curve],
        color="red",
        lw=2.5,
        label=r"$6\,\xi_c$: mean-field trainable depth (cells below it: inside)",
    )
    if sigmas[0] <= critical <= sigmas[-1]:
        ax.axvline(x_of(critical), color="red", ls="--", lw=1, label=rf"critical $\sigma_w^2$ = {critical:.3g}")
    ax.set_xticks(range(len(sigmas)), [f"{s:g}" for s in sigmas])
    ax.set_yticks(range(len(depths)), [str(d) for d in depths])
    ax.set_xlim(-0.5, len(sigmas) - 0.5)
    ax.set_ylim(-0.5, len(depths) - 0.5)
    ax.set_xlabel(r"$\sigma_w^2$ (weight variance × fan-in)")
    ax.set_ylabel("depth (hidden tanh layers)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8)
    fig.colorbar(mesh, ax=ax, label="test accuracy after a fixed number of steps (mean over seeds)")
    ax.set_title(rf"criticality: tanh MLPs, $\sigma_b^2$ = {sigma_b2:g}, accuracy vs mean-field depth scale")
    fig.tight_layout()
    path = out / "criticality.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Tanh MLPs over a (σ_w², depth) grid at σ_b² = 0.05: accuracy after a fixed number of steps
    against the mean-field trainable depth 6 ξ_c; see the module docstring for the exact design."""
    import numpy as np

    from initlab import theory
    from initlab.data import load

    s = ctx.setting(DEFAULTS, FULL)
    seeds = seed_list(s["seeds"])
    if len(seeds) < 2:
        raise UserError(f"seeds: the CI over seeds needs at least 2 seeds; got {list(seeds)}")
    depths = int_list("depths", s["depths"], 1)
    sigmas = positive_list("sigma_w2", s["sigma_w2"])
    sigma_b2 = checks.real("sigma_b2", s["sigma_b2"], low=0.0)
    curve_points = checks.integer("curve_points", s["curve_points"], minimum=2)

    cache: dict[float, float] = {}
    bound = {sw: trainable_depth(sw, sigma_b2, cache) for sw in sigmas}
    inside = {d: {sw: d <= bound[sw] for sw in sigmas} for d in depths}
    if not any(any(v.values()) and not all(v.values()) for v in inside.values()):
        raise UserError(
            f"no depth in {depths} has sigma_w2 values on both sides of 6 xi_c "
            f"({', '.join(f'{sw:g}: {bound[sw]:.3g}' for sw in sigmas)}); widen depths or sigma_w2"
        )
    critical = theory.critical_sigma_w2(ACTIVATION, sigma_b2) if sigma_b2 > 0 else 1.0
    specs = {sw: weight_scheme(sw) for sw in sigmas}
    reference = specs[min(sigmas, key=lambda sw: abs(math.log(sw / critical)))]
    dataset = load(s["dataset"], **s["data_options"])

    acc: dict[int, dict[float, dict[int, float]]] = {}
    diverged: dict[int, dict[float, int]] = {}
    experiments = []
    for d in depths:
        data = ctx.compare(
            schemes=tuple(specs[sw] for sw in sigmas),
            seeds=seeds,
            dataset=s["dataset"],
            data_options=s["data_options"],
            model="mlp",
            activation=ACTIVATION,
            width=s["width"],
            depth=d,
            bias_init=bias_scheme(sigma_b2),
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            lr=s["lr"],
            reference=reference,
            chunk_size=len(sigmas) * len(seeds),
        )
        experiments.append(data.experiment_id)
        by_seed = accuracy_by_seed(data)
        acc[d] = {sw: by_seed[specs[sw]] for sw in sigmas}
        rows = {r["scheme"]: r for r in data.summary}
        diverged[d] = {sw: rows[specs[sw]]["diverged"] for sw in sigmas}

    per_seed, matched = depth_matched_effect(acc, inside, seeds)
    effect, lo, hi = mean_ci(per_seed)
    verdict = "supported" if lo > 0 else "not supported"

    mean_acc = {d: {sw: float(np.mean([acc[d][sw][k] for k in seeds])) for sw in sigmas} for d in depths}
    chance = 1.0 / dataset.num_classes
    best = max(v for row in mean_acc.values() for v in row.values())
    trains_at = chance + 0.5 * (best - chance)
    cells = [(d, sw) for d in depths for sw in sigmas]
    agree = sum((mean_acc[d][sw] >= trains_at) == inside[d][sw] for d, sw in cells) / len(cells)

    def side_mean(pred) -> float:
        vals = [mean_acc[d][sw] for d, sw in cells if not inside[d][sw] and pred(sw)]
        return float(np.mean(vals)) if vals else math.nan

    outside_small, outside_large = side_mean(lambda sw: sw < critical), side_mean(lambda sw: sw > critical)
    inside_mean = float(np.mean([mean_acc[d][sw] for d, sw in cells if inside[d][sw]]))

    curve_x = sorted(
        set(np.geomspace(min(sigmas), max(sigmas), curve_points).tolist())
        | set(sigmas)
        | ({critical} if min(sigmas) < critical < max(sigmas) else set())
    )
    curve = [(x, trainable_depth(x, sigma_b2, cache) if x != critical else math.inf) for x in curve_x]
    figure = _figure(ctx.out, sigmas, depths, mean_acc, curve, critical, chance, sigma_b2)

    header = ["depth"] + [f"σw²={sw:g} (6ξc={bound[sw]:.3g})" for sw in sigmas]
    acc_rows = [
        [str(d)]
        + [
            f"{mean_acc[d][sw]:.3f}{'' if inside[d][sw] else ' ✗'}"
            + (f" ({diverged[d][sw]} div)" if diverged[d][sw] else "")
            for sw in sigmas
        ]
        for d in depths
    ]
    theory_rows = []
    for sw in sigmas:
        xi_c = bound[sw] / TRAINABLE_DEPTH_FACTOR
        chi = theory.chi1(ACTIVATION, sw, sigma_b2)
        theory_rows.append([f"{sw:g}", f"{chi:.3f}", f"{xi_c:.3g}", f"{bound[sw]:.3g}", _phase(sw, critical)])
    steps = s["epochs"] * math.ceil(dataset.x_train.shape[0] / s["batch_size"])
    summary = (
        f"Tanh MLPs ({s['dataset']}, width {s['width']}, {steps} SGD steps, {len(seeds)} seeds): cells inside the "
        f"mean-field trainable depth 6ξc reach {100 * inside_mean:.1f}% mean test accuracy, cells beyond it "
        f"{_num(outside_small)} on the small-weight side and {_num(outside_large)} on the large-weight side; at equal "
        f"depth, inside − outside = {100 * effect:+.1f} pp [{100 * lo:+.1f}, {100 * hi:+.1f}]. The 6ξc line predicts whether a cell "
        f"trains (accuracy ≥ {trains_at:.2f}) for {agree:.0%} of the {len(cells)} cells."
    )
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label="acc inside 6ξc − acc outside (equal depth)",
        summary=summary,
        evidence={
            "critical_sigma_w2": critical,
            "sigma_b2": sigma_b2,
            "trainable_depth": {f"{sw:g}": bound[sw] for sw in sigmas},
            "mean_accuracy": {str(d): {f"{sw:g}": mean_acc[d][sw] for sw in sigmas} for d in depths},
            "inside": {str(d): {f"{sw:g}": inside[d][sw] for sw in sigmas} for d in depths},
            "effect_per_seed": per_seed,
            "matched_depths": matched,
            "inside_mean": inside_mean,
            "outside_small_weights_mean": outside_small,
            "outside_large_weights_mean": outside_large,
            "trains_threshold": trains_at,
            "prediction_agreement": agree,
            "steps": steps,
        },
        tables=[
            ("Mean test accuracy per (depth, σw²); ✗ = beyond 6ξc", header, acc_rows),
            (f"Mean-field theory for tanh at σb² = {sigma_b2:g}", ["σw²", "χ1", "ξc", "6ξc", "phase"], theory_rows),
        ],
        figures=[figure],
        experiments=experiments,
        settings={**s, "seeds": list(seeds), "depths": depths, "sigma_w2": sigmas},
    )
