"""The auto policy and diagnose on real architectures (transformers, timm) from small configs.

Needs the ``zoo`` extra (transformers, timm); skipped with the reason printed otherwise.
No downloads: every model is built from a config with random weights.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

import initlab
from initlab.errors import UserError

pytest.importorskip("transformers", reason="the zoo extra (transformers) is not installed: pip install 'initlab[zoo]'")
from initlab.models import zoo

VOCAB = 1000


def _timm():
    try:
        return zoo.import_timm()
    except UserError as exc:
        pytest.skip(f"the zoo extra (timm) is not installed: {exc}")


def _tokens(seed: int, shape=(4, 16)) -> torch.Tensor:
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def _plan(model, policy="auto"):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "many parameters kept" warning on these models
        return initlab.plan(model, policy)


@pytest.mark.parametrize("name", ["gpt2", "bert", "llama"])
def test_language_models_have_no_silent_keep_and_find_their_residual_branches(name):
    model = zoo.ZOO[name](vocab=VOCAB)
    p = _plan(model)
    assert p.method == "hooks" and any("torch.fx" in n for n in p.notes)
    assert [e.param for e in p if e.keeps] == []
    ends = [e for e in p if e.role == "residual_last"]
    assert len(ends) == 4  # attention and MLP output of each of 2 blocks
    assert all("residual branch" in e.reason for e in ends)


def test_gpt2_conv1d_rules_read_the_transposed_fans_and_true_reasons():
    p = _plan(zoo.gpt2(vocab=VOCAB))
    fc = p["transformer.h.0.mlp.c_fc.weight"]
    assert fc.scheme == "he_normal" and fc.params["mode"] == "fan_out"  # Conv1D stores (in, out)
    assert "NewGELUActivation" in fc.reason and fc.params["nonlinearity"] == "gelu"
    qkv = p["transformer.h.0.attn.c_attn.weight"]
    assert "fused q/k/v" in qkv.reason and qkv.params["mode"] == "fan_out"


def test_llama_reasons_are_true_or_say_unknown():
    p = _plan(zoo.llama(vocab=VOCAB))
    # the old registration-order fallback claimed "q_proj followed by next layer k_proj"
    q = p["model.layers.0.self_attn.q_proj.weight"]
    assert "next layer" not in q.reason
    assert "SiLU" in p["model.layers.0.mlp.gate_proj.weight"].reason
    assert p["model.layers.0.input_layernorm.weight"].scheme == "ones"  # LlamaRMSNorm: a norm


@pytest.mark.parametrize("name", ["gpt2", "bert", "llama"])
def test_tied_and_untied_heads_give_order_one_logits(name):
    model = zoo.ZOO[name](vocab=VOCAB)
    initlab.initialize(model, seed=0)
    model.eval()
    with torch.no_grad():
        logits = model(_tokens(1)).logits
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), _tokens(2).reshape(-1))
    assert abs(float(loss) - math.log(VOCAB)) < 1.0  # an N(0, 1) tied head starts ~100 nats above
    assert 0.05 < float(logits.std()) < 2.0


@pytest.mark.parametrize(
    "name,param,transposed",
    [
        ("gpt2", "transformer.h.0.attn.c_attn.weight", True),
        ("vit", "blocks.0.attn.qkv.weight", False),
    ],
)
def test_fused_qkv_blocks_get_their_own_fans(name, param, transposed):
    if name == "vit":
        _timm()
    model = zoo.ZOO[name]()
    initlab.initialize(model, seed=0)
    w = dict(model.named_parameters())[param].detach()
    blocks = w.chunk(3, dim=1 if transposed else 0)
    d = 64
    for block in blocks:  # Var = 1/d per block (Xavier on the 3d x d stack would give 1/(2d))
        assert float(block.var()) * d == pytest.approx(1.0, rel=0.08)


def test_vit_output_depends_on_the_input_at_init_and_every_layer_learns():
    _timm()
    model = zoo.vit()
    p = initlab.initialize(model, seed=0)
    assert "class token" in p["blocks.0.attn.proj.weight"].reason and p["blocks.0.attn.proj.weight"].scheme != "zeros"
    model.eval()
    a, b = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).chunk(2)
    with torch.no_grad():
        assert float((model(a) - model(b)).abs().max()) > 1e-3
    loss = F.cross_entropy(model(torch.cat([a, b])), torch.tensor([1, 2]))
    loss.backward()
    assert float(model.patch_embed.proj.weight.grad.abs().max()) > 0
    assert float(model.blocks[0].attn.qkv.weight.grad.abs().max()) > 0


@pytest.mark.parametrize("layers,branches", [((1, 1, 1, 1), 4), ((2, 2, 2, 2), 8)])
def test_fixup_scales_branch_layers_by_depth_without_normalization(layers, branches):
    _timm()
    p = _plan(zoo.resnet(layers=layers, norm=False))
    first = p["layer1.0.conv1.weight"]
    # two-layer branches: Var x L^(-1/(m-1)) = 1/L on He's 2/fan_in
    assert first.params["scale"] == pytest.approx(2.0 / branches, rel=1e-9) and "Fixup" in first.reason
    assert p["layer1.0.conv2.weight"].scheme == "zeros"
    fixup = _plan(zoo.resnet(layers=layers, norm=False), "fixup")
    assert fixup["fc.weight"].scheme == "zeros" and fixup["layer1.0.conv1.weight"].params == first.params


def test_fixup_and_t_fixup_refuse_models_with_normalization():
    _timm()
    with pytest.raises(UserError, match="without normalization.*bn1"):
        initlab.plan(zoo.resnet(), "fixup")
    with pytest.raises(UserError, match="t-fixup.*normalization"):
        initlab.plan(zoo.gpt2(vocab=VOCAB), "t-fixup")


def test_deepnorm_needs_post_ln_and_scales_value_and_mlp_weights():
    with pytest.raises(UserError, match="post-LN"):
        initlab.plan(zoo.gpt2(vocab=VOCAB), "deepnorm")  # pre-LN
    p = initlab.plan(zoo.bert(vocab=VOCAB), "deepnorm")
    beta = (8 * 2) ** -0.25
    layer = "bert.encoder.layer.0"
    assert p[f"{layer}.attention.self.value.weight"].params["gain"] == pytest.approx(beta)
    assert p[f"{layer}.output.dense.weight"].params["gain"] == pytest.approx(beta)
    assert p[f"{layer}.attention.self.query.weight"].params["gain"] == 1.0
    assert any("alpha" in n for n in p.notes)


class _NoNormTransformer(torch.nn.Module):
    """A transformer without layer normalization, the model T-Fixup is for."""

    def __init__(self, d: int = 32, blocks: int = 3) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, d)
        self.attn = torch.nn.ModuleList(torch.nn.MultiheadAttention(d, 4, batch_first=True) for _ in range(blocks))
        self.fc1 = torch.nn.ModuleList(torch.nn.Linear(d, 2 * d) for _ in range(blocks))
        self.fc2 = torch.nn.ModuleList(torch.nn.Linear(2 * d, d) for _ in range(blocks))
        self.head = torch.nn.Linear(d, 50)

    def forward(self, x):
        h = self.emb(x)
        for attn, fc1, fc2 in zip(self.attn, self.fc1, self.fc2):
            h = h + attn(h, h, h, need_weights=False)[0]
            h = h + fc2(F.relu(fc1(h)))
        return self.head(h)


def test_t_fixup_scales_embeddings_values_and_mlp_by_its_factor():
    p = initlab.plan(_NoNormTransformer(), "t-fixup", example_input=torch.zeros(2, 5, dtype=torch.long))
    factor = 0.67 * 3**-0.25  # encoder, N = 3 blocks
    assert p["fc1.0.weight"].params["gain"] == pytest.approx(factor)
    assert p["emb.weight"].params["std"] == pytest.approx(32**-0.5 * factor)
    value_rows = p["attn.0.in_proj_weight"].blocks[0]
    assert (value_rows.start, value_rows.stop) == (64, 96) and value_rows.params["gain"] == pytest.approx(factor)


def test_diagnose_on_a_language_model_with_sequence_targets():
    model = zoo.gpt2(vocab=VOCAB)
    plan = initlab.initialize(model, seed=0)
    d = initlab.diagnose(model, _tokens(3), _tokens(4), plan=plan)
    assert d.loss == "cross_entropy" and d.tied == {"lm_head": "transformer.wte"}
    assert d.flags == []  # zeroed branch ends are planned, the tied head is not a clone
    undeclared = initlab.diagnose(model, _tokens(3), _tokens(4))
    assert {f.layer for f in undeclared.flagged("dead")} == {e.layer for e in plan if e.role == "residual_last"}


@pytest.mark.parametrize("name", ["bert", "llama", "vit", "resnet"])
def test_diagnose_runs_on_each_zoo_model(name):
    if name in ("vit", "resnet"):
        _timm()
    model = zoo.ZOO[name]()
    plan = initlab.initialize(model, seed=0)
    x = zoo.example_input(name)
    d = initlab.diagnose(model, x, plan=plan)
    assert len(d.layers) >= 5
    assert d.mode == ("train-norm" if name == "resnet" else "eval")
    assert not d.flagged("vanishing") and not d.flagged("exploding")


def test_torchvision_models_import_with_the_schema_workaround_and_plan_fully():
    zoo.declare_torchvision_ops()
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (timm brings it)")
    resnet = torchvision.models.resnet18(num_classes=10)
    p = _plan(resnet)
    assert p.method == "fx" and not [e for e in p if e.keeps]
    assert p["layer1.0.bn2.weight"].scheme == "zeros" and p["layer1.0.bn1.weight"].scheme == "ones"
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=10)
    plan = initlab.initialize(mobilenet, seed=0)
    assert "hardsigmoid" in {e.activation for e in plan}
    d = initlab.diagnose(mobilenet, torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0)), plan=plan)
    assert d.mode == "train-norm" and not d.flagged("vanishing")  # eval mode with fresh statistics: x1e-20
