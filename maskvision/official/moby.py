"""MoBY's checkpoints (SwinTransformer/Transformer-SSL ``utils.save_checkpoint``: ``{"model", "optimizer",
"lr_scheduler", "max_accuracy", "epoch", "config"}``) into a `MobyForPreTraining`.

Key layout (``models/moby.py``, ``models/swin_transformer.py``; DeiT-S is timm's ``vit_deit_small_patch16_224``):
the online ``encoder.*`` and target ``encoder_k.*`` — Swin: ``patch_embed.{proj, norm}``, optional
``absolute_pos_embed``, ``layers.S.blocks.B.{norm1, attn.{qkv, proj, relative_position_bias_table,
relative_position_index}, norm2, mlp.fc1, mlp.fc2}`` (``attn_mask`` buffers in shifted blocks),
``layers.S.downsample.{reduction, norm}``, ``norm``; DeiT-S: ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N.*``, ``norm`` —, the heads ``projector.*``, ``projector_k.*``, ``predictor.*`` (``MoBYMLP``:
``linear_hidden.{1: Linear, 2: BatchNorm}``, ``linear_out``) and the key queues ``queue1``, ``queue2`` (256 x K,
keys as columns), ``queue_ptr``.

MoBY's hidden Linear layers have a bias before BatchNorm, maskvision's none (`MLPHead`): the bias moves into the
BatchNorm's running mean (``mean - bias``), exact in evaluation, and in training where the batch mean absorbs it.
The DeiT-S feature is the normalised [CLS] token (timm's ``forward_features``): the converted ViT keeps its final
LayerNorm on every token and pools [CLS] (``use_mean_pooling=False``).
"""

import re

import torch
from transformers import SwinConfig

from ..configuration.configuration_moby import MobyConfig, moby_vit_backbone_config
from ..modeling.modeling_moby import MobyForPreTraining
from ..safe_pickle import PickledDict
from .state import StateReader, load_exactly, vit_encoder


def _swin_window(table_rows: int) -> int:
    span = round(table_rows**0.5)
    return (span + 1) // 2


def swin_encoder(reader: StateReader, prefix: str, image_size: int | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """The official Swin under ``prefix`` as (`SwinConfig` keyword arguments, `SwinModel` tensors)."""
    if reader.keys(rf"{re.escape(prefix)}layers\.\d+\.blocks\.\d+\.norm2\.running_mean$"):
        raise ValueError(
            f"{reader.source}: this Swin normalises with BatchNorm before its MLPs (NORM_BEFORE_MLP: "
            "bn), which transformers' Swin cannot hold."
        )
    projection = reader.peek(f"{prefix}patch_embed.proj.weight")
    embed_dim, channels, patch = projection.shape[0], projection.shape[1], projection.shape[-1]
    stages = reader.count(rf"{re.escape(prefix)}layers\.(\d+)\.")
    depths = [reader.count(rf"{re.escape(prefix)}layers\.{stage}\.blocks\.(\d+)\.") for stage in range(stages)]
    tables = [
        reader.peek(f"{prefix}layers.{stage}.blocks.0.attn.relative_position_bias_table") for stage in range(stages)
    ]
    window = _swin_window(tables[0].shape[0])
    masks = reader.keys(rf"{re.escape(prefix)}layers\.0\.blocks\.\d+\.attn_mask$")
    if image_size is None and masks:  # (windows, w², w²) of the first stage: (image / patch / w)² windows
        image_size = round(reader.peek(masks[0]).shape[0] ** 0.5) * window * patch
    if image_size is None:
        raise ValueError(
            f"{reader.source}: neither the checkpoint's config nor its weights tell the image size: "
            "give it (--image-size)."
        )
    tensors = {
        "embeddings.patch_embeddings.projection.weight": reader.take(f"{prefix}patch_embed.proj.weight"),
        "embeddings.patch_embeddings.projection.bias": reader.take(f"{prefix}patch_embed.proj.bias"),
        "embeddings.norm.weight": reader.take(f"{prefix}patch_embed.norm.weight"),
        "embeddings.norm.bias": reader.take(f"{prefix}patch_embed.norm.bias"),
        "layernorm.weight": reader.take(f"{prefix}norm.weight"),
        "layernorm.bias": reader.take(f"{prefix}norm.bias"),
    }
    ape = reader.take_optional(f"{prefix}absolute_pos_embed")
    if ape is not None:
        tensors["embeddings.position_embeddings"] = ape
    reader.drop(
        rf"{re.escape(prefix)}layers\..*\.(attn_mask|relative_position_index)$",
        "buffers recomputed from the window size and the image size",
    )
    qkv_bias = f"{prefix}layers.0.blocks.0.attn.qkv.bias" in reader
    for stage, depth in enumerate(depths):
        dim = embed_dim * 2**stage
        for block in range(depth):
            official, ours = f"{prefix}layers.{stage}.blocks.{block}.", f"encoder.layers.{stage}.blocks.{block}."
            for name in ("weight", "bias"):
                for source, target in (("norm1", "layernorm_before"), ("norm2", "layernorm_after"),
                                       ("attn.proj", "attention.o_proj"), ("mlp.fc1", "mlp.fc1"),
                                       ("mlp.fc2", "mlp.fc2")):  # fmt: skip
                    tensors[f"{ours}{target}.{name}"] = reader.take(f"{official}{source}.{name}")
                fused = reader.take_optional(f"{official}attn.qkv.{name}")
                if fused is not None:
                    for part, tensor in zip(("q", "k", "v"), fused.split(dim)):
                        tensors[f"{ours}attention.{part}_proj.{name}"] = tensor
            tensors[f"{ours}attention.relative_position_bias.relative_position_bias_table"] = reader.take(
                f"{official}attn.relative_position_bias_table"
            )
        if stage < stages - 1:
            merging = f"{prefix}layers.{stage}.downsample."
            tensors[f"encoder.layers.{stage}.downsample.reduction.weight"] = reader.take(f"{merging}reduction.weight")
            for name in ("weight", "bias"):
                tensors[f"encoder.layers.{stage}.downsample.norm.{name}"] = reader.take(f"{merging}norm.{name}")
    config = dict(
        image_size=image_size,
        patch_size=patch,
        num_channels=channels,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=[table.shape[1] for table in tables],
        window_size=window,
        qkv_bias=qkv_bias,
        mlp_ratio=tensors["encoder.layers.0.blocks.0.mlp.fc1.weight"].shape[0] / embed_dim,
        use_absolute_embeddings=ape is not None,
        layer_norm_eps=1e-5,  # timm's / Swin's nn.LayerNorm default
    )
    return config, tensors


def moby_head(reader: StateReader, prefix: str, target: str) -> dict[str, torch.Tensor]:
    """A ``MoBYMLP`` as `MLPHead` tensors: Linear (its bias folded into the next BatchNorm), BatchNorm, ReLU, ..."""
    hidden = sorted(
        {
            int(key.split(".")[-2])
            for key in reader.keys(rf"{re.escape(prefix)}linear_hidden\.\d+\.weight$")
            if reader.peek(key).ndim == 2
        }
    )
    tensors = {}
    for index, linear in enumerate(hidden):
        bias = reader.take(f"{prefix}linear_hidden.{linear}.bias")
        tensors[f"{target}.layers.{3 * index}.weight"] = reader.take(f"{prefix}linear_hidden.{linear}.weight")
        norm, ours = f"{prefix}linear_hidden.{linear + 1}.", f"{target}.layers.{3 * index + 1}."
        for name in ("weight", "bias", "running_var", "num_batches_tracked"):
            tensors[f"{ours}{name}"] = reader.take(f"{norm}{name}")
        tensors[f"{ours}running_mean"] = reader.take(f"{norm}running_mean") - bias
    for name in ("weight", "bias"):
        tensors[f"{target}.layers.{3 * len(hidden)}.{name}"] = reader.take(f"{prefix}linear_out.{name}")
    return tensors


def _linear_count(tensors: dict[str, torch.Tensor], prefix: str) -> int:
    return sum(
        1
        for name, tensor in tensors.items()
        if name.startswith(prefix) and name.endswith(".weight") and tensor.ndim == 2
    )


def _record(config, *path, default=None):
    """A value of the checkpoint's yacs config (read as an inert `PickledDict`), or ``default``."""
    for key in path:
        if not isinstance(config, PickledDict) or key not in config:
            return default
        config = config[key]
    return config


def convert_moby(
    reader: StateReader, training_config=None, image_size: int | None = None, num_attention_heads: int | None = None
) -> MobyForPreTraining:
    """MoBY's online and target branches, heads and queues → `MobyForPreTraining`. ``training_config`` (the
    checkpoint's ``"config"``, when it has one) gives the image size, temperature, momentum and drop path rates."""
    image_size = image_size or _record(training_config, "DATA", "IMG_SIZE")
    tensors, backbones = {}, {}
    for branch, target in (("encoder.", "encoder."), ("encoder_k.", "target_encoder.")):
        if f"{branch}layers.0.blocks.0.attn.qkv.weight" in reader:
            backbones[branch], encoder = swin_encoder(reader, branch, image_size)
        else:
            backbones[branch], encoder = vit_encoder(reader, branch, num_attention_heads, image_size)
        tensors.update({f"{target}{name}": tensor for name, tensor in encoder.items()})
    for prefix, target in (
        ("projector.", "projector"),
        ("projector_k.", "target_projector"),
        ("predictor.", "predictor"),
    ):
        tensors.update(moby_head(reader, prefix, target))
    queues = [reader.take(name).T.contiguous() for name in ("queue1", "queue2")]  # (256, K) → K keys (K, 256)
    tensors.update(queue_1=queues[0], queue_2=queues[1], queue_ptr=reader.take("queue_ptr"))
    moby = {
        "momentum": _record(training_config, "MODEL", "MOBY", "CONTRAST_MOMENTUM", default=0.99),
        "temperature": _record(training_config, "MODEL", "MOBY", "CONTRAST_TEMPERATURE", default=0.2),
        "target_drop_path_rate": _record(training_config, "MODEL", "MOBY", "TARGET_DROP_PATH_RATE", default=0.0),
    }
    online_drop_path = _record(training_config, "MODEL", "MOBY", "ONLINE_DROP_PATH_RATE", default=0.2)
    shape = backbones["encoder."]
    if "embed_dim" in shape:
        backbone = SwinConfig(**shape, drop_path_rate=online_drop_path)
    else:
        backbone = moby_vit_backbone_config(**{**shape, "use_mean_pooling": False, "drop_path_rate": online_drop_path})
    config = MobyConfig(
        backbone_config=backbone,
        projection_dim=queues[0].shape[1],
        queue_size=queues[0].shape[0],
        projector_hidden_size=tensors["projector.layers.0.weight"].shape[0],
        projector_num_layers=_linear_count(tensors, "projector."),
        predictor_num_layers=_linear_count(tensors, "predictor."),
        predictor_hidden_size=tensors["predictor.layers.0.weight"].shape[0],
        **moby,
    )
    model = MobyForPreTraining(config)
    load_exactly(model, tensors, reader.source)
    return model.eval()


__all__ = ["convert_moby", "moby_head", "swin_encoder"]
