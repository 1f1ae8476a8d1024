"""initlab.layers: one taxonomy of modules, by class, by class name and by behaviour."""

from __future__ import annotations

import torch
from torch import nn

from initlab.layers import (
    activation_of_module,
    first_tensor,
    is_transposed_linear,
    module_kind,
    weight_fans,
)


class Conv1D(nn.Module):
    """The shape of transformers.pytorch_utils.Conv1D: y = x @ W + b, W stored (in, out)."""

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return x @ self.weight + self.bias


class MyRMSNorm(nn.Module):
    """An RMSNorm the taxonomy has never heard of: recognised by what it does."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * x / x.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()


class Gain(nn.Module):
    """A 1-D weight that does not normalise: not a norm."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * x


class MySwish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class GELUActivation(nn.Module):  # transformers' class name
    def forward(self, x):
        return nn.functional.gelu(x)


class DropPath(nn.Module):  # timm's class name, parameter-free
    def forward(self, x):
        return x


class LayerScale(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(1e-5 * torch.ones(d))

    def forward(self, x):
        return x * self.gamma


def test_conv1d_is_a_transposed_linear_with_forward_fans():
    layer = Conv1D(nf=96, nx=32)
    assert module_kind(layer) == "linear" and is_transposed_linear(layer)
    assert weight_fans(layer) == (32, 96)
    assert not is_transposed_linear(nn.Linear(32, 96)) and weight_fans(nn.Linear(32, 96)) == (32, 96)


def test_norms_are_known_by_class_and_by_behaviour():
    assert module_kind(nn.LayerNorm(8)) == "norm" and module_kind(nn.BatchNorm2d(8)) == "norm"
    assert module_kind(MyRMSNorm(8)) == "norm"
    assert module_kind(Gain(8)) != "norm"


def test_activations_by_class_name_and_by_values():
    assert activation_of_module(GELUActivation()) == ("gelu", None)
    assert module_kind(MySwish()) == "activation" and activation_of_module(MySwish()) == ("silu", None)
    assert activation_of_module(nn.Hardsigmoid()) == ("hardsigmoid", None)
    assert activation_of_module(nn.Identity()) is None


def test_residual_wrappers_are_transparent_or_scale():
    assert module_kind(DropPath()) == "transparent"
    assert module_kind(nn.Dropout(0.1)) == "transparent"
    assert module_kind(LayerScale(8)) == "scale"
    assert module_kind(nn.Sequential(nn.Linear(2, 2))) == "container"


def test_grouped_conv_fans_count_the_outputs_an_input_reaches():
    depthwise = nn.Conv2d(16, 16, 3, groups=16)
    assert weight_fans(depthwise) == (9, 9)  # torch's fan_out would say 16 * 9
    grouped = nn.Conv2d(8, 16, 3, groups=4)
    assert weight_fans(grouped) == (2 * 9, 4 * 9)


def test_first_tensor_reads_logits_from_output_objects_and_dicts():
    logits = torch.ones(2, 3)
    assert first_tensor({"loss": None, "logits": logits}) is logits
    assert first_tensor((torch.zeros(1), logits)) is not logits
    assert first_tensor([None, {"logits": logits}]) is logits
