"""Study ``normalization``: does BatchNorm or LayerNorm make the choice of initialization irrelevant?

The article's third misconception: "Some people believe that neural network weight
initialization is not a critical factor in the success of training a model. This misconception
arises from the fact that some well-known architectures can learn effectively even with random
weight initialization. However, weight initialization does play an important role [...]".
Normalization layers are the usual reason for the belief: BatchNorm (Ioffe & Szegedy 2015)
makes a layer's output invariant to the scale of its weights, so only the direction of each
weight row matters at init.

Experiment. A plain MLP (``normalized_mlp``: ``depth`` hidden layers of ``width`` units, each
``Linear → [norm] → activation``, ReLU, digits by default) in three versions, ``norm`` = none,
``batch`` (``BatchNorm1d``) and ``layer`` (``LayerNorm``), each trained from the article's
random schemes (its ten minus ``zeros`` and ``constant``, which no normalization can rescue:
every unit of a layer stays identical, see the ``symmetry`` study): ``random_uniform``
(U(±0.05)), ``random_normal`` (N(0, 0.01²)), ``xavier_uniform``, ``he_normal``,
``orthogonal``, ``sparse``, ``uniform_fan`` and ``positive``. Biases zero, norm gains 1 and
shifts 0; the same seeds (data order) for every scheme and normalization; SGD with momentum 0.9,
one learning rate. One stored comparison per normalization.

Spread between schemes, per normalization: the standard deviation (ddof=1) of the schemes' mean
final test accuracies, and the range (best − worst scheme mean). Their 95% CIs come from a
bootstrap over seeds (``bootstrap`` resamples, seeds drawn with replacement from a
``torch.Generator`` seeded 0, the same resample for every scheme and normalization, percentile
interval). Effect: how much the std of scheme means shrinks from no normalization to the first
normalization in ``norms`` (BatchNorm by default): ``spread(none) − spread(batch)``.

Verdict on the article's claim that initialization matters: for each normalization the paired
difference best − worst scheme (the two picked by mean; a 95% t interval over seeds) tells
whether the choice of scheme changes accuracy by more than ``matters`` (2 accuracy points).
*supported*: it does with and without every normalization; *partly*: it does without
normalization but not with at least one normalization (normalization makes the belief true
there); *not supported*: it does not even without normalization.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from initlab.errors import UserError
from initlab.schemes import ARTICLE_SCHEMES
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register
from initlab.studies.settings import accuracy_by_seed, fixed_lr_compare, fmt_ci, seed_list

NAME = "normalization"
CLAIM = (
    "Some people believe that neural network weight initialization is not a critical factor in the success of "
    "training a model [...] However, weight initialization does play an important role in determining the "
    "initial state of the network and can greatly impact its convergence rate and the quality of the learned "
    "representation."
)
MODEL = "initlab.studies.normalization:normalized_mlp"
NORMS = ("none", "batch", "layer")
BASELINE = "none"
REFERENCE = "he_normal"  # the scheme the stored comparisons pair the others against

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "data_options": {},
    "width": 64,  # units per hidden layer
    "depth": 6,  # hidden layers
    "activation": "relu",
    "schemes": [s for s in ARTICLE_SCHEMES if s not in ("zeros", "constant")],  # the article's random ones
    "norms": ["none", "batch", "layer"],  # "none" first: the baseline
    "seeds": 5,
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.05,  # SGD, momentum 0.9
    "matters": 0.02,  # accuracy difference (fraction) from which the choice of scheme "matters"
    "bootstrap": 2000,  # resamples of the seeds for the spread CIs
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "data_options": {"limit_train": 10000},
    "width": 128,
    "depth": 8,
    "seeds": 8,
    "epochs": 10,
}


def normalized_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    width: int = 64,
    depth: int = 6,
    activation: str = "relu",
    norm: str | None = None,
) -> nn.Sequential:
    """``flatten → (fc{i} → [norm{i}] → act{i}) × depth → out``.

    ``norm``: ``None``/``"none"`` (a plain MLP, the same layers as ``initlab.models.mlp``),
    ``"batch"`` (``BatchNorm1d``: per unit over the batch; running statistics at eval) or
    ``"layer"`` (``LayerNorm``: per sample over the units), placed between each hidden Linear and
    its activation as in Ioffe & Szegedy 2015. The output Linear has no normalization.
    """
    from initlab.activations import activation_module, canonical
    from initlab.models.nets import _int, _shape

    if norm in (None, "none"):
        norm = None
    elif norm not in ("batch", "layer"):
        raise UserError(f"norm={norm!r} is invalid; allowed: 'none', 'batch', 'layer'")
    shape = _shape(input_shape)
    num_classes, width, depth = _int("num_classes", num_classes, 1), _int("width", width, 1), _int("depth", depth, 1)
    act = canonical(activation)
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    fan_in = math.prod(shape)
    for i in range(1, depth + 1):
        layers[f"fc{i}"] = nn.Linear(fan_in, width)
        if norm == "batch":
            layers[f"norm{i}"] = nn.BatchNorm1d(width)
        elif norm == "layer":
            layers[f"norm{i}"] = nn.LayerNorm(width)
        layers[f"act{i}"] = activation_module(act)
        fan_in = width
    layers["out"] = nn.Linear(fan_in, num_classes)
    return nn.Sequential(layers)


def spreads(acc: dict[str, dict[int, float]], seeds: Sequence[int]) -> tuple[float, float]:
    """(std with ddof=1, range) of the schemes' mean accuracy over ``seeds`` (repeats allowed)."""
    means = torch.tensor([sum(acc[s][k] for k in seeds) / len(seeds) for s in acc], dtype=torch.float64)
    std = float(means.std(unbiased=True)) if means.numel() > 1 else math.nan
    return std, float(means.max() - means.min())


DEGENERATE_MARGIN = 0.1  # a scheme within 10 points of chance in some normalization did not train there


def degenerate_schemes(means: dict[str, dict[str, float]], chance: float) -> list[str]:
    """Schemes whose mean accuracy is within ``DEGENERATE_MARGIN`` of chance under some
    normalization (``means[norm][scheme]``): they did not train there, whatever the reason."""
    schemes = next(iter(means.values()), {})
    return [sc for sc in schemes if any(m[sc] <= chance + DEGENERATE_MARGIN for m in means.values())]


def bootstrap_spreads(
    acc: dict[str, dict[str, dict[int, float]]],
    seeds: Sequence[int],
    resamples: int,
) -> dict[str, dict[str, list[float]]]:
    """Bootstrap distribution of (std, range) per normalization and of the std difference to none.

    Every resample draws ``len(seeds)`` seeds with replacement (``torch.Generator`` seeded 0) and
    uses them for every normalization and scheme, so differences between normalizations are paired.
    """
    gen = torch.Generator().manual_seed(0)
    draws = torch.randint(len(seeds), (resamples, len(seeds)), generator=gen).tolist()
    out: dict[str, dict[str, list[float]]] = {n: {"std": [], "range": []} for n in acc}
    for row in draws:
        picked = [seeds[i] for i in row]
        for n in acc:
            std, rng = spreads(acc[n], picked)
            out[n]["std"].append(std)
            out[n]["range"].append(rng)
    return out


def percentile_ci(values: Sequence[float]) -> tuple[float, float]:
    v = torch.tensor([x for x in values if math.isfinite(x)], dtype=torch.float64)
    if v.numel() == 0:
        return math.nan, math.nan
    return float(torch.quantile(v, 0.025)), float(torch.quantile(v, 0.975))


def _figure(out, norms, schemes, stats, spread_ci) -> Any:
    from initlab.plotting import new_figure, palette, save, style

    fig, (left, right) = new_figure(2, size=(13, 4.5), gridspec_kw={"width_ratios": [3, 1.2]})
    colors = palette(norms)
    for k, n in enumerate(norms):
        xs = [i + (k - (len(norms) - 1) / 2) * 0.22 for i in range(len(schemes))]
        ys = [stats[n][s][0] for s in schemes]
        errs = [
            [y - stats[n][s][1] if math.isfinite(stats[n][s][1]) else 0 for y, s in zip(ys, schemes)],
            [stats[n][s][2] - y if math.isfinite(stats[n][s][2]) else 0 for y, s in zip(ys, schemes)],
        ]
        left.errorbar(xs, ys, yerr=errs, fmt="o", capsize=2, color=colors[n], label=f"norm: {n}")
    left.set_xticks(range(len(schemes)), schemes, rotation=30, ha="right")
    left.set_ylim(0, 1.02)
    style(
        left,
        ylabel="final test accuracy (mean, 95% CI)",
        title="accuracy per scheme",
        grid="y",
        legend={"loc": "lower left"},
    )
    values = [spread_ci[n]["std"][0] for n in norms]
    errs = [
        [v - spread_ci[n]["std"][1] for v, n in zip(values, norms)],
        [spread_ci[n]["std"][2] - v for v, n in zip(values, norms)],
    ]
    right.bar(range(len(norms)), values, yerr=errs, capsize=3, color=[colors[n] for n in norms])
    right.set_xticks(range(len(norms)), norms)
    style(right, ylabel="std of scheme means (bootstrap 95% CI)", title="spread between schemes", grid="y")
    title = "normalization: does BatchNorm/LayerNorm make the initialization irrelevant?"
    return save(fig, out / "normalization.png", title=title)


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], tuple[int, ...], list[str], list[str]]:
    from initlab.schemes import canonical_spec

    s = ctx.setting(DEFAULTS, FULL)
    seeds = seed_list(s["seeds"])
    if len(seeds) < 2:
        raise UserError(f"seeds: the CIs need at least 2 seeds; got {list(seeds)}")
    schemes = [canonical_spec(x) for x in (s["schemes"] if isinstance(s["schemes"], (list, tuple)) else [s["schemes"]])]
    if len(schemes) < 2:
        raise UserError(f"schemes: a spread needs at least 2 schemes; got {s['schemes']!r}")
    norms = list(s["norms"]) if isinstance(s["norms"], (list, tuple)) else [s["norms"]]
    bad = [n for n in norms if n not in NORMS]
    if bad or len(norms) < 2 or norms[0] != BASELINE or len(set(norms)) != len(norms):
        raise UserError(f"norms: 'none' first, then one or more of 'batch', 'layer'; got {s['norms']!r}")
    matters = s["matters"]
    if isinstance(matters, bool) or not isinstance(matters, (int, float)) or not 0 <= matters < 1:
        raise UserError(f"matters: an accuracy difference in [0, 1); got {matters!r}")
    resamples = s["bootstrap"]
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise UserError(f"bootstrap: an integer >= 100; got {resamples!r}")
    return s, seeds, schemes, norms


def measure(ctx: StudyContext, s: dict[str, Any], seeds: tuple[int, ...], schemes: list[str], norms: list[str]):
    """One stored comparison per normalization: per-seed accuracies, summary rows, experiment ids."""
    acc: dict[str, dict[str, dict[int, float]]] = {}
    rows_by_norm: dict[str, dict[str, dict]] = {}
    experiments = []
    for n in norms:
        data = fixed_lr_compare(
            ctx,
            s,
            seeds,
            schemes,
            model=MODEL,
            model_options={"norm": n},
            width=s["width"],
            depth=s["depth"],
            activation=s["activation"],
            reference=REFERENCE if REFERENCE in schemes else schemes[0],
        )
        experiments.append(data.experiment_id)
        by_seed = accuracy_by_seed(data)
        acc[n] = {sc: by_seed[sc] for sc in schemes}
        rows_by_norm[n] = {r["scheme"]: r for r in data.summary}
    return acc, rows_by_norm, experiments


@dataclass
class Spread:
    """The spread between schemes per normalization, from the per-seed accuracies."""

    stats: dict[str, dict[str, tuple[float, float, float]]]  # norm -> scheme -> (mean, ci_low, ci_high)
    point: dict[str, tuple[float, float]]  # norm -> (std, range) of scheme means
    degenerate: list[str]
    point_trainable: dict[str, tuple[float, float]]  # the same without the degenerate schemes
    spread_ci: dict[str, dict[str, tuple[float, float, float]]]  # norm -> std/range -> (value, lo, hi)
    shrink: dict[str, tuple[float, float, float]]  # norm -> std(none) − std(norm), with its CI
    best_minus_worst: dict[str, dict[str, Any]]


def spread(acc, seeds, schemes: list[str], norms: list[str], resamples: int, matters: float, chance: float) -> Spread:
    """Scheme means, spreads with bootstrap CIs, the degenerate schemes, best − worst per norm."""
    stats = {n: {sc: mean_ci(list(acc[n][sc].values())) for sc in schemes} for n in norms}
    point = {n: spreads(acc[n], seeds) for n in norms}
    degenerate = degenerate_schemes({n: {sc: stats[n][sc][0] for sc in schemes} for n in norms}, chance)
    trainable = [sc for sc in schemes if sc not in degenerate]
    # The spread without the schemes that did not train somewhere: is it the scheme, or one failure?
    point_trainable = {
        n: spreads({sc: acc[n][sc] for sc in trainable}, seeds) if len(trainable) > 1 else (math.nan, math.nan)
        for n in norms
    }
    boot = bootstrap_spreads(acc, seeds, resamples)
    spread_ci = {
        n: {
            "std": (point[n][0], *percentile_ci(boot[n]["std"])),
            "range": (point[n][1], *percentile_ci(boot[n]["range"])),
        }
        for n in norms
    }
    shrink = {
        n: (
            point[BASELINE][0] - point[n][0],
            *percentile_ci([a - b for a, b in zip(boot[BASELINE]["std"], boot[n]["std"])]),
        )
        for n in norms[1:]
    }
    best_minus_worst = {}
    for n in norms:
        best = max(schemes, key=lambda sc: stats[n][sc][0])
        worst = min(schemes, key=lambda sc: stats[n][sc][0])
        d = mean_ci([acc[n][best][k] - acc[n][worst][k] for k in seeds])
        near = [sc for sc in schemes if stats[n][best][0] - stats[n][sc][0] <= matters]
        best_minus_worst[n] = {
            "best": best,
            "worst": worst,
            "mean": d[0],
            "ci": [d[1], d[2]],
            "matters": bool(d[1] > matters),
            "near_best": near,
        }
    return Spread(stats, point, degenerate, point_trainable, spread_ci, shrink, best_minus_worst)


def judge(matters_by_norm: dict[str, bool]) -> str:
    """Pure: whether best − worst exceeds ``matters`` per normalization (baseline first) -> verdict:
    *not supported* when not even without normalization, *supported* when under every one, else *partly*."""
    if not matters_by_norm[BASELINE]:
        return "not supported"
    return "supported" if all(matters_by_norm.values()) else "partly"


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """The spread of accuracy between the article's random schemes without normalization, with
    BatchNorm and with LayerNorm; see the module docstring for the exact design."""
    from initlab.data import load

    s, seeds, schemes, norms = _read_settings(ctx)
    acc, rows_by_norm, experiments = measure(ctx, s, seeds, schemes, norms)
    chance = 1.0 / load(s["dataset"], **s["data_options"]).num_classes
    sp = spread(acc, seeds, schemes, norms, s["bootstrap"], s["matters"], chance)
    verdict = judge({n: sp.best_minus_worst[n]["matters"] for n in norms})
    return present(ctx, s, seeds, schemes, norms, rows_by_norm, sp, verdict, experiments)


def _tables(schemes, norms, rows_by_norm, sp: Spread, matters: float) -> list:
    acc_rows = []
    for sc in schemes:
        acc_rows.append(
            [sc]
            + [
                fmt_ci(*sp.stats[n][sc])
                + (f" ({rows_by_norm[n][sc]['diverged']} div)" if rows_by_norm[n][sc]["diverged"] else "")
                for n in norms
            ]
        )
    spread_rows = []
    for n in norms:
        bw = sp.best_minus_worst[n]
        spread_rows.append(
            [
                n,
                fmt_ci(*sp.spread_ci[n]["std"]),
                fmt_ci(*sp.spread_ci[n]["range"]),
                f"{bw['best']} − {bw['worst']}: {fmt_ci(bw['mean'], *bw['ci'])}",
                f"{len(bw['near_best'])}/{len(schemes)}",
                "—" if n == BASELINE else fmt_ci(*sp.shrink[n]),
                f"{sp.point_trainable[n][0]:.3f} / {sp.point_trainable[n][1]:.3f}",
            ]
        )
    return [
        ("Final test accuracy (mean [95% CI]) per scheme and normalization", ["scheme", *norms], acc_rows),
        (
            "Spread between schemes (bootstrap 95% CI over seeds)",
            [
                "norm",
                "std of means",
                "best − worst means",
                "best − worst, paired",
                f"within {matters:.0%} of best",
                "std shrink vs none",
                f"std / range without {', '.join(sp.degenerate) or 'none'}",
            ],
            spread_rows,
        ),
    ]


def present(ctx, s, seeds, schemes, norms, rows_by_norm, sp: Spread, verdict: str, experiments) -> StudyResult:
    """Tables, figure and summary of the judged measurements."""
    matters, first = s["matters"], norms[1]
    effect, lo, hi = sp.shrink[first]
    figure = _figure(ctx.out, norms, schemes, sp.stats, sp.spread_ci)
    parts = []
    for n in norms:
        bw = sp.best_minus_worst[n]
        parts.append(
            f"{n}: std {100 * sp.point[n][0]:.1f} pp, {len(bw['near_best'])}/{len(schemes)} schemes within "
            f"{100 * matters:.0f} pp of the best, worst {bw['worst']} {100 * sp.stats[n][bw['worst']][0]:.1f}%"
        )
    summary = (
        f"Std of the {len(schemes)} schemes' mean accuracy ({s['dataset']}, {s['depth']}-layer {s['activation']} MLP, "
        f"{len(seeds)} seeds) — {'; '.join(parts)}. With {first} norm the spread shrinks by {100 * effect:+.1f} pp "
        f"[{100 * lo:+.1f}, {100 * hi:+.1f}]. Without the schemes that stayed within {DEGENERATE_MARGIN:.0%} of chance "
        f"somewhere ({', '.join(sp.degenerate) or 'none'}) the range of means is "
        + ", ".join(f"{n} {100 * sp.point_trainable[n][1]:.1f} pp" for n in norms)
        + "."
    )
    return StudyResult(
        study=NAME,
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"std of scheme means: none − {first}",
        effect_unit="pp",
        summary=summary,
        evidence={
            "schemes": schemes,
            "norms": norms,
            "accuracy": {
                n: {
                    sc: {
                        "mean": sp.stats[n][sc][0],
                        "ci": [sp.stats[n][sc][1], sp.stats[n][sc][2]],
                        "diverged": rows_by_norm[n][sc]["diverged"],
                    }
                    for sc in schemes
                }
                for n in norms
            },
            "spread_std": {
                n: {"value": sp.spread_ci[n]["std"][0], "ci": list(sp.spread_ci[n]["std"][1:])} for n in norms
            },
            "spread_range": {
                n: {"value": sp.spread_ci[n]["range"][0], "ci": list(sp.spread_ci[n]["range"][1:])} for n in norms
            },
            "std_shrink": {n: {"value": sp.shrink[n][0], "ci": list(sp.shrink[n][1:])} for n in norms[1:]},
            "best_minus_worst": sp.best_minus_worst,
            "matters_threshold": matters,
            "degenerate": sp.degenerate,
            "spread_without_degenerate": {
                n: {"std": sp.point_trainable[n][0], "range": sp.point_trainable[n][1]} for n in norms
            },
        },
        tables=_tables(schemes, norms, rows_by_norm, sp, matters),
        figures=[figure],
        experiments=experiments,
        settings={**s, "seeds": list(seeds), "schemes": schemes, "norms": norms, "model": MODEL},
    )
