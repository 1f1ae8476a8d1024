"""Seeds and generators derived from names, so that randomness is addressed, not sequenced.

A generator for (seed, "layers.3.weight") is the same whatever other layers exist, so adding a
layer changes no other layer's weights, and a resumed run redraws exactly what it would have.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from ``seed`` and any keys (names, epochs), stable across runs and platforms."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer; got {seed!r}")
    text = "\x1f".join([str(seed), *(str(k) for k in keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def derive_generator(seed: int, *keys: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` seeded with ``derive_seed(seed, *keys)``."""
    return torch.Generator(device=device).manual_seed(derive_seed(seed, *keys))


def param_generator(seed: int, name: str) -> torch.Generator:
    """The generator a model parameter's initial values come from: ``derive_generator(seed, name)``.

    ``name`` is the parameter's dotted name in ``model.named_parameters()`` (``"layers.3.weight"``).
    Every path that fills a model (``initlab.initialize``, the compare engine's members,
    ``initlab.models.build``, ``initlab diagnose``) draws through this one key, so the same
    scheme at the same seed gives the same bits for a parameter whichever path wrote it: the
    members of a paired comparison share their random streams (common random numbers).
    """
    return derive_generator(seed, name)
