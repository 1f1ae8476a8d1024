"""``initlab compare``: the sweep of schemes x (learning rates x) seeds.

Rooms: ``config`` (what is compared), ``cells`` (members cut into chunks), ``runner`` (one cell
on the engine), ``records`` (a cell's result and its store records), ``driver`` (the compare
call: store, backends, report data), ``ray_backend`` (cells as Ray tasks).
"""

from __future__ import annotations

from initlab.sweep.config import CompareConfig, parse_seeds
from initlab.sweep.driver import DEFAULT_STORE, check_writable_dir, compare, report_data

__all__ = ["CompareConfig", "compare", "check_writable_dir", "parse_seeds", "report_data", "DEFAULT_STORE"]
