"""The sensitivity grid of a study: typed shared settings, and a verdict that holds across it.

A study's claim is judged in each *setting* of a small grid (an optimizer with its tuned
learning rate, a budget, ...). ``judge_across`` turns the per-setting verdicts into the study's:
``supported`` or ``not supported`` only when every setting agrees, else ``partly``, naming the
settings where it flips. It is pure: studies unit-test their judges on made-up measurements.

``CommonSettings`` is the vocabulary every study shares (dataset, limit_train, seeds, epochs,
budgets, batch size, learning-rate grids per optimizer, equivalence margin), read once from the
merged ``--set`` dict with one message format.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from initlab.errors import UserError

STUDY_VERDICTS = ("supported", "not supported")


@dataclass(frozen=True)
class Setting:
    """One point of a study's sensitivity grid: an optimizer (its lr tuned on validation) and a budget."""

    optimizer: str
    budget: int  # epochs

    @property
    def label(self) -> str:
        return f"{self.optimizer}, {self.budget} epochs"


@dataclass(frozen=True)
class Judgement:
    """The study's verdict, each setting's verdict, and the settings that disagree with the majority."""

    verdict: str
    by_setting: dict[str, str]
    flips: list[str] = field(default_factory=list)

    def evidence(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "by_setting": dict(self.by_setting), "flips": list(self.flips)}


def judge_across(by_setting: Mapping[str, str]) -> Judgement:
    """``supported`` / ``not supported`` when every setting says so, else ``partly``.

    ``by_setting``: setting label -> ``supported``, ``not supported`` or ``partly``. With
    ``partly``, ``flips`` names the settings whose verdict differs from the most common one
    (every ``partly`` setting when there is no single majority).
    """
    if not by_setting:
        raise ValueError("judge_across needs at least one setting")
    bad = {k: v for k, v in by_setting.items() if v not in STUDY_VERDICTS + ("partly",)}
    if bad:
        raise ValueError(f"setting verdicts must be supported, not supported or partly; got {bad}")
    values = set(by_setting.values())
    if len(values) == 1 and values <= set(STUDY_VERDICTS):
        return Judgement(values.pop(), dict(by_setting))
    counts = Counter(by_setting.values()).most_common()
    majority = counts[0][0] if len(counts) == 1 or counts[0][1] > counts[1][1] else None
    flips = [k for k, v in by_setting.items() if (v != majority if majority is not None else v != "supported")]
    return Judgement("partly", dict(by_setting), flips)


@dataclass(frozen=True)
class CommonSettings:
    """The settings every study shares, validated (errors name the setting)."""

    dataset: str
    limit_train: int | None
    seeds: tuple[int, ...]
    epochs: int
    budgets: tuple[int, ...]
    batch_size: int
    lr_grids: dict[str, tuple[float, ...]]  # optimizer -> learning rates tried (selected on validation)
    margin: float  # equivalence margin, accuracy fraction

    @property
    def optimizers(self) -> list[str]:
        return list(self.lr_grids)

    @property
    def data_options(self) -> dict[str, Any]:
        """``initlab.data.load`` keywords (``limit_train`` when set)."""
        return {"limit_train": self.limit_train} if self.limit_train else {}

    @property
    def settings(self) -> list[Setting]:
        return [Setting(o, b) for o in self.optimizers for b in self.budgets]

    def compare_kwargs(self, optimizer: str) -> dict[str, Any]:
        """``CompareConfig`` keywords for one optimizer of the grid."""
        return dict(
            dataset=self.dataset,
            seeds=self.seeds,
            epochs=self.epochs,
            budgets=self.budgets,
            batch_size=self.batch_size,
            optimizer=optimizer,
            lr_grid=self.lr_grids[optimizer],
            margin=self.margin,
            data_options=self.data_options,
        )


def common_settings(s: Mapping[str, Any]) -> CommonSettings:
    """Read the shared settings from a study's merged settings dict.

    Keys: ``dataset``, ``limit_train``, ``seeds``, ``epochs``, ``budgets`` (list; the final epoch
    is always one), ``batch_size``, ``optimizers`` (list), ``sgd_lr_grid`` / ``adam_lr_grid``
    (lists of rates), ``margin`` (fraction).
    """
    from initlab.studies.settings import as_list, int_list, seed_list

    epochs = positive_int("epochs", s["epochs"])
    budgets = tuple(int_list("budgets", s.get("budgets") or [max(1, epochs // 4)], 1))
    if budgets[-1] > epochs:
        raise UserError(f"budgets: {budgets[-1]} is beyond epochs={epochs}")
    optimizers = [str(o) for o in as_list(s.get("optimizers", ["sgd"]))]
    grids = {}
    for opt in optimizers:
        if opt not in ("sgd", "adam"):
            raise UserError(f"optimizers: sgd and/or adam; got {opt!r}")
        grids[opt] = float_list(f"{opt}_lr_grid", s[f"{opt}_lr_grid"])
    limit = s.get("limit_train")
    margin = s.get("margin", 0.005)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise UserError(f"margin: an accuracy difference in (0, 1); got {margin!r}")
    return CommonSettings(
        dataset=str(s["dataset"]),
        limit_train=None if limit is None else positive_int("limit_train", limit),
        seeds=seed_list(s["seeds"]),
        epochs=epochs,
        budgets=tuple(sorted(set(budgets) | {epochs})),
        batch_size=positive_int("batch_size", s["batch_size"]),
        lr_grids=grids,
        margin=float(margin),
    )


def float_list(name: str, value: Any) -> tuple[float, ...]:
    """A list of positive finite numbers (a list, one number, or a comma string)."""
    from initlab.studies.settings import as_list

    items = as_list(value) if not isinstance(value, (int, float)) else [value]
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise UserError(f"{name}: a list of numbers > 0; got {value!r}") from None
    if not out or any(not math.isfinite(v) or v <= 0 for v in out):
        raise UserError(f"{name}: a list of finite numbers > 0; got {value!r}")
    return out


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{name}: an integer >= 1; got {value!r}")
    return value


def budget_rows(data: Any, budget: int) -> dict[str, Mapping[str, Any]]:
    """scheme -> the ``ReportData`` summary's row for ``budget`` (selected lr, mean, verdict vs reference)."""
    out = {}
    for row in data.summary:
        for b in row.get("budgets", []):
            if b["epoch"] == budget:
                out[row["scheme"]] = b
    return out


def labels(settings: Sequence[Setting]) -> list[str]:
    return [s.label for s in settings]
