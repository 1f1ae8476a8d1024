"""Reports for an experiment: terminal tables, Markdown, self-contained HTML, PNG plots, CSV.

Everything is computed from stored records (the experiment's config, its runs and per-epoch
metrics, the signal at init), so ``initlab report ID`` rebuilds the report from the store alone.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from initlab import stats
from initlab.article import claimed_mean
from initlab.report import analysis, plots, tables
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
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            return x

        keys = SUMMARY_KEYS + {"regression": ("r2",), "lm": ("bits",)}.get(self.config.get("task"), ())
        out = {
            "experiment_id": self.experiment_id,
            "metric": {
                "name": self.metric.name,
                "higher_is_better": self.metric.higher_is_better,
                "unit": self.metric.unit,
            },
            "config": self.config,
            "summary": [{k: clean(r.get(k)) for k in keys} for r in self.summary],
            "runs": [{k: clean(r.get(k)) for k in RUN_COLUMNS} for r in self.runs],
        }
        if self.tuned:  # every member of the grid, the selected ones included
            out["grid_runs"] = [
                clean({**r.to_row(), "val_acc": r.val_at(self.tuning.final)})
                for r in sorted(self.all_runs, key=lambda r: (r.scheme, r.lr or 0.0, r.seed))
            ]
        return out


def _as_dict(record: Any) -> dict:
    return asdict(record) if is_dataclass(record) else dict(record)


def print_terminal(data: ReportData, *, file=None) -> None:
    """The article-style run table, then the summary."""
    metric = data.metric
    header, rows = tables.run_table(data.runs, data.order, metric)
    tables.print_rich(
        f"{_metric_title(metric)} per run — experiment {data.experiment_id}  († diverged)", header, rows, file=file
    )
    tables.print_rich(
        f"Summary over seeds (reference: {data.reference}; Δ and p from paired "
        f"{data.config.get('paired_test', 'wilcoxon')} tests, Holm-corrected; {_target_text(data)})",
        tables.summary_header(metric),
        tables.summary_rows(data.summary, data.reference, metric, _claims(data)),
        file=file,
    )
    extra = _task_notes(data)
    if extra:
        print("\n".join(extra), file=file)
    if data.tuned:
        header, rows = tables.grid_table(data.summary)
        tables.print_rich(
            "Mean validation accuracy (%) per learning rate, final budget (* selected)", header, rows, file=file
        )
    if data.paired_examples:
        tables.print_rich(
            f"Per budget: {EQUIVALENCE_NOTE.format(margin=100 * data.margin)}",
            tables.BUDGET_HEADER,
            tables.budget_rows(data.summary, data.reference),
            file=file,
        )


EQUIVALENCE_NOTE = (
    "test accuracy at the learning rate selected on validation at that budget; Δ = mean paired difference with "
    "the reference, its 95% CI from a paired bootstrap over seeds and test examples (so it includes the test "
    "set's own sampling error); equivalent = CI inside ±{margin:g} points, better/worse = CI above/below 0, "
    "else inconclusive"
)


def _claims(data: ReportData) -> bool:
    """The article's accuracy table is about its own benchmark: shown beside built-in data only."""
    return not data.config.get("data_source")


def _metric_title(metric: Metric) -> str:
    return {
        "accuracy": "Test accuracy (%)",
        "mse": "Test MSE (target units²; lower is better)",
        "loss": "Test loss (nats/token; lower is better)",
    }.get(metric.name, metric.name)


def _target_text(data: ReportData) -> str:
    if data.target is None:
        return "no target"
    if data.metric.name == "accuracy":
        return f"target {100 * data.target:.0f}%"
    return f"target {data.metric.name} ≤ {data.target:g}"


def _task_notes(data: ReportData) -> list[str]:
    """The second number of a task, per scheme: R² (regression) or bits per token (lm)."""
    task = data.config.get("task")
    if task == "regression":
        return [
            "R² = 1 − MSE/Var(y_test), mean over seeds: "
            + ", ".join(f"{r['scheme']} {r.get('r2', math.nan):.3f}" for r in data.summary)
        ]
    if task == "lm":
        unit = "byte" if data.config.get("data_options", {}).get("level") == "byte" else "character"
        return [
            f"Bits per {unit} (mean loss / ln 2): "
            + ", ".join(f"{r['scheme']} {r.get('bits', math.nan):.3f}" for r in data.summary)
        ]
    return []


def _describe(config: Mapping) -> str:
    keys = (
        "task",
        "dataset",
        "model",
        "width",
        "depth",
        "activation",
        "epochs",
        "batch_size",
        "optimizer",
        "lr_grid" if config.get("lr_grid") else "lr",
        "budgets",
        "margin",
        "val_fraction",
        "bias_init",
        "seeds",
    )
    text = ", ".join(f"{k}={config[k]}" for k in keys if k in config)
    source = config.get("data_source") or {}
    if source:
        where = source.get("path") or source.get("function")
        size = f"{source['size']} bytes, " if "size" in source else ""
        text += f"; data {where} ({size}sha256 {str(source.get('sha256'))[:12]})"
    return text


def _tuning_markdown(data: ReportData) -> list[str]:
    """The learning-rate selection (grid mode) and per-budget equivalence sections of report.md."""
    lines = [
        "## Budgets and equivalence",
        "",
        tables.markdown(tables.BUDGET_HEADER, tables.budget_rows(data.summary, data.reference)),
        "",
        "Per budget: " + EQUIVALENCE_NOTE.format(margin=100 * data.margin) + ".",
        "",
    ]
    if data.tuned:
        grid_header, grid_rows = tables.grid_table(data.summary)
        lines = [
            "## Learning-rate selection",
            "",
            tables.markdown(grid_header, grid_rows),
            "",
            "Mean validation accuracy (%) over seeds at the final budget; the validation split is carved "
            "from the training set (stratified, fixed, the same for every seed and scheme); the test set "
            "is not used to select.",
            "",
        ] + lines
    return lines


def write_report(data: ReportData, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html (self-contained, offline), PNG plots and runs.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = data.order
    metric = data.metric
    files = {
        "accuracy": plots.plot_accuracy(data.runs, order, out / "accuracy.png", metric=metric, claims=_claims(data)),
        "curves": plots.plot_curves(data.epochs, order, out / "curves.png", metric=metric),
    }
    if data.target is not None:
        files["convergence"] = plots.plot_convergence(
            data.steps, order, data.target, data.total_steps, out / "convergence.png", metric=metric
        )
    if data.signal:
        files["signal"] = plots.plot_signal(data.signal, order, out / "signal_at_init.png")
    if data.tuned:
        files["sensitivity"] = plots.plot_sensitivity(data.all_runs, order, data.tuning.final, out / "sensitivity.png")
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RUN_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in sorted((r.to_row() for r in data.all_runs), key=lambda r: (r["scheme"], r["lr"] or 0.0, r["seed"])):
            writer.writerow(r)
    files["csv"] = out / "runs.csv"
    run_header, run_rows = tables.run_table(data.runs, order, metric)
    sum_rows = tables.summary_rows(data.summary, data.reference, metric, _claims(data))
    summary_header = tables.summary_header(metric)
    is_acc = metric.name == "accuracy"
    captions = {
        "accuracy": (
            "Final test accuracy per scheme; dots are seeds, × diverged, ◇ the article's claimed mean (unsourced)."
            if is_acc and _claims(data)
            else "Final test accuracy per scheme; dots are seeds, × diverged."
            if is_acc
            else f"Final {_metric_title(metric).lower()} per scheme; dots are seeds, × diverged."
        ),
        "curves": "Learning curves: mean over seeds, band min–max.",
        "convergence": f"Fraction of seeds at the target ({_target_text(data)}) by training step.",
        "signal": "Per-layer forward and backward signal at initialization (seed 0).",
        "sensitivity": "Validation accuracy against learning rate at the final budget: mean over seeds, band "
        "min–max, the selected rate circled.",
    }
    figures = ("accuracy", "curves", "convergence", "signal", "sensitivity")
    budget_md = _tuning_markdown(data) if data.paired_examples else []
    if is_acc:
        units = (
            "Accuracies in %. Δ vs ref: mean paired difference (percentage points) against the reference, "
            "paired by seed; p: Holm-corrected. 'article claims' is the mean of the article's unsourced table, "
            "shown for comparison, not measured. Steps to target: the first epoch end at which test accuracy "
            f"reaches {100 * data.target:.0f}% (median over the seeds that reach it)."
        )
    else:
        units = (
            f"Values: test {metric.name} in {metric.unit}; lower is better, rank 1 is the lowest mean. "
            "Δ vs ref: mean paired difference (scheme − reference; negative is better), paired by seed; "
            "p: Holm-corrected. " + " ".join(_task_notes(data))
        )
    setup = _describe(data.config)
    versions = ", ".join(f"{k} {v}" for k, v in data.versions.items())
    md = [
        f"# initlab compare — experiment `{data.experiment_id}`",
        "",
        f"Setup: {setup}.",
        f"Created {data.created}; {versions}." if versions else "",
        "",
        "## Summary",
        "",
        tables.markdown(summary_header, sum_rows),
        "",
        units,
        "",
        *budget_md,
        "## Runs",
        "",
        tables.markdown(run_header, run_rows),
        "",
    ]
    for key in figures:
        if key in files:
            md += [f"![{captions[key]}]({files[key].name})", "", f"*{captions[key]}*", ""]
    md += ["## Config", "", "```json", json.dumps(data.config, indent=2, sort_keys=True), "```", ""]
    (out / "report.md").write_text("\n".join(md))
    files["md"] = out / "report.md"

    def img(path: Path, caption: str) -> str:
        b64 = base64.b64encode(path.read_bytes()).decode()
        return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}</figcaption></figure>'

    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "td:nth-child(2),th:nth-child(2){text-align:left}th{background:#f3f3f3}img{max-width:100%}"
        "figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}pre{background:#f7f7f7;padding:1em;overflow:auto}"
        ".scroll{overflow-x:auto;max-width:100%;margin:1em 0}.scroll table{margin:0}td{white-space:nowrap}"
        "h1{font-size:1.5em;overflow-wrap:anywhere}code{overflow-wrap:anywhere}"
    )
    body = [
        f"<h1>initlab compare — experiment <code>{html.escape(data.experiment_id)}</code></h1>",
        f"<p>Setup: {html.escape(setup)}.<br>Created {html.escape(data.created)}; {html.escape(versions)}.</p>",
        "<h2>Summary</h2>",
        tables.html_table(summary_header, sum_rows),
        f"<p>{html.escape(units)}</p>",
    ]
    if data.paired_examples:
        body += [
            "<h2>Budgets and equivalence</h2>",
            tables.html_table(tables.BUDGET_HEADER, tables.budget_rows(data.summary, data.reference)),
            f"<p>Per budget: {html.escape(EQUIVALENCE_NOTE.format(margin=100 * data.margin))}.</p>",
        ]
    if data.tuned:
        body += [
            "<h2>Learning-rate selection</h2>",
            tables.html_table(*tables.grid_table(data.summary)),
            "<p>Mean validation accuracy (%) at the final budget; * selected. Validation split carved from the "
            "training set; the test set is not used to select.</p>",
        ]
    body += [img(files[k], captions[k]) for k in figures if k in files]
    body += [
        "<h2>Runs</h2>",
        tables.html_table(run_header, run_rows),
        "<h2>Config</h2>",
        f"<pre>{html.escape(json.dumps(data.config, indent=2, sort_keys=True))}</pre>",
    ]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><title>initlab {html.escape(data.experiment_id)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )
    (out / "report.html").write_text(page)
    files["html"] = out / "report.html"
    return files


__all__ = ["ReportData", "print_terminal", "write_report", "claimed_mean"]
