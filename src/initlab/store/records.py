"""The store's records: frozen value objects, validated when built, equal when their data is.

Every float metric is a ``float``; NaN means "diverged or not measured" and survives every store
(``None`` is never a metric, so NaN needs no flag). Equality treats NaN as equal to NaN and
compares ``extra`` by its canonical JSON, so a record read back from a store equals the record
written, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from initlab.errors import UserError

EXPERIMENT_STATUSES = ("running", "finished", "interrupted", "failed")
RUN_STATUSES = ("ok", "diverged")
_MAX_INT = 2**63 - 1  # SQLite INTEGER is a signed 64-bit value


def canonical_json(value: Any, *, allow_nan: bool = False, what: str = "value") -> str:
    """One text per JSON value: keys sorted, no spaces, UTF-8 kept as is.

    Two configs that are equal as JSON (whatever their key order) give the same text, hence the
    same ``config_hash``. Tuples become lists, as in any JSON round-trip.
    """
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{what} must be plain JSON data (dict, list, str, int, float, bool, None); {exc}") from None


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 (hex) of ``canonical_json(config)``: the identity of an experiment's configuration.

    Values hash as JSON writes them: ``1`` and ``1.0`` differ, so normalise types first.
    """
    if not isinstance(config, Mapping):
        raise UserError(f"config must be a dict; got {type(config).__name__}: {config!r:.80}")
    text = canonical_json(dict(config), what="config")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_dict(owner: str, name: str, value: Any) -> dict[str, Any]:
    """A fresh dict equal to what a JSON round-trip of ``value`` gives (NaN allowed)."""
    if not isinstance(value, Mapping):
        raise UserError(f"{owner}.{name} must be a dict; got {type(value).__name__}: {value!r:.80}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise UserError(f"{owner}.{name} keys must be strings; got {bad[0]!r}")
    return json.loads(canonical_json(dict(value), allow_nan=True, what=f"{owner}.{name}"))


def _as_float(owner: str, name: str, value: Any) -> float:
    if not isinstance(value, (bool, str, bytes)) and value is not None:
        try:
            return float(value)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise UserError(f"{owner}.{name} must be a float (NaN allowed); got {value!r:.80}")


def _as_int(owner: str, name: str, value: Any, *, low: int = 0) -> int:
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        raise UserError(f"{owner}.{name} must be an integer; got {value!r:.80}") from None
    if not low <= number <= _MAX_INT:
        raise UserError(f"{owner}.{name} must be an integer in [{low}, 2**63-1]; got {number}")
    return number


def _as_name(owner: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UserError(f"{owner}.{name} must be a non-empty string; got {value!r:.80}")
    return value


def _check_accuracy(owner: str, name: str, value: float) -> None:
    # Accuracies are fractions (DESIGN.md); a percentage slipping in is caught here.
    if not (math.isnan(value) or 0.0 <= value <= 1.0):
        raise UserError(f"{owner}.{name} must be a fraction in [0, 1] or NaN; got {value!r}")


class _Record:
    """Equality and hash by value: NaN equals NaN, dicts compare by canonical JSON."""

    def _key(self) -> tuple[Any, ...]:
        key = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isnan(value):
                key.append(("nan",))
            elif isinstance(value, dict):
                key.append(canonical_json(value, allow_nan=True))
            else:
                key.append(value)
        return tuple(key)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, eq=False, kw_only=True)
class ExperimentRecord(_Record):
    """One experiment: its configuration and provenance. Built by a store, never by hand.

    ``id`` is a short hex string unique within the store; ``config`` is the JSON form of the
    config given to ``create_experiment``; ``config_hash`` = ``config_hash(config)``;
    ``created_at`` is ISO 8601 UTC; versions are those of the creating process; ``extra`` holds
    what ``set_experiment_extra`` wrote (e.g. the signal-at-init measurements).
    """

    id: str
    name: str | None
    config: dict[str, Any]
    config_hash: str
    created_at: str
    status: str
    initlab_version: str
    torch_version: str
    python_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in EXPERIMENT_STATUSES:
            raise UserError(f"experiment status {self.status!r} is invalid; allowed: {', '.join(EXPERIMENT_STATUSES)}")


@dataclass(frozen=True, eq=False, kw_only=True)
class RunRecord(_Record):
    """The final result of one member (cell = (scheme, seed)) of an experiment.

    ``status`` is "ok" or "diverged"; a diverged run names the optimizer ``diverged_step`` at
    which its loss turned NaN/inf (and an ok run has ``diverged_step=None``). Accuracies are
    fractions in [0, 1]; every metric may be NaN. ``wall_time`` is in seconds. ``extra`` is any
    JSON dict (keep it deterministic: a recomputed cell must reproduce it, see ``Store``).
    """

    experiment_id: str
    scheme: str
    seed: int
    status: str
    test_acc: float
    test_loss: float
    train_loss: float
    train_acc: float
    diverged_step: int | None = None
    wall_time: float
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        owner = "RunRecord"
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "experiment_id", _as_name(owner, "experiment_id", self.experiment_id))
        set_(self, "scheme", _as_name(owner, "scheme", self.scheme))
        set_(self, "seed", _as_int(owner, "seed", self.seed))
        for name in ("test_acc", "test_loss", "train_loss", "train_acc", "wall_time"):
            set_(self, name, _as_float(owner, name, getattr(self, name)))
        _check_accuracy(owner, "test_acc", self.test_acc)
        _check_accuracy(owner, "train_acc", self.train_acc)
        if self.status not in RUN_STATUSES:
            raise UserError(f"{owner}.status {self.status!r} is invalid; allowed: {', '.join(RUN_STATUSES)}")
        if self.status == "diverged":
            if self.diverged_step is None:
                raise UserError(f"{owner}: status 'diverged' needs diverged_step (the step the loss turned NaN/inf)")
            set_(self, "diverged_step", _as_int(owner, "diverged_step", self.diverged_step))
        elif self.diverged_step is not None:
            raise UserError(f"{owner}: status 'ok' needs diverged_step=None; got {self.diverged_step!r}")
        set_(self, "extra", _json_dict(owner, "extra", self.extra))

    @property
    def cell(self) -> tuple[str, int]:
        return (self.scheme, self.seed)


@dataclass(frozen=True, eq=False, kw_only=True)
class StoredEpoch(_Record):
    """Metrics of one member at the end of one epoch, as stored (epoch 0 may hold the metrics at init).

    The store's row for the engine's ``initlab.engine.EpochRecord``, keyed by the cell
    ``(experiment_id, scheme, seed)``; its validation accuracy lives in ``RunRecord.extra``.

    ``step`` counts optimizer steps taken so far; accuracies are fractions in [0, 1]; metrics may
    be NaN; ``wall_time`` is in seconds, as the engine defines it.
    """

    experiment_id: str
    scheme: str
    seed: int
    epoch: int
    step: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    wall_time: float

    def __post_init__(self) -> None:
        owner = "StoredEpoch"
        set_ = object.__setattr__
        set_(self, "experiment_id", _as_name(owner, "experiment_id", self.experiment_id))
        set_(self, "scheme", _as_name(owner, "scheme", self.scheme))
        for name in ("seed", "epoch", "step"):
            set_(self, name, _as_int(owner, name, getattr(self, name)))
        for name in ("train_loss", "train_acc", "test_loss", "test_acc", "wall_time"):
            set_(self, name, _as_float(owner, name, getattr(self, name)))
        _check_accuracy(owner, "test_acc", self.test_acc)
        _check_accuracy(owner, "train_acc", self.train_acc)

    @property
    def cell(self) -> tuple[str, int]:
        return (self.scheme, self.seed)
