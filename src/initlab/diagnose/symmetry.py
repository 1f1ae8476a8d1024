"""Symmetric units: rows of a matrix that are identical up to a small tolerance.

Two units of a layer are *symmetric* when their incoming weights (with the bias) are identical,
or when their activations are identical on every sample of the batch: gradient descent then
gives them identical updates forever and the layer is worth one unit (zero or constant init,
units copied from one another). Rows are compared at a tolerance of ``REL_TOL`` × the largest
magnitude in the matrix, so that two rows computed by different BLAS lanes still match.

Finding them costs ``O(rows × cols)``: rows are projected on a fixed generic vector, sorted,
and only rows whose projections lie within the tolerance's bound of each other are compared.
No randomness is involved.
"""

from __future__ import annotations

import torch

REL_TOL = 1e-6
# Layers with more units than this are checked on an evenly spaced sample of this many units:
# the fraction of units with a twin is estimated on the sample (a 50k-row LM head costs
# ~1/12 of a full check, and the sample needs no random draw).
MAX_ROWS = 4096


def sample_rows(rows: int, limit: int = MAX_ROWS) -> torch.Tensor | None:
    """Evenly spaced row indices when ``rows > limit`` (None: check every row)."""
    if rows <= limit:
        return None
    return torch.linspace(0, rows - 1, limit, dtype=torch.float64).round().long().unique()


def _projection_vector(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # Any vector without structure works: identical rows project identically whatever it is,
    # and distinct rows almost never collide (a collision only costs one extra comparison).
    k = torch.arange(n, dtype=torch.float64, device=device)
    return (torch.sin(k * 0.7548776662466927 + 0.5) + 1.5).to(dtype)


def duplicate_rows(matrix: torch.Tensor, *, skip: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask over rows: True where another row is identical within tolerance.

    Rows ``i`` and ``j`` are identical when ``max_k |m_ik - m_jk| <= REL_TOL * max|m|`` (all
    rows identical when the matrix is all zeros). Rows where ``skip`` is True take no part.
    """
    rows = matrix.shape[0]
    mask = torch.zeros(rows, dtype=torch.bool, device=matrix.device)
    if rows < 2:
        return mask
    m = matrix.reshape(rows, -1)
    if not torch.is_floating_point(m) or m.dtype in (torch.float16, torch.bfloat16):
        m = m.float()
    scale = float(m.abs().max()) if m.numel() else 0.0
    tol = REL_TOL * scale
    r = _projection_vector(m.shape[1], m.dtype, m.device)
    proj = m @ r
    # float32 rounding of a projection (~6e-8 of sum|m r|) stays well inside this window
    window = tol * float(r.abs().sum()) + 1e-300
    order = torch.argsort(proj)
    if skip is not None:
        order = order[~skip[order]]
    sorted_proj = proj[order]
    # runs of consecutive projections closer than the window are the only candidates
    gaps = (sorted_proj[1:] - sorted_proj[:-1]) > window
    starts = torch.cat([torch.tensor([0], device=m.device), torch.nonzero(gaps).flatten() + 1])
    ends = torch.cat([starts[1:], torch.tensor([len(order)], device=m.device)])
    for start, end in zip(starts.tolist(), ends.tolist()):
        if end - start < 2:
            continue
        group = order[start:end]
        while len(group) > 1:  # greedy clusters: rows identical to the group's first row
            same = (m[group] - m[group[0]]).abs().amax(dim=1) <= tol
            if int(same.sum()) > 1:
                mask[group[same]] = True
            group = group[~same]
    return mask
