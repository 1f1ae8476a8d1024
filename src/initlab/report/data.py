"""``ReportData``: an experiment's runs, epochs and summary, computed from stored records alone."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

from initlab import stats
from initlab.report import analysis
from initlab.tasks import Metric, bits, metric_for

RUN_COLUMNS = (
    "scheme",
    "seed",
    "lr",
    "status",
    "test_acc",
    "test_loss",
    "train_acc",
    "train_loss",
    "diverged_step",
    "steps_to_target",
    "wall_time",
)
SUMMARY_KEYS = (
    "scheme",
    "n",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "median",
    "min",
    "max",
    "diverged",
    "steps_to_target",
    "reached_target",
    "rank",
    "diff_vs_reference",
    "p_value",
    "p_holm",
    "lr",
    "grid",
    "vs_reference",
    "diff_ci",
    "budgets",
)


def json_ready(value: Any) -> Any:
    """``value`` as strict JSON takes it: NaN and infinities as null (JSON has neither), tuples as
    lists, keys as strings; the one cleaner behind every ``--json`` contract."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


@dataclass
class ReportData:
    """What a report shows, computed from stored records alone.

    ``all_runs``: every member, decoded (``analysis.Run``). ``runs``/``epochs``: the *tuned* runs
    as plain dicts (each scheme at its selected lr; at a fixed lr, every run), with ``scheme`` the
    scheme's name: what tables, plots and studies read. ``tuning``: selection, budgets and
    equivalence verdicts (``initlab.report.analysis``).
    """

    experiment_id: str
    config: dict
    runs: list[dict]
    epochs: list[dict]
    signal: dict[str, list[dict]] = field(default_factory=dict)
    created: str = ""
    versions: dict = field(default_factory=dict)
    summary: list[dict] = field(default_factory=list)
    steps: dict[str, list[int | None]] = field(default_factory=dict)
    all_runs: list[analysis.Run] = field(default_factory=list)
    tuning: analysis.Analysis | None = None

    @property
    def reference(self) -> str | None:
        return self.config.get("reference")

    @property
    def metric(self) -> Metric:
        """What the summary ranks by: accuracy, or an MSE / loss where lower is better."""
        return metric_for(self.config.get("task"))

    @property
    def target(self) -> float | None:
        """An accuracy (classification; DEFAULT_TARGET when the config predates it), or an MSE /
        loss to get below (regression, lm; None: not tracked)."""
        from initlab.sweep.config import DEFAULT_TARGET

        target = self.config.get("target", DEFAULT_TARGET if self.metric.name == "accuracy" else None)
        return None if target is None else float(target)

    @property
    def tuned(self) -> bool:
        """True when a learning-rate grid was selected on validation."""
        return bool(self.config.get("lr_grid"))

    @property
    def margin(self) -> float:
        return float(self.config.get("margin", 0.005))

    @property
    def paired_examples(self) -> bool:
        """Whether equivalence verdicts apply: classification stores per-example correctness;
        regression and lm have none (no bootstrap over test examples)."""
        return self.metric.name == "accuracy"

    @property
    def order(self) -> list[str]:
        """Schemes in the order the user asked for them."""
        asked = list(self.config.get("schemes", []))
        seen = [r["scheme"] for r in self.runs]
        return [s for s in asked if s in seen] + sorted(set(seen) - set(asked))

    @property
    def total_steps(self) -> int:
        return max((e["step"] for e in self.epochs), default=0)

    def accuracy_by_seed(self, epoch: int | None = None) -> dict[str, dict[int, float]]:
        """scheme -> {seed: test accuracy} of the tuned runs, after ``epoch`` (None: the last)."""
        out: dict[str, dict[int, float]] = {}
        for r in self.tuning.tuned_runs if self.tuning else []:
            value = getattr(r, self.metric.run_key) if epoch is None else r.test_curve.get(epoch, math.nan)
            out.setdefault(r.scheme, {})[r.seed] = value
        return out

    def curves(self) -> dict[tuple[str, int], list[dict]]:
        """(scheme, seed) -> the tuned run's epoch dicts, in epoch order."""
        out: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for e in sorted(self.epochs, key=lambda e: e["epoch"]):
            out[(e["scheme"], e["seed"])].append(e)
        return dict(out)

    @classmethod
    def from_records(
        cls, experiment_id: str, config: dict, runs: Sequence[Any], epochs: Sequence[Any], **kw
    ) -> ReportData:
        """From store records (``RunRecord``/``StoredEpoch``, or their dicts) and the config dict."""
        run_dicts = [_as_dict(r) for r in runs]
        epoch_dicts = [_as_dict(e) for e in epochs]
        data = cls(experiment_id, dict(config), [], [], **kw)
        by_run: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for e in epoch_dicts:
            by_run[(e["scheme"], int(e["seed"]))].append(e)
        data.all_runs = [
            analysis.Run.from_record(
                r, by_run.get((r["scheme"], int(r["seed"])), []), target=data.target, metric=data.metric
            )
            for r in run_dicts
        ]
        data.compute_summary(by_run)
        return data

    def compute_summary(self, by_run: Mapping[tuple[str, int], list[dict]]) -> None:
        metric = self.metric
        epochs = int(self.config.get("epochs", 0)) or max(
            (max(r.test_curve, default=0) for r in self.all_runs), default=0
        )
        self.tuning = analysis.analyze(
            self.all_runs,
            schemes=self.config.get("schemes", []),
            reference=self.reference,
            budgets=self.config.get("budgets") or [epochs],
            margin=self.margin,
            bounds=metric.bounds,
        )
        tuned = sorted(self.tuning.tuned_runs, key=lambda r: (r.scheme, r.seed))
        self.runs = [r.to_row() for r in tuned]
        self.epochs = [dict(e, scheme=r.scheme, lr=r.lr) for r in tuned for e in by_run.get((r.label, r.seed), [])]
        accuracy: dict[str, dict[int, float]] = defaultdict(dict)  # the task's metric, by scheme and seed
        diverged: dict[str, int] = defaultdict(int)
        self.steps = defaultdict(list)
        for r in tuned:
            accuracy[r.scheme][r.seed] = getattr(r, metric.run_key)
            diverged[r.scheme] += r.status == "diverged"
            self.steps[r.scheme].append(r.steps_to_target)
        rows = stats.compare_schemes(
            accuracy,
            reference=self.reference,
            diverged=diverged,
            steps=self.steps,
            method=self.config.get("paired_test", "wilcoxon"),
            higher_is_better=metric.higher_is_better,
            bounds=metric.bounds,
        )
        order = {s: i for i, s in enumerate(self.order)}
        final = self.tuning.final if self.tuning.budgets else None
        self.summary = []
        for row in sorted(rows, key=lambda r: order.get(r.scheme, 1e9)):
            out = row.to_dict()
            at_final = self.tuning.rows[final][row.scheme] if final is not None else None
            out["lr"] = self.config.get("lr") if at_final is None or at_final.lr is None else at_final.lr
            out["grid"] = at_final.val_means if at_final is not None else {}
            paired = at_final is not None and self.paired_examples
            out["vs_reference"] = at_final.vs_reference if paired else None
            out["diff_ci"] = list(at_final.diff_ci) if paired and at_final.diff_ci else None
            out["budgets"] = [self._budget_dict(self.tuning.rows[b][row.scheme]) for b in self.tuning.budgets]
            if self.target is None:
                out["reached_target"] = None
            # the task's second number: R² (regression), bits per token (lm)
            if self.config.get("task") == "regression":
                r2 = [r.r2 for r in tuned if r.scheme == row.scheme and r.r2 is not None and math.isfinite(r.r2)]
                out["r2"] = sum(r2) / len(r2) if r2 else math.nan
            elif self.config.get("task") == "lm":
                out["bits"] = bits(out["mean"])
            self.summary.append(out)

    def _budget_dict(self, row: analysis.BudgetRow) -> dict:
        out = row.to_dict()
        if out["lr"] is None:  # fixed-lr mode: the one rate every scheme trained with
            out["lr"] = self.config.get("lr")
        if not self.paired_examples:
            out["vs_reference"] = out["diff_ci"] = None
        return out

    # --- JSON contract (DESIGN.md) -----------------------------------------------------------
    def to_json(self) -> dict:
        keys = SUMMARY_KEYS + {"regression": ("r2",), "lm": ("bits",)}.get(self.config.get("task"), ())
        out = {
            "experiment_id": self.experiment_id,
            "metric": {
                "name": self.metric.name,
                "higher_is_better": self.metric.higher_is_better,
                "unit": self.metric.unit,
            },
            "config": self.config,
            "summary": [{k: json_ready(r.get(k)) for k in keys} for r in self.summary],
            "runs": [{k: json_ready(r.get(k)) for k in RUN_COLUMNS} for r in self.runs],
        }
        if self.tuned:  # every member of the grid, the selected ones included
            out["grid_runs"] = [
                json_ready({**r.to_row(), "val_acc": r.val_at(self.tuning.final)})
                for r in sorted(self.all_runs, key=lambda r: (r.scheme, r.lr or 0.0, r.seed))
            ]
        return out


def _as_dict(record: Any) -> dict:
    return asdict(record) if is_dataclass(record) else dict(record)
