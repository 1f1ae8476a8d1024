"""Real architectures from small configs (no downloads): ``transformers`` and ``timm`` models.

The optional ``zoo`` extra (``pip install initlab[zoo]``) installs ``transformers`` and ``timm``.
timm imports torchvision, whose wheel pairs with a CUDA build of torch: with the CPU torch its
C operators do not load, and ``import torchvision`` fails on the fake-kernel registration of
``torchvision::nms``. ``import_timm`` declares the two operator schemas torchvision registers
fake kernels for (``nms``, ``qnms``) before importing, so the pure-Python model code imports;
the detection operators themselves stay unavailable (no zoo model calls them). torchvision's
own models are then importable too, but the zoo uses timm's ResNets and ViTs. ``transformers`` imports torchvision as well.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from initlab.errors import UserError

_TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_declared: list[Any] = []  # the Library must stay alive for its definitions to stay


def _require(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"the zoo needs {module!r}; install the extra: pip install 'initlab[zoo]'") from None


def declare_torchvision_ops() -> None:
    """Declare the operator schemas torchvision registers fake kernels for, when its C library
    did not load them (see the module docstring). Both timm and transformers import torchvision."""
    if not _declared and not hasattr(torch.ops.torchvision, "nms"):
        try:
            lib = torch.library.Library("torchvision", "DEF")
            for schema in _TORCHVISION_SCHEMAS:
                lib.define(schema)
            _declared.append(lib)
        except RuntimeError:  # already defined by a loaded torchvision
            pass


def import_timm() -> Any:
    """``timm``, importable with the CPU torch."""
    declare_torchvision_ops()
    return _require("timm")


def _quiet_transformers() -> Any:
    declare_torchvision_ops()
    tf = _require("transformers")
    tf.logging.set_verbosity_error()
    return tf


def _transformers_model(config_class: str, model_class: str, **config: Any) -> nn.Module:
    """``transformers.<model_class>(transformers.<config_class>(**config))``, randomly initialized."""
    tf = _quiet_transformers()
    return getattr(tf, model_class)(getattr(tf, config_class)(**config))


def gpt2(vocab: int = 128, width: int = 64, depth: int = 2, heads: int = 4, context: int = 64) -> nn.Module:
    """``GPT2LMHeadModel`` (tied head, Conv1D layers, fused qkv ``c_attn``), dropout off."""
    return _transformers_model(
        "GPT2Config",
        "GPT2LMHeadModel",
        vocab_size=vocab,
        n_embd=width,
        n_layer=depth,
        n_head=heads,
        n_positions=context,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )


def bert(vocab: int = 128, width: int = 64, depth: int = 2, heads: int = 4, context: int = 64) -> nn.Module:
    """``BertForMaskedLM`` (post-LN, tied decoder), dropout off."""
    return _transformers_model(
        "BertConfig",
        "BertForMaskedLM",
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        max_position_embeddings=context,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def llama(vocab: int = 128, width: int = 64, depth: int = 2, heads: int = 4, context: int = 64) -> nn.Module:
    """``LlamaForCausalLM`` (RMSNorm, SiLU-gated MLP, untied head)."""
    return _transformers_model(
        "LlamaConfig",
        "LlamaForCausalLM",
        vocab_size=vocab,
        hidden_size=width,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=2 * width,
        max_position_embeddings=context,
        bos_token_id=0,
        eos_token_id=0,
    )


def vit(
    num_classes: int = 10, image: int = 32, patch: int = 8, width: int = 64, depth: int = 2, in_chans: int = 3
) -> nn.Module:
    """timm ``VisionTransformer`` with a class token, LayerNorm pre-norm blocks, fused qkv."""
    timm = import_timm()
    return timm.models.vision_transformer.VisionTransformer(
        img_size=image,
        patch_size=patch,
        in_chans=in_chans,
        num_classes=num_classes,
        embed_dim=width,
        depth=depth,
        num_heads=4,
        class_token=True,
        global_pool="token",
    )


def resnet(
    num_classes: int = 10, layers: tuple[int, ...] = (1, 1, 1, 1), in_chans: int = 3, norm: bool = True, width: int = 16
) -> nn.Module:
    """timm ``ResNet`` of BasicBlocks with channels (w, 2w, 4w, 8w); ``norm=False`` swaps every
    BatchNorm for an identity (a normalization-free ResNet, the model Fixup is for)."""
    import_timm()
    from timm.models.resnet import BasicBlock, ResNet

    kwargs = {} if norm else {"norm_layer": _NoNorm}
    channels = tuple(width * 2**i for i in range(len(layers)))
    return ResNet(
        BasicBlock,
        list(layers),
        num_classes=num_classes,
        in_chans=in_chans,
        stem_width=width,
        channels=channels,
        **kwargs,
    )


class _NoNorm(nn.Identity):
    """A BatchNorm stand-in that does nothing (timm passes the channel count)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


ZOO: dict[str, Callable[..., nn.Module]] = {
    "gpt2": gpt2,
    "bert": bert,
    "llama": llama,
    "vit": vit,
    "resnet": resnet,
    "resnet_nonorm": lambda **kw: resnet(norm=False, **kw),
}


def example_input(
    name: str,
    batch: int = 4,
    length: int = 16,
    vocab: int = 128,
    image: int = 32,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A batch the zoo model ``name`` accepts: token ids (B, T) or images (B, 3, H, W)."""
    g = generator or torch.Generator().manual_seed(0)
    if name in ("gpt2", "bert", "llama"):
        return torch.randint(0, vocab, (batch, length), generator=g)
    return torch.randn(batch, 3, image, image, generator=g)
