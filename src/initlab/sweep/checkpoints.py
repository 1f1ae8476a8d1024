"""How often a cell in flight is checkpointed: by time (``"120s"``, ``"5m"``) or by epochs (``"3ep"``).

A checkpoint holds a cell's stacked parameters and optimizer state (for the article's MLP and
20 members with SGD momentum: 2 x 20 x 269,322 float32 = 43 MB), serialized and written to the
store in one transaction. It pays only when a run is killed mid-cell, so it is written at the
end of an epoch only when the policy says so, and never after a cell's last epoch (the cell is
committed right after, which deletes its checkpoint anyway). Results do not depend on the
policy: a resumed cell ends bit for bit where the uninterrupted one would (the engine's
resume contract).

Default ``"120s"``: at the end of the first epoch that finishes at least 120 seconds of training
after the cell started or after its last checkpoint; a killed run loses at most about two
minutes plus one epoch of a cell. ``"1ep"`` checkpoints every epoch (the old behaviour),
``"never"`` never (a killed cell restarts from scratch).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import cast

from initlab.errors import UserError

DEFAULT_CHECKPOINT_EVERY = "120s"
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|sec|m|min|ep|epoch|epochs)\s*$")
_ALLOWED = "a time ('120s', '5m'), a number of epochs ('1ep', '3ep') or 'never'"


@dataclass
class CheckpointPolicy:
    """When to write a checkpoint: ``seconds`` of training since the last one, or every ``epochs``."""

    seconds: float | None = None
    epochs: int | None = None
    _last: float = field(default_factory=time.perf_counter, repr=False)

    @classmethod
    def parse(cls, text: str | None) -> CheckpointPolicy:
        """``"120s"``, ``"5m"``, ``"3ep"``, ``"never"``; ``None``: the default (module docstring)."""
        text = DEFAULT_CHECKPOINT_EVERY if text is None else text
        if not isinstance(text, str):
            raise UserError(f"checkpoint_every must be {_ALLOWED}; got {text!r}")
        if text.strip().lower() == "never":
            return cls(seconds=math.inf)
        match = _PATTERN.match(text.lower())
        if match is None:
            raise UserError(f"checkpoint_every must be {_ALLOWED}; got {text!r}")
        value, unit = float(match.group(1)), match.group(2)
        if unit.startswith("ep"):
            if value != int(value) or value < 1:
                raise UserError(f"checkpoint_every: a whole number of epochs >= 1; got {text!r}")
            return cls(epochs=int(value))
        return cls(seconds=value * (60.0 if unit.startswith("m") else 1.0))

    def start(self) -> None:
        """A cell starts (or resumes): time counts from now."""
        self._last = time.perf_counter()

    def due(self, epoch: int, last_epoch: int) -> bool:
        """Whether to checkpoint after ``epoch`` (1-based) of a cell that ends at ``last_epoch``."""
        if epoch >= last_epoch:
            return False
        if self.epochs is not None:
            return epoch % self.epochs == 0
        now = time.perf_counter()
        # parse() sets exactly one of epochs and seconds
        if now - self._last >= cast(float, self.seconds):
            self._last = now
            return True
        return False
