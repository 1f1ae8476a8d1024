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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from initlab.engine.config import TrainConfig


class StackedOptimizer:
    """Base: a list of stacked parameters updated in place from a matching list of gradients."""

    kind = ""
    state_names: tuple[str, ...] = ()

    def __init__(self, params: Sequence[torch.Tensor], config: TrainConfig) -> None:
        self.params = list(params)
        self.config = config
        self.step_count = 0
        self.state: dict[str, list[torch.Tensor | None]] = {n: [None] * len(self.params) for n in self.state_names}

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
        if self.use_fused and all(p.device.type in ("cpu", "cuda") for p in self.params):
            first = cfg.momentum != 0 and bufs[0] is None
            if first:
                bufs[:] = [torch.empty_like(p) for p in self.params]
            torch._fused_sgd_(
                self.params, list(grads), bufs if cfg.momentum != 0 else [], weight_decay=cfg.weight_decay,
                momentum=cfg.momentum, lr=cfg.lr, dampening=0.0, nesterov=cfg.nesterov, maximize=False,
                is_first_step=first,
            )
            self.step_count += 1
            return
        for i, (param, grad) in enumerate(zip(self.params, grads)):
            if cfg.weight_decay != 0:
                grad = grad.add(param, alpha=cfg.weight_decay)
            if cfg.momentum != 0:
                buf = bufs[i]
                if buf is None:
                    buf = bufs[i] = grad.detach().clone()
                else:
                    buf.mul_(cfg.momentum).add_(grad)
                grad = grad.add(buf, alpha=cfg.momentum) if cfg.nesterov else buf
            param.add_(grad, alpha=-cfg.lr)
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
        step_size = cfg.lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        avgs, avg_sqs = self.state["exp_avg"], self.state["exp_avg_sq"]
        for i, (param, grad) in enumerate(zip(self.params, grads)):
            if avgs[i] is None:
                avgs[i] = torch.zeros_like(param, memory_format=torch.preserve_format)
                avg_sqs[i] = torch.zeros_like(param, memory_format=torch.preserve_format)
            exp_avg, exp_avg_sq = avgs[i], avg_sqs[i]
            if cfg.weight_decay != 0:
                grad = grad.add(param, alpha=cfg.weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(cfg.eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)


def make_optimizer(params: Sequence[torch.Tensor], config: TrainConfig) -> StackedOptimizer:
    return {"sgd": StackedSGD, "adam": StackedAdam}[config.optimizer](params, config)
