"""microsoft/ExtreMA's checkpoints (``main.py``'s ``{"epoch", "arch", "state_dict", "optimizer", "scaler"}``, the
weights saved from DDP with ``module.`` prefixes) into an `ExtremaForPreTraining`.

Key layout (``lib/builder.py``, ``vits.py``): the student ``base_encoder.*`` and the teacher ``momentum_encoder.*``
each hold ``cls_token`` (the class-attention query), the fixed sin-cos ``pos_embed`` (one row per patch, no [CLS]
row), ``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv (weight and bias), attn.proj, norm2, mlp.fc1, mlp.fc2}``,
the class-attention blocks ``blocks_token.N.{norm1, attn.q, attn.k, attn.v, attn.proj, norm2, mlp.fc1, mlp.fc2,
gamma_1, gamma_2}``, the final ``norm`` (of the class token) and the projector ``head.{0,1,3,4,6}`` (Linear,
LayerNorm, GELU, ...); the student's ``predictor.{0,1,3}`` follows.
"""

import torch
from transformers import BeitConfig

from ..configuration.backbones import VIT_SIZES
from ..configuration.configuration_extrema import EXTREMA_BACKBONE_DEFAULTS, ExtremaConfig, num_visible_patches
from ..modeling.modeling_extrema import ExtremaForPreTraining
from .state import StateReader, heads_of, load_exactly, vit_layers

# ExtreMA's `--arch` names: vits.vit_small / vit_base / vit_large.
ARCH_HEADS = {f"vit_{size}": fields["num_attention_heads"] for size, fields in VIT_SIZES.items()}
# Left to the model: ExtreMA's encoder never uses the [CLS] slot of the stock layout, and the exported encoder's
# [CLS] slot is calibrated on images (`ExtremaForPreTraining.calibrate_export`), which a checkpoint does not hold.
DERIVED = ("backbone.embeddings.cls_token", "teacher_backbone.embeddings.cls_token", "export_cls_token")


def _linears(reader: StateReader, prefix: str) -> list[str]:
    """The indices of the Linear layers of an ``nn.Sequential`` under ``prefix`` (2-D weights), in order."""
    indices = {key[len(prefix) :].split(".")[0] for key in reader.keys(rf"{prefix}\d+\.weight$")}
    return sorted((i for i in indices if reader.peek(f"{prefix}{i}.weight").ndim == 2), key=int)


def _mlp(reader: StateReader, prefix: str, target: str) -> dict[str, torch.Tensor]:
    """An ``nn.Sequential`` of Linear / LayerNorm / GELU: the same indices in maskvision's `MLPHead`."""
    indices = sorted({key[len(prefix) :].split(".")[0] for key in reader.keys(rf"{prefix}\d+\.")}, key=int)
    return {
        f"{target}.layers.{i}.{name}": reader.take(f"{prefix}{i}.{name}")
        for i in indices
        for name in ("weight", "bias")
    }


def _class_attention(reader: StateReader, prefix: str, target: str, depth: int) -> dict[str, torch.Tensor]:
    tensors = {}
    for index in range(depth):
        official, ours = f"{prefix}blocks_token.{index}.", f"{target}.blocks.{index}."
        for name in ("weight", "bias"):
            tensors[f"{ours}norm1.{name}"] = reader.take(f"{official}norm1.{name}")
            tensors[f"{ours}norm2.{name}"] = reader.take(f"{official}norm2.{name}")
            tensors[f"{ours}attention.q.{name}"] = reader.take(f"{official}attn.q.{name}")
            tensors[f"{ours}attention.kv.{name}"] = torch.cat(
                [reader.take(f"{official}attn.k.{name}"), reader.take(f"{official}attn.v.{name}")]
            )
            tensors[f"{ours}attention.proj.{name}"] = reader.take(f"{official}attn.proj.{name}")
            tensors[f"{ours}mlp.0.{name}"] = reader.take(f"{official}mlp.fc1.{name}")
            tensors[f"{ours}mlp.2.{name}"] = reader.take(f"{official}mlp.fc2.{name}")
        tensors[f"{ours}gamma1"] = reader.take(f"{official}gamma_1")
        tensors[f"{ours}gamma2"] = reader.take(f"{official}gamma_2")
    tensors[f"{target}.cls_token"] = reader.take(f"{prefix}cls_token")
    tensors[f"{target}.norm.weight"] = reader.take(f"{prefix}norm.weight")
    tensors[f"{target}.norm.bias"] = reader.take(f"{prefix}norm.bias")
    return tensors


def convert_extrema(reader: StateReader, arch: str | None = None, num_attention_heads=None) -> ExtremaForPreTraining:
    """ExtreMA's student, teacher and predictor → `ExtremaForPreTraining` (its masking and loss settings are not in
    the weights: the defaults, 80% x 5 masks — fewer on a grid too small for five — and BYOL). ``arch`` (the
    checkpoint's ``"arch"``) gives the heads."""
    hidden = reader.peek("base_encoder.cls_token").shape[-1]
    projection = reader.peek("base_encoder.patch_embed.proj.weight")
    heads = num_attention_heads or ARCH_HEADS.get(arch) or heads_of(reader, "base_encoder.", hidden, None)
    depth = reader.count(r"base_encoder\.blocks_token\.(\d+)\.")
    num_layers = reader.count(r"base_encoder\.blocks\.(\d+)\.")
    positions = reader.peek("base_encoder.pos_embed").shape[1]
    tensors = {}
    for branch, target in (("base_encoder.", ""), ("momentum_encoder.", "teacher_")):
        pos_embed = reader.take(f"{branch}pos_embed")  # (1, N, D): the stock layout's [CLS] row stays zero
        tensors[f"{target}backbone.embeddings.position_embeddings"] = torch.cat(
            [torch.zeros_like(pos_embed[:, :1]), pos_embed], dim=1
        )
        for name in ("weight", "bias"):
            tensors[f"{target}backbone.embeddings.patch_embeddings.projection.{name}"] = reader.take(
                f"{branch}patch_embed.proj.{name}"
            )
        tensors.update({f"{target}backbone.{name}": t for name, t in vit_layers(reader, branch, hidden).items()})
        tensors.update(_class_attention(reader, branch, f"{target}pooler", depth))
        projector = _linears(reader, f"{branch}head.")
        tensors.update(_mlp(reader, f"{branch}head.", f"{target}projector"))
    predictor = _linears(reader, "predictor.")
    predictor_sizes = [reader.peek(f"predictor.{i}.weight").shape[0] for i in predictor]
    tensors.update(_mlp(reader, "predictor.", "predictor"))
    backbone = BeitConfig(
        **{
            **EXTREMA_BACKBONE_DEFAULTS,
            "hidden_size": hidden,
            "num_hidden_layers": num_layers,
            "num_attention_heads": heads,
            "intermediate_size": tensors["backbone.layers.0.mlp.fc1.weight"].shape[0],
            "patch_size": projection.shape[-1],
            "num_channels": projection.shape[1],
            "image_size": round(positions**0.5) * projection.shape[-1],
            "layer_scale_init_value": 0.1 if "backbone.layers.0.lambda_1" in tensors else 0.0,
        }
    )
    grid = backbone.image_size // backbone.patch_size
    visible = num_visible_patches(grid * grid, ExtremaConfig.mask_ratio)
    config = ExtremaConfig(
        backbone_config=backbone,
        pooling_depth=depth,
        num_masks=min(ExtremaConfig.num_masks, grid * grid // visible),
        projector_num_layers=len(projector),
        projector_hidden_size=tensors["projector.layers.0.weight"].shape[0],
        projection_size=tensors[f"projector.layers.{projector[-1]}.weight"].shape[0],
        predictor_num_layers=len(predictor),
        predictor_hidden_size=predictor_sizes[0],
    )
    model = ExtremaForPreTraining(config)
    load_exactly(model, tensors, reader.source, derived=DERIVED)
    return model.eval()


__all__ = ["convert_extrema"]
