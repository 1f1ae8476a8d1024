"""What ``suggest_lr`` returns: one ``LrPoint`` per grid point and the ``LrSuggestion``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LrPoint:
    """One grid point: its final validation loss and accuracy, per-epoch validation losses, and
    the rule's verdict (``failed``, ``stable``)."""

    lr: float
    val_loss: float
    val_acc: float
    val_losses: tuple[float, ...]
    val_accs: tuple[float, ...]
    diverged: bool
    failed: bool
    stable: bool
    stage: str  # "coarse", "refine" or "given"


@dataclass(frozen=True)
class LrSuggestion:
    """What ``suggest_lr`` found. ``lr`` is the choice; ``points`` every grid point (by lr)."""

    lr: float
    points: tuple[LrPoint, ...]
    optimizer: str
    epochs: int
    steps: int
    batch_size: int
    n_train: int
    n_val: int
    initial_val_loss: float
    seconds: float
    ok: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def grid(self) -> tuple[float, ...]:
        return tuple(p.lr for p in self.points)

    @property
    def val_loss(self) -> tuple[float, ...]:
        return tuple(p.val_loss for p in self.points)

    @property
    def val_acc(self) -> tuple[float, ...]:
        return tuple(p.val_acc for p in self.points)

    def table(self) -> str:
        """The grid as a text table; the chosen row is marked with ``<-``."""
        head = (
            f"suggest_lr: {self.optimizer}, {self.epochs} epoch(s) = {self.steps} steps of batch {self.batch_size}, "
            f"{self.n_train} train / {self.n_val} validation samples, {self.seconds:.1f} s; "
            f"validation loss before training {self.initial_val_loss:.4g}"
        )
        lines = [head, f"{'lr':>10}  {'val_loss':>9}  {'val_acc':>7}  {'verdict':<9} stage"]
        for p in self.points:
            verdict = "diverged" if p.diverged else "failed" if p.failed else "stable" if p.stable else "unstable"
            mark = "  <-" if p.lr == self.lr else ""
            lines.append(f"{p.lr:>10.3g}  {p.val_loss:>9.4g}  {p.val_acc:>7.3f}  {verdict:<9} {p.stage}{mark}")
        lines.append(f"suggested lr: {self.lr:.3g}" + ("" if self.ok else " (no stable rate found; see notes)"))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | None = None, ax: Any = None) -> Any:
        """Validation loss and accuracy against lr (log axis), the choice marked; saved to ``path`` if given."""
        import matplotlib

        if ax is None and path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 3.5))
        lrs = [p.lr for p in self.points]
        ax.plot(lrs, [p.val_acc for p in self.points], "o-", label="validation accuracy")
        ax.set_xscale("log")
        ax.set_xlabel(f"learning rate ({self.optimizer})")
        ax.set_ylabel("validation accuracy")
        ax.axvline(self.lr, color="k", linestyle=":", label=f"suggested {self.lr:.3g}")
        for p in self.points:
            if p.failed or not p.stable:
                ax.plot([p.lr], [p.val_acc], "x", color="red")
        ax.legend(loc="best", fontsize=8)
        if fig is not None and path is not None:
            fig.tight_layout()
            fig.savefig(path, dpi=120)
        return fig if fig is not None else ax.figure

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["grid"] = list(self.grid)
        return out
