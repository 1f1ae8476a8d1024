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
from dataclasses import dataclass, field
from pathlib import Path

from initlab import stats
from initlab.tasks import Metric, bits, metric_for
from initlab.article import claimed_mean
from initlab.report import plots, tables

RUN_COLUMNS = ("scheme", "seed", "status", "test_acc", "test_loss", "train_acc", "train_loss",
               "diverged_step", "steps_to_target", "wall_time")


@dataclass
class ReportData:
    """What a report shows. ``runs``/``epochs`` are plain dicts (store records as dicts)."""

    experiment_id: str
    config: dict
    runs: list[dict]
    epochs: list[dict]
    signal: dict[str, list[dict]] = field(default_factory=dict)
    created: str = ""
    versions: dict = field(default_factory=dict)
    summary: list[dict] = field(default_factory=list)
    steps: dict[str, list[int | None]] = field(default_factory=dict)

    @property
    def reference(self) -> str | None:
        return self.config.get("reference")

    @property
    def metric(self) -> Metric:
        """What the summary ranks by: accuracy, or an MSE / loss where lower is better."""
        return metric_for(self.config.get("task"))

    @property
    def target(self) -> float | None:
        target = self.config.get("target", 0.9)
        return None if target is None else float(target)

    @property
    def order(self) -> list[str]:
        """Schemes in the order the user asked for them."""
        asked = list(self.config.get("schemes", []))
        seen = [r["scheme"] for r in self.runs]
        return [s for s in asked if s in seen] + sorted(set(seen) - set(asked))

    @property
    def total_steps(self) -> int:
        return max((e["step"] for e in self.epochs), default=0)

    @classmethod
    def from_records(cls, experiment_id: str, config: dict, runs: Sequence[Mapping], epochs: Sequence[Mapping],
                     **kw) -> "ReportData":
        data = cls(experiment_id, dict(config), [dict(r) for r in runs], [dict(e) for e in epochs], **kw)
        data.compute_summary()
        return data

    def compute_summary(self) -> None:
        metric = self.metric
        curves: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
        for e in self.epochs:
            curves[(e["scheme"], e["seed"])].append((e["step"], e[metric.run_key]))
        accuracy: dict[str, dict[int, float]] = defaultdict(dict)
        diverged: dict[str, int] = defaultdict(int)
        self.steps = defaultdict(list)
        for r in sorted(self.runs, key=lambda r: (r["scheme"], r["seed"])):
            accuracy[r["scheme"]][r["seed"]] = r[metric.run_key]
            diverged[r["scheme"]] += r["status"] == "diverged"
            curve = sorted(curves.get((r["scheme"], r["seed"]), []))
            reached = stats.steps_to_target([c[0] for c in curve], [c[1] for c in curve], self.target,
                                            metric.higher_is_better)
            r["steps_to_target"] = reached
            self.steps[r["scheme"]].append(reached)
        rows = stats.compare_schemes(accuracy, reference=self.reference, diverged=diverged, steps=self.steps,
                                     method=self.config.get("paired_test", "wilcoxon"),
                                     higher_is_better=metric.higher_is_better, bounds=metric.bounds)
        order = {s: i for i, s in enumerate(self.order)}
        self.summary = [r.to_dict() for r in sorted(rows, key=lambda r: order.get(r.scheme, 1e9))]
        for row in self.summary:
            if self.target is None:
                row["reached_target"] = None
        for row in self.summary:  # the task's second number: R² (regression), bits per token (lm)
            if self.config.get("task") == "regression":
                r2 = [r.get("extra", {}).get("r2") for r in self.runs if r["scheme"] == row["scheme"]]
                r2 = [x for x in r2 if x is not None and math.isfinite(x)]
                row["r2"] = sum(r2) / len(r2) if r2 else math.nan
            elif self.config.get("task") == "lm":
                row["bits"] = bits(row["mean"])

    # --- JSON contract (DESIGN.md) -----------------------------------------------------------
    def to_json(self) -> dict:
        def clean(x):
            return None if isinstance(x, float) and not math.isfinite(x) else x

        keys = ("scheme", "n", "mean", "std", "ci_low", "ci_high", "median", "min", "max", "diverged",
                "steps_to_target", "reached_target", "rank", "diff_vs_reference", "p_value", "p_holm")
        keys += {"regression": ("r2",), "lm": ("bits",)}.get(self.config.get("task"), ())
        return {
            "experiment_id": self.experiment_id,
            "metric": {"name": self.metric.name, "higher_is_better": self.metric.higher_is_better,
                       "unit": self.metric.unit},
            "config": self.config,
            "summary": [{k: clean(r[k]) for k in keys} for r in self.summary],
            "runs": [{k: clean(r.get(k)) for k in RUN_COLUMNS} for r in sorted(self.runs, key=lambda r: (r["scheme"], r["seed"]))],
        }


def print_terminal(data: ReportData, *, file=None) -> None:
    """The article-style run table, then the summary."""
    metric = data.metric
    header, rows = tables.run_table(data.runs, data.order, metric)
    tables.print_rich(f"{_metric_title(metric)} per run — experiment {data.experiment_id}  († diverged)", header, rows, file=file)
    tables.print_rich(
        f"Summary over seeds (reference: {data.reference}; Δ and p from paired "
        f"{data.config.get('paired_test', 'wilcoxon')} tests, Holm-corrected; {_target_text(data)})",
        tables.summary_header(metric), tables.summary_rows(data.summary, data.reference, metric, _claims(data)), file=file)
    extra = _task_notes(data)
    if extra:
        print("\n".join(extra), file=file)


def _claims(data: ReportData) -> bool:
    """The article's accuracy table is about its own benchmark: shown beside built-in data only."""
    return not data.config.get("data_source")


def _metric_title(metric: Metric) -> str:
    return {"accuracy": "Test accuracy (%)", "mse": "Test MSE (target units²; lower is better)",
            "loss": "Test loss (nats/token; lower is better)"}.get(metric.name, metric.name)


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
        return ["R² = 1 − MSE/Var(y_test), mean over seeds: " + ", ".join(
            f"{r['scheme']} {r.get('r2', math.nan):.3f}" for r in data.summary)]
    if task == "lm":
        unit = "byte" if data.config.get("data_options", {}).get("level") == "byte" else "character"
        return [f"Bits per {unit} (mean loss / ln 2): " + ", ".join(
            f"{r['scheme']} {r.get('bits', math.nan):.3f}" for r in data.summary)]
    return []


def _describe(config: Mapping) -> str:
    keys = ("task", "dataset", "model", "width", "depth", "activation", "epochs", "batch_size", "optimizer", "lr",
            "bias_init", "seeds")
    text = ", ".join(f"{k}={config[k]}" for k in keys if k in config)
    source = config.get("data_source") or {}
    if source:
        where = source.get("path") or source.get("function")
        size = f"{source['size']} bytes, " if "size" in source else ""
        text += f"; data {where} ({size}sha256 {str(source.get('sha256'))[:12]})"
    return text


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
        files["convergence"] = plots.plot_convergence(data.steps, order, data.target, data.total_steps,
                                                      out / "convergence.png", metric=metric)
    if data.signal:
        files["signal"] = plots.plot_signal(data.signal, order, out / "signal_at_init.png")
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RUN_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in sorted(data.runs, key=lambda r: (r["scheme"], r["seed"])):
            writer.writerow(r)
    files["csv"] = out / "runs.csv"
    run_header, run_rows = tables.run_table(data.runs, order, metric)
    sum_rows = tables.summary_rows(data.summary, data.reference, metric, _claims(data))
    summary_header = tables.summary_header(metric)
    is_acc = metric.name == "accuracy"
    captions = {
        "accuracy": ("Final test accuracy per scheme; dots are seeds, × diverged, ◇ the article's claimed mean (unsourced)."
                     if is_acc and _claims(data) else "Final test accuracy per scheme; dots are seeds, × diverged."
                     if is_acc else f"Final {_metric_title(metric).lower()} per scheme; dots are seeds, × diverged."),
        "curves": "Learning curves: mean over seeds, band min–max.",
        "convergence": f"Fraction of seeds at the target ({_target_text(data)}) by training step.",
        "signal": "Per-layer forward and backward signal at initialization (seed 0).",
    }
    if is_acc:
        units = ("Accuracies in %. Δ vs ref: mean paired difference (percentage points) against the reference, "
                 "paired by seed; p: Holm-corrected. 'article claims' is the mean of the article's unsourced table, "
                 "shown for comparison, not measured. Steps to target: the first epoch end at which test accuracy "
                 f"reaches {100 * data.target:.0f}% (median over the seeds that reach it).")
    else:
        units = (f"Values: test {metric.name} in {metric.unit}; lower is better, rank 1 is the lowest mean. "
                 "Δ vs ref: mean paired difference (scheme − reference; negative is better), paired by seed; "
                 "p: Holm-corrected. " + " ".join(_task_notes(data)))
    setup = _describe(data.config)
    versions = ", ".join(f"{k} {v}" for k, v in data.versions.items())
    md = [f"# initlab compare — experiment `{data.experiment_id}`", "",
          f"Setup: {setup}.", f"Created {data.created}; {versions}." if versions else "", "",
          "## Summary", "", tables.markdown(summary_header, sum_rows), "", units, "",
          "## Runs", "", tables.markdown(run_header, run_rows), ""]
    for key in ("accuracy", "curves", "convergence", "signal"):
        if key in files:
            md += [f"![{captions[key]}]({files[key].name})", "", f"*{captions[key]}*", ""]
    md += ["## Config", "", "```json", json.dumps(data.config, indent=2, sort_keys=True), "```", ""]
    (out / "report.md").write_text("\n".join(md))
    files["md"] = out / "report.md"

    def img(path: Path, caption: str) -> str:
        b64 = base64.b64encode(path.read_bytes()).decode()
        return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}</figcaption></figure>'

    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
             "td:nth-child(2),th:nth-child(2){text-align:left}th{background:#f3f3f3}img{max-width:100%}"
             "figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}pre{background:#f7f7f7;padding:1em;overflow:auto}")
    body = [f"<h1>initlab compare — experiment <code>{html.escape(data.experiment_id)}</code></h1>",
            f"<p>Setup: {html.escape(setup)}.<br>Created {html.escape(data.created)}; {html.escape(versions)}.</p>",
            "<h2>Summary</h2>", tables.html_table(summary_header, sum_rows),
            f"<p>{html.escape(units)}</p>"]
    body += [img(files[k], captions[k]) for k in ("accuracy", "curves", "convergence", "signal") if k in files]
    body += ["<h2>Runs</h2>", tables.html_table(run_header, run_rows),
             "<h2>Config</h2>", f"<pre>{html.escape(json.dumps(data.config, indent=2, sort_keys=True))}</pre>"]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>initlab {html.escape(data.experiment_id)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    (out / "report.html").write_text(page)
    files["html"] = out / "report.html"
    return files


__all__ = ["ReportData", "print_terminal", "write_report", "claimed_mean"]
