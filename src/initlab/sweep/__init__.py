"""``initlab compare``: the sweep of schemes x (learning rates x) seeds.

Rooms: ``config`` (what is compared), ``chunks`` (members cut into ``MemberChunk``s that train
together), ``runner`` (one chunk on the engine), ``records`` (a chunk's result, its store records
and their commit), ``experiment`` (which stored experiment, the data's identity), ``preflight``
(checks and choices before the store is touched), ``local`` and ``ray_backend`` (the two
executors), ``progress``, ``checkpoints`` (when a chunk in flight is saved), ``driver`` (the
compare call: store, executors, report data).
"""

from __future__ import annotations

from initlab.sweep.config import CompareConfig, parse_seeds
from initlab.sweep.driver import DEFAULT_STORE, check_writable_dir, compare, report_data

__all__ = ["CompareConfig", "compare", "check_writable_dir", "parse_seeds", "report_data", "DEFAULT_STORE"]
