"""Width transfer with μP (Yang et al. 2022, Tensor Programs V): tune at a small width, reuse at a large one.

- ``initlab.initialize(model, "mup" | "auto+mup", base_width=64, seed=0)``: the plan records, per
  parameter, its μP class, init multiplier and lr multipliers (``initlab.mup.table``);
- ``param_groups(model, plan, lr, optimizer="adam"|"sgd")``: optimizer groups with μP's rates;
- ``coord_check(factory, widths, ...)``: per-layer activation sizes against width after a few steps;
- ``docs/width-transfer.md``: the recipe for a user's own model (attention 1/d, tied readouts).
"""

from __future__ import annotations

from initlab.mup.coord import CoordCheck, coord_check
from initlab.mup.groups import param_groups
from initlab.mup.table import CLASSES, MUP_POLICIES, MupRecord

__all__ = ["CLASSES", "MUP_POLICIES", "CoordCheck", "MupRecord", "coord_check", "param_groups"]
