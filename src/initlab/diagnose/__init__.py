"""Is a model healthy at init? Per-layer signal propagation, flags, Jacobian spectra, theory.

``diagnose(model, inputs)`` runs one forward and one backward pass with hooks and returns a
``Diagnosis``: per weighted layer the output's mean and second moment, the gradient's second
moment, dead / saturated / symmetric unit fractions and the weight norm; flags for vanishing,
exploding, dead, saturated and symmetric signals; the input-output Jacobian's singular values
on request; and the mean-field prediction (``initlab.theory``) where the model is a chain the
theory covers. See docs/diagnose.md.
"""

from __future__ import annotations

import sys
import types

from initlab.diagnose.core import diagnose, layer_kind
from initlab.diagnose.flags import Thresholds
from initlab.diagnose.jacobian import jacobian_singular_values
from initlab.diagnose.result import FLAG_KINDS, Diagnosis, Flag, LayerStats, Predicted
from initlab.diagnose.symmetry import duplicate_rows

__all__ = [
    "FLAG_KINDS",
    "Diagnosis",
    "Flag",
    "LayerStats",
    "Predicted",
    "Thresholds",
    "diagnose",
    "duplicate_rows",
    "jacobian_singular_values",
    "layer_kind",
]


class _CallablePackage(types.ModuleType):
    """Calling the package calls ``diagnose``.

    ``initlab.diagnose(model, inputs)`` is the public name (DESIGN.md), but once this
    subpackage is imported the import system binds it to the attribute ``initlab.diagnose``,
    shadowing the function; making the package callable keeps that name working either way.
    """

    def __call__(self, *args, **kwargs) -> Diagnosis:
        return diagnose(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
