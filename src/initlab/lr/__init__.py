"""The learning rate that goes with the init: ``initlab.suggest_lr(model, x, y)``.

An initialization is half of the answer; at 1,000 plain layers the learning rate that trains is
two orders of magnitude below the usual 1e-3 and its window is narrow. ``suggest_lr`` judges the
model *as it is* (its current weights, the init the user chose): it trains copies at each
learning rate of a log grid for a short budget, stacked on the ensemble engine
(``initlab.engine.train``: one member per learning rate, batched matmuls for MLPs, ``torch.func``
otherwise), on a validation split carved from ``x, y``, and picks by the rule below.

The grid (``grid=None``): a coarse pass over several decades (Adam 1e-6 ... 1e-1, SGD with
momentum 0.9 1e-4 ... 1, one point per decade), then a refined pass at 10^(±1/3) and 10^(±2/3)
around the coarse choice: 10 trainings in two stacked runs.

The rule (documented in ``docs/suggest-lr.md``), on validation data only:

1. A grid point *fails* when its training diverged (a non-finite loss), its final validation
   loss is not below the model's validation loss before training, or its final validation
   accuracy is within 1 point of chance (the largest class's share of the validation split).
2. A point that did not fail is *stable* when its final validation loss is within
   ``STABLE_TOLERANCE`` (10%) of its best over the epochs: a rate that was best early and is
   drifting away (towards divergence) is not stable.
3. The choice is the stable point with the lowest final validation loss (a smoother measure
   than accuracy on a small split; ties: the smaller rate).
4. Keep working: when the next larger rate of the grid failed or was unstable, the choice is at
   the edge of the window; it moves one grid point down if that point is stable and its final
   validation loss is within ``STABLE_TOLERANCE`` (10%) of the choice's.
5. No stable point: the smallest rate that did not fail, else the smallest of the grid, with
   ``ok=False`` and a note.

The model's weights are never changed (copies are trained); test data is never seen (the
caller passes training data; the split is carved from it).

Layout: ``search`` (``suggest_lr``: input checks, the validation split, the grid's trainings),
``rule`` (grid points and the choice), ``memory`` (how many copies fit at once), ``result``
(``LrPoint``, ``LrSuggestion``).
"""

from initlab.lr.memory import MEMORY_HEADROOM, members_per_chunk
from initlab.lr.result import LrPoint, LrSuggestion
from initlab.lr.rule import CHANCE_MARGIN, STABLE_TOLERANCE, choose
from initlab.lr.search import (
    COARSE_GRIDS,
    DEFAULT_EPOCHS,
    OPTIMIZERS,
    REFINE_FACTORS,
    SGD_MOMENTUM,
    VAL_FRACTION,
    suggest_lr,
)

__all__ = [
    "CHANCE_MARGIN",
    "COARSE_GRIDS",
    "DEFAULT_EPOCHS",
    "MEMORY_HEADROOM",
    "OPTIMIZERS",
    "REFINE_FACTORS",
    "SGD_MOMENTUM",
    "STABLE_TOLERANCE",
    "VAL_FRACTION",
    "LrPoint",
    "LrSuggestion",
    "choose",
    "members_per_chunk",
    "suggest_lr",
]
