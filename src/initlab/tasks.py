"""Tasks and their metrics: what ``compare`` measures, in which units, and which way is better.

==================  ===============  =====================  ================================================
task                training loss    metric (test set)      notes
==================  ===============  =====================  ================================================
``classification``  cross-entropy    accuracy, a fraction   higher is better; ``target`` is an accuracy
``regression``      MSE              MSE, original units    lower is better; targets are standardized with
                                                            training statistics for training, and the MSE
                                                            is reported back in the target's units
                                                            (``MSE_std · σ_train²``); R² in the report
``lm``              cross-entropy    loss, nats per token   lower is better; bits per character (or byte)
                                                            ``= loss / ln 2`` in the report
==================  ===============  =====================  ================================================

R² is ``1 − MSE / Var(y_test)`` with the population variance of the test targets.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

TASKS = ("classification", "regression", "lm")


@dataclass(frozen=True)
class Metric:
    """The number ``compare`` ranks schemes by.

    ``run_key``: the run record field that holds it (``test_acc`` or ``test_loss``);
    ``bounds``: the range a confidence interval is clipped to.
    """

    name: str
    higher_is_better: bool
    unit: str
    run_key: str
    bounds: tuple[float, float]
    loss: str  # the engine's training loss

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better, "unit": self.unit}

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b

    def reached(self, value: float | None, target: float) -> bool:
        """Whether ``value`` meets ``target`` (at least it, or at most it when lower is better)."""
        if value is None or not math.isfinite(value):
            return False
        return value >= target if self.higher_is_better else value <= target

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


METRICS = {
    "classification": Metric("accuracy", True, "fraction", "test_acc", (0.0, 1.0), "cross_entropy"),
    "regression": Metric("mse", False, "squared target units", "test_loss", (0.0, math.inf), "mse"),
    "lm": Metric("loss", False, "nats/token", "test_loss", (0.0, math.inf), "cross_entropy"),
}


def metric_for(task: str | None) -> Metric:
    """The metric of ``task`` (None: classification, as configs stored before tasks existed)."""
    from initlab.errors import UserError

    task = task or "classification"
    if task not in METRICS:
        raise UserError(f"task {task!r} is not allowed; allowed: {', '.join(TASKS)}")
    return METRICS[task]


def r_squared(mse: float, test_var: float) -> float:
    """``1 − MSE / Var(y_test)``; NaN when either is not finite or the variance is 0."""
    if not (math.isfinite(mse) and math.isfinite(test_var)) or test_var <= 0:
        return math.nan
    return 1.0 - mse / test_var


def bits(nats: float) -> float:
    """Nats to bits: ``x / ln 2``."""
    return nats / math.log(2)
