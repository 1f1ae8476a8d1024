"""Study ``depth-frontier``: how deep does a plain network train, per initialization?

The experiment
--------------
Plain networks (no normalization, no residual connection; ``initlab.studies.frontier_cells``)
on digits: MLPs of ``depth`` linear layers of ``width`` units for activation in {tanh, ReLU}, and
a tanh CNN of ``depth - 1`` 3x3 convolutions of ``cnn_channels`` channels plus a Linear read-out
(depths ``cnn_depths``). Schemes: torch's default ``U(±1/sqrt(fan_in))``, Xavier uniform with the
activation's gain, He normal, orthogonal at gain 1, ``auto`` = ``initlab.initialize(net,
"auto")``, for ReLU ``looks_linear``, for the CNN ``delta_orthogonal``; biases zero. Per
(network, scheme, depth, seed):

1. the network is initialized (per-parameter generators from the seed);
2. the learning rate is chosen by ``initlab.suggest_lr`` (Adam) from that init, on a validation
   split carved from the training set (``lr_grid``: a fixed grid, or None for the adaptive one;
   ``lr_steps`` its budget per rate);
3. a copy trains ``epochs`` epochs on the whole training set at that rate (Adam, batch
   ``batch_size``) and is tested once on the test set.

``deep`` lowers the cost at the largest depths: a list of tiers ``{"from": D, ...}`` whose other
keys (``schemes``, ``cnn_schemes``, ``seeds``, ``lr_grid``, ``lr_steps``, ``epochs``) replace the
settings at depths >= D (later tiers win). ``compute``: False reads the cells already stored and
computes none (to render a run still in progress). Every cell is stored (``initlab.studies.frontier_store``:
one experiment per network and depth, whose config holds that depth's settings; a cell per
(scheme, seed)); cells already stored with the same settings are read back, not recomputed, and
every table and figure is computed from the records read back from the store.

Next to it, the theory at init: ``6 xi_c`` (the mean-field depth scale of Schoenholz et al. 2017,
``initlab.theory.depth_scales``, for the scheme's ``sigma_w^2`` on square layers: 1/3 torch
default, g^2 Xavier and He with gain g, 1 orthogonal, sigma_crit^2 auto and delta-orthogonal;
infinite at criticality), the spread ``log10(s_max/s_min)`` of the input-output Jacobian's
singular values at init (``initlab.diagnose.jacobian``, exact, mean over 8 training samples), and
the selected learning rate against depth with a fitted power law ``lr = a * depth^b`` per scheme.

Judge (``judge``): a run *trains* when its test accuracy exceeds twice chance (0.2 on 10
classes). Per network (``tanh``, ``relu``, ``cnn tanh``) and scheme the *frontier* is the smallest
measured depth at which no seed trains (None: trains at every measured depth). The article says
a good initialization "can prevent issues such as vanishing or exploding gradients, which can
hinder training": ``supported`` when, for some network and depth, one scheme trains and another
falls to chance (the init decides whether the network trains); ``not supported`` when every
scheme trains at every depth or none does; the effect is the largest accuracy gap between
schemes at a network's deepest depth. The rows read back and the settings are also written to
``depth_frontier.json`` in the study's directory.

Sources: Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017), Deep information propagation;
Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid; Xiao et al. (2018),
Dynamical isometry and a mean field theory of CNNs (10,000 layers); Balduzzi et al. (2017).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, register
from initlab.studies.frontier_cells import (  # noqa: F401  (re-exported: the study's public helpers)
    initialize,
    looks_linear_policy,
    plain_cnn,
    plain_mlp,
    run_cell,
    sigma_w2,
    six_xi_c,
)

CLAIM = (
    '"Optimal weight initialization can prevent issues such as vanishing or exploding gradients, '
    'which can hinder training progress." (the article, on why initialization matters)'
)
SCHEMES = {
    "tanh": ["torch_default", "xavier_uniform", "orthogonal", "auto"],
    "relu": ["torch_default", "he_normal", "orthogonal", "auto", "looks_linear"],
}
CNN_SCHEMES = ["torch_default", "xavier_uniform", "he_normal", "delta_orthogonal"]
DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "limit_train": None,
    "activations": ["tanh", "relu"],
    "schemes": SCHEMES,
    "depths": [10, 30, 100, 300],
    "width": 128,
    "cnn_depths": [10, 30],  # [] leaves the CNN out
    "cnn_channels": 8,
    "cnn_schemes": CNN_SCHEMES,
    "epochs": 3,
    "batch_size": 64,
    "lr_grid": None,  # None: suggest_lr's adaptive grid
    "lr_steps": None,  # suggest_lr's budget (None: 3 epochs of its training part)
    "seeds": 1,
    "deep": [],  # tiers {"from": depth, ...overrides} for the largest depths (module docstring)
    "compute": True,  # False: only read the cells already stored (renders a run still in progress)
}
QUICK = {
    "depths": [10, 30, 100],
    "width": 32,
    "limit_train": 300,
    "epochs": 2,
    "lr_grid": [1e-3, 1e-2],
    "lr_steps": 5,
    "schemes": {"tanh": ["torch_default", "auto"], "relu": ["he_normal", "looks_linear"]},
    "cnn_depths": [10, 30],
    "cnn_channels": 4,
    "cnn_schemes": ["torch_default", "delta_orthogonal"],
}
# Sized to about an hour of CPU on one core (docs/studies/depth-frontier.md has the measured
# time): every scheme with 2 seeds up to 30 layers, then one seed, fewer schemes, a short fixed
# grid and fewer epochs as depth grows; 10,000 layers for auto, torch's default and Xavier (tanh)
# and auto (ReLU: looks-linear).
FULL: dict[str, Any] = {
    "depths": [10, 30, 100, 300, 1000, 3000, 10000],
    "seeds": 2,
    "lr_grid": [1e-5, 1e-4, 1e-3, 1e-2],
    "lr_steps": 18,
    "cnn_depths": [10, 30, 100, 300],
    "deep": [
        {"from": 100, "cnn_schemes": CNN_SCHEMES, "seeds": 1, "lr_grid": [1e-5, 1e-4, 1e-3]},
        {
            "from": 1000,
            "lr_grid": [1e-6, 1e-5, 1e-4],
            "epochs": 2,
            "schemes": {"tanh": ["torch_default", "xavier_uniform", "auto"], "relu": ["he_normal", "auto"]},
        },
        {
            "from": 3000,
            "lr_grid": [1e-6, 3e-6, 1e-5],
            "epochs": 1,
            "schemes": {"tanh": ["torch_default", "xavier_uniform", "auto"], "relu": ["auto"]},
        },
    ],
}
TIER_KEYS = ("schemes", "cnn_schemes", "seeds", "lr_grid", "lr_steps", "epochs")
TRAINED_FACTOR = 2.0  # trained: test accuracy above twice chance


def depth_settings(s: dict[str, Any], depth: int) -> dict[str, Any]:
    """The settings at ``depth``: ``s`` with the ``deep`` tiers whose ``from`` <= depth applied."""
    out = dict(s)
    tiers = s["deep"]
    if not isinstance(tiers, list) or any(not isinstance(t, dict) or "from" not in t for t in tiers):
        raise UserError(f'deep: a list of tiers {{"from": depth, ...}}; got {tiers!r:.120}')
    for tier in sorted(tiers, key=lambda t: t["from"]):
        bad = sorted(set(tier) - {"from", *TIER_KEYS})
        if bad:
            raise UserError(f"deep tier {tier!r:.80}: unknown key {bad[0]!r}; allowed: from, {', '.join(TIER_KEYS)}")
        if depth >= tier["from"]:
            out.update({k: v for k, v in tier.items() if k != "from"})
    return out


def planned_cells(s: dict[str, Any]) -> list[tuple[str, str, int, list[tuple[str, int]], dict[str, Any]]]:
    """(family, activation, depth, [(scheme, seed)], that depth's settings), in run order."""
    plan = []
    for activation in s["activations"]:
        for depth in s["depths"]:
            ds = depth_settings(s, depth)
            schemes = ds["schemes"].get(activation, [])
            plan.append(("mlp", activation, depth, [(sc, k) for sc in schemes for k in range(ds["seeds"])], ds))
    for depth in s["cnn_depths"]:
        ds = {**depth_settings(s, depth), "width": s["cnn_channels"]}
        cells = [(sc, k) for sc in ds["cnn_schemes"] for k in range(ds["seeds"])]
        plan.append(("cnn", "tanh", depth, cells, ds))
    # Shallow depths first, across networks: an interrupted run has every depth up to where it stopped.
    return sorted(plan, key=lambda p: p[2])


def network(row: dict[str, Any]) -> str:
    """The row's network: its activation for the MLPs ("tanh", "relu"), "cnn tanh" for the CNN."""
    family = row.get("family", "mlp")
    return row["activation"] if family == "mlp" else f"{family} {row['activation']}"


def fit_power_law(depths: list[int], lrs: list[float]) -> tuple[float, float] | None:
    """(a, b) of lr = a * depth^b by least squares in log-log; None with fewer than 2 depths."""
    if len(set(depths)) < 2:
        return None
    xs, ys = [math.log(d) for d in depths], [math.log(v) for v in lrs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - b * mx), b


def judge(rows: list[dict[str, Any]], classes: int) -> dict[str, Any]:
    """Frontiers and verdict from measured rows (see the module docstring)."""
    threshold = TRAINED_FACTOR / classes
    frontier: dict[str, dict[str, int | None]] = {}
    gaps: list[tuple[str, int, float]] = []
    decides = False
    for activation in sorted({network(r) for r in rows}):
        mine = [r for r in rows if network(r) == activation]
        depths = sorted({r["depth"] for r in mine})
        frontier[activation] = {}
        for scheme in sorted({r["scheme"] for r in mine}):
            falls = None
            for d in depths:
                accs = [r["test_acc"] for r in mine if r["scheme"] == scheme and r["depth"] == d]
                if accs and not any(a > threshold for a in accs):
                    falls = d
                    break
            frontier[activation][scheme] = falls
        for d in depths:
            by_scheme: dict[str, float] = {}
            for r in mine:
                if r["depth"] == d:
                    by_scheme[r["scheme"]] = max(by_scheme.get(r["scheme"], -1.0), r["test_acc"])
            if any(a > threshold for a in by_scheme.values()) and any(a <= threshold for a in by_scheme.values()):
                decides = True
        deepest = depths[-1]
        accs = [r["test_acc"] for r in mine if r["depth"] == deepest]
        gaps.append((activation, deepest, max(accs) - min(accs)))
    verdict = "supported" if decides else "not supported"
    activation, deepest, gap = max(gaps, key=lambda g: g[2])
    return {
        "verdict": verdict,
        "frontier": frontier,
        "threshold": threshold,
        "effect": gap,
        "effect_where": f"{activation}, depth {deepest}",
        "effect_network": activation,
        "effect_depth": deepest,
    }


@register("depth-frontier", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Trainable depth per scheme for plain tanh and ReLU MLPs and a tanh CNN, lr from suggest_lr."""
    from initlab.data import load
    from initlab.studies.frontier_store import run_depth

    s = ctx.setting(DEFAULTS, FULL)
    if ctx.quick:
        s.update({k: v for k, v in QUICK.items() if k not in ctx.overrides})
    plan = planned_cells(s)  # bad tiers are refused before any work
    data = {"mlp": load(s["dataset"], flatten=True, limit_train=s["limit_train"])}
    if s["cnn_depths"]:
        data["cnn"] = load(s["dataset"], flatten=False, limit_train=s["limit_train"])
    classes = int(data["mlp"].y_train.max()) + 1

    def show(row: dict[str, Any], reused: bool) -> None:
        if ctx.progress:
            print(
                f"depth-frontier: {network(row)} {row['scheme']} depth {row['depth']} seed {row['seed']}: "
                f"lr {row['lr']:.3g}, test {row['test_acc']:.3f}, {row['seconds']:.1f} s"
                + (" (stored)" if reused else ""),
                flush=True,
            )

    rows: list[dict[str, Any]] = []
    experiments = []
    for family, activation, depth, cells, ds in plan:
        experiment, got = run_depth(
            ctx.store,
            family,
            activation,
            depth,
            cells,
            ds,
            _computer(family, activation, depth, ds, data[family]) if s["compute"] else None,
            show,
        )
        if experiment is not None:
            experiments.append(experiment)
        rows += got
    if not rows:
        raise UserError(f"depth-frontier: compute=false and the store {ctx.store} holds no cell of these settings")
    return _result(rows, s, classes, experiments, ctx.out)


def _computer(family: str, activation: str, depth: int, ds: dict[str, Any], data) -> Callable[[str, int], dict]:
    """``compute(scheme, seed)`` for one depth: ``run_cell`` with that depth's settings."""

    def compute(scheme: str, seed: int) -> dict[str, Any]:
        return run_cell(family, activation, scheme, depth, seed, ds, data)

    return compute


def lr_fits(rows: list[dict[str, Any]], threshold: float) -> dict[str, dict[str, float]]:
    """``{"network/scheme": {"a", "b"}}``: lr = a * depth^b over the runs that trained."""
    fits = {}
    for net in sorted({network(r) for r in rows}):
        for scheme in sorted({r["scheme"] for r in rows if network(r) == net}):
            trained = [r for r in rows if network(r) == net and r["scheme"] == scheme and r["test_acc"] > threshold]
            fit = fit_power_law([r["depth"] for r in trained], [r["lr"] for r in trained])
            if fit is not None:
                fits[f"{net}/{scheme}"] = {"a": fit[0], "b": fit[1]}
    return fits


def _result(rows, s, classes, experiments, out) -> StudyResult:
    verdict = judge(rows, classes)
    fits = lr_fits(rows, verdict["threshold"])
    (out / "depth_frontier.json").write_text(
        json.dumps(
            {"settings": s, "experiments": experiments, "rows": rows, "fits": fits, "judge": verdict},
            indent=1,
            default=str,
        )
    )
    figures = [_plot(rows, fits, verdict["threshold"], out)]
    table_rows = [
        [
            network(r),
            r["scheme"],
            str(r["depth"]),
            str(r["seed"]),
            f"{r['lr']:.3g}",
            f"{r['test_acc']:.3f}",
            f"{r['jacobian_spread']:.2f}",
            "inf" if math.isinf(r["six_xi_c"]) else f"{r['six_xi_c']:.0f}",
            f"{r['seconds']:.0f}",
        ]
        for r in rows
    ]
    frontier_rows = [
        [a, sch, "trains at every depth" if d is None else str(d)]
        for a, per in verdict["frontier"].items()
        for sch, d in per.items()
    ]
    summary = (
        f"Test accuracy after {s['epochs']} epoch(s) at the learning rate suggest_lr picked, depths "
        f"{s['depths']} (CNN {s['cnn_depths']}), {s['seeds']} seed(s)"
        + (" (fewer schemes, seeds and epochs at the largest depths: settings 'deep')" if s["deep"] else "")
        + f"; a run trains above {verdict['threshold']:.2f}. Largest gap between schemes at the deepest "
        f"depth: {verdict['effect']:.2f} ({verdict['effect_where']})."
    )
    return StudyResult(
        study="depth-frontier",
        claim=CLAIM,
        verdict=verdict["verdict"],
        effect=verdict["effect"],
        ci=(math.nan, math.nan),
        ci_note=effect_ci_note(rows, verdict["effect_network"], verdict["effect_depth"]),
        effect_label="accuracy gap between schemes at the deepest depth",
        summary=summary,
        evidence={"frontier": verdict["frontier"], "fits": fits, "rows": rows},
        tables=[
            (
                "Runs (read back from the store)",
                ["network", "scheme", "depth", "seed", "lr", "test acc", "log10 J spread", "6 xi_c", "s"],
                table_rows,
            ),
            accuracy_by_depth(rows),
            ("Depth at which each scheme falls to chance", ["network", "scheme", "falls at depth"], frontier_rows),
            (
                "Selected lr against depth: lr = a * depth^b",
                ["network/scheme", "a", "b"],
                [[k, f"{v['a']:.3g}", f"{v['b']:.2f}"] for k, v in fits.items()],
            ),
        ],
        figures=figures,
        experiments=experiments,
        settings=s,
    )


def effect_ci_note(rows: list[dict[str, Any]], net: str, depth: int) -> str:
    """Why the effect has no interval: a gap between single runs when the effect's network and depth
    ran one seed; else a largest-minus-smallest gap over schemes and seeds."""
    seeds = {r["seed"] for r in rows if network(r) == net and r["depth"] == depth}
    if len(seeds) <= 1:
        return "one seed, no interval"
    return f"largest minus smallest over schemes and {len(seeds)} seeds, no interval"


def accuracy_by_depth(rows: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]]]:
    """The headline table: per network and scheme, mean test accuracy over seeds at each depth,
    with the selected learning rate(s) in brackets ("-": not run at that depth)."""
    depths = sorted({r["depth"] for r in rows})
    body = []
    for net in sorted({network(r) for r in rows}, key=lambda n: (n.startswith("cnn"), n)):
        for scheme in sorted({r["scheme"] for r in rows if network(r) == net}):
            line = [net, scheme]
            for d in depths:
                mine = [r for r in rows if network(r) == net and r["scheme"] == scheme and r["depth"] == d]
                if not mine:
                    line.append("-")
                    continue
                acc = sum(r["test_acc"] for r in mine) / len(mine)
                lrs = "/".join(f"{lr:.0e}" for lr in sorted({r["lr"] for r in mine}))
                line.append(f"{acc:.3f} ({lrs})" + (f" x{len(mine)}" if len(mine) > 1 else ""))
            body.append(line)
    title = "Test accuracy by depth (mean over the seeds run, xN; the lr suggest_lr picked in brackets)"
    return title, ["network", "scheme", *[str(d) for d in depths]], body


def _plot(rows: list[dict[str, Any]], fits: dict[str, dict[str, float]], threshold: float, out):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    nets = sorted({network(r) for r in rows}, key=lambda n: (n.startswith("cnn"), n))
    fig, axes = plt.subplots(len(nets), 3, figsize=(13, 3.6 * len(nets)), squeeze=False)
    for i, net in enumerate(nets):
        for scheme in sorted({r["scheme"] for r in rows if network(r) == net}):
            mine = [r for r in rows if network(r) == net and r["scheme"] == scheme]
            depths = sorted({r["depth"] for r in mine})
            at = {d: [r for r in mine if r["depth"] == d] for d in depths}

            def mean(key: str, d: int, at=at) -> float:
                return sum(r[key] for r in at[d]) / len(at[d])

            # Lines through the means over seeds; every run as a dot.
            line = axes[i][0].plot(depths, [mean("test_acc", d) for d in depths], "-", label=scheme)[0]
            color = line.get_color()
            axes[i][0].plot([r["depth"] for r in mine], [r["test_acc"] for r in mine], "o", color=color)
            axes[i][1].plot(depths, [mean("jacobian_spread", d) for d in depths], "o-", color=color)
            axes[i][2].plot([r["depth"] for r in mine], [r["lr"] for r in mine], "o", color=color, alpha=0.7)
            fit = fits.get(f"{net}/{scheme}")
            trained = [r["depth"] for r in mine if r["test_acc"] > threshold]
            if fit is not None and trained:
                span = [min(trained), max(trained)]
                axes[i][2].plot(span, [fit["a"] * d ** fit["b"] for d in span], "--", color=color)
        axes[i][0].axhline(threshold, color="grey", linestyle=":")
        axes[i][0].set_ylabel(f"{net}: test accuracy")
        axes[i][1].set_ylabel("log10 s_max/s_min (Jacobian at init)")
        axes[i][2].set_ylabel("selected lr (Adam); dashed: fit")
        axes[i][2].set_yscale("log")
        for ax in axes[i]:
            ax.set_xscale("log")
            ax.set_xlabel("depth (weight layers)")
        axes[i][0].legend(fontsize=7)
    fig.tight_layout()
    path = out / "depth_frontier.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
