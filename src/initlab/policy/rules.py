"""The auto policy's rules: small pure functions from a layer record to a decision.

Each rule returns a ``Decision`` (scheme, parameters, reason) and cites its source. ``decide``
picks the rule for one parameter; the order of checks there is the order of precedence:

1. a module with no rule keeps its values (its own ``reset_parameters`` already ran);
2. recurrent, attention, embedding and normalization parameters have their own rules;
3. biases are zero;
4. a weight layer: the last layer of a residual branch starts at zero, the output layer gets
   Xavier with gain 1, otherwise the activation that follows decides (He-style variance
   scaling for rectifiers and any activation with a moment gain, Xavier for saturating ones,
   orthogonal at the depth-critical gain for deep plain chains of a non-homogeneous
   activation, LeCun for SELU and for no activation).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from initlab.policy import critical
from initlab.policy.introspect import SCALED_KINDS, LayerInfo, ModelGraph
from initlab.policy.plans import KEEP, RowBlock
from initlab.schemes import gain as activation_gain

# Activations whose derivative stays near 1 on a half-line (or is non-saturating): He-style
# variance scaling with the activation's gain keeps the forward variance (He et al. 2015).
RECTIFIERS = ("relu", "leaky_relu", "relu6", "elu", "celu", "gelu", "silu", "mish", "softplus", "hardswish")
# Positively homogeneous (phi(cx) = c phi(x), c > 0): every variance is a fixed point at He's gain.
HOMOGENEOUS = ("relu", "leaky_relu", "relu6")
# Bounded activations: Glorot & Bengio's analysis is for these.
SATURATING = ("tanh", "sigmoid", "softsign", "hardtanh")
# A plain chain (no residual add, no normalization) with at least this many layers of one
# activation that is neither homogeneous nor SELU gets orthogonal weights at the
# depth-critical gain instead of He/Xavier (see ``deep_plain_rule``).
DEEP_PLAIN_MIN_DEPTH = 8


@dataclass(frozen=True)
class Decision:
    """A rule's output for one parameter (see ``PlanEntry`` for the fields)."""

    scheme: str
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    role: str = ""
    chunks: int = 1
    blocks: tuple[RowBlock, ...] = ()


@dataclass(frozen=True)
class RuleContext:
    """Model-level facts the rules need: is the net a plain chain, and how deep per activation.

    ``looks_linear``: the weight layers of a plain ReLU chain deeper than He's predicted
    trainable depth, name -> position (first / hidden / last), see ``looks_linear_rule``.
    """

    plain: bool
    depth: dict[str, int]
    method: str
    looks_linear: dict[str, str] = field(default_factory=dict)


def context(graph: ModelGraph) -> RuleContext:
    """``plain``: traced by fx, no residual add, no normalization, recurrent or attention layer."""
    kinds = {info.kind for info in graph.layers.values()}
    plain = graph.method == "fx" and graph.residual_adds == 0 and not kinds & {"norm", "rnn", "attention"}
    depth: dict[str, int] = {}
    for info in graph.layers.values():
        if info.kind in SCALED_KINDS and info.activation:
            depth[info.activation] = depth.get(info.activation, 0) + 1
    return RuleContext(plain=plain, depth=depth, method=graph.method,
                       looks_linear=looks_linear_chain(graph) if plain else {})


def _g(value: float) -> str:
    return f"{value:.4g}"


def _after(info: LayerInfo) -> str:
    return f"followed by {info.via}" if info.via else "activation unknown"


# --- weight layers ------------------------------------------------------------------------------

def he_rule(info: LayerInfo) -> Decision:
    """ReLU family and any non-saturating activation: He variance scaling with the activation's gain.

    .. math:: W \\sim \\mathcal{N}(0, g^2/\\text{fan\\_in}), \\quad g = \\texttt{initlab.gain}(\\phi)

    g = sqrt(2) for ReLU, sqrt(2/(1+a^2)) for leaky ReLU, 1/sqrt(E[phi(z)^2]) computed numerically
    for GELU, SiLU, Mish, ELU, ... so unit pre-activation variance is a fixed point.
    Source: He, Zhang, Ren & Sun (2015), Delving deep into rectifiers, eq. 10.
    Transposed convolutions store (in, out, *k), so their forward fan is torch's ``fan_out``.
    """
    act, param = info.activation or "relu", info.activation_param
    mode = "fan_out" if info.kind == "conv_transpose" else "fan_in"
    g = activation_gain(act, param)
    reason = f"{_after(info)}: He normal, gain {_g(g)} for {act} (He et al. 2015)"
    if act == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return Decision("he_normal", {"a": slope, "mode": mode, "nonlinearity": "leaky_relu"}, reason, "hidden")
    if param is not None and act in ("elu", "celu") and param != 1.0:
        # he_normal's gain takes no ELU alpha; the same variance, spelled out.
        return Decision("variance_scaling", {"scale": g * g, "mode": mode, "distribution": "normal"}, reason, "hidden")
    return Decision("he_normal", {"mode": mode, "nonlinearity": act}, reason, "hidden")


def xavier_rule(info: LayerInfo) -> Decision:
    """Saturating activations (tanh, sigmoid, softsign, hardtanh): Xavier uniform with the activation's gain.

    .. math:: W \\sim \\mathcal{U}(\\pm g\\sqrt{6/(\\text{fan\\_in}+\\text{fan\\_out})})

    g = 5/3 for tanh, 1 for sigmoid (torch.nn.init.calculate_gain). Source: Glorot & Bengio (2010),
    Understanding the difficulty of training deep feedforward neural networks, eq. 16.
    """
    act = info.activation or "tanh"
    g = activation_gain(act, info.activation_param)
    reason = f"{_after(info)}: Xavier uniform, gain {_g(g)} for {act} (Glorot & Bengio 2010)"
    return Decision("xavier_uniform", {"gain": g}, reason, "hidden")


@lru_cache(maxsize=64)
def depth_critical_gain(
    activation: str, param: float | None = None, depth: int = 10, input_variance: float = 1.0,
    bias_variance: float = 0.0,
) -> float | None:
    """The weight scale sigma at which the mean-field gradient gain over ``depth`` layers is 1.

    With pre-activation variance q_1 = sigma^2 * input_variance + sigma_b^2 and, layer to layer
    (fan-in-scaled weights of variance sigma^2/fan_in, biases of variance sigma_b^2, zero in the
    auto policy),

    .. math::
        q_{l+1} = \\sigma^2\\,\\mathbb{E}[\\phi(\\sqrt{q_l} z)^2] + \\sigma_b^2, \\qquad
        \\chi_l = \\sigma^2\\,\\mathbb{E}[\\phi'(\\sqrt{q_l} z)^2], \\qquad z \\sim \\mathcal{N}(0, 1),

    the variance of the gradient at layer 1 over that at layer ``depth`` is prod_{l<depth} chi_l.
    This returns the sigma where that product is 1 (searched in [0.25, 8]; expectations by
    Gauss-Hermite quadrature, tabulated once per activation, see ``initlab.policy.critical``),
    or None when there is none. For a saturating activation with zero biases there is no
    finite-depth fixed point with chi = 1 except q -> 0 (sigma = 1); this is the finite-depth
    edge of chaos. Cached per (activation, param, depth, input variance, bias variance), so a
    10,000-layer plan computes it once. Sources: Poole et al. (2016); Schoenholz et al. (2017),
    Deep information propagation; Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid.
    """
    return critical.depth_critical_gain(activation, param, depth, input_variance, bias_variance)


def deep_plain_rule(info: LayerInfo, depth: int, shape: tuple[int, ...]) -> Decision | None:
    """Deep plain chain of one non-homogeneous activation: orthogonal weights at the depth-critical gain.

    For tanh, sigmoid, GELU, SiLU, ELU, ... the variance map q -> sigma^2 E[phi(sqrt(q) z)^2] has
    no fixed point that is both stable and useful: tanh's contracts to small q at Xavier's gain
    while its gradient grows (chaotic phase), and GELU's fixed point at the moment gain is
    unstable (slope 1.14 at q = 1), so over many layers the scale drifts whatever sigma is.
    What one sigma can keep is the gradient: sigma = ``depth_critical_gain(phi, depth)`` makes
    the mean-field gradient variance equal at the first and the last layer. Orthogonal matrices
    keep every singular value of each layer at sigma (dynamical isometry) instead of spreading
    them as Gaussian matrices do, which also damps the finite-width fluctuations of the scale.
    For an expanding layer (out > in) the gain is multiplied by sqrt(out/in) so each unit's
    pre-activation variance is still sigma^2 Var[x].
    Sources: Saxe, McClelland & Ganguli (2014); Schoenholz et al. (2017); Pennington,
    Schoenholz & Ganguli (2017, 2018).
    """
    act = info.activation or "tanh"
    sigma = depth_critical_gain(act, info.activation_param, depth)
    if sigma is None:
        return None
    rows, cols = shape[0], math.prod(shape[1:])
    g = sigma * math.sqrt(max(1.0, rows / cols))
    reason = (
        f"{_after(info)}, in a plain chain of {depth} {act} layers: orthogonal at the depth-critical "
        f"gain {_g(sigma)} (gradient variance kept over {depth} layers; Saxe et al. 2014, Pennington et al. 2017)"
    )
    if g != sigma:
        reason += ", x sqrt(out/in) for this expanding layer"
    return Decision("orthogonal", {"gain": g}, reason, "hidden")


# Hanin & Rolnick (2018): with He's init the log of a ReLU net's squared activation length has
# variance ~ 5 * sum_l 1/n_l; the chain is predicted trainable while that stays below 1.
HANIN_ROLNICK_BETA = 5.0


def he_trainable_depth(width: int) -> float:
    """He's predicted trainable depth of a plain ReLU chain of ``width`` units: 5 * depth / width = 1.

    Source: Hanin & Rolnick (2018), How to start training: the effect of initialization and
    architecture (failure mode 2: the fluctuations of the activation length grow as
    exp(5 sum_l 1/n_l) at He's init, so depth must stay well below width / 5).
    """
    return width / HANIN_ROLNICK_BETA


def looks_linear_chain(graph: ModelGraph) -> dict[str, str]:
    """Positions for ``looks_linear_rule`` when ``graph`` is a plain chain of ReLU Linear layers
    (every layer but the output followed by ReLU, even widths) with 5 * sum_l 1/n_l > 1; else {}."""
    layers = [info for info in graph.weight_layers() if info.kind in SCALED_KINDS and info.parent is None]
    # Linear layers only: a reshape between conv and linear layers would have to keep the mirrored halves apart.
    if len(layers) < DEEP_PLAIN_MIN_DEPTH or not layers[-1].output or any(i.kind != "linear" for i in layers):
        return {}
    hidden = layers[:-1]
    if any(info.activation != "relu" for info in hidden):
        return {}
    widths = [int(info.module.weight.shape[0]) for info in hidden]
    if any(w % 2 for w in widths) or HANIN_ROLNICK_BETA * sum(1.0 / w for w in widths) <= 1.0:
        return {}
    positions = {info.name: "hidden" for info in hidden}
    positions[hidden[0].name] = "first"
    positions[layers[-1].name] = "last"
    return positions


def looks_linear_rule(info: LayerInfo, position: str, ctx: RuleContext) -> Decision:
    """Plain ReLU chain deeper than He's predicted trainable depth: looks-linear mirrored orthogonal blocks.

    .. math::
        W_\\text{first} = [Q; -Q], \\quad W_\\text{hidden} = [[Q, -Q], [-Q, Q]], \\quad W_\\text{last} = [Q, -Q]

    so the chain computes a linear map at init (relu(u) - relu(-u) = u) whose Jacobian has every
    singular value 1 at any depth, where He's Gaussian weights leave the activation length
    fluctuating as exp(5 sum 1/n_l) (Hanin & Rolnick 2018) and orthogonal ReLU nets have no
    dynamical isometry (Pennington et al. 2017). Sources: Balduzzi et al. (2017), The shattered
    gradients problem; Burkholz & Dubatovka (2019). Measured in ``initlab study depth-frontier``.
    """
    depth = ctx.depth.get("relu", 0)
    role = "output" if position == "last" else "hidden"
    reason = (
        f"{_after(info) if position != 'last' else 'output layer'}, in a plain chain of {depth} ReLU layers, deeper "
        f"than He's predicted trainable depth (5 sum 1/width > 1, Hanin & Rolnick 2018): looks-linear "
        f"({position} block), the chain starts as a linear map (Balduzzi et al. 2017)"
    )
    return Decision("looks_linear", {"gain": 1.0, "position": position}, reason, role)


def selu_rule(info: LayerInfo) -> Decision:
    """SELU: LeCun normal, Var = 1/fan_in, the init self-normalizing networks assume.

    Source: Klambauer, Unterthiner, Mayr & Hochreiter (2017), Self-normalizing neural networks
    (the fixed point mean 0, variance 1 needs sum of w = 0 and sum of w^2 = 1 per unit).
    """
    reason = f"{_after(info)}: LeCun normal, Var = 1/fan_in, the init SELU's fixed point assumes (Klambauer et al. 2017)"
    if info.kind == "conv_transpose":
        return Decision("variance_scaling", {"scale": 1.0, "mode": "fan_out", "distribution": "truncated_normal"}, reason, "hidden")
    return Decision("lecun_normal", {}, reason, "hidden")


def linear_rule(info: LayerInfo) -> Decision:
    """No activation after the layer (another layer, or an operation that is not an activation):
    gain 1, LeCun normal, Var = 1/fan_in, which keeps the variance of a linear map.

    Source: LeCun, Bottou, Orr & Mueller (1998), Efficient BackProp, section 4.6.
    """
    reason = f"{_after(info)}: no activation, LeCun normal (gain 1, LeCun et al. 1998)"
    if info.kind == "conv_transpose":
        return Decision("variance_scaling", {"scale": 1.0, "mode": "fan_out", "distribution": "truncated_normal"}, reason, "hidden")
    return Decision("lecun_normal", {}, reason, "hidden")


def output_rule(info: LayerInfo) -> Decision:
    """The output layer (its output is the model's, no activation): Xavier uniform, gain 1.

    A documented choice: the logits are a linear map, and fan_avg balances the forward signal
    with the gradient that enters from the loss (Glorot & Bengio 2010, eq. 12-16). With few
    outputs (classes) the variance is near 2/fan_in, so the initial logits are O(1).
    """
    reason = "output layer (feeds the model output, no activation): Xavier uniform, gain 1 (Glorot & Bengio 2010)"
    return Decision("xavier_uniform", {"gain": 1.0}, reason, "output")


def residual_last_rule(info: LayerInfo) -> Decision:
    """Last layer of a residual branch: zeros, so every residual block starts as the identity.

    The branch still learns (this layer's gradient is not zero), and the signal's variance does
    not grow with the number of blocks. Sources: Zhang, Dauphin & Ma (2019), Fixup
    initialization; De & Smith (2020), SkipInit; Goyal et al. (2017) for the BatchNorm variant.
    """
    reason = (
        "last layer of a residual branch (added to the block input): zeros, the block starts as "
        "the identity (Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020)"
    )
    return Decision("zeros", {}, reason, "residual_last")


def weight_layer_rule(info: LayerInfo, shape: tuple[int, ...], ctx: RuleContext) -> Decision:
    """Dispatch for the weight of a Linear/Conv/ConvTranspose layer (precedence in the module doc)."""
    if info.residual_last:
        return residual_last_rule(info)
    if info.name in ctx.looks_linear:
        return looks_linear_rule(info, ctx.looks_linear[info.name], ctx)
    if info.output:
        return output_rule(info)
    act = info.activation
    decision: Decision | None = None
    if act is None or act == "linear":
        decision = linear_rule(info)
    elif act == "selu":
        decision = selu_rule(info)
    else:
        depth = ctx.depth.get(act, 0)
        if ctx.plain and depth >= DEEP_PLAIN_MIN_DEPTH and act not in HOMOGENEOUS:
            decision = deep_plain_rule(info, depth, shape)
        if decision is None:
            decision = xavier_rule(info) if act in SATURATING else he_rule(info)
    if info.residual_norm:
        decision = Decision(
            decision.scheme, decision.params,
            decision.reason + f"; its residual branch ends in '{info.residual_norm}', which starts at zero",
            decision.role,
        )
    return decision


# --- other kinds -------------------------------------------------------------------------------

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
                "zeros", {},
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
    hidden = int(module.hidden_size)
    if kind == "bias":
        if is_lstm and which == "ih":
            block = RowBlock(hidden, 2 * hidden, "constant", {"val": 1.0}, "LSTM forget gate")
            return Decision(
                "zeros", {}, "LSTM input bias: zeros, forget-gate rows = 1 (Jozefowicz et al. 2015)",
                "forget_gate_bias", 1, (block,),
            )
        return Decision("zeros", {}, "recurrent bias: zeros", "bias")
    if which == "hh":
        return Decision(
            "orthogonal", {"gain": 1.0},
            f"hidden-to-hidden: orthogonal per gate ({gates} blocks), keeps the state's norm through time (Saxe et al. 2014)",
            "hidden_to_hidden", gates,
        )
    if which == "hr":
        return Decision("xavier_uniform", {"gain": 1.0}, "LSTM projection: Xavier uniform (Glorot & Bengio 2010)", "projection")
    return Decision(
        "xavier_uniform", {"gain": 1.0},
        f"input-to-hidden: Xavier uniform per gate ({gates} blocks) (Glorot & Bengio 2010)",
        "input_to_hidden", gates,
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
            return Decision("zeros", {}, "attention output projection ending a residual branch: zeros (Fixup / SkipInit)", "residual_last")
        return Decision("xavier_uniform", {"gain": 1.0}, "attention output projection: Xavier uniform (Vaswani et al. 2017)", "attention_out")
    if local == "in_proj_weight":
        return Decision("xavier_uniform", {"gain": 1.0}, "attention q/k/v projections: Xavier uniform per projection (3 blocks) (Vaswani et al. 2017)", "attention_in", 3)
    if local in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        return Decision("xavier_uniform", {"gain": 1.0}, f"attention {local[0]} projection: Xavier uniform (Vaswani et al. 2017)", "attention_in")
    if local in ("bias_k", "bias_v"):
        return Decision("xavier_normal", {"gain": 1.0}, f"attention {local}: Xavier normal (as torch.nn.MultiheadAttention)", "attention_bias")
    if local == "in_proj_bias":
        return bias_rule(info)
    return None


def embedding_rule(info: LayerInfo, shape: tuple[int, ...]) -> Decision:
    """Embeddings: N(0, 1), so each looked-up vector has unit-variance coordinates, like a
    standardized input, and the next layer's fan-in rule sees the variance it assumes; the
    padding row (``padding_idx``) is zero. Source: PyTorch's nn.Embedding default (also
    Vaswani et al. 2017, who then scale by sqrt(d_model) only when weights are tied)."""
    blocks: tuple[RowBlock, ...] = ()
    padding = getattr(info.module, "padding_idx", None)
    if padding is not None:
        row = int(padding) % shape[0]
        blocks = (RowBlock(row, row + 1, "zeros", {}, "padding_idx"),)
    reason = "embedding: N(0, 1), unit-variance features (PyTorch's nn.Embedding default)"
    if blocks:
        reason += f", padding row {blocks[0].start} zero"
    return Decision("normal", {"mean": 0.0, "std": 1.0}, reason, "embedding", 1, blocks)


def keep_rule(info: LayerInfo | None, local: str) -> Decision:
    """No rule: the parameter keeps the values it has (its module's own ``reset_parameters``,
    which ran at construction, when there is one)."""
    if info is not None and info.has_reset_parameters:
        why = f"{info.type_name} has its own reset_parameters and no initlab rule: kept as constructed"
    elif info is not None:
        why = f"no initlab rule for parameter '{local}' of {info.type_name}: kept as is"
    else:
        why = "no initlab rule: kept as is"
    return Decision(KEEP, {}, why, "keep")


def decide(info: LayerInfo | None, local: str, shape: tuple[int, ...], ctx: RuleContext) -> Decision:
    """The auto policy's decision for parameter ``local`` (e.g. ``weight``) of the module ``info``."""
    if info is None:
        return keep_rule(None, local)
    kind = info.kind
    decision: Decision | None = None
    if kind == "rnn":
        decision = recurrent_rule(info, local, shape)
    elif kind == "attention":
        decision = attention_rule(info, local, shape)
    elif kind == "embedding" and local == "weight":
        decision = embedding_rule(info, shape)
    elif kind == "norm" and local in ("weight", "bias"):
        decision = norm_rule(info, local)
    elif kind in SCALED_KINDS:
        if local == "bias":
            decision = bias_rule(info)
        elif local == "weight":
            decision = weight_layer_rule(info, shape, ctx)
    return decision or keep_rule(info, local)
