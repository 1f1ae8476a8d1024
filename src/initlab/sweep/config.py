"""The configuration of a comparison: what is trained, how, and over which seeds.

A ``CompareConfig`` is validated when built (a bad value raises ``UserError`` naming it) and
hashes to a stable id, so ``--resume`` can find the experiment it continues and refuse a
different one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, ClassVar

from initlab import checks
from initlab.errors import UserError
from initlab.schemes import ARTICLE_SCHEMES

if TYPE_CHECKING:
    from initlab.engine.config import TrainConfig

# Where a sweep runs (``compare(backend=...)``, ``--backend``): not the engine's training backends
# (``initlab.engine.BACKENDS``: how members train together), hence its own name.
EXECUTORS = ("local", "ray")
PAIRED_TESTS = ("wilcoxon", "t")
POLICIES = ("auto",)  # per-layer policies accepted beside scheme names
DEFAULT_TARGET = 0.9  # test accuracy that defines "converged"; the report reads it for configs without one
# "SCHEME+zeroed_branch_ends": SCHEME for every weight except the last layer of each residual
# branch, which starts at zero (the control that separates "a scheme per layer" from "zeroed branches").
ZEROED_BRANCH_ENDS = "+zeroed_branch_ends"


def is_policy(scheme: str) -> bool:
    """True for a per-layer policy (``auto``, ``SCHEME+zeroed_branch_ends``), False for a scheme."""
    return scheme in POLICIES or scheme.endswith(ZEROED_BRANCH_ENDS)


def canonical_member(scheme: str) -> str:
    """A scheme's canonical spec, or a policy's canonical name."""
    from initlab.schemes import canonical_spec

    if scheme in POLICIES:
        return scheme
    if scheme.endswith(ZEROED_BRANCH_ENDS):
        return canonical_spec(scheme[: -len(ZEROED_BRANCH_ENDS)]) + ZEROED_BRANCH_ENDS
    return canonical_spec(scheme)


@dataclass(frozen=True)
class CompareConfig:
    """Everything that determines the numbers of a comparison (not where they are written).

    Defaults: the article's ten schemes x 10 seeds on digits (8x8, 1437 train / 360 test) with a
    2x128 ReLU MLP, SGD with momentum, chosen so the whole run takes about a minute on a 2-core
    machine and the good schemes reach their plateau.
    """

    schemes: tuple[str, ...] = ARTICLE_SCHEMES
    seeds: tuple[int, ...] = tuple(range(10))
    dataset: str = "digits"
    model: str = "mlp"
    width: int = 128  # hidden units per layer
    depth: int = 2  # hidden layers
    activation: str = "relu"
    bias_init: str = "zeros"
    epochs: int = 20
    batch_size: int = 32  # samples per step, per member
    optimizer: str = "sgd"
    lr: float = 0.05  # SGD: momentum 0.9
    momentum: float = 0.9
    weight_decay: float = 0.0
    # "converged" (steps to target): a test accuracy for classification (default DEFAULT_TARGET);
    # for regression and lm a test MSE / loss to get below (default None: not tracked)
    target: float | None = None
    reference: str | None = None  # paired against every other; None: he_normal if compared, else the first
    paired_test: str = "wilcoxon"
    chunk_size: int = 50  # members (scheme, seed) trained together in one cell
    data_options: dict = field(default_factory=dict)  # e.g. {"limit_train": 10000}
    model_options: dict = field(default_factory=dict)  # extra keywords for the model, e.g. {"norm": "batch"}
    autocast: str | None = None  # None: float32; "bf16": the training step under bfloat16 autocast
    lr_grid: tuple[float, ...] = ()  # learning rates tried per scheme (selected on validation); () -> fixed lr
    budgets: tuple[int, ...] = ()  # epochs at which results are summarized; () -> epochs // 4 and epochs
    margin: float = 0.005  # equivalence margin on test accuracy (fraction: 0.005 = 0.5 points)
    val_fraction: float = 0.1  # share of the training set held out for validation (stratified, fixed)
    task: str = "classification"  # or "regression", "lm" (initlab.tasks: the metric and its direction)
    data_source: dict | None = None  # what identifies the user's data (path, size, sha256); set by compare

    # Fields added after experiments were stored: left out of to_dict (and the hash) at their
    # default, so older experiments keep their config hash and stay resumable.
    _OMIT_AT_DEFAULT: ClassVar[dict] = {"task": "classification", "data_source": None, "autocast": None}

    def __post_init__(self) -> None:
        from initlab.schemes import canonical_spec

        object.__setattr__(self, "schemes", tuple(self.schemes))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.schemes:
            raise UserError("schemes: need at least one scheme")
        canonical = []
        for s in self.schemes:
            canonical.append(canonical_member(s))
        if len(set(canonical)) != len(canonical):
            raise UserError(f"schemes: each scheme once; got {', '.join(self.schemes)}")
        object.__setattr__(self, "schemes", tuple(canonical))
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds: need distinct integers >= 0; got {list(self.seeds)}")
        object.__setattr__(self, "bias_init", canonical_spec(self.bias_init))
        if self.bias_init != "zeros" and any(is_policy(s) for s in self.schemes):
            raise UserError(
                f"bias_init {self.bias_init!r} would apply to scheme members only: the 'auto' policy "
                f"sets every bias itself. Compare 'auto' with the default bias_init (zeros)"
            )
        for name in ("width", "chunk_size"):
            checks.positive_int(name, getattr(self, name))
        checks.integer("depth", self.depth, minimum=0)
        from initlab.tasks import TASKS

        checks.choice("task", self.task, TASKS)
        if self.data_source is not None and not isinstance(self.data_source, dict):
            raise checks.fail("data_source", self.data_source, "a dict (path, size, sha256) or None")
        if self.task == "classification":
            if self.target is None:
                object.__setattr__(self, "target", DEFAULT_TARGET)
        elif self.target is not None:  # a test MSE / loss to get below
            object.__setattr__(self, "target", checks.positive("target", self.target))
        # The training fields are checked once, by the TrainConfig they become; its floats are
        # stored back so that 1 and 1.0 hash alike.
        trained = self.train_config()
        for name in ("lr", "momentum", "weight_decay") + (("target",) if self.task == "classification" else ()):
            object.__setattr__(self, name, getattr(trained, name))
        if self.optimizer == "adam" and self.momentum != 0.9:
            # Adam has no momentum setting; accepting one would only change the config hash.
            raise UserError(f"momentum={self.momentum!r} applies to SGD only; Adam uses betas (0.9, 0.999)")
        checks.choice("paired_test", self.paired_test, PAIRED_TESTS)
        if self.reference is None:
            object.__setattr__(self, "reference", "he_normal" if "he_normal" in canonical else canonical[0])
        else:
            object.__setattr__(self, "reference", canonical_member(self.reference))
        if self.reference not in self.schemes:
            raise UserError(
                f"reference {self.reference!r} is not among the schemes ({', '.join(self.schemes)}); "
                f"add it to --schemes or pick one of them with --reference"
            )
        if self.autocast not in (None, "bf16"):
            raise UserError(f"autocast: None (float32) or 'bf16'; got {self.autocast!r}")
        from initlab.activations import canonical as canonical_activation

        canonical_activation(self.activation)
        self._check_tuning()

    def _check_tuning(self) -> None:
        """lr_grid, budgets, margin and val_fraction: validated and put in canonical form."""
        grid = self.lr_grid
        if isinstance(grid, (int, float)) and not isinstance(grid, bool):
            grid = (grid,)
        if not isinstance(grid, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 for v in grid
        ):
            raise UserError(f"lr_grid: every learning rate must be a finite number > 0; got {self.lr_grid!r}")
        grid = tuple(sorted(float(v) for v in grid))
        if len(set(grid)) != len(grid):
            raise UserError(f"lr_grid: each learning rate once; got {list(self.lr_grid)}")
        object.__setattr__(self, "lr_grid", grid)
        if grid and self.task != "classification":
            raise UserError(
                f"lr_grid: learning rates are selected on validation accuracy, which task "
                f"{self.task!r} does not have; give one --lr for regression and lm"
            )
        budgets = self.budgets
        if isinstance(budgets, int) and not isinstance(budgets, bool):
            budgets = (budgets,)
        if not isinstance(budgets, (list, tuple)) or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in budgets
        ):
            raise UserError(f"budgets: epochs as integers >= 1; got {self.budgets!r}")
        beyond = [b for b in budgets if b > self.epochs]
        if beyond:
            raise UserError(f"budgets: {beyond[0]} is beyond epochs={self.epochs}; allowed: 1..{self.epochs}")
        if not budgets:
            budgets = (max(1, self.epochs // 4),)
        # The final epoch is always a budget: it is what was trained, and what the summary shows.
        object.__setattr__(self, "budgets", tuple(sorted(set(budgets) | {self.epochs})))
        margin = self.margin
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
            raise UserError(f"margin: an accuracy difference in (0, 1) (0.005 = 0.5 points); got {margin!r}")
        object.__setattr__(self, "margin", float(margin))
        fraction = self.val_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise UserError(f"val_fraction: a share of the training set in (0, 1); got {fraction!r}")
        object.__setattr__(self, "val_fraction", float(fraction))

    def train_config(self) -> TrainConfig:
        """The engine's ``TrainConfig`` for this comparison: the one place it is derived.

        Adam takes ``momentum`` as it is (0.9, the only value ``__post_init__`` lets through with
        Adam; the engine ignores it there) and the target is this config's (default 0.9).
        """
        from initlab.engine.config import TrainConfig
        from initlab.schemes import scheme_from_spec
        from initlab.tasks import metric_for

        # the engine's target is a test accuracy; for the other tasks steps to target come from the report
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            bias_init=scheme_from_spec(self.bias_init),
            target=self.target if self.task == "classification" else None,
            loss=metric_for(self.task).loss,
        )

    @property
    def tuned(self) -> bool:
        """True when a learning-rate grid is selected on validation (else the fixed ``lr``)."""
        return bool(self.lr_grid)

    @property
    def learning_rates(self) -> tuple[float, ...]:
        """The rates trained: the grid, or the one fixed ``lr``."""
        return self.lr_grid or (self.lr,)

    @property
    def members(self) -> list[MemberSpec]:
        """Every (scheme, lr, seed) member: lr-major (the optimizer updates equal rates together),
        then seed-major so a chunk mixes schemes fairly. Fixed-lr members have ``lr=None``."""
        rates = self.lr_grid or (None,)
        return [MemberSpec(scheme, seed, lr) for lr in rates for seed in self.seeds for scheme in self.schemes]

    def to_dict(self) -> dict:
        d = asdict(self)
        for name in ("schemes", "seeds", "lr_grid", "budgets"):
            d[name] = list(getattr(self, name))
        for key, default in self._OMIT_AT_DEFAULT.items():
            if d[key] == default:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CompareConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown config keys {unknown}; allowed: {', '.join(sorted(known))}")
        return cls(**d)

    def config_hash(self) -> str:
        """The store's hash of ``to_dict()``: how ``--resume`` finds the experiment."""
        from initlab.store import config_hash

        return config_hash(self.to_dict())


@dataclass(frozen=True)
class MemberSpec:
    """One trained member of a comparison: a scheme, a seed and (grid mode) a learning rate.

    ``label`` is the member's name in the store (its ``scheme`` column): the scheme itself at a
    fixed lr, ``"scheme@lr=0.01"`` in grid mode; ``key`` = (label, seed) is its store cell.
    """

    scheme: str
    seed: int
    lr: float | None = None

    @property
    def label(self) -> str:
        return run_label(self.scheme, self.lr)

    @property
    def key(self) -> tuple[str, int]:
        return (self.label, self.seed)


def run_label(scheme: str, lr: float | None) -> str:
    """The store label of a member: ``scheme``, or ``scheme@lr=<repr(lr)>`` for a grid member."""
    return scheme if lr is None else f"{scheme}@lr={float(lr)!r}"


def _parse_list(flag: str, text: str, convert, what: str, example: str) -> tuple:
    """A comma list through ``convert``; empty items are skipped, a bad one raises ``UserError``."""
    values = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        try:
            values.append(convert(item))
        except ValueError:
            raise UserError(f"{flag}: {item!r} is not {what}; expected a comma list like {example}") from None
    if not values:
        raise UserError(f"{flag}: empty list; expected a comma list like {example}")
    return tuple(values)


def parse_float_list(flag: str, text: str) -> tuple[float, ...]:
    """``"0.001,0.01"`` -> (0.001, 0.01); a bad item raises ``UserError`` naming ``flag``."""
    return _parse_list(flag, text, float, "a number", "0.001,0.01,0.1")


def parse_int_list(flag: str, text: str) -> tuple[int, ...]:
    """``"5,10,20"`` -> (5, 10, 20); a bad item raises ``UserError`` naming ``flag``."""
    return _parse_list(flag, text, int, "an integer", "5,10,20")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"10"`` -> seeds 0..9; ``"3,5,8"`` -> those; ``"10-19"`` -> 10..19. Errors name ``seeds:``."""
    text = str(text).strip()
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        if "-" in text[1:]:
            lo, hi = text.split("-", 1)
            seeds = tuple(range(int(lo), int(hi) + 1))
        else:
            n = int(text)
            if n <= 0:
                raise UserError(f"seeds: a count must be > 0; got {text!r}")
            return tuple(range(n))
    except ValueError as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"seeds: expected a count (10), a range (10-19) or a list (1,2,3); got {text!r}") from None
    if not seeds:
        raise UserError(f"seeds: empty range {text!r}")
    return seeds
