"""The one ``variance_scaling`` core and the fan-scaled schemes built on it.

Xavier/Glorot, He/Kaiming and LeCun are one-line specialisations of ``variance_scaling``
(as in ``jax.nn.initializers`` and Keras): they differ only in the scale and the fan. Also here:
``uniform_fan`` (the article's "uniform"), ``torch_default`` and ``positive``. The draws are in
``schemes/draws.py``, the shared parameters in ``schemes/params.py``, the fixed-range schemes in
``schemes/elementwise.py``.
"""

from __future__ import annotations

import math

import torch

from initlab.schemes.draws import (
    TRUNCATED_NORMAL_STD,
    draw_normal,
    draw_trunc_normal,
    draw_uniform,
)
from initlab.schemes.fans import compute_fans, fan
from initlab.schemes.gains import gain as _gain
from initlab.schemes.params import (
    DISTRIBUTIONS,
    GAIN,
    HE_PARAMS,
    MODE,
    positive_number,
)
from initlab.schemes.registry import Param, Shape, register

# --- the core ---------------------------------------------------------------------------------


@register(
    "variance_scaling",
    params=(
        Param("scale", 1.0, positive_number, "a number > 0"),
        MODE,
        Param("distribution", "truncated_normal", lambda d: d in DISTRIBUTIONS, " | ".join(DISTRIBUTIONS), kind=str),
    ),
    formula="Var = scale / fan_mode; normal, truncated normal (±2σ) or uniform",
    reference="Keras/JAX VarianceScaling; Glorot & Bengio 2010; He et al. 2015; LeCun et al. 1998",
)
def variance_scaling(
    shape: Shape,
    generator: torch.Generator,
    dtype: torch.dtype,
    *,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
) -> torch.Tensor:
    """The variance-scaling core: weights with variance ``scale / fan``.

    .. math::
        n = \\begin{cases} \\text{fan\\_in} \\\\ \\text{fan\\_out} \\\\ (\\text{fan\\_in} + \\text{fan\\_out})/2 \\end{cases}
        \\qquad \\operatorname{Var}[W] = \\frac{\\text{scale}}{n}

    - ``normal``: :math:`\\mathcal{N}(0, \\text{scale}/n)`;
    - ``truncated_normal``: :math:`\\mathcal{N}(0, \\sigma^2)` truncated to :math:`\\pm 2\\sigma`
      with :math:`\\sigma = \\sqrt{\\text{scale}/n} / 0.8796` so the variance stays scale/n;
    - ``uniform``: :math:`\\mathcal{U}(-\\ell, \\ell)`, :math:`\\ell = \\sqrt{3\\,\\text{scale}/n}`.

    Source: ``keras.initializers.VarianceScaling`` / ``jax.nn.initializers.variance_scaling``.
    Xavier (scale=gain², fan_avg), He (scale=gain², fan_in) and LeCun (scale=1, fan_in) are
    specialisations.
    """
    variance = scale / fan(shape, mode)
    if distribution == "normal":
        return draw_normal(shape, generator, dtype, 0.0, math.sqrt(variance))
    if distribution == "truncated_normal":
        std = math.sqrt(variance) / TRUNCATED_NORMAL_STD
        return draw_trunc_normal(shape, generator, dtype, 0.0, std, -2 * std, 2 * std)
    limit = math.sqrt(3.0 * variance)
    return draw_uniform(shape, generator, dtype, -limit, limit)


# --- Glorot / He / LeCun: specialisations -----------------------------------------------------


@register(
    "xavier_uniform",
    params=(GAIN,),
    formula="U(±gain·sqrt(6/(fan_in+fan_out)))",
    reference="Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks",
    aliases=("xavier", "glorot", "glorot_uniform"),
    torch_equivalent="xavier_uniform_",
)
def xavier_uniform(shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, gain: float = 1.0) -> torch.Tensor:
    """Xavier/Glorot uniform: keeps forward and backward variance balanced for linear-ish units.

    .. math::
        W \\sim \\mathcal{U}(-\\ell, \\ell), \\quad
        \\ell = \\text{gain} \\cdot \\sqrt{\\frac{6}{\\text{fan\\_in} + \\text{fan\\_out}}}

    Source: Glorot & Bengio (2010). Also known as Glorot uniform; equals
    ``torch.nn.init.xavier_uniform_`` and ``variance_scaling(gain², "fan_avg", "uniform")``.
    """
    return variance_scaling(shape, generator, dtype, scale=gain**2, mode="fan_avg", distribution="uniform")


@register(
    "xavier_normal",
    params=(GAIN,),
    formula="N(0, gain²·2/(fan_in+fan_out))",
    reference="Glorot & Bengio 2010",
    aliases=("glorot_normal",),
    torch_equivalent="xavier_normal_",
)
def xavier_normal(shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, gain: float = 1.0) -> torch.Tensor:
    """Xavier/Glorot normal.

    .. math::
        W \\sim \\mathcal{N}\\left(0, \\text{gain}^2 \\frac{2}{\\text{fan\\_in} + \\text{fan\\_out}}\\right)

    Source: Glorot & Bengio (2010). Equals ``torch.nn.init.xavier_normal_``.
    """
    return variance_scaling(shape, generator, dtype, scale=gain**2, mode="fan_avg", distribution="normal")


def _he_scale(a: float, nonlinearity: str) -> float:
    return _gain(nonlinearity, a if nonlinearity == "leaky_relu" else None) ** 2


@register(
    "he_normal",
    params=HE_PARAMS,
    formula="N(0, gain²/fan_mode), gain from nonlinearity",
    reference="He et al. 2015, Delving deep into rectifiers",
    aliases=("he", "kaiming", "kaiming_normal"),
    torch_equivalent="kaiming_normal_",
)
def he_normal(
    shape: Shape,
    generator: torch.Generator,
    dtype: torch.dtype,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> torch.Tensor:
    """He/Kaiming normal: keeps the variance of ReLU-family signals constant with depth.

    .. math::
        W \\sim \\mathcal{N}\\left(0, \\frac{\\text{gain}^2}{\\text{fan\\_mode}}\\right), \\quad
        \\text{gain} = \\texttt{initlab.gain}(\\text{nonlinearity}, a)

    With the defaults (``leaky_relu``, a = 0) gain = sqrt(2). Any activation initlab knows is
    accepted (``gelu``, ``silu``, ...: numeric gain). Source: He et al. (2015). Equals
    ``torch.nn.init.kaiming_normal_`` for torch's nonlinearities.
    """
    return variance_scaling(shape, generator, dtype, scale=_he_scale(a, nonlinearity), mode=mode, distribution="normal")


@register(
    "he_uniform",
    params=HE_PARAMS,
    formula="U(±gain·sqrt(3/fan_mode))",
    reference="He et al. 2015",
    aliases=("kaiming_uniform",),
    torch_equivalent="kaiming_uniform_",
)
def he_uniform(
    shape: Shape,
    generator: torch.Generator,
    dtype: torch.dtype,
    *,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
) -> torch.Tensor:
    """He/Kaiming uniform.

    .. math::
        W \\sim \\mathcal{U}(-\\ell, \\ell), \\quad \\ell = \\text{gain}\\sqrt{\\frac{3}{\\text{fan\\_mode}}}

    Source: He et al. (2015). Equals ``torch.nn.init.kaiming_uniform_``.
    """
    return variance_scaling(
        shape, generator, dtype, scale=_he_scale(a, nonlinearity), mode=mode, distribution="uniform"
    )


@register(
    "lecun_normal",
    formula="truncated N(0, 1/fan_in)",
    reference="LeCun et al. 1998, Efficient BackProp; Klambauer et al. 2017 (SELU)",
    aliases=("lecun",),
)
def lecun_normal(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """LeCun normal: unit-variance-preserving for linear units; the init SELU assumes.

    .. math::
        W \\sim \\mathcal{N}_{[-2\\sigma, 2\\sigma]}(0, \\sigma^2),\\ \\operatorname{Var}[W] = \\frac{1}{\\text{fan\\_in}}

    Truncated as in Keras/JAX ``lecun_normal``. Source: LeCun et al. (1998); Klambauer et al. (2017).
    """
    return variance_scaling(shape, generator, dtype, scale=1.0, mode="fan_in", distribution="truncated_normal")


@register(
    "lecun_uniform",
    formula="U(±sqrt(3/fan_in))",
    reference="LeCun et al. 1998, Efficient BackProp",
)
def lecun_uniform(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """LeCun uniform.

    .. math::
        W \\sim \\mathcal{U}\\left(-\\sqrt{3/\\text{fan\\_in}}, \\sqrt{3/\\text{fan\\_in}}\\right)

    Source: LeCun et al. (1998); Keras/JAX ``lecun_uniform``.
    """
    return variance_scaling(shape, generator, dtype, scale=1.0, mode="fan_in", distribution="uniform")


@register(
    "uniform_fan",
    formula="U(±1/sqrt(fan_in))",
    reference="Glorot & Bengio 2010 eq. 1 ('standard' init); PyTorch's nn.Linear default",
)
def uniform_fan(shape: Shape, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """The article's "uniform": Glorot's "standard" initialization, PyTorch's Linear default.

    .. math::
        W \\sim \\mathcal{U}\\left(-\\frac{1}{\\sqrt{\\text{fan\\_in}}}, \\frac{1}{\\sqrt{\\text{fan\\_in}}}\\right)
        \\quad(\\operatorname{Var} = 1/(3\\,\\text{fan\\_in}))

    Source: Glorot & Bengio (2010), eq. 1. ``variance_scaling(1/3, "fan_in", "uniform")``.
    """
    return variance_scaling(shape, generator, dtype, scale=1.0 / 3.0, mode="fan_in", distribution="uniform")


@register(
    "torch_default",
    params=(Param("fan_in", None, lambda n: n > 0, "an integer > 0 (needed for 1-D biases)", kind=int, optional=True),),
    formula="U(±1/sqrt(fan_in)) (weight: kaiming_uniform a=sqrt(5); bias: U(±1/sqrt(fan_in)))",
    reference="torch.nn.Linear / _ConvNd.reset_parameters",
    min_dim=1,
    aliases=("default", "pytorch_default"),
    shape_constraint=lambda shape, p: (
        "a 1-D tensor (a bias) needs fan_in=<the fan-in of its layer's weight>"
        if len(shape) == 1 and p["fan_in"] is None
        else None
    ),
)
def torch_default(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, fan_in: float | None = None
) -> torch.Tensor:
    """PyTorch's own ``nn.Linear``/``nn.ConvNd`` initialization, weights and biases.

    .. math::
        W \\sim \\mathcal{U}(-\\ell, \\ell), \\quad
        \\ell = \\text{gain}\\sqrt{3/\\text{fan\\_in}} = 1/\\sqrt{\\text{fan\\_in}}, \\quad
        \\text{gain} = \\sqrt{2/(1 + 5)}

    (``kaiming_uniform_(a=sqrt(5))``, computed as torch does, so the same generator state gives
    the same bits). A 1-D tensor (a bias) needs ``fan_in``, the fan-in of its layer's weight.
    Source: ``torch/nn/modules/linear.py``, ``reset_parameters``.
    """
    if len(shape) == 1:
        assert fan_in is not None  # shape_constraint above rejects a 1-D shape without fan_in
        bound = 1 / math.sqrt(fan_in)
        return draw_uniform(shape, generator, dtype, -bound, bound)
    fan_in = compute_fans(shape)[0] if fan_in is None else fan_in
    g = math.sqrt(2.0 / (1 + math.sqrt(5) ** 2))
    bound = math.sqrt(3.0) * (g / math.sqrt(fan_in))
    return draw_uniform(shape, generator, dtype, -bound, bound)


@register(
    "positive",
    params=(Param("gain", math.sqrt(2.0), positive_number, "a number > 0"),),
    formula="|N(0, gain²/fan_in)|, gain = sqrt(2): half-normal at He scale",
    reference="the article's 'positive' scheme; He et al. 2015 for the scale",
)
def positive(
    shape: Shape, generator: torch.Generator, dtype: torch.dtype, *, gain: float = math.sqrt(2.0)
) -> torch.Tensor:
    """The article's "positive": every weight > 0, half-normal at He scale.

    .. math::
        W = |Z|,\\quad Z \\sim \\mathcal{N}(0, \\text{gain}^2/\\text{fan\\_in})

    All weights share a sign, so units of a layer are strongly correlated: E[W] = gain·sqrt(2/(π fan_in)).
    """
    std = gain / math.sqrt(fan(shape, "fan_in"))
    return draw_normal(shape, generator, dtype, 0.0, std).abs_()
