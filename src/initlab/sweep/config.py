"""The configuration of a comparison: what is trained, how, and over which seeds.

A ``CompareConfig`` is validated when built (a bad value raises ``UserError`` naming it) and
hashes to a stable id, so ``--resume`` can find the experiment it continues and refuse a
different one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

from initlab.errors import UserError
from initlab.schemes import ARTICLE_SCHEMES

OPTIMIZERS = ("sgd", "adam")
BACKENDS = ("local", "ray")
PAIRED_TESTS = ("wilcoxon", "t")
POLICIES = ("auto",)  # per-layer policies accepted beside scheme names


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
    # "converged" (steps to target): a test accuracy for classification (default 0.9); for
    # regression and lm a test MSE / loss to get below (default None: not tracked)
    target: float | None = None
    reference: str | None = None  # paired against every other; None: he_normal if compared, else the first
    paired_test: str = "wilcoxon"
    chunk_size: int = 50  # members (scheme, seed) trained together in one cell
    data_options: dict = field(default_factory=dict)  # e.g. {"limit_train": 10000}
    model_options: dict = field(default_factory=dict)  # extra keywords for the model, e.g. {"norm": "batch"}
    task: str = "classification"  # or "regression", "lm" (initlab.tasks: the metric and its direction)
    data_source: dict | None = None  # what identifies the user's data (path, size, sha256); set by compare

    # Fields added after experiments were stored: left out of to_dict (and the hash) at their
    # default, so older experiments keep their config hash and stay resumable.
    _OMIT_AT_DEFAULT: ClassVar[dict] = {"task": "classification", "data_source": None}

    def __post_init__(self) -> None:
        from initlab.schemes import canonical_spec

        object.__setattr__(self, "schemes", tuple(self.schemes))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.schemes:
            raise UserError("schemes: need at least one scheme")
        canonical = []
        for s in self.schemes:
            canonical.append(s if s in POLICIES else canonical_spec(s))
        if len(set(canonical)) != len(canonical):
            raise UserError(f"schemes: each scheme once; got {', '.join(self.schemes)}")
        object.__setattr__(self, "schemes", tuple(canonical))
        if not self.seeds or any(s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds: need distinct integers >= 0; got {list(self.seeds)}")
        object.__setattr__(self, "bias_init", canonical_spec(self.bias_init))
        if self.bias_init != "zeros" and any(s in POLICIES for s in self.schemes):
            raise UserError(f"bias_init {self.bias_init!r} would apply to scheme members only: the 'auto' policy "
                            f"sets every bias itself. Compare 'auto' with the default bias_init (zeros)")
        for name in ("width", "depth", "epochs", "batch_size", "chunk_size"):
            value = getattr(self, name)
            low = 0 if name == "depth" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"{name}: must be an integer >= {low}; got {value!r}")
        for name in ("lr",):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0 or value != value or value == float("inf"):
                raise UserError(f"{name}: must be a number > 0; got {value!r}")
        from initlab.tasks import TASKS

        if self.task not in TASKS:
            raise UserError(f"task: one of {', '.join(TASKS)}; got {self.task!r}")
        if self.target is None and self.task == "classification":
            object.__setattr__(self, "target", 0.9)
        for name in ("lr", "momentum", "weight_decay", "target"):  # 1 and 1.0 must hash alike
            value = getattr(self, name)
            if name == "target" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{name}: must be a number; got {value!r}")
            object.__setattr__(self, name, float(value))
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum: must be in [0, 1); got {self.momentum!r}")
        if not self.weight_decay >= 0:
            raise UserError(f"weight_decay: must be >= 0; got {self.weight_decay!r}")
        if self.task == "classification" and not 0 < self.target <= 1:
            raise UserError(f"target: a test accuracy in (0, 1]; got {self.target!r}")
        if self.target is not None and not (self.target > 0 and self.target != float("inf")):
            raise UserError(f"target: a test {'MSE' if self.task == 'regression' else 'loss'} > 0; got {self.target!r}")
        if self.data_source is not None and not isinstance(self.data_source, dict):
            raise UserError(f"data_source: a dict (path, size, sha256) or None; got {self.data_source!r}")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"optimizer: one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.optimizer == "adam" and self.momentum != 0.9:
            # Adam has no momentum setting; accepting one would only change the config hash.
            raise UserError(f"momentum={self.momentum!r} applies to SGD only; Adam uses betas (0.9, 0.999)")
        if self.paired_test not in PAIRED_TESTS:
            raise UserError(f"paired_test: one of {', '.join(PAIRED_TESTS)}; got {self.paired_test!r}")
        if self.reference is None:
            object.__setattr__(self, "reference", "he_normal" if "he_normal" in canonical else canonical[0])
        elif self.reference not in POLICIES:
            object.__setattr__(self, "reference", canonical_spec(self.reference))
        if self.reference not in self.schemes:
            raise UserError(f"reference {self.reference!r} is not among the schemes ({', '.join(self.schemes)}); "
                            f"add it to --schemes or pick one of them with --reference")
        from initlab.activations import canonical as canonical_activation

        canonical_activation(self.activation)

    @property
    def members(self) -> list[tuple[str, int]]:
        """Every (scheme, seed) cell of the grid, seed-major so a chunk mixes schemes fairly."""
        return [(scheme, seed) for seed in self.seeds for scheme in self.schemes]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["schemes"] = list(self.schemes)
        d["seeds"] = list(self.seeds)
        for key, default in self._OMIT_AT_DEFAULT.items():
            if d[key] == default:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CompareConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown config keys {unknown}; allowed: {', '.join(sorted(known))}")
        return cls(**d)

    def config_hash(self) -> str:
        """The store's hash of ``to_dict()``: how ``--resume`` finds the experiment."""
        from initlab.store import config_hash

        return config_hash(self.to_dict())


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"10"`` -> seeds 0..9; ``"3,5,8"`` -> those; ``"10-19"`` -> 10..19."""
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
                raise UserError(f"--seeds: a count must be > 0; got {text!r}")
            return tuple(range(n))
    except ValueError as exc:
        if isinstance(exc, UserError):
            raise
        raise UserError(f"--seeds: expected a count (10), a range (10-19) or a list (1,2,3); got {text!r}") from None
    if not seeds:
        raise UserError(f"--seeds: empty range {text!r}")
    return seeds
