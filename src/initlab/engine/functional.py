"""General backends: ``vmap`` (torch.func, all members in one vectorized call) and ``loop``.

Both run the model through ``torch.func.functional_call`` with member ``e``'s slice of the
stacked parameters and buffers, so a member is exactly the model the factory builds, with its
own weights. ``vmap`` differentiates ``loss(f(theta_e, x_e), y_e)`` (``initlab.engine.losses``) with
``vmap(grad(...))`` over the member axis (``stack_module_state``'s layout); ``loop`` does the
same member by member with plain autograd: the reference semantics, and the fallback for models
``vmap`` cannot transform (random modules such as dropout, in-place buffer updates it rejects).

In ``loop``, a random module draws from torch's global RNG, which the engine reseeds with
``derive_seed(member_seed, "train", epoch, step)`` inside ``torch.random.fork_rng`` for that
member's step: the draw is reproducible and independent of the other members, and the caller's
global RNG is restored afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from initlab.engine.init import isolated_global_rng
from initlab.engine.losses import member_loss as task_loss
from initlab.seeding import derive_seed


def _reseed_global(seed: int, device: torch.device) -> None:
    """Seed the global generator random modules draw from (only ever inside ``fork_rng``)."""
    if device.type == "cuda":
        torch.cuda.default_generators[device.index or 0].manual_seed(seed)
    else:
        torch.random.default_generator.manual_seed(seed)


class _FunctionalBackend:
    def __init__(
        self,
        template: nn.Module,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        param_names: list[str],
        trainable: list[str],
        seeds: Sequence[int],
        loss: str = "cross_entropy",
    ) -> None:
        self.template = template
        self.loss = loss
        self.x = x_train
        self.y = y_train
        self.param_names = param_names
        self.trainable = trainable
        self.seeds = list(seeds)

    def _split(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]):
        trainable = {n: params[n] for n in self.trainable}
        fixed = {n: p for n, p in params.items() if n not in trainable}
        fixed.update(buffers)
        return trainable, fixed


class VmapBackend(_FunctionalBackend):
    name = "vmap"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Parameters are always supplied by functional_call: a weightless copy is enough.
        self.base = copy.deepcopy(self.template).to("meta")

        def member_loss(trainable, fixed, x, y):
            out = functional_call(self.base, (trainable, fixed), (x,))
            loss, correct = task_loss(out, y, self.loss)
            return loss, (loss.detach(), correct)

        def member_logits(trainable, fixed, x):
            return functional_call(self.base, (trainable, fixed), (x,))

        self._grad_fn = vmap(grad(member_loss, has_aux=True), randomness="error")
        self._logits_fn = vmap(member_logits, in_dims=(0, 0, None), randomness="error")

    def loss_and_grads(self, params, buffers, idx, *, epoch: int, step: int):
        members, batch = idx.shape
        flat = idx.reshape(-1)
        x = self.x.index_select(0, flat).view(members, batch, *self.x.shape[1:])
        y = self.y.index_select(0, flat).view(members, batch, *self.y.shape[1:])
        trainable, fixed = self._split(params, buffers)
        self.base.train()
        grads, (loss, correct) = self._grad_fn(trainable, fixed, x, y)
        by_name = {n: grads[n] for n in self.trainable}
        return [by_name[n] for n in self.trainable], loss, correct

    @torch.no_grad()
    def logits(self, params, buffers, x):
        trainable, fixed = self._split(params, buffers)
        self.base.eval()
        return self._logits_fn(trainable, fixed, x)


class LoopBackend(_FunctionalBackend):
    name = "loop"

    def loss_and_grads(self, params, buffers, idx, *, epoch: int, step: int):
        members = idx.shape[0]
        trainable, fixed = self._split(params, buffers)
        grads = [torch.empty_like(params[n]) for n in self.trainable]
        losses = torch.empty(members, dtype=params[self.trainable[0]].dtype, device=idx.device)
        correct = torch.empty(members, dtype=torch.int64, device=idx.device)
        self.template.train()
        for e in range(members):
            leaves = {n: t[e].detach().requires_grad_(True) for n, t in trainable.items()}
            others = {n: t[e] for n, t in fixed.items()}  # views: buffer updates land in the stack
            x = self.x.index_select(0, idx[e])
            y = self.y.index_select(0, idx[e])
            with isolated_global_rng(x.device):
                _reseed_global(derive_seed(self.seeds[e], "train", epoch, step), x.device)
                out = functional_call(self.template, (leaves, others), (x,))
            loss, right = task_loss(out, y, self.loss)
            member_grads = torch.autograd.grad(loss, list(leaves.values()))
            for g_all, g in zip(grads, member_grads):
                g_all[e].copy_(g)
            losses[e] = loss.detach()
            correct[e] = right
        return grads, losses, correct

    @torch.no_grad()
    def logits(self, params, buffers, x):
        trainable, fixed = self._split(params, buffers)
        self.template.eval()
        outs = []
        for e in range(params[self.param_names[0]].shape[0]):
            member = {n: t[e] for n, t in trainable.items()}
            member.update({n: t[e] for n, t in fixed.items()})
            outs.append(functional_call(self.template, member, (x,)))
        return torch.stack(outs)
