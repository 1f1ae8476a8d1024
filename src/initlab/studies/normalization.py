"""Study ``normalization``: does BatchNorm or LayerNorm make the choice of initialization irrelevant?

The article's third misconception: "Some people believe that neural network weight
initialization is not a critical factor in the success of training a model. This misconception
arises from the fact that some well-known architectures can learn effectively even with random
weight initialization. However, weight initialization does play an important role [...]".
Normalization layers are the usual reason for the belief: BatchNorm (Ioffe & Szegedy 2015)
makes a layer's output invariant to the scale of its weights, so only the direction of each
weight row matters at init.

The experiment
--------------
A plain MLP (``normalized_mlp``: ``depth`` hidden layers of ``width`` units, each
``Linear → [norm] → activation``, ReLU, digits by default) in three versions, ``norm`` = none,
``batch`` (``BatchNorm1d``) and ``layer`` (``LayerNorm``), each trained from the article's
random schemes (its ten minus ``zeros`` and ``constant``, which no normalization can rescue:
every unit of a layer stays identical, see the ``symmetry`` study): ``random_uniform``
(U(±0.05)), ``random_normal`` (N(0, 0.01²)), ``xavier_uniform``, ``he_normal``,
``orthogonal``, ``sparse``, ``uniform_fan`` and ``positive``. Biases zero, norm gains 1 and
shifts 0; seed s fixes the data order for every scheme and normalization. The claim is about
training, so it is judged over a sensitivity grid: SGD (momentum 0.9) and Adam, the learning
rate tuned per scheme on the validation split (SGD 0.002/0.01/0.05, Adam 3e-4/1e-3/3e-3), at
two budgets (3 and 10 epochs). One stored, tuned comparison per (optimizer, norm).

Shape: settings (``CommonSettings`` + width, depth, activation, schemes, norms, matters,
degenerate, bootstrap) -> **measure** (per setting and norm: tuned accuracies, spreads, the
best − worst contrast; with and without the degenerate schemes) -> **judge** (pure) ->
**present** (tables, figure).

Degenerate schemes (data-driven, per setting): a scheme whose tuned mean *validation*
accuracy is below ``degenerate`` × chance (2 × 1/10 = 20% on digits) under at least one norm
of that setting: it did not train there, whatever the reason. It is left out of every norm of
that setting for the "without degenerate" numbers, so the norms are compared on one scheme set.

Spread between schemes, per setting and norm: the standard deviation (ddof=1) of the schemes'
mean test accuracies and the range (best − worst mean), each with a 95% percentile bootstrap
CI over seeds (``bootstrap`` resamples from a ``torch.Generator`` seeded 0; the same resamples
for every scheme, norm and setting). Best − worst, paired: the best and the worst scheme are
picked by mean validation accuracy (never by test data), and ``acc(best) − acc(worst)`` on the
test set gets a paired bootstrap CI over seeds and test examples (``stats.compare_paired``).

Judge, per setting. The choice of scheme *matters* under a norm when the paired best − worst
CI lies above ``matters`` (2 accuracy points). *supported*: it matters under every norm (none
included) among the non-degenerate schemes; *not supported*: it does not matter without
normalization even counting the degenerate schemes; *partly*: otherwise (it matters without
normalization, but under some norm only through schemes that did not train, or not at all): a
verdict that holds only because some scheme failed to train is never "supported". The study's
verdict is ``supported`` / ``not supported`` only when every setting agrees, else ``partly``
with the flipping settings named (``initlab.studies.grid.judge_across``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from initlab.errors import UserError
from initlab.schemes import ARTICLE_SCHEMES
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.grid import CommonSettings, Judgement, Setting, common_settings, judge_across

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
    "limit_train": None,  # training samples kept (None: all)
    "width": 64,  # units per hidden layer
    "depth": 6,  # hidden layers
    "activation": "relu",
    "schemes": [s for s in ARTICLE_SCHEMES if s not in ("zeros", "constant")],  # the article's random ones
    "norms": ["none", "batch", "layer"],  # "none" first: the baseline
    "seeds": 5,
    "epochs": 10,
    "budgets": [3, 10],  # epochs at which the claim is judged
    "optimizers": ["sgd", "adam"],
    "sgd_lr_grid": [0.002, 0.01, 0.05],  # SGD, momentum 0.9; selected per scheme on validation
    "adam_lr_grid": [3e-4, 1e-3, 3e-3],
    "batch_size": 32,
    "margin": 0.005,  # equivalence margin on test accuracy (0.5 points)
    "matters": 0.02,  # accuracy difference (fraction) from which the choice of scheme "matters"
    "degenerate": 2.0,  # below this multiple of chance (validation) under some norm: did not train
    "bootstrap": 2000,  # resamples of the seeds for the spread CIs
}
FULL: dict[str, Any] = {
    "dataset": "fashion-mnist",
    "limit_train": 10000,
    "width": 128,
    "depth": 8,
    "epochs": 10,
    "budgets": [3, 10],
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


# --- spreads and the degenerate schemes (pure) ---------------------------------------------------------


def _table(acc: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> torch.Tensor:
    return torch.tensor([[acc[s][k] for k in seeds] for s in acc], dtype=torch.float64)


def spreads(acc: Mapping[str, Mapping[int, float]], seeds: Sequence[int]) -> tuple[float, float]:
    """(std with ddof=1, range) of the schemes' mean accuracy over ``seeds`` (repeats allowed;
    non-finite accuracies left out of a scheme's mean)."""
    means = _table(acc, seeds).nanmean(dim=1)
    std = float(means.std(unbiased=True)) if means.numel() > 1 else math.nan
    return std, float(means.max() - means.min())


def bootstrap_spreads(
    acc: Mapping[str, Mapping[int, float]], seeds: Sequence[int], resamples: int
) -> dict[str, list[float]]:
    """Bootstrap distribution of ``{"std", "range"}`` of the schemes' mean accuracy.

    Every resample draws ``len(seeds)`` seeds with replacement (``torch.Generator`` seeded 0), the
    same draw for every scheme; calls with the same number of seeds and ``resamples`` draw the same
    resamples, so differences between norms and scheme sets are paired."""
    gen = torch.Generator().manual_seed(0)
    draws = torch.randint(len(seeds), (resamples, len(seeds)), generator=gen)
    means = _table(acc, seeds)[:, draws].nanmean(dim=-1)  # (schemes, resamples)
    std = means.std(dim=0, unbiased=True) if means.shape[0] > 1 else torch.full((resamples,), math.nan)
    return {"std": std.tolist(), "range": (means.max(dim=0).values - means.min(dim=0).values).tolist()}


def percentile_ci(values: Sequence[float]) -> tuple[float, float]:
    v = torch.tensor([x for x in values if math.isfinite(x)], dtype=torch.float64)
    if v.numel() == 0:
        return math.nan, math.nan
    return float(torch.quantile(v, 0.025)), float(torch.quantile(v, 0.975))


def degenerate_schemes(val_means: Mapping[str, Mapping[str, float]], floor: float) -> list[str]:
    """Schemes whose mean validation accuracy is below ``floor`` (or not finite) under some norm
    (``val_means[norm][scheme]``): they did not train there, whatever the reason."""
    schemes = next(iter(val_means.values()), {})
    return [sc for sc in schemes if any(not math.isfinite(m[sc]) or m[sc] < floor for m in val_means.values())]


# --- per-setting outcomes and the judge ----------------------------------------------------------------


@dataclass(frozen=True)
class Contrast:
    """acc(best) − acc(worst), the two picked by mean validation accuracy; paired bootstrap CI over
    seeds and test examples, and its equivalence verdict at the margin."""

    best: str
    worst: str
    diff: float
    ci: tuple[float, float]
    verdict: str


@dataclass(frozen=True)
class NormOutcome:
    """One norm in one setting: tuned accuracies, the spread and best − worst, with and without
    the setting's degenerate schemes (``*_clean``; NaN / None with fewer than two left)."""

    norm: str
    accuracy: dict[str, float]  # scheme -> tuned mean test accuracy
    val_accuracy: dict[str, float]  # scheme -> tuned mean validation accuracy
    lr: dict[str, float | None]  # scheme -> the lr selected on validation
    std: tuple[float, float, float]  # std of scheme means (value, ci_low, ci_high)
    range: tuple[float, float, float]  # best − worst scheme mean
    std_clean: tuple[float, float, float]
    range_clean: tuple[float, float, float]
    contrast: Contrast
    contrast_clean: Contrast | None


@dataclass(frozen=True)
class SettingOutcome:
    label: str
    degenerate: tuple[str, ...]
    norms: dict[str, NormOutcome]  # the baseline ("none") first


def matters_in(contrast: Contrast | None, matters: float) -> bool:
    """Whether best − worst is above ``matters`` with 95% confidence (its CI's lower end)."""
    return contrast is not None and math.isfinite(contrast.ci[0]) and contrast.ci[0] > matters


def judge_setting(outcome: SettingOutcome, matters: float) -> str:
    """Pure: one setting's verdict (rule in the module docstring)."""
    if not matters_in(outcome.norms[BASELINE].contrast, matters):
        return "not supported"
    if all(matters_in(o.contrast_clean, matters) for o in outcome.norms.values()):
        return "supported"
    return "partly"


def judge(outcomes: Mapping[str, SettingOutcome], matters: float) -> Judgement:
    """Pure: setting label -> measured outcome  ->  the study's judgement across settings."""
    return judge_across({label: judge_setting(o, matters) for label, o in outcomes.items()})


# --- measure -------------------------------------------------------------------------------------------


def _read_settings(ctx: StudyContext) -> tuple[dict[str, Any], CommonSettings, list[str], list[str]]:
    from initlab.schemes import canonical_spec
    from initlab.studies.settings import as_list

    s = ctx.setting(DEFAULTS, FULL)
    common = common_settings(s)
    schemes = [canonical_spec(x) for x in as_list(s["schemes"])]
    if len(schemes) < 2 or len(set(schemes)) != len(schemes):
        raise UserError(f"schemes: a spread needs at least 2 distinct schemes; got {s['schemes']!r}")
    norms = [str(n) for n in as_list(s["norms"])]
    bad = [n for n in norms if n not in NORMS]
    if bad or len(norms) < 2 or norms[0] != BASELINE or len(set(norms)) != len(norms):
        raise UserError(f"norms: 'none' first, then one or more of 'batch', 'layer'; got {s['norms']!r}")
    for key, low, high in (("matters", 0.0, 1.0), ("degenerate", 0.0, math.inf)):
        v = s[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v < high:
            raise UserError(f"{key}: a number in [{low:g}, {high:g}); got {v!r}")
    resamples = s["bootstrap"]
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 100:
        raise UserError(f"bootstrap: an integer >= 100; got {resamples!r}")
    return s, common, schemes, norms


def _contrast(runs: Mapping[str, Mapping[int, Any]], val: Mapping[str, float], budget: int, margin: float):
    """Best − worst by mean validation accuracy (NaN counts as worst), paired on the test set."""
    from initlab.studies.settings import paired_versus

    if len(runs) < 2:
        return None
    order = sorted(runs, key=lambda sc: -(val[sc] if math.isfinite(val[sc]) else -1.0))
    best, worst = order[0], order[-1]
    p = paired_versus(runs[best], runs[worst], budget, margin)
    return Contrast(best, worst, p.diff, (p.ci_low, p.ci_high), p.verdict)


def _spread(acc, seeds, resamples) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    if len(acc) < 2:
        nan3 = (math.nan, math.nan, math.nan)
        return nan3, nan3
    std, rng = spreads(acc, seeds)
    boot = bootstrap_spreads(acc, seeds, resamples)
    return (std, *percentile_ci(boot["std"])), (rng, *percentile_ci(boot["range"]))


def outcome_of(datas: Mapping[str, Any], setting: Setting, seeds, floor: float, margin: float, resamples: int):
    """One setting's ``SettingOutcome`` from its stored comparisons (norm -> ``ReportData``)."""
    from initlab.studies.settings import finite_mean, tuned_runs

    runs = {n: tuned_runs(d, setting.budget) for n, d in datas.items()}
    val = {
        n: {sc: finite_mean(r.val_at(setting.budget) for r in rs.values()) for sc, rs in by.items()}
        for n, by in runs.items()
    }
    degenerate = degenerate_schemes(val, floor)
    norms = {}
    for n, by_scheme in runs.items():
        acc = {
            sc: {k: r.test_curve.get(setting.budget, math.nan) for k, r in rs.items()} for sc, rs in by_scheme.items()
        }
        clean = {sc: a for sc, a in acc.items() if sc not in degenerate}
        # Without a degenerate scheme the clean figures are the figures: the bootstraps are not redrawn.
        same = len(clean) == len(acc)
        std, rng = _spread(acc, seeds, resamples)
        std_clean, rng_clean = (std, rng) if same else _spread(clean, seeds, resamples)
        contrast = _contrast(by_scheme, val[n], setting.budget, margin)
        contrast_clean = (
            contrast if same else _contrast({sc: by_scheme[sc] for sc in clean}, val[n], setting.budget, margin)
        )
        norms[n] = NormOutcome(
            norm=n,
            accuracy={sc: finite_mean(a.values()) for sc, a in acc.items()},
            val_accuracy=val[n],
            lr=dict(datas[n].tuning.selected[setting.budget]),
            std=std,
            range=rng,
            std_clean=std_clean,
            range_clean=rng_clean,
            contrast=contrast,
            contrast_clean=contrast_clean,
        )
    return SettingOutcome(setting.label, tuple(degenerate), norms)


def measure(ctx: StudyContext, s: dict[str, Any], common: CommonSettings, schemes: list[str], norms: list[str]):
    """One tuned comparison per (optimizer, norm), reduced to one ``SettingOutcome`` per setting;
    and the experiment ids."""
    from initlab.data import load

    chance = 1.0 / load(common.dataset, **common.data_options).num_classes
    outcomes: dict[str, SettingOutcome] = {}
    experiments = []
    for optimizer in common.optimizers:
        datas = {}
        for n in norms:
            kwargs = common.compare_kwargs(optimizer)
            data = ctx.compare(
                schemes=tuple(schemes),
                model=MODEL,
                model_options={"norm": n},
                width=s["width"],
                depth=s["depth"],
                activation=s["activation"],
                reference=REFERENCE if REFERENCE in schemes else schemes[0],
                chunk_size=len(schemes) * len(kwargs["lr_grid"]) * len(common.seeds),  # one cell: all train together
                **kwargs,
            )
            experiments.append(data.experiment_id)
            datas[n] = data
        for budget in common.budgets:
            setting = Setting(optimizer, budget)
            outcomes[setting.label] = outcome_of(
                datas, setting, common.seeds, s["degenerate"] * chance, common.margin, s["bootstrap"]
            )
    return outcomes, experiments, chance


@register(NAME, CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """The spread of accuracy between the article's random schemes without normalization, with
    BatchNorm and with LayerNorm, SGD and Adam with tuned lr, two budgets; with and without the
    schemes that did not train (see the module docstring for the exact design)."""
    s, common, schemes, norms = _read_settings(ctx)
    outcomes, experiments, chance = measure(ctx, s, common, schemes, norms)
    judgement = judge(outcomes, s["matters"])
    from initlab.studies.normalization_present import present

    return present(ctx, s, common, schemes, norms, outcomes, judgement, experiments, chance)


def outcome_evidence(o: SettingOutcome) -> dict[str, Any]:
    return {"degenerate": list(o.degenerate), "norms": {n: asdict(x) for n, x in o.norms.items()}}


__all__ = [
    "CLAIM",
    "DEFAULTS",
    "Contrast",
    "NormOutcome",
    "SettingOutcome",
    "degenerate_schemes",
    "judge",
    "judge_setting",
    "measure",
    "normalized_mlp",
    "run",
]
