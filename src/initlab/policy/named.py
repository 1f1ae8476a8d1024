"""Named policies for the architectures they were made for, with their conditions checked.

- ``"fixup"`` (Zhang, Dauphin & Ma 2019): residual nets *without normalization*. Branch-internal
  layers He-scaled by ``L^(-1/(2m-2))``, the last layer of each branch and the classifier zero,
  scalar multipliers 1 and scalar biases 0.
- ``"t-fixup"`` (Huang, Perez, Ba & Volkovs 2020, Improving Transformer Optimization Through
  Better Initialization): transformers *without layer normalization*. Xavier uniform for the
  weights in residual branches, the value and output projections and the MLP weights scaled by
  ``0.67 N^(-1/4)`` (encoder) or ``(9N)^(-1/4)`` (decoder), input embeddings N(0, d^(-1/2)) x
  the same factor; q and k keep Xavier.
- ``"deepnorm"`` (Wang, Ma, Dong, Huang, Zhang & Wei 2022, DeepNet): *post-LN* transformers.
  Xavier normal, gain ``beta = (8N)^(-1/4)`` for the value, output and MLP weights, gain 1 for q
  and k (N blocks, one stack). DeepNorm also multiplies the skip path by ``alpha = (2N)^(1/4)``
  in the forward pass, which an initialization cannot do: the plan says so.

N counts transformer blocks (two residual branches each: attention and MLP); L counts branches.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from initlab.errors import UserError
from initlab.policy.decisions import Decision, _g
from initlab.policy.kind_rules import FUSED_QKV_NAMES
from initlab.policy.plans import RowBlock
from initlab.policy.records import ModelGraph
from initlab.policy.residual import branch_positions

NAMED_POLICIES = ("fixup", "t-fixup", "deepnorm")
_Q = ("q_proj", "query", "q", "to_q", "q_lin", "wq")
_K = ("k_proj", "key", "k", "to_k", "k_lin", "wk")

Entry = tuple[str, tuple[int, ...], Any, Decision]


def _norm_layers(graph: ModelGraph) -> list[str]:
    return [name for name, info in graph.layers.items() if info.kind == "norm"]


def _need_branches(policy: str, graph: ModelGraph) -> None:
    if not graph.branches:
        raise UserError(
            f"policy {policy!r} needs the model's residual branches; none were found (introspection: "
            f"{graph.method}); allowed: a residual model that torch.fx can trace, or pass example_input= "
            "so forward hooks can find them"
        )


def _is_attention_model(model: nn.Module, graph: ModelGraph) -> bool:
    return any(i.kind == "attention" for i in graph.layers.values()) or any(
        "attention" in type(m).__name__.lower() for m in model.modules()
    )


def _is_decoder(model: nn.Module) -> bool:
    names = [type(m).__name__ for m in model.modules()]
    return any(("Decoder" in n or "CausalLM" in n or "LMHead" in n) for n in names)


def _blocks(graph: ModelGraph) -> int:
    return max(1, len(graph.branches) // 2)


def _projection(param: str) -> str:
    """q, k, qkv (fused) or other, from a parameter's dotted name."""
    owner, _, local = param.rpartition(".")
    if local == "in_proj_weight":
        return "qkv"
    layer = owner.rpartition(".")[2].lower()
    if layer in _Q:
        return "q"
    if layer in _K:
        return "k"
    if layer in FUSED_QKV_NAMES:
        return "qkv"
    return "other"


def _in_branch(param: str, info: Any, members: set[str]) -> bool:
    if info is None:
        return False
    return info.name in members or (info.parent is not None and info.parent in members)


def _gained(scheme: str, shape: tuple[int, ...], kind: str, gain: float, info: Any, reason: str) -> Decision:
    """Xavier (``scheme``) with ``gain`` on v/out/MLP weights, gain 1 on q and k (per block when fused)."""
    if kind in ("q", "k"):
        return Decision(scheme, {"gain": 1.0}, reason + f": {kind} projection keeps gain 1", "attention_in")
    if kind == "qkv" and not getattr(info, "transposed", False) and shape[0] % 3 == 0:
        d = shape[0] // 3
        block = RowBlock(2 * d, 3 * d, scheme, {"gain": gain}, "value rows")
        return Decision(
            scheme, {"gain": 1.0}, reason + f": q, k gain 1, v rows gain {_g(gain)}", "attention_in", 3, (block,)
        )
    return Decision(scheme, {"gain": gain}, reason + f": gain {_g(gain)}", "hidden")


def fixup(entries: list[Entry], graph: ModelGraph, model: nn.Module) -> list[Entry]:
    _need_branches("fixup", graph)
    norms = _norm_layers(graph)
    if norms:
        raise UserError(
            f"policy 'fixup' is for residual networks without normalization (Zhang et al. 2019); this model has "
            f"{len(norms)} normalization layer(s) (e.g. '{norms[0]}'); allowed: a normalization-free model, or policy 'auto'"
        )
    out = []
    for name, shape, info, d in entries:
        if info is not None and info.output and info.kind in ("linear", "conv"):
            d = Decision("zeros", {}, "classification layer: zeros (Fixup, Zhang et al. 2019)", "output")
        out.append((name, shape, info, d))
    return out


def t_fixup(entries: list[Entry], graph: ModelGraph, model: nn.Module) -> list[Entry]:
    _need_branches("t-fixup", graph)
    if not _is_attention_model(model, graph):
        raise UserError(
            "policy 't-fixup' is for transformers (Huang et al. 2020); this model has no attention layer; allowed: 'fixup' or 'auto'"
        )
    norms = _norm_layers(graph)
    if norms:
        raise UserError(
            f"policy 't-fixup' is for transformers without layer normalization (Huang et al. 2020); this model has "
            f"{len(norms)} normalization layer(s) (e.g. '{norms[0]}'); allowed: a model without them, 'deepnorm' for post-LN, or 'auto'"
        )
    n = _blocks(graph)
    decoder = _is_decoder(model)
    factor = (9 * n) ** -0.25 if decoder else 0.67 * n**-0.25
    where = f"T-Fixup, Huang et al. 2020; {'decoder (9N)^(-1/4)' if decoder else 'encoder 0.67 N^(-1/4)'}, N = {n}"
    members = set(branch_positions(graph))
    out = []
    for name, shape, info, d in entries:
        local = name.rpartition(".")[2]
        if info is not None and info.kind == "embedding" and local == "weight":
            std = shape[1] ** -0.5 * factor
            d = Decision(
                "normal",
                {"mean": 0.0, "std": std},
                f"input embedding: N(0, d^(-1/2)) x {_g(factor)}, std {_g(std)} ({where})",
                "embedding",
            )
        elif _in_branch(name, info, members) and len(shape) >= 2 and "weight" in local:
            d = _gained(
                "xavier_uniform",
                shape,
                _projection(name),
                factor,
                info,
                f"Xavier uniform in a residual branch ({where})",
            )
        out.append((name, shape, info, d))
    return out


def deepnorm(entries: list[Entry], graph: ModelGraph, model: nn.Module) -> list[Entry]:
    _need_branches("deepnorm", graph)
    post = [b for b in graph.branches if b.post_norm]
    if not post:
        raise UserError(
            "policy 'deepnorm' is for post-LN transformers (the sum x + f(x) normalized, Wang et al. 2022); "
            f"none of this model's {len(graph.branches)} residual sums is followed by a normalization that feeds "
            "the next block (pre-LN or no norm); allowed: a post-LN model, or 'auto'"
        )
    n = _blocks(graph)
    beta = (8 * n) ** -0.25
    where = f"DeepNorm, Wang et al. 2022; beta = (8N)^(-1/4), N = {n}"
    members = set(branch_positions(graph))
    out = []
    for name, shape, info, d in entries:
        local = name.rpartition(".")[2]
        if _in_branch(name, info, members) and len(shape) >= 2 and "weight" in local:
            d = _gained(
                "xavier_normal", shape, _projection(name), beta, info, f"Xavier normal in a residual branch ({where})"
            )
        out.append((name, shape, info, d))
    return out


def deepnorm_note(graph: ModelGraph) -> str:
    n = _blocks(graph)
    return (
        f"deepnorm: the forward pass must also scale the skip path by alpha = (2N)^(1/4) = {(2 * n) ** 0.25:.4g} "
        "(x_{l+1} = LN(alpha x + f(x))); an initialization cannot do that"
    )


def apply_named(policy: str, entries: list[Entry], graph: ModelGraph, model: nn.Module) -> list[Entry]:
    """The entries of a named policy (``NAMED_POLICIES``), built on the auto entries."""
    table = {"fixup": fixup, "t-fixup": t_fixup, "deepnorm": deepnorm}
    return table[policy](entries, graph, model)
