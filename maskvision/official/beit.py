"""unilm's BEiT releases (``beit/``, ``beit2/``): pretraining checkpoints into a `BeitMimForPreTraining`, fine-tuned
ones into a stock `BeitForImageClassification`, BEiT v2's VQ-KD tokenizer into a `VQKDTokenizer`.

Key layouts (``modeling_pretrain.py``, ``modeling_finetune.py``, ``modeling_vqkd.py``, ``norm_ema_quantizer.py``;
the weights under ``checkpoint["model"]``):

- pretraining: ``cls_token``, ``mask_token``, ``patch_embed.proj``, optional ``pos_embed``, the shared
  ``rel_pos_bias.relative_position_bias_table`` (or one per block), ``blocks.N.{norm1, attn.qkv.weight, attn.q_bias,
  attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2, gamma_1, gamma_2}``, ``norm`` (on every token, before the head),
  ``lm_head``; BEiT v2 adds its patch-aggregation head ``cls_pt_layers.N.*`` (and ``cls_pt_norm`` /
  ``cls_pt_lm_head`` when not shared), used only by its own pretraining loss;
- fine-tuned: the same encoder without ``mask_token``, per-block relative position tables, ``fc_norm`` (mean
  pooling) or ``norm`` ([CLS] pooling), and the classifier ``head``;
- VQ-KD: ``encoder.*`` and ``decoder.*`` (fine-tuning ViTs whose ``fc_norm`` normalises every patch token),
  ``encode_task_layer.{0,2}``, ``decode_task_layer.{0,2}``, the codebook ``quantize.embedding.weight`` with its EMA
  statistics, and the distillation teacher (``teacher_model.*``, ``scaling_layer.*``), which the official tokenizer
  loader deletes too.

unilm's attention has a query and a value bias and none on the key, exactly as transformers' Beit: the fused
``qkv`` projection splits into the three projections with no change.
"""

from transformers import BeitConfig, BeitForImageClassification
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from ..configuration.configuration_beit_mim import BEIT_PRETRAINING_BACKBONE, BeitMimConfig
from ..configuration.configuration_vqkd import VQKD_VIT_DEFAULTS, VQKDConfig
from ..modeling.modeling_beit_mim import BeitMimForPreTraining
from ..modeling.modeling_vqkd import VQKDTokenizer
from .state import StateReader, load_exactly, vit_encoder

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BEIT_V2_HEAD = r"cls_pt_(layers|norm|lm_head)\."


def convert_beit_pretraining(
    reader: StateReader, num_attention_heads=None, image_size=None, tokenizer: str | None = None
) -> BeitMimForPreTraining:
    """A BEiT v1 / v2 pretraining state dict → `BeitMimForPreTraining` (token targets, the checkpoint's vocabulary).

    BEiT v2 (recognised by its patch-aggregation head, which is dropped) normalises with ImageNet's mean and std and
    masks exactly 75 of 196 patches; v1 normalises with 0.5 / 0.5."""
    version_2 = bool(reader.keys(BEIT_V2_HEAD))
    reader.drop(BEIT_V2_HEAD, "BEiT v2's patch-aggregation head, used only by its own pretraining loss")
    head = {f"layernorm.{name}": reader.take(f"norm.{name}") for name in ("weight", "bias")}
    head.update({f"lm_head.{name}": reader.take(f"lm_head.{name}") for name in ("weight", "bias")})
    shape, encoder = vit_encoder(reader, "", num_attention_heads, image_size)
    backbone = BeitConfig(**{**BEIT_PRETRAINING_BACKBONE, **shape})
    normalisation = {"image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD} if version_2 else {}
    config = BeitMimConfig(
        backbone_config=backbone,
        vocab_size=head["lm_head.weight"].shape[0],
        tokenizer_name_or_path=tokenizer,
        exact_masking=version_2,
        **normalisation,
    )
    model = BeitMimForPreTraining(config)
    load_exactly(model, {**{f"beit.{name}": tensor for name, tensor in encoder.items()}, **head}, reader.source)
    return model.eval()


def convert_beit_finetuned(
    reader: StateReader, num_attention_heads=None, image_size=None
) -> BeitForImageClassification:
    """A fine-tuned BEiT state dict (``head`` on ``fc_norm`` or ``norm``) → a stock `BeitForImageClassification`."""
    classifier = {f"classifier.{name}": reader.take(f"head.{name}") for name in ("weight", "bias")}
    shape, encoder = vit_encoder(reader, "", num_attention_heads, image_size)
    config = BeitConfig(**shape, num_labels=classifier["classifier.weight"].shape[0])
    model = BeitForImageClassification(config)
    load_exactly(model, {**{f"beit.{name}": tensor for name, tensor in encoder.items()}, **classifier}, reader.source)
    return model.eval()


def beit_image_processor(config: BeitConfig, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> ViTImageProcessorPil:
    """The official BEiT evaluation input: resized to the image size, normalised with 0.5 / 0.5 (``_cfg``)."""
    return ViTImageProcessorPil(
        size={"height": config.image_size, "width": config.image_size}, image_mean=list(mean), image_std=list(std)
    )


def convert_vqkd(reader: StateReader, num_attention_heads=None) -> VQKDTokenizer:
    """BEiT v2's VQ-KD tokenizer state dict → `VQKDTokenizer` (no teacher attached: it tokenizes, it does not train
    until `set_teacher`)."""
    reader.drop(r"(teacher_model|scaling_layer|loss)\.", "the distillation teacher, not part of the tokenizer")
    reader.drop(
        r"quantize\.(embedding\.(cluster_size|embed_avg)|cluster_size)$",
        "the official EMA statistics of the codebook; maskvision keeps its own",
    )
    codebook = reader.take("quantize.embedding.weight")
    initialized = reader.take_optional("quantize.embedding.initted")  # a released tokenizer's codebook is trained
    tensors = {
        "codebook": codebook,
        "codebook_initialized": codebook.new_tensor(
            True if initialized is None else bool(initialized.flatten()[0]), dtype=bool
        ),
    }
    shapes = {}
    for part, task_layer in (("encoder", "encode_task_layer"), ("decoder", "decode_task_layer")):
        # Their fc_norm normalises every patch token: the final LayerNorm of a BeitModel without mean pooling.
        shapes[part], part_tensors = vit_encoder(reader, f"{part}.", num_attention_heads if part == "encoder" else None)
        tensors.update(
            {
                f"{part}.{name.replace('pooler.layernorm.', 'layernorm.')}": tensor
                for name, tensor in part_tensors.items()
            }
        )
        tensors.update(
            {
                f"{task_layer}.{layer}.{name}": reader.take(f"{task_layer}.{layer}.{name}")
                for layer in ("0", "2")
                for name in ("weight", "bias")
            }
        )
    encoder_shape = shapes["encoder"]
    vit = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    config = VQKDConfig(
        vocab_size=codebook.shape[0],
        codebook_dim=codebook.shape[1],
        kmeans_init=False,
        image_size=encoder_shape["image_size"],
        patch_size=encoder_shape["patch_size"],
        num_channels=encoder_shape["num_channels"],
        encoder_config=BeitConfig(**{name: encoder_shape[name] for name in vit}, **VQKD_VIT_DEFAULTS),
        decoder_config=BeitConfig(**{name: shapes["decoder"][name] for name in vit}, **VQKD_VIT_DEFAULTS),
        teacher_hidden_size=tensors["decode_task_layer.2.weight"].shape[0],
    )
    model = VQKDTokenizer(config)
    load_exactly(model, tensors, reader.source)
    return model.eval()


__all__ = ["beit_image_processor", "convert_beit_finetuned", "convert_beit_pretraining", "convert_vqkd"]
