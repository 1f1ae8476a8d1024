"""What the seed article claims, kept apart from anything initlab measures.

The article ("Neural Network Weight Initialization", shared/seed) prints ten accuracy tables of
ten runs each without naming the model, the data or the training setup. These numbers are
*claims*: initlab shows them beside its own measurements, never as results.
"""

from __future__ import annotations

# scheme -> the article's ten "Accuracy (%)" values, in its order (runs 1..10).
CLAIMED_ACCURACY_PERCENT: dict[str, tuple[float, ...]] = {
    "random_uniform": (88.5, 89.2, 90.1, 87.8, 88.9, 89.7, 88.3, 90.5, 89.8, 91.2),
    "zeros": (10.2, 12.5, 11.8, 9.7, 13.2, 10.9, 11.4, 12.1, 10.5, 9.3),
    "random_normal": (92.1, 91.7, 90.8, 92.4, 91.9, 92.2, 93.0, 92.8, 91.5, 93.2),
    "xavier_uniform": (95.2, 94.6, 94.9, 95.1, 94.8, 95.4, 95.6, 95.3, 94.7, 95.0),
    "he_normal": (97.8, 97.4, 97.9, 97.3, 97.6, 98.0, 97.7, 97.2, 97.5, 97.1),
    "orthogonal": (91.3, 92.7, 91.9, 92.1, 92.4, 92.8, 91.7, 92.3, 91.6, 92.0),
    "sparse": (88.1, 89.6, 88.9, 88.2, 89.3, 88.7, 89.0, 89.8, 88.4, 89.5),
    "uniform_fan": (90.6, 91.1, 91.8, 90.9, 91.3, 91.5, 90.7, 91.4, 91.0, 90.8),
    "constant": (12.7, 11.8, 11.2, 13.5, 12.1, 11.6, 12.3, 11.9, 10.8, 12.2),
    "positive": (94.8, 94.6, 94.9, 95.2, 95.0, 94.5, 94.7, 94.4, 94.3, 94.1),
}


def claimed_mean(scheme: str) -> float | None:
    """The article's mean claimed accuracy for ``scheme`` as a fraction, or None."""
    values = CLAIMED_ACCURACY_PERCENT.get(scheme)
    return sum(values) / len(values) / 100 if values else None
