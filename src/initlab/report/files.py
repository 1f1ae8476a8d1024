"""The report as files: report.md, report.html (self-contained, offline), PNG plots, runs.csv."""

from __future__ import annotations

import base64
import csv
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from initlab.report import plots, tables
from initlab.report.data import RUN_COLUMNS, ReportData
from initlab.report.wording import (
    EQUIVALENCE_NOTE,
    claims,
    describe,
    metric_title,
    target_text,
    task_notes,
    tuning_markdown,
)


def write_report(data: ReportData, out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.html (self-contained, offline), PNG plots and runs.csv."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = _write_plots(data, out)
    files["csv"] = _write_csv(data, out)
    parts = _Parts.of(data)
    (out / "report.md").write_text(_markdown(data, parts, files))
    files["md"] = out / "report.md"
    (out / "report.html").write_text(_html(data, parts, files))
    files["html"] = out / "report.html"
    return files


FIGURES = ("accuracy", "curves", "convergence", "signal", "sensitivity")


def _write_plots(data: ReportData, out: Path) -> dict[str, Path]:
    """The PNG plots that apply to ``data``, by key of ``FIGURES``, drawn on two cores where
    there are (``report.forked``)."""
    from initlab.report.forked import draw_all

    order, metric = data.order, data.metric
    with_claims = claims(data)
    jobs: dict[str, tuple[Path, Callable[[], object]]] = {}

    def job(key: str, filename: str, draw: Callable[[Path], object]) -> None:
        path = out / filename
        jobs[key] = (path, lambda: draw(path))

    job(
        "accuracy",
        "accuracy.png",
        lambda p: plots.plot_accuracy(data.runs, order, p, metric=metric, claims=with_claims),
    )
    job("curves", "curves.png", lambda p: plots.plot_curves(data.epochs, order, p, metric=metric))
    if data.target is not None:
        target = data.target
        job(
            "convergence",
            "convergence.png",
            lambda p: plots.plot_convergence(data.steps, order, target, data.total_steps, p, metric=metric),
        )
    if data.signal:
        job("signal", "signal_at_init.png", lambda p: plots.plot_signal(data.signal, order, p))
    if data.tuned:
        job(
            "sensitivity",
            "sensitivity.png",
            lambda p: plots.plot_sensitivity(data.all_runs, order, data.tuning.final, p),
        )
    return draw_all(jobs)


def _write_csv(data: ReportData, out: Path) -> Path:
    """runs.csv: every run (all learning rates in grid mode), by scheme, lr and seed."""
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RUN_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for r in sorted((r.to_row() for r in data.all_runs), key=lambda r: (r["scheme"], r["lr"] or 0.0, r["seed"])):
            writer.writerow(r)
    return out / "runs.csv"


def _captions(data: ReportData) -> dict[str, str]:
    metric = data.metric
    is_acc = metric.name == "accuracy"
    return {
        "accuracy": (
            "Final test accuracy per scheme; dots are seeds, × diverged, ◇ the article's claimed mean (unsourced)."
            if is_acc and claims(data)
            else "Final test accuracy per scheme; dots are seeds, × diverged."
            if is_acc
            else f"Final {metric_title(metric).lower()} per scheme; dots are seeds, × diverged."
        ),
        "curves": "Learning curves: mean over seeds, band min–max.",
        "convergence": f"Fraction of seeds at the target ({target_text(data)}) by training step.",
        "signal": "Per-layer forward and backward signal at initialization (seed 0).",
        "sensitivity": "Validation accuracy against learning rate at the final budget: mean over seeds, band "
        "min–max, the selected rate circled.",
    }


def _units(data: ReportData) -> str:
    """What the summary's numbers are, under its table."""
    metric = data.metric
    if metric.name == "accuracy":
        return (
            "Accuracies in %. Δ vs ref: mean paired difference (percentage points) against the reference, "
            "paired by seed; p: Holm-corrected. 'article claims' is the mean of the article's unsourced table, "
            "shown for comparison, not measured. Steps to target: the first epoch end at which test accuracy "
            f"reaches {100 * data.target:.0f}% (median over the seeds that reach it)."
        )
    return (
        f"Values: test {metric.name} in {metric.unit}; lower is better, rank 1 is the lowest mean. "
        "Δ vs ref: mean paired difference (scheme − reference; negative is better), paired by seed; "
        "p: Holm-corrected. " + " ".join(task_notes(data))
    )


@dataclass(frozen=True)
class _Parts:
    """What the Markdown and the HTML page both show."""

    run_header: list
    run_rows: list
    summary_header: list
    summary_rows: list
    units: str
    setup: str
    versions: str
    captions: dict[str, str]

    @classmethod
    def of(cls, data: ReportData) -> _Parts:
        run_header, run_rows = tables.run_table(data.runs, data.order, data.metric)
        return cls(
            run_header=run_header,
            run_rows=run_rows,
            summary_header=tables.summary_header(data.metric),
            summary_rows=tables.summary_rows(data.summary, data.reference, data.metric, claims(data)),
            units=_units(data),
            setup=describe(data.config),
            versions=", ".join(f"{k} {v}" for k, v in data.versions.items()),
            captions=_captions(data),
        )


def _markdown(data: ReportData, parts: _Parts, files: dict[str, Path]) -> str:
    md = [
        f"# initlab compare — experiment `{data.experiment_id}`",
        "",
        f"Setup: {parts.setup}.",
        f"Created {data.created}; {parts.versions}." if parts.versions else "",
        "",
        "## Summary",
        "",
        tables.markdown(parts.summary_header, parts.summary_rows),
        "",
        parts.units,
        "",
        *(tuning_markdown(data) if data.paired_examples else []),
        "## Runs",
        "",
        tables.markdown(parts.run_header, parts.run_rows),
        "",
    ]
    for key in FIGURES:
        if key in files:
            md += [f"![{parts.captions[key]}]({files[key].name})", "", f"*{parts.captions[key]}*", ""]
    md += ["## Config", "", "```json", json.dumps(data.config, indent=2, sort_keys=True), "```", ""]
    return "\n".join(md)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
    "td:nth-child(2),th:nth-child(2){text-align:left}th{background:#f3f3f3}img{max-width:100%}"
    "figure{margin:1.5em 0}figcaption{font-size:13px;color:#555}pre{background:#f7f7f7;padding:1em;overflow:auto}"
    ".scroll{overflow-x:auto;max-width:100%;margin:1em 0}.scroll table{margin:0}td{white-space:nowrap}"
    "h1{font-size:1.5em;overflow-wrap:anywhere}code{overflow-wrap:anywhere}"
)


def _img(path: Path, caption: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{b64}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _html(data: ReportData, parts: _Parts, files: dict[str, Path]) -> str:
    body = [
        f"<h1>initlab compare — experiment <code>{html.escape(data.experiment_id)}</code></h1>",
        f"<p>Setup: {html.escape(parts.setup)}.<br>Created {html.escape(data.created)}; {html.escape(parts.versions)}.</p>",
        "<h2>Summary</h2>",
        tables.html_table(parts.summary_header, parts.summary_rows),
        f"<p>{html.escape(parts.units)}</p>",
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
    body += [_img(files[k], parts.captions[k]) for k in FIGURES if k in files]
    body += [
        "<h2>Runs</h2>",
        tables.html_table(parts.run_header, parts.run_rows),
        "<h2>Config</h2>",
        f"<pre>{html.escape(json.dumps(data.config, indent=2, sort_keys=True))}</pre>",
    ]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>initlab {html.escape(data.experiment_id)}</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
