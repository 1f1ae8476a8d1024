"""Study ``symmetry``: zero and constant init leave a layer worth one unit; does gradient descent stop?

The experiment
--------------
An MLP (default: digits, 3 hidden layers of 64 ReLU units, SGD lr 0.05 with momentum 0.9,
batch 32, 20 epochs, 5 seeds) is trained from the symmetric initializations ``zeros`` and
``constant`` (every weight 0.01) and from the random schemes ``he_normal`` and
``xavier_uniform``; biases start at zero in every case. The runs are a stored comparison
(``StudyContext.compare``).

1. **Distinct units after training.** The comparison's cells are trained again with the same
   engine, config and members (the reproduction is checked: the same final test accuracy, bit
   for bit, is expected on the same machine) to read the trained weights. For every hidden layer
   ``l`` the incoming weights and bias of unit ``i`` form the row ``r_i = [W_l[i, :], b_l[i]]``;
   two units are the same when ``max_k |r_ik - r_jk| <= tol * max|r|`` (``tol`` = 1e-6: gradient
   descent keeps identical rows bit-identical; random rows differ by a sizeable fraction of the
   scale). The number of distinct units is the number of greedy clusters of rows under that
   relation: 1 means the layer computes one feature ``width`` times; ``width`` means no two
   units are alike.
2. **Accuracy.** Final test accuracy per run; effect = accuracy of the best random scheme minus
   that of ``zeros``, paired by seed, with a Student t 95% CI over seeds.
3. **Gradients at init.** For each activation in ``grad_activations`` and each scheme, at seed
   0, the mean cross-entropy of the first ``grad_batch`` training samples is differentiated
   w.r.t. every parameter; a parameter *gets gradient* when its gradient norm exceeds
   ``GRADIENT_FLOOR`` (1e-5) times the largest parameter-gradient norm of the same model (float32
   rounding leaves ~1e-8 where the exact value is zero). With all weights zero the hidden
   activations are ``phi(0)``: for ReLU and tanh ``phi(0) = 0``, so only the output bias gets
   gradient (the backward pass stops at the zero output weights, and the output weight's
   gradient ``delta h^T`` is zero because ``h = 0``); for sigmoid ``phi(0) = 1/2``, so the output
   weights get gradient too. Constant init blocks the hidden layers at the first step as well:
   identical output rows give identical logits, ``p`` uniform, and the signal sent back,
   ``W_out^T delta = c * sum_k (p_k - y_k) * 1 = 0``; it flows once the output rows differ. After
   training, the study checks whether the zero-initialized weights moved at all.

Verdict (the article's claim, for the trained activation):
``supported`` when (a) every ``zeros``/``constant`` run ends with exactly one distinct unit in
every hidden layer while random schemes keep every unit distinct, (b) the accuracy gap (best
random − zeros) has a 95% CI above 0, and (c) zero init gives every weight matrix exactly zero
gradient at init and the trained weights are still exactly zero ("inhibits gradient descent");
``partly`` when (a) and (b) hold but not (c); ``not supported`` otherwise. Note that what the
article calls "vanishing" gradients is not a decay with depth: the weight gradients are exactly
zero from the first step, by symmetry and ``phi(0) = 0``, not small.

Source: the article's misconceptions section; Goodfellow, Bengio & Courville (2016), §8.4
("the need to break symmetry between different units").
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from initlab.errors import UserError
from initlab.studies.base import StudyContext, StudyResult, mean_ci, register
from initlab.studies.settings import as_list, seed_list

CLAIM = (
    "Initializing all weights to zero \"leads to a problem called 'symmetry breaking,' where all neurons in a "
    'layer will perform the same computations" and "poor performance"; "Initializing all weights to zero '
    'inhibits gradient descent" and "might result in vanishing gradients."'
)

DEFAULTS: dict[str, Any] = {
    "dataset": "digits",
    "width": 64,  # hidden units per layer
    "depth": 3,  # hidden layers
    "activation": "relu",  # the trained networks' activation
    "epochs": 20,
    "seeds": 5,  # a count (0..n-1) or a list of seeds
    "lr": 0.05,  # SGD, momentum 0.9
    "batch_size": 32,
    "symmetric": ["zeros", "constant"],
    "random": ["he_normal", "xavier_uniform"],
    "grad_activations": ["relu", "tanh", "sigmoid"],
    "grad_batch": 256,  # training samples for the gradient at init
    "tol": 1e-6,  # relative tolerance for two units to count as the same
}
FULL: dict[str, Any] = {"dataset": "fashion-mnist", "width": 256, "epochs": 10, "seeds": 10}
GRADIENT_FLOOR = 1e-5  # a gradient norm below this fraction of the model's largest is rounding noise


def distinct_units(weight: torch.Tensor, bias: torch.Tensor | None = None, *, tol: float = 1e-6) -> int:
    """How many distinct units a layer has: greedy clusters of its rows ``[W[i, :], b[i]]``.

    Rows ``i`` and ``j`` are the same unit when ``max_k |r_ik - r_jk| <= tol * max|r|`` (an
    all-zero layer is one unit). Clusters are formed greedily: the first unassigned row takes
    every unassigned row within tolerance of it.
    """
    if weight.dim() < 2:
        raise UserError(f"distinct_units needs a weight of >= 2 dims; got shape {tuple(weight.shape)}")
    if not tol >= 0:
        raise UserError(f"tol must be a number >= 0; got {tol!r}")
    rows = weight.detach().reshape(weight.shape[0], -1).double()
    if bias is not None:
        rows = torch.cat([rows, bias.detach().reshape(-1, 1).double()], dim=1)
    limit = tol * float(rows.abs().max()) if rows.numel() else 0.0
    distance = torch.cdist(rows, rows, p=math.inf)
    unassigned = torch.ones(rows.shape[0], dtype=torch.bool)
    clusters = 0
    while bool(unassigned.any()):
        first = int(unassigned.nonzero()[0])
        unassigned &= distance[first] > limit
        clusters += 1
    return clusters


def hidden_layers(model: torch.nn.Module) -> list[tuple[str, str | None]]:
    """(weight name, bias name or None) of every weight matrix but the last (the output layer)."""
    params = dict(model.named_parameters())
    weights = [n for n, p in params.items() if p.dim() >= 2]
    out = []
    for name in weights[:-1]:
        bias = name.rsplit(".", 1)[0] + ".bias" if "." in name else "bias"
        out.append((name, bias if bias in params else None))
    return out


def gradients_at_init(config, dataset, scheme: str, *, seed: int, batch: int) -> dict[str, float]:
    """Parameter name -> L2 norm of d(mean cross-entropy)/d(parameter) at init, on ``batch`` samples."""
    from initlab.engine import initialize_member
    from initlab.engine.init import build_template
    from initlab.schemes import scheme_from_spec
    from initlab.sweep.chunks import member_init, model_factory

    model = build_template(model_factory(config, dataset.input_shape, dataset.num_classes))
    initialize_member(model, member_init(scheme), seed, bias_init=scheme_from_spec(config.bias_init))
    n = min(batch, dataset.x_train.shape[0])
    loss = F.cross_entropy(model(dataset.x_train[:n]), dataset.y_train[:n])
    names = [name for name, _ in model.named_parameters()]
    grads = torch.autograd.grad(loss, [p for _, p in model.named_parameters()])
    return {name: float(g.double().norm()) for name, g in zip(names, grads)}


def trained_weights(config, dataset):
    """Train the comparison's cells again; yields ``(scheme, seed, test_acc, init, trained)`` per member.

    Same cells, members, model factory and ``TrainConfig`` as ``initlab.sweep.compare``, so the
    runs equal the stored ones (bit for bit on the same machine and thread count).
    """
    from initlab.engine import member_state_dict
    from initlab.engine.init import initial_state
    from initlab.sweep.chunks import make_chunks, model_factory
    from initlab.sweep.runner import engine_members, train_ensemble

    factory = model_factory(config, dataset.input_shape, dataset.num_classes)
    tc = config.train_config()
    for cell in make_chunks(config):
        members = engine_members(cell)
        init_params, _ = initial_state(factory, members, bias_init=tc.bias_init, device=torch.device("cpu"))
        result = train_ensemble(config, cell, dataset)
        for i, (spec, m) in enumerate(zip(cell.members, result.members)):
            init = {n: t[i] for n, t in init_params.items()}
            yield spec.scheme, spec.seed, m.test_acc, init, member_state_dict(result.state, i)


def _plot(path: Path, order: list[str], units: dict, accuracy: dict, layers: list[str], width: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_units, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    bar = 0.8 / max(len(layers), 1)
    for j, layer in enumerate(layers):
        means = [sum(units[s][layer]) / len(units[s][layer]) for s in order]
        ax_units.bar([i + (j - (len(layers) - 1) / 2) * bar for i in range(len(order))], means, bar, label=layer)
    ax_units.set_yscale("log", base=2)
    ax_units.set_ylim(0.7, width * 1.5)
    ax_units.axhline(width, color="0.4", ls="--", lw=1)
    ax_units.set_xticks(range(len(order)), order, rotation=20)
    ax_units.set_ylabel("distinct units after training (mean over seeds)")
    ax_units.set_title(f"Distinct hidden units (of {width}) per layer")
    ax_units.legend(fontsize=8)
    for i, s in enumerate(order):
        ys = [100 * a for a in accuracy[s]]
        xs = [i + (k - (len(ys) - 1) / 2) * 0.06 for k in range(len(ys))]
        ax_acc.scatter(xs, ys, s=20, zorder=3)
        ax_acc.hlines(sum(ys) / len(ys), i - 0.3, i + 0.3, color="black", lw=1.5)
    ax_acc.set_xticks(range(len(order)), order, rotation=20)
    ax_acc.set_ylim(-2, 102)
    ax_acc.set_ylabel("final test accuracy (%)")
    ax_acc.set_title("Test accuracy (dots: seeds; bar: mean)")
    ax_acc.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@register("symmetry", CLAIM)
def run(ctx: StudyContext) -> StudyResult:
    """Zero and constant init vs random schemes: distinct hidden units after training, accuracy,
    and which parameters get gradient at init (see the module docstring for the exact protocol)."""
    from initlab.activations import canonical
    from initlab.data import load
    from initlab.engine.init import build_template
    from initlab.schemes import canonical_spec
    from initlab.sweep.chunks import model_factory
    from initlab.sweep.config import CompareConfig

    s = ctx.setting(DEFAULTS, FULL)
    symmetric = [canonical_spec(x) for x in as_list(s["symmetric"])]
    random_ = [canonical_spec(x) for x in as_list(s["random"])]
    if "zeros" not in symmetric:
        raise UserError(f"symmetric: must include 'zeros' (the claim is about zero init); got {s['symmetric']}")
    if not random_:
        raise UserError("random: need at least one random scheme to compare against")
    if isinstance(s["depth"], int) and s["depth"] < 1:
        raise UserError(f"depth: need at least one hidden layer to count units in; got {s['depth']}")
    order = symmetric + random_
    seeds = seed_list(s["seeds"])
    trained_act = canonical(s["activation"])
    grad_activations = [canonical(a) for a in as_list(s["grad_activations"])]
    settings = dict(
        schemes=tuple(order),
        seeds=seeds,
        dataset=s["dataset"],
        width=s["width"],
        depth=s["depth"],
        activation=trained_act,
        epochs=s["epochs"],
        lr=s["lr"],
        batch_size=s["batch_size"],
        reference=random_[0],
        paired_test="t",
    )
    config = CompareConfig(**settings)
    data = ctx.compare(**settings)
    stored = data.accuracy_by_seed()
    dataset = load(config.dataset, **config.data_options)

    # 1. distinct units and weight movement, from the same runs trained again
    units: dict[str, dict[str, list[int]]] = {sch: {} for sch in order}
    moved: dict[str, list[bool]] = {sch: [] for sch in order}
    reproduced = 0
    template = build_template(model_factory(config, dataset.input_shape, dataset.num_classes))
    pairs = hidden_layers(template)
    layers = [w.rsplit(".", 1)[0] for w, _ in pairs]  # module names: fc1, fc2, ...
    for scheme, seed, acc, init, trained in trained_weights(config, dataset):
        reproduced += acc == stored.get(scheme, {}).get(seed)
        for w, b in pairs:
            units[scheme].setdefault(w.rsplit(".", 1)[0], []).append(
                distinct_units(trained[w], trained[b] if b else None, tol=s["tol"])
            )
        weights = [n for n, t in init.items() if t.dim() >= 2]
        moved[scheme].append(any(not torch.equal(init[n], trained[n]) for n in weights))

    # 2. accuracy and the paired gap to zero init
    accuracy = {sch: [stored[sch][k] for k in seeds] for sch in order}
    best_random = max(random_, key=lambda x: sum(accuracy[x]) / len(accuracy[x]))
    gap = [a - z for a, z in zip(accuracy[best_random], accuracy["zeros"])]
    effect, lo, hi = mean_ci(gap)

    # 3. gradients at init, per activation
    grads: dict[str, dict[str, dict[str, float]]] = {}
    for act in grad_activations + ([] if trained_act in grad_activations else [trained_act]):
        cfg = dataclasses.replace(config, activation=act)
        grads[act] = {sch: gradients_at_init(cfg, dataset, sch, seed=seeds[0], batch=s["grad_batch"]) for sch in order}

    def with_gradient(g: dict[str, float]) -> list[str]:
        # float32 rounding leaves ~1e-8 where the exact gradient is zero (constant init: equal
        # logits make sum_k (p_k - y_k) = 0 reach the hidden layers), hence a relative floor
        floor = GRADIENT_FLOOR * max(g.values(), default=0.0)
        return [n for n, v in g.items() if v > floor]

    weight_names = [n for n, p in template.named_parameters() if p.dim() >= 2]
    output_weight = weight_names[-1]
    zero_grad_weights = all(grads[trained_act]["zeros"][n] == 0.0 for n in weight_names)
    zeros_never_moved = not any(moved["zeros"])
    one_unit = all(all(c == 1 for c in units[sch][layer]) for sch in symmetric for layer in layers)
    all_distinct = all(all(c == config.width for c in units[sch][layer]) for sch in random_ for layer in layers)
    symmetry_holds = one_unit and all_distinct
    performance_holds = lo > 0
    inhibits = zero_grad_weights and zeros_never_moved
    if symmetry_holds and performance_holds:
        verdict = "supported" if inhibits else "partly"
    else:
        verdict = "not supported"

    n_runs = len(seeds) * len(order)
    evidence = {
        "distinct_units": units,
        "width": config.width,
        "symmetric_runs_one_unit_per_layer": one_unit,
        "random_runs_all_units_distinct": all_distinct,
        "accuracy": {
            sch: {"mean": mean_ci(v)[0], "ci": list(mean_ci(v)[1:]), "per_seed": v} for sch, v in accuracy.items()
        },
        "best_random": best_random,
        "gap_best_random_minus_zeros": {"mean": effect, "ci": [lo, hi], "per_seed": gap},
        "params_with_gradient_at_init": {
            act: {sch: with_gradient(g) for sch, g in per.items()} for act, per in grads.items()
        },
        "zero_init_weight_gradients_all_zero": zero_grad_weights,
        "weights_moved_in_training": {sch: sum(v) for sch, v in moved.items()},
        "runs_per_scheme": len(seeds),
        "reproduced_stored_runs": f"{reproduced}/{n_runs}",
    }

    unit_rows = []
    for sch in order:
        row = [sch]
        for layer in layers:
            counts = units[sch][layer]
            row.append(str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}")
        m, a, b = mean_ci(accuracy[sch])
        row.append(f"{100 * m:.1f} [{100 * a:.1f}, {100 * b:.1f}]" if len(seeds) > 1 else f"{100 * m:.1f}")
        row.append(f"{sum(moved[sch])}/{len(seeds)}")
        unit_rows.append(row)
    grad_rows = []
    for act, per in grads.items():
        for sch, g in per.items():
            names = with_gradient(g)
            hidden_norm = math.sqrt(sum(g[w] ** 2 for w, _ in pairs))
            which = "all" if len(names) == len(g) else (", ".join(names) or "none")
            grad_rows.append(
                [act, sch, f"{len(names)}/{len(g)}", which, f"{hidden_norm:.3g}", f"{g[output_weight]:.3g}"]
            )

    figure = _plot(ctx.out / "symmetry.png", order, units, accuracy, layers, config.width)
    zero_params = with_gradient(grads[trained_act]["zeros"])
    summary = (
        f"After {config.epochs} epochs every hidden layer of every {'/'.join(symmetric)} run "
        f"{'has exactly one distinct unit' if one_unit else 'does NOT always collapse to one unit'} (of "
        f"{config.width}); {'/'.join(random_)} keep{'s' if len(random_) == 1 else ''} "
        f"{'all' if all_distinct else 'not all'} units distinct. Zero init reaches "
        f"{100 * mean_ci(accuracy['zeros'])[0]:.1f}% vs {100 * mean_ci(accuracy[best_random])[0]:.1f}% for "
        f"{best_random}. At init under zero weights ({trained_act}) only {', '.join(zero_params) or 'no parameter'} "
        f"get{'s' if len(zero_params) == 1 else ''} a gradient: the weight gradients are exactly zero, not vanishing"
        + ("" if zeros_never_moved else " (yet the weights did move during training)")
        + (
            f"; with sigmoid (phi(0) = 1/2) {', '.join(with_gradient(grads['sigmoid']['zeros']))} do"
            if "sigmoid" in grads and trained_act != "sigmoid"
            else ""
        )
        + (
            f". Constant init also starts with gradient in {', '.join(with_gradient(grads[trained_act]['constant']))}"
            " only (equal logits send back sum_k (p_k - y_k) = 0)."
            if "constant" in grads[trained_act]
            else "."
        )
    )
    return StudyResult(
        study="symmetry",
        claim=CLAIM,
        verdict=verdict,
        effect=effect,
        ci=(lo, hi),
        effect_label=f"test accuracy {best_random} − zeros (paired by seed)",
        summary=summary,
        evidence=evidence,
        tables=[
            (
                f"Distinct units per hidden layer after training (of {config.width}; range over seeds), "
                "test accuracy % (mean, 95% CI), runs whose weights moved",
                ["scheme", *layers, "test acc %", "weights moved"],
                unit_rows,
            ),
            (
                f"Gradients at init (seed {seeds[0]}, {s['grad_batch']} samples): parameters with a nonzero gradient",
                [
                    "activation",
                    "scheme",
                    "params with gradient",
                    "which",
                    "|grad| hidden weights",
                    "|grad| output weight",
                ],
                grad_rows,
            ),
        ],
        figures=[figure],
        experiments=[data.experiment_id],
        settings=s,
    )
