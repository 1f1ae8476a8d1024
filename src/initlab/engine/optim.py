"""SGD with momentum and Adam on stacked parameters ``(E, *shape)``: one update for all members.

Each update repeats the element-wise operations of torch's single-tensor implementations
(``torch.optim.sgd._single_tensor_sgd`` and ``torch.optim.adam._single_tensor_adam``, the CPU
default), in the same order, on the stacked tensors. Element-wise operations do not mix members,
so member ``i`` of a stack follows exactly what ``torch.optim.SGD``/``Adam`` would do to that
member alone (``tests/test_engine.py`` checks this bit for bit on one member).

SGD (dampening 0), with weight decay :math:`\\lambda`, momentum :math:`\\mu`, rate :math:`\\eta`:

.. math::
    g_t = \\nabla_\\theta L + \\lambda \\theta_{t-1},\\quad
    b_t = \\mu b_{t-1} + g_t \\;(b_1 = g_1),\\quad
    \\theta_t = \\theta_{t-1} - \\eta\\,(g_t + \\mu b_t \\text{ if Nesterov else } b_t)

Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Algorithm 1, with torch's
placement of :math:`\\epsilon` and L2 weight decay added to the gradient):

.. math::
    m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t,\\quad v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2,\\quad
    \\theta_t = \\theta_{t-1} - \\frac{\\eta}{1-\\beta_1^t}\\,
    \\frac{m_t}{\\sqrt{v_t}/\\sqrt{1-\\beta_2^t} + \\epsilon}

Per-member hyperparameters: ``lrs`` and ``weight_decays`` (one value per member, a sequence or an
``(E,)`` tensor; None: the config's value for every member) let the members of one ensemble differ
in :math:`\\eta` and :math:`\\lambda`. The members are cut into *runs*, maximal ranges of adjacent
members that share ``(lr, weight_decay)``; each run is updated through row-slice views of the
stacked tensors with its values as Python scalars, that is, with exactly the kernels (and so the
bits) a lone member with those values gets. Ordering the members so that equal rates sit together
(``compare`` orders them lr-major) keeps the number of runs, hence of kernel launches, small.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from initlab.engine.config import TrainConfig

Run = tuple[int, int, float, float]  # member rows [start, stop), lr, weight_decay


def member_runs(
    n_members: int,
    lr: float,
    weight_decay: float,
    lrs: Sequence[float] | torch.Tensor | None = None,
    weight_decays: Sequence[float] | torch.Tensor | None = None,
) -> list[Run]:
    """Maximal ranges of adjacent members sharing ``(lr, weight_decay)``; a ``None`` takes the default."""

    def values(given, default: float, name: str) -> list[float]:
        if given is None:
            return [float(default)] * n_members
        out = [
            float(default if v is None else v) for v in (given.tolist() if isinstance(given, torch.Tensor) else given)
        ]
        if len(out) != n_members:
            raise ValueError(f"{name} must have one value per member ({n_members}); got {len(out)}")
        return out

    pairs = list(zip(values(lrs, lr, "lrs"), values(weight_decays, weight_decay, "weight_decays")))
    runs: list[Run] = []
    start = 0
    for i in range(1, n_members + 1):
        if i == n_members or pairs[i] != pairs[start]:
            runs.append((start, i, *pairs[start]))
            start = i
    return runs


class StackedOptimizer:
    """Base: a list of stacked parameters updated in place from a matching list of gradients."""

    kind = ""
    state_names: tuple[str, ...] = ()

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        config: TrainConfig,
        *,
        lrs: Sequence[float] | torch.Tensor | None = None,
        weight_decays: Sequence[float] | torch.Tensor | None = None,
    ) -> None:
        self.params = list(params)
        self.config = config
        self.step_count = 0
        self.state: dict[str, list[torch.Tensor | None]] = {n: [None] * len(self.params) for n in self.state_names}
        n_members = self.params[0].shape[0] if self.params else 0
        self.runs = member_runs(n_members, config.lr, config.weight_decay, lrs, weight_decays)

    def _rows(self, tensors: Sequence[torch.Tensor], run: Run) -> list[torch.Tensor]:
        """The run's rows of each stacked tensor, as views (the tensors themselves for one run)."""
        if len(self.runs) == 1:
            return list(tensors)
        return [t[run[0] : run[1]] for t in tensors]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "step": self.step_count,
            "state": {n: [None if t is None else t.clone() for t in ts] for n, ts in self.state.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"optimizer state is for {state.get('kind')!r}, not {self.kind!r}")
        self.step_count = int(state["step"])
        for name in self.state_names:
            saved = state["state"][name]
            self.state[name] = [None if t is None else t.to(p.device).clone() for t, p in zip(saved, self.params)]


class StackedSGD(StackedOptimizer):
    """``torch.optim.SGD(lr, momentum, dampening=0, weight_decay, nesterov)`` on stacked tensors."""

    kind = "sgd"
    state_names = ("momentum_buffer",)

    # torch's fused SGD kernel gives the same bits as the single-tensor update on CPU (checked by
    # tests/test_engine.py against torch.optim.SGD) in one pass over memory instead of three.
    use_fused = hasattr(torch, "_fused_sgd_")

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        cfg = self.config
        bufs = self.state["momentum_buffer"]
        first = cfg.momentum != 0 and bufs[0] is None
        if first:  # torch's first step sets the buffer to the gradient: filled below
            bufs[:] = [torch.empty_like(p) for p in self.params]
        fused = self.use_fused and all(p.device.type in ("cpu", "cuda") for p in self.params)
        for run in self.runs:
            params, run_grads = self._rows(self.params, run), self._rows(grads, run)
            run_bufs = self._rows(bufs, run) if cfg.momentum != 0 else []
            lr, weight_decay = run[2], run[3]
            if fused:
                torch._fused_sgd_(
                    params,
                    run_grads,
                    run_bufs,
                    weight_decay=weight_decay,
                    momentum=cfg.momentum,
                    lr=lr,
                    dampening=0.0,
                    nesterov=cfg.nesterov,
                    maximize=False,
                    is_first_step=first,
                )
                continue
            for i, (param, grad) in enumerate(zip(params, run_grads)):
                if weight_decay != 0:
                    grad = grad.add(param, alpha=weight_decay)
                if cfg.momentum != 0:
                    buf = run_bufs[i]
                    if first:
                        buf.copy_(grad)
                    else:
                        buf.mul_(cfg.momentum).add_(grad)
                    grad = grad.add(buf, alpha=cfg.momentum) if cfg.nesterov else buf
                param.add_(grad, alpha=-lr)
        self.step_count += 1


class StackedAdam(StackedOptimizer):
    """``torch.optim.Adam(lr, betas, eps, weight_decay)`` (no AMSGrad) on stacked tensors."""

    kind = "adam"
    state_names = ("exp_avg", "exp_avg_sq")

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        cfg = self.config
        beta1, beta2 = cfg.betas
        self.step_count += 1
        # torch reads its step counter as a Python number here (``_get_value``): same floats.
        step = float(self.step_count)
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        bias_correction2_sqrt = bias_correction2**0.5
        avgs, avg_sqs = self.state["exp_avg"], self.state["exp_avg_sq"]
        if avgs[0] is None:
            avgs[:] = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
            avg_sqs[:] = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        for run in self.runs:
            lr, weight_decay = run[2], run[3]
            step_size = lr / bias_correction1
            for param, grad, exp_avg, exp_avg_sq in zip(
                *(self._rows(t, run) for t in (self.params, grads, avgs, avg_sqs))
            ):
                if weight_decay != 0:
                    grad = grad.add(param, alpha=weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(cfg.eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)


def make_optimizer(
    params: Sequence[torch.Tensor],
    config: TrainConfig,
    *,
    lrs: Sequence[float] | torch.Tensor | None = None,
    weight_decays: Sequence[float] | torch.Tensor | None = None,
) -> StackedOptimizer:
    """The stacked optimizer of ``config.optimizer``; ``lrs``/``weight_decays``: one value per member."""
    cls = {"sgd": StackedSGD, "adam": StackedAdam}[config.optimizer]
    return cls(params, config, lrs=lrs, weight_decays=weight_decays)
