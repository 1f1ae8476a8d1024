"""Singular values of the input-output Jacobian ``J_n = ∂y_n/∂x_n``, per sample.

Dynamical isometry (Saxe et al. 2014; Pennington, Schoenholz & Ganguli 2017) asks that all
singular values of ``J`` be close to 1: orthogonal deep linear nets have exactly that, Gaussian
ones a spectrum that widens with depth. Samples must not interact in the forward pass, so the
model is run in eval mode here.

Exact when ``samples × d_out × d_in`` is at most ``EXACT_BUDGET`` entries: ``J`` is built
from batched vector-Jacobian products (one per output coordinate, or per input coordinate via
the double-backward trick when the input is smaller), then ``torch.linalg.svdvals``.
Otherwise a randomized SVD (Halko, Martinsson & Tropp 2011, Alg. 4.4: ``k + 10`` probes,
2 power iterations) estimates the top ``k`` singular values of each ``J_n`` from
Jacobian-vector and vector-Jacobian products only.
"""

from __future__ import annotations

import torch
from torch import nn

from initlab.errors import UserError

EXACT_BUDGET = 1 << 24  # entries of the stacked Jacobians (64 MiB in float32)
_CHUNK = 64  # probe vectors per batched backward pass
_OVERSAMPLE = 10
_POWER_ITERATIONS = 2


def _vjp(y: torch.Tensor, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``u (m, *y.shape) -> (m, *x.shape)``: ``J^T u`` for each of the m probes."""
    out = []
    for chunk in u.split(_CHUNK):
        try:
            (g,) = torch.autograd.grad(y, x, chunk, retain_graph=True, is_grads_batched=True)
        except RuntimeError:  # an op without a batching rule: one probe at a time
            g = torch.stack([torch.autograd.grad(y, x, c, retain_graph=True)[0] for c in chunk])
        out.append(g)
    return torch.cat(out)


def _jvp(y: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v (m, *x.shape) -> (m, *y.shape)``: ``J v`` by differentiating ``J^T u`` w.r.t. ``u``."""
    u = torch.zeros_like(y, requires_grad=True)
    (jt_u,) = torch.autograd.grad(y, x, u, create_graph=True)
    out = []
    for chunk in v.split(_CHUNK):
        try:
            (g,) = torch.autograd.grad(jt_u, u, chunk, retain_graph=True, is_grads_batched=True)
        except RuntimeError:
            g = torch.stack([torch.autograd.grad(jt_u, u, c, retain_graph=True)[0] for c in chunk])
        out.append(g)
    return torch.cat(out)


def jacobian_singular_values(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    rank: int = 64,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, str]:
    """``(singular values (n, k) descending, "exact" | "randomized")`` for each sample of ``inputs``.

    ``rank`` is ``k`` for the randomized estimate; ``generator`` draws its probes.
    """
    if not torch.is_floating_point(inputs):
        raise UserError(f"the Jacobian needs floating-point inputs; got dtype {inputs.dtype}")
    n = inputs.shape[0]
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        y = model(x)
        if not isinstance(y, torch.Tensor):
            raise UserError(f"the model returned a {type(y).__name__}; diagnose needs a tensor output")
        if not y.requires_grad:
            raise UserError("the model output does not depend differentiably on its input; no Jacobian")
        if y.dtype in (torch.float16, torch.bfloat16):  # probes and QR in float32
            y = y.float()
        if y.shape[0] != n:
            raise UserError(
                f"the model output has batch size {y.shape[0]} for {n} inputs; a per-sample Jacobian needs them equal"
            )
        d_in, d_out = x[0].numel(), y[0].numel()
        if n * d_in * d_out <= EXACT_BUDGET:
            if d_out <= d_in:
                eye = torch.eye(d_out, dtype=y.dtype, device=y.device)
                u = eye[:, None, :].expand(d_out, n, d_out).reshape(d_out, *y.shape)
                jac = _vjp(y, x, u).reshape(d_out, n, d_in).permute(1, 0, 2)
            else:
                eye = torch.eye(d_in, dtype=x.dtype, device=x.device)
                v = eye[:, None, :].expand(d_in, n, d_in).reshape(d_in, *x.shape)
                jac = _jvp(y, x, v).reshape(d_in, n, d_out).permute(1, 2, 0)
            return torch.linalg.svdvals(jac.double()).float(), "exact"
        k = max(1, min(rank, d_in, d_out))
        probes = min(k + _OVERSAMPLE, d_in, d_out)
        gen = generator if generator is not None else torch.Generator(device=x.device).manual_seed(0)
        omega = torch.randn((probes, *x.shape), generator=gen, device=gen.device, dtype=x.dtype).to(x.device)
        sketch = _jvp(y, x, omega).reshape(probes, n, d_out).permute(1, 2, 0)  # (n, d_out, p)
        for _ in range(_POWER_ITERATIONS):
            q, _ = torch.linalg.qr(sketch.double())
            back = _vjp(y, x, q.float().permute(2, 0, 1).reshape(probes, *y.shape))
            q2, _ = torch.linalg.qr(back.reshape(probes, n, d_in).permute(1, 2, 0).double())
            sketch = (
                _jvp(y, x, q2.float().permute(2, 0, 1).reshape(probes, *x.shape))
                .reshape(probes, n, d_out)
                .permute(1, 2, 0)
            )
        q, _ = torch.linalg.qr(sketch.double())
        # B_n = Q_n^T J_n (p × d_in) = (J_n^T Q_n)^T
        bt = _vjp(y, x, q.float().permute(2, 0, 1).reshape(probes, *y.shape)).reshape(probes, n, d_in)
        sv = torch.linalg.svdvals(bt.permute(1, 0, 2).double())[:, :k]
        return sv.float(), "randomized"
