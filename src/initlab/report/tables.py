"""Tables for ``initlab compare``: the article-style run table and the summary, as terminal
(rich), Markdown and HTML. Accuracies are fractions in the data and percentages on screen."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence

from initlab.article import claimed_mean


def pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}"


def pval(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def value_text(x: float | None, metric=None) -> str:
    """A metric value as shown: accuracies in %, other metrics (MSE, loss) with 4 significant digits."""
    if metric is None or metric.name == "accuracy":
        return pct(x)
    return "—" if x is None or not math.isfinite(x) else f"{x:.4g}"


def steps_text(row: Mapping) -> str:
    if "reached_target" in row and row["reached_target"] is None:  # no target was set
        return "—"
    if row.get("steps_to_target") is None:
        return f"never (0/{row['n']})" if row["n"] else "—"
    return f"{row['steps_to_target']:.0f} ({row['reached_target']}/{row['n']})"


def run_table(runs: Sequence[Mapping], order: Sequence[str], metric=None) -> tuple[list[str], list[list[str]]]:
    """The article's layout, all schemes side by side: one row per run (seed), test accuracy %
    (or the task's ``metric``)."""
    key = "test_acc" if metric is None else metric.run_key
    by = {(r["scheme"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    header = ["run (seed)"] + list(order)
    rows = []
    for i, seed in enumerate(seeds, 1):
        cells = [f"{i} ({seed})"]
        for s in order:
            r = by.get((s, seed))
            if r is None:
                cells.append("")
            else:
                cells.append(value_text(r[key], metric) + (" †" if r["status"] == "diverged" else ""))
        rows.append(cells)
    return header, rows


SUMMARY_HEADER = [
    "rank",
    "scheme",
    "n",
    "mean ± std %",
    "95% CI %",
    "median",
    "min",
    "max",
    "diverged",
    "steps to target",
    "Δ vs ref (pp)",
    "p (Holm)",
    "article claims %",
]


def summary_header(metric=None) -> list[str]:
    """``SUMMARY_HEADER``, in the units of ``metric`` when it is not an accuracy."""
    if metric is None or metric.name == "accuracy":
        return list(SUMMARY_HEADER)
    return [
        "rank",
        "scheme",
        "n",
        f"mean ± std ({metric.name})",
        "95% CI",
        "median",
        "min",
        "max",
        "diverged",
        "steps to target",
        "Δ vs ref",
        "p (Holm)",
        "article claims %",
    ]


def summary_rows(
    summary: Sequence[Mapping], reference: str | None, metric=None, claims: bool = True
) -> list[list[str]]:
    """Rows of the summary table; ``claims=False`` leaves out the article's numbers (other data)."""
    pct = lambda x: value_text(x, metric)  # noqa: E731  (accuracies in %, MSE and loss as they are)
    rows = []
    for r in sorted(summary, key=lambda r: (r["rank"], r["scheme"])):
        if r["scheme"] == reference:
            diff, p = "ref", "—"
        else:
            d = r.get("diff_vs_reference")
            scale = 100 if metric is None or metric.name == "accuracy" else 1
            diff = "—" if d is None or not math.isfinite(d) else (f"{100 * d:+.2f}" if scale == 100 else f"{d:+.4g}")
            p = pval(r.get("p_holm"))
        claim = claimed_mean(r["scheme"]) if claims and (metric is None or metric.name == "accuracy") else None
        rows.append(
            [
                f"{r['rank']:g}",
                r["scheme"],
                str(r["n"]),
                f"{pct(r['mean'])} ± {pct(r['std'])}",
                f"[{pct(r['ci_low'])}, {pct(r['ci_high'])}]",
                pct(r["median"]),
                pct(r["min"]),
                pct(r["max"]),
                str(r["diverged"]),
                steps_text(r),
                diff,
                p,
                "—" if claim is None else f"{100 * claim:.2f}",
            ]
        )
    return rows


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(c: str) -> str:
        return str(c).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    # the wrapper scrolls sideways on a narrow screen instead of cutting the table off
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def print_rich(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, file=None) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, h in enumerate(header):
        table.add_column(escape(h), justify="left" if i < 2 else "right", overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    from initlab.console import console

    console(file).print(table)


BUDGET_HEADER = [
    "epochs",
    "scheme",
    "lr",
    "n",
    "test mean %",
    "95% CI %",
    "Δ vs ref (pp)",
    "Δ 95% CI (pp)",
    "vs reference",
]


def lr_text(lr: float | None) -> str:
    return "—" if lr is None else f"{lr:g}"


def budget_rows(summary: Sequence[Mapping], reference: str | None) -> list[list[str]]:
    """One row per (budget, scheme): selected lr, tuned test accuracy, paired difference, verdict."""
    rows = []
    per_budget = sorted({b["epoch"] for r in summary for b in r.get("budgets", [])})
    for epoch in per_budget:
        for r in summary:
            b = next((b for b in r.get("budgets", []) if b["epoch"] == epoch), None)
            if b is None:
                continue
            ci = b.get("diff_ci")
            if r["scheme"] == reference:
                diff, diff_ci, verdict = "ref", "—", "reference"
            else:
                d = b.get("diff")
                diff = "—" if d is None or not math.isfinite(d) else f"{100 * d:+.2f}"
                diff_ci = "—" if not ci else f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
                verdict = b.get("vs_reference") or "—"
            rows.append(
                [
                    str(epoch),
                    r["scheme"],
                    lr_text(b.get("lr")),
                    str(b["n"]),
                    pct(b["mean"]),
                    f"[{pct(b['ci_low'])}, {pct(b['ci_high'])}]",
                    diff,
                    diff_ci,
                    verdict,
                ]
            )
    return rows


def grid_table(summary: Sequence[Mapping]) -> tuple[list[str], list[list[str]]]:
    """Mean validation accuracy (%) per scheme and learning rate at the final budget; * = selected."""
    rates = sorted({k for r in summary for k in r.get("grid", {}) if k != "fixed"}, key=float)
    header = ["scheme"] + [f"lr {float(k):g}" for k in rates] + ["selected lr"]
    rows = []
    for r in summary:
        grid = r.get("grid", {})
        cells = []
        for k in rates:
            mark = " *" if r.get("lr") is not None and float(k) == r["lr"] else ""
            cells.append(pct(grid.get(k)) + mark)
        rows.append([r["scheme"], *cells, lr_text(r.get("lr"))])
    return header, rows
