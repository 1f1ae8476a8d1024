"""Rules for the parameters that are not a Linear/Conv weight: biases, normalization,
recurrent and attention units, embeddings (tied or not), fused q/k/v projections, and the
parameters a block owns directly (tokens, position tables, layer scale, scalar gates).
Each returns a ``Decision`` and cites its source."""

from __future__ import annotations

import math
import re
from typing import cast

import torch

from initlab.policy.decisions import Decision, RuleContext, _g
from initlab.policy.plans import RowBlock
from initlab.policy.records import LayerInfo


def bias_rule(info: LayerInfo) -> Decision:
    """Biases start at zero: the weights already break the symmetry between units, and a zero
    bias leaves the signal's mean alone. Source: Goodfellow, Bengio & Courville (2016), Deep
    Learning, section 8.4 (the article's "biases" misconception)."""
    return Decision("zeros", {}, "bias: zeros (the weights break symmetry; Goodfellow et al. 2016, 8.4)", "bias")


def norm_rule(info: LayerInfo, local: str) -> Decision:
    """Normalization layers: scale 1, shift 0, so they start as the plain normalization.

    When the norm ends a residual branch its scale starts at 0 instead, so the block starts as
    the identity. Sources: Ioffe & Szegedy (2015); Goyal et al. (2017), Accurate, large
    minibatch SGD, section 5.1 (zero-init the last BN gamma of each residual block).
    """
    if local == "weight":
        if info.ends_residual_branch:
            return Decision(
                "zeros",
                {},
                "normalization scale ending a residual branch: zeros, the block starts as the identity (Goyal et al. 2017)",
                "residual_last",
            )
        return Decision("ones", {}, "normalization scale: ones (Ioffe & Szegedy 2015)", "norm_scale")
    return Decision("zeros", {}, "normalization shift: zeros (Ioffe & Szegedy 2015)", "norm_shift")


_RNN_PARAM = re.compile(r"^(weight|bias)_(ih|hh|hr)(_l\d+)?(_reverse)?$")


def recurrent_rule(info: LayerInfo, local: str, shape: tuple[int, ...]) -> Decision | None:
    """RNN/LSTM/GRU and their cells, per gate block of rows.

    - input-to-hidden ``weight_ih``: Xavier uniform per gate (Glorot & Bengio 2010);
    - hidden-to-hidden ``weight_hh``: orthogonal per gate, so repeated application through time
      neither shrinks nor grows the state (Saxe et al. 2014; Le, Jaitly & Hinton 2015);
    - LSTM projection ``weight_hr``: Xavier uniform;
    - biases zero, except the LSTM forget gate's input bias = 1 (rows H:2H of ``bias_ih``; torch
      adds ``bias_hh``, which stays 0), so the cell remembers by default
      (Gers, Schmidhuber & Cummins 2000; Jozefowicz, Zaremba & Sutskever 2015).

    Gate order is torch's: LSTM (i, f, g, o), GRU (r, z, n).
    """
    module = info.module
    m = _RNN_PARAM.match(local)
    if m is None:
        return None
    kind, which = m.group(1), m.group(2)
    mode = getattr(module, "mode", None) or type(module).__name__.replace("Cell", "").upper()
    is_lstm = "LSTM" in str(mode).upper()
    gates = 4 if is_lstm else 3 if "GRU" in str(mode).upper() else 1
    hidden = int(cast(int, module.hidden_size))
    if kind == "bias":
        if is_lstm and which == "ih":
            block = RowBlock(hidden, 2 * hidden, "constant", {"val": 1.0}, "LSTM forget gate")
            return Decision(
                "zeros",
                {},
                "LSTM input bias: zeros, forget-gate rows = 1 (Jozefowicz et al. 2015)",
                "forget_gate_bias",
                1,
                (block,),
            )
        return Decision("zeros", {}, "recurrent bias: zeros", "bias")
    if which == "hh":
        return Decision(
            "orthogonal",
            {"gain": 1.0},
            f"hidden-to-hidden: orthogonal per gate ({gates} blocks), keeps the state's norm through time (Saxe et al. 2014)",
            "hidden_to_hidden",
            gates,
        )
    if which == "hr":
        return Decision(
            "xavier_uniform", {"gain": 1.0}, "LSTM projection: Xavier uniform (Glorot & Bengio 2010)", "projection"
        )
    return Decision(
        "xavier_uniform",
        {"gain": 1.0},
        f"input-to-hidden: Xavier uniform per gate ({gates} blocks) (Glorot & Bengio 2010)",
        "input_to_hidden",
        gates,
    )


def attention_rule(info: LayerInfo, local: str, shape: tuple[int, ...]) -> Decision | None:
    """nn.MultiheadAttention: Xavier uniform for the q, k, v and output projections, biases zero.

    ``in_proj_weight`` stacks q, k and v (3E x E); each is drawn as its own E x E matrix (PyTorch's
    ``_reset_parameters`` draws the stack at once, which gives variance 1/(2E) instead of 1/E).
    ``bias_k``/``bias_v``: Xavier normal, as PyTorch does. When the attention ends a residual
    branch the output projection starts at zero (Fixup / SkipInit). Sources: Vaswani et al. (2017);
    torch.nn.MultiheadAttention._reset_parameters; Glorot & Bengio (2010).
    """
    is_out_proj = info.parent is not None and info.name != info.parent
    if is_out_proj:
        if local == "bias":
            return bias_rule(info)
        if info.residual_last:
            return Decision(
                "zeros",
                {},
                "attention output projection ending a residual branch: zeros (Fixup / SkipInit)",
                "residual_last",
            )
        return Decision(
            "xavier_uniform",
            {"gain": 1.0},
            "attention output projection: Xavier uniform (Vaswani et al. 2017)",
            "attention_out",
        )
    if local == "in_proj_weight":
        return Decision(
            "xavier_uniform",
            {"gain": 1.0},
            "attention q/k/v projections: Xavier uniform per projection (3 blocks) (Vaswani et al. 2017)",
            "attention_in",
            3,
        )
    if local in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        return Decision(
            "xavier_uniform",
            {"gain": 1.0},
            f"attention {local[0]} projection: Xavier uniform (Vaswani et al. 2017)",
            "attention_in",
        )
    if local in ("bias_k", "bias_v"):
        return Decision(
            "xavier_normal",
            {"gain": 1.0},
            f"attention {local}: Xavier normal (as torch.nn.MultiheadAttention)",
            "attention_bias",
        )
    if local == "in_proj_bias":
        return bias_rule(info)
    return None


def embedding_rule(info: LayerInfo, shape: tuple[int, ...], ctx: RuleContext | None = None) -> Decision:
    """Embeddings: N(0, 1), so each looked-up vector has unit-variance coordinates, like a
    standardized input, and the next layer's fan-in rule sees the variance it assumes; the
    padding row (``padding_idx``) is zero. Source: PyTorch's nn.Embedding default.

    When the model ties an embedding to its readout (the LM head shares the token embedding),
    the same matrix also maps a normalized state h (|h| = sqrt(d)) to logits: N(0, 1) gives
    logits of std sqrt(d) and an initial loss far above ln V. With std s, a generic logit has
    std s sqrt(d), and the logit of the input token itself, whose embedding is still in h when
    the residual branches start at zero, is about s d cos(h, e_x): only s = 1/d keeps both O(1)
    at any width (std 1/sqrt(d) would put that self-logit at sqrt(d)). Every embedding of that
    width gets the same scale, so token and position vectors stay comparable; the
    normalization that follows the embeddings removes the scale on the input side. Sources:
    Press & Wolf (2017), Using the output embedding to improve language models; the readout
    variance 1/d^2 of muP, Yang et al. (2021), Tensor Programs V.
    """
    blocks: tuple[RowBlock, ...] = ()
    padding = getattr(info.module, "padding_idx", None)
    if padding is not None:
        row = int(padding) % shape[0]
        blocks = (RowBlock(row, row + 1, "zeros", {}, "padding_idx"),)
    std = 1.0
    reason = "embedding: N(0, 1), unit-variance features (PyTorch's nn.Embedding default)"
    if ctx is not None and ctx.tied_width is not None and len(shape) == 2 and shape[1] == ctx.tied_width:
        std = 1.0 / shape[1]
        reason = (
            f"embedding of a model whose token embedding is tied to its readout: N(0, 1/d^2), std 1/{shape[1]}, "
            "so the tied logits, the input token's own included, are O(1) (Press & Wolf 2017; muP readout, Yang et al. 2021)"
        )
    if blocks:
        reason += f", padding row {blocks[0].start} zero"
    return Decision("normal", {"mean": 0.0, "std": std}, reason, "embedding", 1, blocks)


FUSED_QKV_NAMES = ("qkv", "c_attn", "query_key_value", "wqkv", "qkv_proj", "in_proj", "to_qkv")


def fused_qkv_rule(info: LayerInfo, shape: tuple[int, ...]) -> Decision | None:
    """A fused q/k/v projection (one Linear or Conv1D of d -> 3d, named like ``qkv``/``c_attn``):
    Xavier uniform per block, each of q, k, v with its own (d x d) fans, Var = 1/d, as for
    ``nn.MultiheadAttention``'s ``in_proj_weight`` (Xavier on the whole 3d x d stack would give
    Var = 1/(2d)). Rows split into 3 chunks for an (out, in) weight; for an (in, out) Conv1D
    the same variance is ``variance_scaling(scale=1, mode=fan_out, uniform)``.
    Sources: Vaswani et al. (2017); Glorot & Bengio (2010).
    """
    local = info.name.rpartition(".")[2].lower()
    if info.kind != "linear" or len(shape) != 2 or local not in FUSED_QKV_NAMES:
        return None
    out_dim, in_dim = (shape[1], shape[0]) if info.transposed else (shape[0], shape[1])
    if out_dim != 3 * in_dim:
        return None
    reason = f"fused q/k/v projection '{local}' ({in_dim} -> 3 x {in_dim}): Xavier uniform per block, Var = 1/{in_dim} (Vaswani et al. 2017)"
    if info.transposed:
        return Decision(
            "variance_scaling", {"scale": 1.0, "mode": "fan_out", "distribution": "uniform"}, reason, "attention_in"
        )
    return Decision("xavier_uniform", {"gain": 1.0}, reason, "attention_in", 3)


TOKEN_PATTERN = re.compile(r"^(cls|class|dist|reg|register|mask)_?tokens?$")
_POSITION = re.compile(r"^(pos|position|absolute_pos)_?(embed|embedding|embeddings|emb)$")
_SCALAR_ONES = re.compile(r"(scale|gain|multiplier|mult)\d*[a-z]?$")
_SCALAR_ZEROS = re.compile(r"(bias\d*[a-z]?|alpha|gate|resweight|rezero|skip_?gain)$")


def free_parameter_rule(info: LayerInfo, local: str, shape: tuple[int, ...]) -> Decision | None:
    """Parameters a block owns directly (not through a layer): learned tokens, position tables,
    layer-scale vectors and scalar multipliers, biases and gates.

    - class/register/mask tokens and position embeddings: N(0, 0.02^2), the ViT/BERT recipe
      (Dosovitskiy et al. 2021; Devlin et al. 2019; timm's trunc_normal_(std=.02));
    - a layer-scale vector whose values are all equal: that constant (Touvron et al. 2021, CaiT);
    - scalar multipliers (``scale``): 1; scalar biases, ReZero/SkipInit gates (``alpha``,
      ``gate``, ``resweight``): 0, the block starts as the identity (Zhang et al. 2019, Fixup;
      Bachlechner et al. 2020, ReZero; De & Smith 2020, SkipInit).
    """
    if info.kind == "scale":
        values = cast(torch.Tensor, info.module._parameters[local]).detach()
        if values.numel() and bool((values == values.reshape(-1)[0]).all()):
            val = float(values.reshape(-1)[0])
            return Decision(
                "constant",
                {"val": val},
                f"layer scale: constant {_g(val)}, its constructed value (Touvron et al. 2021)",
                "layer_scale",
            )
        return None
    key = local.lower()
    if TOKEN_PATTERN.match(key) or _POSITION.match(key):
        what = "learned token" if TOKEN_PATTERN.match(key) else "position embedding"
        return Decision(
            "normal",
            {"mean": 0.0, "std": 0.02},
            f"{what}: N(0, 0.02^2), the ViT/BERT recipe (Dosovitskiy et al. 2021)",
            "embedding",
        )
    if len(shape) == 1 and (key == "bias" or key.endswith("_bias")):
        return bias_rule(info)
    if math.prod(shape) == 1:
        if _SCALAR_ONES.search(key):
            return Decision("ones", {}, "scalar multiplier: 1 (Fixup, Zhang et al. 2019)", "scalar")
        if _SCALAR_ZEROS.search(key):
            return Decision(
                "zeros",
                {},
                "scalar bias or residual gate: 0, the block starts as the identity (Fixup; ReZero, Bachlechner et al. 2020)",
                "scalar",
            )
    return None
