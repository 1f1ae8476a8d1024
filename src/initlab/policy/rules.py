"""The auto policy's rules: small pure functions from a layer record to a decision.

Each rule returns a ``Decision`` (scheme, parameters, reason) and cites its source. ``decide``
picks the rule for one parameter; the order of checks there is the order of precedence:

1. a module with no rule keeps its values (its own ``reset_parameters`` already ran);
2. recurrent, attention, embedding, normalization and free parameters (tokens, layer scale,
   scalar gates) have their own rules (``initlab.policy.kind_rules``);
3. biases are zero;
4. a weight layer: the last layer of a residual branch starts at zero, the output layer gets
   Xavier with gain 1, otherwise the activation that follows decides (He-style variance
   scaling for rectifiers and any activation with a moment gain, Xavier for saturating ones,
   orthogonal at the depth-critical gain for deep plain chains of a non-homogeneous
   activation, LeCun for SELU and for no activation).
"""

from __future__ import annotations

import math

from initlab.layers import HOMOGENEOUS, SATURATING, SCALED_KINDS, weight_fans
from initlab.policy.critical import depth_critical_gain
from initlab.policy.decisions import Decision, RuleContext, _after, _g, context
from initlab.policy.kind_rules import (
    attention_rule,
    bias_rule,
    embedding_rule,
    free_parameter_rule,
    fused_qkv_rule,
    norm_rule,
    recurrent_rule,
)
from initlab.policy.plans import KEEP
from initlab.policy.records import LayerInfo
from initlab.policy.residual import (
    fan_in_mode,
    fixup_factor,
    fixup_text,
    grouped_fans,
    scale_variance,
)
from initlab.schemes import compute_fans
from initlab.schemes import gain as activation_gain

__all__ = ["DEEP_PLAIN_MIN_DEPTH", "Decision", "RuleContext", "context", "decide", "depth_critical_gain"]

# A plain chain (no residual add, no normalization) with at least this many layers of one
# activation that is neither homogeneous nor SELU gets orthogonal weights at the
# depth-critical gain instead of He/Xavier (see ``deep_plain_rule``).
from initlab.policy.deep_relu import DEEP_PLAIN_MIN_DEPTH  # noqa: E402  (re-exported)


def he_rule(info: LayerInfo) -> Decision:
    """ReLU family and any non-saturating activation: He variance scaling with the activation's gain.

    .. math:: W \\sim \\mathcal{N}(0, g^2/\\text{fan\\_in}), \\quad g = \\texttt{initlab.gain}(\\phi)

    g = sqrt(2) for ReLU, sqrt(2/(1+a^2)) for leaky ReLU, 1/sqrt(E[phi(z)^2]) computed numerically
    for GELU, SiLU, Mish, ELU, ... so unit pre-activation variance is a fixed point.
    Source: He, Zhang, Ren & Sun (2015), Delving deep into rectifiers, eq. 10.
    Transposed convolutions store (in, out, *k) and ``transformers``' Conv1D (in, out), so their
    forward fan is torch's ``fan_out``.
    """
    act, param = info.activation or "relu", info.activation_param
    mode = fan_in_mode(info)
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
    if info.transposed:
        rows, cols = cols, rows
    g = sigma * math.sqrt(max(1.0, rows / cols))
    reason = (
        f"{_after(info)}, in a plain chain of {depth} {act} layers: orthogonal at the depth-critical "
        f"gain {_g(sigma)} (gradient variance kept over {depth} layers; Saxe et al. 2014, Pennington et al. 2017)"
    )
    if g != sigma:
        reason += ", x sqrt(out/in) for this expanding layer"
    return Decision("orthogonal", {"gain": g}, reason, "hidden")


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
    reason = (
        f"{_after(info)}: LeCun normal, Var = 1/fan_in, the init SELU's fixed point assumes (Klambauer et al. 2017)"
    )
    if fan_in_mode(info) == "fan_out":
        return Decision(
            "variance_scaling", {"scale": 1.0, "mode": "fan_out", "distribution": "truncated_normal"}, reason, "hidden"
        )
    return Decision("lecun_normal", {}, reason, "hidden")


def linear_rule(info: LayerInfo) -> Decision:
    """No activation after the layer (another layer, or an operation that is not an activation):
    gain 1, LeCun normal, Var = 1/fan_in, which keeps the variance of a linear map.

    Source: LeCun, Bottou, Orr & Mueller (1998), Efficient BackProp, section 4.6.
    """
    reason = f"{_after(info)}: no activation, LeCun normal (gain 1, LeCun et al. 1998)"
    if fan_in_mode(info) == "fan_out":
        return Decision(
            "variance_scaling", {"scale": 1.0, "mode": "fan_out", "distribution": "truncated_normal"}, reason, "hidden"
        )
    return Decision("lecun_normal", {}, reason, "hidden")


def output_rule(info: LayerInfo) -> Decision:
    """The output layer (its output is the model's, no activation): Xavier uniform, gain 1.

    A documented choice: the logits are a linear map, and fan_avg balances the forward signal
    with the gradient that enters from the loss (Glorot & Bengio 2010, eq. 12-16). With few
    outputs (classes) the variance is near 2/fan_in, so the initial logits are O(1).
    """
    reason = "output layer (feeds the model output, no activation): Xavier uniform, gain 1 (Glorot & Bengio 2010)"
    return Decision("xavier_uniform", {"gain": 1.0}, reason, "output")


def residual_last_rule(info: LayerInfo, ctx: RuleContext | None = None) -> Decision:
    """Last layer of a residual branch: zeros, so every residual block starts as the identity.

    The branch still learns (this layer's gradient is not zero), and the signal's variance does
    not grow with the number of blocks. Sources: Zhang, Dauphin & Ma (2019), Fixup
    initialization; De & Smith (2020), SkipInit; Goyal et al. (2017) for the BatchNorm variant.

    Two cases keep the end non-zero, at 1/L of the no-activation rule's variance (L residual
    branches; GPT-2's 1/sqrt(2 n_layer) scaling of residual projections, Radford et al. 2019):
    the ``auto+gpt2`` policy, and a model with a learned class token read by the head (ViT):
    with every block the identity, that token's output would not depend on the input, and the
    patch embedding and attention would get exactly zero gradient on the first step.
    """
    if ctx is not None and (ctx.scaled_ends or ctx.class_token):
        base = linear_rule(info)
        n = max(1, ctx.branches)
        scheme, params = scale_variance(base.scheme, base.params, 1.0 / n) or (base.scheme, base.params)
        why = (
            f"the class token '{ctx.class_token}' would make the output independent of the input if every block "
            "started as the identity"
            if ctx.class_token and not ctx.scaled_ends
            else "auto+gpt2"
        )
        reason = (
            f"last layer of a residual branch: LeCun normal x 1/sqrt(L), L = {n} branches, not zeros ({why}; "
            "GPT-2's residual scaling, Radford et al. 2019)"
        )
        return Decision(scheme, params, reason, "residual_last")
    reason = (
        "last layer of a residual branch (added to the block input): zeros, the block starts as "
        "the identity (Fixup, Zhang et al. 2019; SkipInit, De & Smith 2020)"
    )
    return Decision("zeros", {}, reason, "residual_last")


def _fixup_scaled(decision: Decision, info: LayerInfo, ctx: RuleContext) -> Decision:
    """Fixup's depth scaling of a branch-internal layer in a normalization-free residual net."""
    where = ctx.branch_of.get(info.name)
    if not ctx.norm_free or where is None or ctx.branches < 1:
        return decision
    m, position = where
    if m < 2 or position >= m - 1:
        return decision
    scaled = scale_variance(decision.scheme, decision.params, fixup_factor(ctx.branches, m))
    if scaled is None:
        return decision
    return Decision(
        scaled[0],
        scaled[1],
        decision.reason + "; " + fixup_text(ctx.branches, m),
        decision.role,
        decision.chunks,
        decision.blocks,
    )


def weight_layer_rule(info: LayerInfo, shape: tuple[int, ...], ctx: RuleContext) -> Decision:
    """Dispatch for the weight of a Linear/Conv/ConvTranspose layer (precedence in the module doc)."""
    if info.residual_last:
        return residual_last_rule(info, ctx)
    if info.name in ctx.looks_linear:
        return looks_linear_rule(info, ctx.looks_linear[info.name], ctx)
    if info.output:
        return output_rule(info)
    act = info.activation
    decision: Decision | None = fused_qkv_rule(info, shape)
    if decision is not None:
        pass
    elif act is None or act == "linear":
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
            decision.scheme,
            decision.params,
            decision.reason + f"; its residual branch ends in '{info.residual_norm}', which starts at zero",
            decision.role,
            decision.chunks,
            decision.blocks,
        )
    return _fixup_scaled(_grouped(decision, info, shape), info, ctx)


def _grouped(decision: Decision, info: LayerInfo, shape: tuple[int, ...]) -> Decision:
    """Grouped and depthwise convolutions: the variance from the true fans (``layers.weight_fans``),
    where torch's fan_out (or a transposed layer's forward fan) counts every channel."""
    groups = int(getattr(info.module, "groups", 1) or 1)
    true_fans = weight_fans(info.module)
    if groups == 1 or true_fans is None or len(shape) < 3:
        return decision
    # in the slots torch reads: a transposed conv's "fan_out" is its forward fan-in
    slots = (true_fans[1], true_fans[0]) if info.kind == "conv_transpose" else true_fans
    fixed = grouped_fans(decision.scheme, decision.params, compute_fans(shape), slots)
    if fixed is None:
        return decision
    reason = (
        decision.reason
        + f"; fans of a {groups}-group conv: fan_in {true_fans[0]}, fan_out {true_fans[1]} (torch's fan_out ignores groups)"
    )
    return Decision(fixed[0], fixed[1], reason, decision.role, decision.chunks, decision.blocks)


# --- other kinds -------------------------------------------------------------------------------


# --- dispatch ----------------------------------------------------------------------------------


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
        decision = embedding_rule(info, shape, ctx)
    elif kind == "norm" and local in ("weight", "bias"):
        decision = norm_rule(info, local)
    elif kind in SCALED_KINDS:
        if local == "bias":
            decision = bias_rule(info)
        elif local == "weight":
            decision = weight_layer_rule(info, shape, ctx)
    elif kind in ("scale", "container", "other"):
        decision = free_parameter_rule(info, local, shape)
    return decision or keep_rule(info, local)
