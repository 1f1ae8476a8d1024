"""initlab: pick, check and benchmark neural-network weight initialization (PyTorch).

Public names only; see DESIGN.md for the contract.
"""

from __future__ import annotations

__version__ = "0.1.0"

from initlab.errors import UserError
from initlab.schemes import Scheme, gain, get_scheme, init_, list_schemes

__all__ = [
    "__version__",
    "UserError",
    "Scheme",
    "gain",
    "get_scheme",
    "init_",
    "list_schemes",
]
