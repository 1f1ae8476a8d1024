"""A small decoder-only transformer for ``--task lm`` (``--model transformer``).

GPT-2's layout at small scale (Radford et al. 2019; nanoGPT's ``model.py``): token and
position embeddings, ``depth`` pre-norm blocks ``x + attn(ln1(x))``, ``x + mlp(ln2(x))`` with
causal multi-head self-attention and a ``width → 4·width → width`` MLP, a final LayerNorm and
a linear head to the vocabulary. Attention is written with plain matmuls and a causal mask
built in ``forward`` (no fused kernel, no buffers), so ``torch.func.vmap`` stacks the members.

Inputs are token ids ``(b, context)`` held as floats (``initlab.data.text``); they are cast to
int64 for the embedding. Outputs are logits ``(b, context, vocab)``.

What the ensemble initializes (``initlab.engine.init``): every 2-D weight, the embeddings
included, from the compared scheme; Linear biases from ``bias_init``; LayerNorm gains 1.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from initlab.activations import activation_module, canonical
from initlab.errors import UserError


class CausalSelfAttention(nn.Module):
    """``softmax(QKᵀ/√d_head + causal mask) V`` over ``heads`` heads, then an output projection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        shape = (b, t, self.heads, d // self.heads)
        q, k, v = (z.reshape(shape).transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, width: int, heads: int, activation: str) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), activation_module(activation), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """Decoder-only language model over ``vocab`` tokens and windows of ``context`` tokens."""

    def __init__(
        self, vocab: int, context: int, width: int = 128, depth: int = 2, heads: int = 4, activation: str = "gelu"
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("vocab", vocab, 1),
            ("context", context, 1),
            ("width", width, 1),
            ("depth", depth, 0),
            ("heads", heads, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"transformer: {name}={value!r} is invalid; allowed: an integer >= {low}")
        if width % heads:
            raise UserError(
                f"transformer: width {width} is not divisible by heads {heads}; allowed: a width "
                f"that is a multiple of --heads"
            )
        act = canonical(activation)
        self.context = context
        self.tok = nn.Embedding(vocab, width)
        self.pos = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(Block(width, heads, act) for _ in range(depth)))
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        self.spec = {
            "arch": "transformer",
            "vocab": vocab,
            "context": context,
            "width": width,
            "depth": depth,
            "heads": heads,
            "activation": act,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.long()
        t = tokens.shape[-1]
        positions = torch.arange(t, device=x.device)
        h = self.tok(tokens) + self.pos(positions)
        return self.head(self.ln_f(self.blocks(h)))


def transformer(
    input_shape: tuple[int, ...], num_classes: int, width: int, depth: int, activation: str = "gelu", heads: int = 4
) -> Transformer:
    """``Transformer(vocab=num_classes, context=input_shape[-1], ...)`` for ``build``."""
    if len(input_shape) != 1:
        raise UserError(
            f"model 'transformer' reads token windows (context,); got input shape {tuple(input_shape)} "
            f"(use it with --task lm)"
        )
    return Transformer(num_classes, input_shape[0], width, depth, heads, activation)
