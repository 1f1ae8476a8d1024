"""Models for experiments: MLP, small CNN, residual MLP/CNN, and users' "module:function" factories.

``build(spec, input_shape=..., num_classes=..., seed=...)`` is the entry point; the builders
(``mlp``, ``cnn``, ``resmlp``, ``rescnn``) make the modules, ``default_init_`` writes PyTorch's
default weights from named generators. See docs/data-and-models.md.
"""

from __future__ import annotations

from initlab.models.build import FACTORY_ARGS, architectures, build, default_init_
from initlab.models.nets import CNN, MLP, NORMS, ResCNN, ResidualBlock, ResMLP, cnn, mlp, rescnn, resmlp

__all__ = [
    "CNN",
    "FACTORY_ARGS",
    "MLP",
    "NORMS",
    "ResCNN",
    "ResMLP",
    "ResidualBlock",
    "architectures",
    "build",
    "cnn",
    "default_init_",
    "mlp",
    "rescnn",
    "resmlp",
]
