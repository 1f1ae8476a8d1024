"""The study framework: a claim of the article, an experiment, and a verdict with numbers.

A study is a small documented experiment run on the ensemble engine (usually through
``initlab.sweep.compare``, so its runs are stored like any experiment). It returns a
``StudyResult``: the claim quoted from the article, a verdict (supported / not supported /
partly), the effect size with its 95% CI, the evidence as numbers, tables and figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from initlab.errors import UserError, lookup, unknown

VERDICTS = ("supported", "not supported", "partly")


@dataclass
class StudyResult:
    """What a study found. ``evidence`` is JSON data (numbers, small dicts); tables are
    ``(title, header, rows)`` with rows of strings; figures are PNG paths inside ``out``."""

    study: str
    claim: str
    verdict: str
    effect: float
    ci: tuple[float, float]
    effect_label: str
    summary: str  # one or two sentences: what was measured and what it says
    evidence: dict[str, Any] = field(default_factory=dict)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    # "pp": ``effect`` is a difference of accuracies (fractions), shown x100 in percentage points
    # like the tables beside it; "": shown as it is; "auto": "pp" when the label names accuracy
    effect_unit: str = "auto"
    # shown in place of the interval when ``ci`` is not finite (e.g. "one seed, no interval")
    ci_note: str = ""

    def effect_text(self) -> str:
        """``label = +8.8 pp (95% CI [+6.1, +11.4])``: the effect in the unit of the tables; without
        a finite interval, ``label = +77.8 pp (one seed, no interval)`` (``ci_note``)."""
        lo, hi = self.ci
        unit = self.effect_unit
        if unit == "auto":
            unit = "pp" if "acc" in self.effect_label.lower() else ""
        if not (math.isfinite(lo) and math.isfinite(hi)):
            value = f"{100 * self.effect:+.1f} pp" if unit == "pp" else f"{self.effect:.4g}"
            return f"{self.effect_label} = {value} ({self.ci_note or 'no interval'})"
        if unit == "pp":
            return f"{self.effect_label} = {100 * self.effect:+.1f} pp (95% CI [{100 * lo:+.1f}, {100 * hi:+.1f}])"
        return f"{self.effect_label} = {self.effect:.4g} (95% CI [{lo:.4g}, {hi:.4g}])"

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}; got {self.verdict!r}")

    def to_json(self) -> dict[str, Any]:
        """``{"study", "verdict", "claim", "evidence"}`` (+ effect, ci, summary): the --json contract."""

        from initlab.report.data import json_ready

        return json_ready(
            {
                "study": self.study,
                "verdict": self.verdict,
                "claim": self.claim,
                "evidence": self.evidence,
                "effect": self.effect,
                "ci": list(self.ci),
                "effect_label": self.effect_label,
                "summary": self.summary,
                "experiments": self.experiments,
                "settings": self.settings,
            }
        )

    def to_record(self, *, base: Path) -> dict[str, Any]:
        """Everything the page needs, as JSON data (figures relative to ``base``): ``result.json``."""
        record = self.to_json()
        record.update(
            tables=[[title, header, rows] for title, header, rows in self.tables],
            figures=[str(Path(f).resolve().relative_to(base.resolve())) for f in self.figures],
            effect_unit=self.effect_unit,
        )
        if self.ci_note:
            record["ci_note"] = self.ci_note
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], *, base: Path) -> StudyResult:
        """The inverse of ``to_record`` (non-finite numbers come back as NaN)."""

        def num(x: Any) -> float:
            return math.nan if x is None else float(x)

        lo, hi = record["ci"]
        return cls(
            study=record["study"],
            claim=record["claim"],
            verdict=record["verdict"],
            effect=num(record["effect"]),
            ci=(num(lo), num(hi)),
            effect_label=record["effect_label"],
            summary=record["summary"],
            evidence=record.get("evidence", {}),
            tables=[(title, list(header), [list(r) for r in rows]) for title, header, rows in record.get("tables", [])],
            figures=[base / f for f in record.get("figures", [])],
            experiments=list(record.get("experiments", [])),
            settings=record.get("settings", {}),
            effect_unit=record.get("effect_unit", "auto"),
            ci_note=record.get("ci_note", ""),
        )

    def markdown(self, *, figure_dir: Path | None = None) -> str:
        from initlab.report.tables import markdown

        lines = [
            f"## `{self.study}` — {self.verdict}",
            "",
            f"> {self.claim}",
            "",
            f"**Verdict: {self.verdict}.** {self.summary}",
            "",
            f"Effect: {self.effect_text()}.",
            "",
        ]
        for title, header, rows in self.tables:
            lines += [f"**{title}**", "", markdown(header, rows), ""]
        for fig in self.figures:
            rel = fig.name if figure_dir is None else Path(fig).relative_to(figure_dir)
            lines += [f"![{self.study}]({rel})", ""]
        if self.experiments:
            lines += [f"Stored experiments: {', '.join(f'`{e}`' for e in self.experiments)}.", ""]
        lines += [f"Settings: `{json.dumps(self.settings, sort_keys=True)}`", ""]
        return "\n".join(lines)


@dataclass
class StudyContext:
    """Where and how a study runs.

    ``full``: the larger version (e.g. Fashion-MNIST); ``overrides``: settings a study merges
    over its defaults (tests pass tiny ones); ``out``: the study's own directory for figures.
    """

    out: Path
    store: Path
    full: bool = False
    progress: bool = True
    quick: bool = False  # the smallest version, for tests (studies that define one)
    overrides: dict[str, Any] = field(default_factory=dict)
    device: str | None = None  # where comparisons train (``compare``'s ``device``; None: auto)

    def setting(self, defaults: dict[str, Any], full: dict[str, Any] | None = None) -> dict[str, Any]:
        """The study's settings: defaults, then the --full ones, then the overrides."""
        merged = dict(defaults)
        if self.full and full:
            merged.update(full)
        unknown_keys = sorted(set(self.overrides) - set(merged))
        if unknown_keys:
            raise UserError(f"unknown study setting {unknown_keys[0]!r}; allowed: {', '.join(sorted(merged))}")
        merged.update(self.overrides)
        return merged

    def compare(self, **config: Any):
        """Run (or, when already stored with this config, reuse) a comparison: its ``ReportData``."""
        from initlab.store import open_store
        from initlab.sweep import compare, report_data
        from initlab.sweep.config import CompareConfig

        cfg = CompareConfig(**config)
        self.store.parent.mkdir(parents=True, exist_ok=True)
        with open_store(self.store) as db:
            found = db.find_experiment(cfg.config_hash())
            if found is not None and found.status == "finished":
                return report_data(db, found.id)
        return compare(cfg, store=self.store, resume=bool(found), progress=self.progress, device=self.device)


@dataclass(frozen=True)
class Study:
    name: str
    claim: str  # quoted from the article
    run: Callable[[StudyContext], StudyResult]
    description: str = ""


REGISTRY: dict[str, Study] = {}


def register(name: str, claim: str) -> Callable[[Callable[[StudyContext], StudyResult]], Callable]:
    """Decorator: register ``run(ctx) -> StudyResult`` as study ``name`` testing ``claim``."""

    def deco(fn: Callable[[StudyContext], StudyResult]) -> Callable:
        if name in REGISTRY:
            raise RuntimeError(f"study {name!r} registered twice")
        REGISTRY[name] = Study(name, claim, fn, (fn.__doc__ or "").strip())
        return fn

    return deco


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high): Student t 95% interval of the mean."""
    from initlab.stats import summarize

    s = summarize(values)
    return s.mean, s.ci_low, s.ci_high


def signed_points(value: float, lo: float, hi: float) -> str:
    """``+2.0 [+0.1, +3.9]``: an accuracy difference and its interval, in signed percentage points."""
    return f"{100 * value:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def get(name: str) -> Study:
    from initlab import studies  # noqa: F401  (registers the studies)

    key = lookup("study", name, list(REGISTRY) + ["all"])  # "all": the CLI runs every study
    if key not in REGISTRY:
        raise unknown("study", name, list(REGISTRY) + ["all"])
    return REGISTRY[key]
