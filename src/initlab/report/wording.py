"""The words a report shares between the terminal, Markdown and HTML: titles, notes, the setup line."""

from __future__ import annotations

import math
from collections.abc import Mapping

from initlab.report import tables
from initlab.report.data import ReportData
from initlab.tasks import Metric

EQUIVALENCE_NOTE = (
    "test accuracy at the learning rate selected on validation at that budget; Δ = mean paired difference with "
    "the reference, its 95% CI from a paired bootstrap over seeds and test examples (so it includes the test "
    "set's own sampling error); equivalent = CI inside ±{margin:g} points, better/worse = CI above/below 0, "
    "else inconclusive"
)


def claims(data: ReportData) -> bool:
    """The article's accuracy table is about its own benchmark: shown beside built-in data only."""
    return not data.config.get("data_source")


def metric_title(metric: Metric) -> str:
    return {
        "accuracy": "Test accuracy (%)",
        "mse": "Test MSE (target units²; lower is better)",
        "loss": "Test loss (nats/token; lower is better)",
    }.get(metric.name, metric.name)


def target_text(data: ReportData) -> str:
    if data.target is None:
        return "no target"
    if data.metric.name == "accuracy":
        return f"target {100 * data.target:.0f}%"
    return f"target {data.metric.name} ≤ {data.target:g}"


def task_notes(data: ReportData) -> list[str]:
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


def describe(config: Mapping) -> str:
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


def tuning_markdown(data: ReportData) -> list[str]:
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
