"""Every default a recipe resolves to, beside the official value and the official file it comes from: one table per
method, per tokenizer and for fine-tuning. The one definition of RECIPES.md (``python -m
maskvision.training.recipes.official > RECIPES.md``) and of the test that resolves each recipe's defaults and checks
every row (``tests/test_recipes.py``).

A row reads its value from the defaults as the command resolves them (`Defaults`: the argument dataclasses, the
config and collator they build, the no-decay parameters of a small model with the same switches) and states the
official value with its source; a deliberate difference says why in its own column.
"""

import sys
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

OFFICIAL_REPOSITORIES = {
    "unilm": "https://github.com/microsoft/unilm",
    "ExtreMA": "https://github.com/microsoft/ExtreMA",
    "Transformer-SSL": "https://github.com/SwinTransformer/Transformer-SSL",
}


@dataclass(frozen=True)
class At:
    """A learning rate given for a batch size (scaled linearly with the effective batch)."""

    value: float
    batch: int

    def __str__(self) -> str:
        return f"{_number(self.value)} at batch {self.batch}"


@dataclass(frozen=True)
class Row:
    setting: str
    read: Callable[[SimpleNamespace], Any]  # the default as the recipe resolves it
    value: Any  # what it must be (the test asserts read(defaults) == value)
    official: str
    source: str
    difference: str = ""
    shown: str | None = None  # how the table shows the value, when str(value) would not say it


@dataclass(frozen=True)
class Table:
    title: str
    command: str
    defaults: Callable[[], SimpleNamespace]
    rows: list[Row] = field(default_factory=list)


def _number(value) -> str:
    """1.5e-3 rather than 0.0015, 3 rather than 3.0: numbers as the official code writes them."""
    if not isinstance(value, float):
        return str(value)
    if value and abs(value) < 1e-2:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}"


def show(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(show(item) for item in value) + ")"
    if value is None:
        return "none"
    return _number(value) if not isinstance(value, bool) else ("yes" if value else "no")


# ------------------------------------------------------------------------------------------------ reading defaults
def _no_decay(model) -> tuple[str, ...]:
    """The multi-dimensional trainable parameters kept out of weight decay (1-D ones and biases never decay), by the
    trainer's rule (`optim.decay_parameter_names`), as sorted last name components."""
    from ..loop.optim import decay_parameter_names

    decayed = set(decay_parameter_names(model))
    names = {
        name.rsplit(".", 1)[-1]
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and parameter.ndim > 1 and name not in decayed
    }
    return tuple(sorted(names))


def _resampling(resample) -> str:
    from ..inputs.transforms import RESAMPLING

    return next(name for name, value in RESAMPLING.items() if value == resample)


def _jitter(color) -> tuple:
    """(brightness, contrast, saturation, hue, probability, grayscale probability) of a `ColorAugmentation`."""
    if color is None:
        return None
    return (color.brightness, color.contrast, color.saturation, color.hue, color.jitter_prob, color.grayscale_prob)


def _optimisation(args) -> dict:
    return dict(
        optimizer=args.optim.value,
        betas=(args.adam_beta1, args.adam_beta2),
        lr=At(args.base_learning_rate, args.lr_reference_batch),
        schedule=args.lr_scheduler_type.value,
        floor=At(args.base_min_learning_rate, args.lr_reference_batch),
        warmup_start=At(args.base_warmup_learning_rate, args.lr_reference_batch),
    )


def beit_defaults() -> SimpleNamespace:
    from ...configuration.configuration_beit_mim import BeitMimConfig
    from ...modeling.modeling_beit_mim import BeitMimForPreTraining
    from .beit import RECIPE, BeitModelArguments, BeitTrainingArguments

    model_args, args = BeitModelArguments(), BeitTrainingArguments()
    config = model_args.config()
    stand_in = SimpleNamespace(config=config, tokenizer=SimpleNamespace(downsample_factor=8))  # DALL-E's x8: 112 px
    tiny = BeitMimForPreTraining(BeitMimConfig.from_size("tiny", image_size=32, patch_size=4, target="pixels"))
    return SimpleNamespace(
        model_args=model_args,
        args=args,
        config=config,
        **_optimisation(args),
        collator=RECIPE.build_collator(stand_in, model_args, seed=0),
        no_decay=_no_decay(tiny),
    )


def extrema_defaults() -> SimpleNamespace:
    from ...modeling.modeling_extrema import ExtremaForPreTraining
    from .extrema import RECIPE, ExtremaModelArguments, ExtremaTrainingArguments, build_config

    model_args, args = ExtremaModelArguments(), ExtremaTrainingArguments()
    config = build_config(model_args)
    tiny = ExtremaForPreTraining(
        build_config(
            ExtremaModelArguments(
                model_size="tiny",
                image_size=32,
                patch_size=4,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_masks=2,
                projector_hidden_size=32,
                projection_size=16,
            )
        )
    )
    return SimpleNamespace(
        model_args=model_args,
        args=args,
        config=config,
        **_optimisation(args),
        no_decay=_no_decay(tiny),
        collator=RECIPE.build_collator(SimpleNamespace(config=config), model_args, seed=0),
        large=build_config(ExtremaModelArguments(model_size="large")),
    )


def moby_defaults() -> SimpleNamespace:
    from ...modeling.modeling_moby import MobyForPreTraining
    from .moby import RECIPE, MobyModelArguments, MobyTrainingArguments

    model_args, args = MobyModelArguments(), MobyTrainingArguments()
    config = model_args.config()
    tiny = MobyForPreTraining(
        MobyModelArguments(
            image_size=32,
            window_size=4,
            embed_dim=16,
            depths=[1, 1],
            num_heads=[1, 2],
            projector_hidden_size=32,
            predictor_hidden_size=32,
            projection_dim=16,
            queue_size=16,
        ).config()
    )
    return SimpleNamespace(
        model_args=model_args,
        args=args,
        config=config,
        **_optimisation(args),
        collator=RECIPE.build_collator(SimpleNamespace(config=config), model_args, seed=0),
        no_decay=_no_decay(tiny),
    )


def _tokenizer_defaults(tokenizer_type: str) -> SimpleNamespace:
    from ..inputs.collators import TokenizerCollator
    from ..runs.tokenizer_arguments import TOKENIZER_INTERPOLATION, TokenizerArguments, TokenizerTrainingArguments
    from ..runs.tokenizer_presets import TOKENIZERS

    model_args = TokenizerArguments(tokenizer_type=tokenizer_type)
    args = TokenizerTrainingArguments().resolve_for(tokenizer_type)
    config_class, model_class, preset = TOKENIZERS[tokenizer_type]
    config = config_class(**preset(model_args.model_size))
    collator = TokenizerCollator(
        config.image_size, model_args.min_crop_scale, interpolation=TOKENIZER_INTERPOLATION[tokenizer_type]
    )
    tiny = model_class(config_class(**preset("tiny")))
    return SimpleNamespace(
        model_args=model_args,
        args=args,
        config=config,
        collator=collator,
        no_decay=_no_decay(tiny),
        **_optimisation(args),
    )


def dvae_defaults() -> SimpleNamespace:
    return _tokenizer_defaults("dvae")


def vqkd_defaults() -> SimpleNamespace:
    from transformers import CLIPConfig, CLIPModel

    from ...modeling.modeling_vqkd import image_tower

    defaults = _tokenizer_defaults("vqkd")
    tower = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    clip = CLIPModel(CLIPConfig(vision_config=dict(tower, image_size=16, patch_size=8), text_config=tower))
    defaults.clip_teacher = type(image_tower(clip)).__name__  # what load_teacher makes of a CLIP model
    return defaults


def finetune_defaults() -> SimpleNamespace:
    from transformers import BeitConfig, BeitForImageClassification

    from ...evaluation.processors import build_image_processor
    from ..runs.finetune import (
        DEFAULT_LAYER_DECAY,
        ClassificationTransform,
        FinetuneArguments,
        FinetuneModelArguments,
        TrainingAugmentation,
    )

    model_args, args = FinetuneModelArguments(model="(checkpoint)"), FinetuneArguments()
    # BEiT's fine-tuning model, small: relative positions in every layer, mean pooling, layer scale
    classifier = BeitForImageClassification(
        BeitConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            use_relative_position_bias=True,
            use_mean_pooling=True,
            layer_scale_init_value=0.1,
            num_labels=3,
        )
    )
    processor = build_image_processor(224, (0.5,) * 3, (0.5,) * 3)
    return SimpleNamespace(
        model_args=model_args,
        args=args,
        **_optimisation(args),
        no_decay=_no_decay(classifier),
        layer_decay=DEFAULT_LAYER_DECAY["beit"],
        transform=ClassificationTransform(processor, train=True),
        augmentation=TrainingAugmentation(processor, model_args.rand_augment, model_args.random_erasing),
    )


# ------------------------------------------------------------------------------------------------------ the tables
UNILM = "unilm"
BEIT_README = "beit/README.md (ImageNet-1k command)"
BEIT_RUN = "beit/run_beit_pretraining.py"
SCALED = "scaled linearly with the effective batch, the same value at the official batch"

BEIT = Table(
    "BEiT pretraining", "maskvision pretrain beit", beit_defaults,
    [
        Row("optimizer", lambda d: d.optimizer, "adamw_torch_fused", "AdamW, eps 1e-8", f"{UNILM} {BEIT_RUN}",
            "transformers' fused AdamW kernel: the same update"),
        Row("betas", lambda d: d.betas, (0.9, 0.999), "(0.9, 0.999) (--opt_betas)", f"{UNILM} {BEIT_RUN}"),
        Row("learning rate", lambda d: d.lr, At(1.5e-3, 2048), "1.5e-3 for 16 GPUs x 128 = 2048 (--lr, unscaled)",
            f"{UNILM} {BEIT_README}", SCALED),
        Row("schedule", lambda d: d.schedule, "cosine", "cosine per step after a linear warm-up from 0",
            f"{UNILM} beit/utils.py cosine_scheduler"),
        Row("lr floor", lambda d: d.floor, At(1e-5, 2048), "min_lr 1e-5", f"{UNILM} {BEIT_RUN}", SCALED),
        Row("warm-up", lambda d: d.args.warmup_steps, 10 / 800, "10 epochs (--warmup_epochs 10)",
            f"{UNILM} {BEIT_README}", shown="10 of 800 epochs (0.0125 of the steps)"),
        Row("epochs", lambda d: d.args.num_train_epochs, 800, "800", f"{UNILM} {BEIT_README}"),
        Row("batch per device", lambda d: d.args.per_device_train_batch_size, 128, "128 x 16 GPUs",
            f"{UNILM} {BEIT_README}"),
        Row("weight decay", lambda d: d.args.weight_decay, 0.05, "0.05, constant (weight_decay_end unset)",
            f"{UNILM} {BEIT_RUN}"),
        Row("no weight decay on", lambda d: d.no_decay, ("cls_token",),
            "1-D parameters, biases, pos_embed, cls_token ([MASK] and the relative position table decay)",
            f"{UNILM} beit/optim_factory.py, beit/modeling_pretrain.py no_weight_decay",
            shown="1-D parameters (norms, biases, layer scale), cls_token (no absolute position table)"),
        Row("gradient clipping", lambda d: d.args.max_grad_norm, 3.0, "3.0 (--clip_grad)", f"{UNILM} {BEIT_README}"),
        Row("drop path", lambda d: d.config.backbone_config.drop_path_rate, 0.1, "0.1 (--drop_path)",
            f"{UNILM} {BEIT_README}"),
        Row("layer scale", lambda d: d.config.backbone_config.layer_scale_init_value, 0.1,
            "0.1 for base, 1e-5 for large", f"{UNILM} {BEIT_README}", shown="0.1 (1e-5 for --model_size large)"),
        Row("masking", lambda d: (d.config.num_masking_patches, d.config.min_num_patches, d.config.min_aspect),
            (75, 16, 0.3), "75 of 196 patches, blocks of >= 16, aspect 0.3-1/0.3",
            f"{UNILM} {BEIT_RUN}, beit/masking_generator.py",
            "on other grids both counts keep their share of the grid", shown="75 of 196, blocks >= 16, aspect 0.3"),
        Row("crop scale", lambda d: d.collator.views.cropper.scale, (0.08, 1.0), "(0.08, 1)",
            f"{UNILM} beit/transforms.py RandomResizedCropAndInterpolationWithTwoPic"),
        Row("resampling (encoder, tokenizer view)",
            lambda d: (_resampling(d.collator.views.resample), _resampling(d.collator.views.tokenizer_resample)),
            ("bicubic", "lanczos"), "bicubic, lanczos (--train_interpolation, --second_interpolation)",
            f"{UNILM} {BEIT_RUN}"),
        Row("colour augmentation", lambda d: _jitter(d.collator.views.color), (0.4, 0.4, 0.4, 0.0, 1.0, 0.0),
            "ColorJitter(0.4, 0.4, 0.4) on every image before the crop and flip: both views",
            f"{UNILM} beit/datasets.py DataAugmentationForBEiT",
            "jittered after the crop (batched, on the device with --augment_on_device) with one draw for both views; "
            "contrast blends with the crop's mean gray, not the whole image's",
            shown="brightness, contrast, saturation 0.4, no hue, p = 1, the same on both views"),
        Row("normalisation", lambda d: (tuple(d.config.image_mean), tuple(d.config.image_std)),
            ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
            "(0.5, 0.5, 0.5) by default; ImageNet's with --imagenet_default_mean_and_std (the ImageNet-1k command)",
            f"{UNILM} beit/datasets.py, {BEIT_README}", shown="mean 0.5, std 0.5"),
    ],
)  # fmt: skip

EXTREMA_README = "README.md (pre-training command)"
EXTREMA = Table(
    "ExtreMA pretraining", "maskvision pretrain extrema", extrema_defaults,
    [
        Row("optimizer", lambda d: d.optimizer, "adamw_torch_fused", "AdamW", "ExtreMA main.py",
            "transformers' fused AdamW kernel: the same update"),
        Row("betas", lambda d: d.betas, (0.9, 0.95), "(0.9, 0.95) (--opt-betas)", f"ExtreMA {EXTREMA_README}"),
        Row("learning rate", lambda d: d.lr, At(1.5e-4, 256), "1.5e-4 x batch / 256", "ExtreMA main.py"),
        Row("schedule", lambda d: d.schedule, "cosine", "half cosine after a linear warm-up from 0",
            "ExtreMA main.py adjust_learning_rate"),
        Row("lr floor", lambda d: d.floor, At(0.0, 256), "0 (--min_lr)", "ExtreMA main.py"),
        Row("warm-up", lambda d: d.args.warmup_steps, 40 / 300, "40 epochs", f"ExtreMA {EXTREMA_README}",
            shown="40 of 300 epochs"),
        Row("epochs", lambda d: d.args.num_train_epochs, 300, "300", f"ExtreMA {EXTREMA_README}"),
        Row("batch per device", lambda d: d.args.per_device_train_batch_size, 256, "2048 on 8 GPUs (-b 2048)",
            f"ExtreMA {EXTREMA_README}"),
        Row("weight decay", lambda d: d.args.weight_decay, 0.1, "0.1, constant (--weight-decay-end .1)",
            f"ExtreMA {EXTREMA_README}"),
        Row("no weight decay on", lambda d: d.no_decay, ("cls_token",),
            "1-D parameters, biases, pos_embed (fixed sin-cos), cls_token", "ExtreMA main.py, vits.py no_weight_decay",
            shown="1-D parameters (norms, biases, layer scale), the pooling cls_token (position table frozen)"),
        Row("gradient clipping", lambda d: d.args.max_grad_norm, 0.0, "none (--clip_grad unset)", "ExtreMA main.py",
            shown="none"),
        Row("drop path", lambda d: d.config.backbone_config.drop_path_rate, 0.1, "0.1 student, 0 teacher",
            f"ExtreMA {EXTREMA_README}, main.py", shown="0.1 student, 0 teacher"),
        Row("layer scale (class attention)", lambda d: (d.config.pooling_layer_scale, d.large.pooling_layer_scale),
            (0.1, 1e-5), "0.1 for base, 1e-5 for large; none in the ViT blocks", "ExtreMA main.py, vits.py",
            shown="0.1, 1e-5 for large; none in the ViT blocks"),
        Row("masking", lambda d: (d.config.mask_ratio, d.config.num_masks, d.config.num_visible_patches),
            (0.8, 5, 39), "80% x 5 disjoint masks, int(196 x (1 - 0.8)) = 39 visible",
            f"ExtreMA {EXTREMA_README}, lib/builder.py generate_mask", shown="80% x 5, 39 of 196 visible each"),
        Row("crop scale", lambda d: d.collator.views.cropper.scale, (0.2, 1.0), "(0.2, 1), one crop for both branches",
            "ExtreMA main.py --crop-min, lib/augment.py"),
        Row("colour augmentation", lambda d: _jitter(d.collator.views.color), (0.4, 0.4, 0.2, 0.1, 0.8, 0.2),
            "ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, per branch", "ExtreMA lib/augment.py",
            shown="jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, drawn per branch"),
        Row("teacher momentum", lambda d: (d.config.base_momentum, d.config.final_momentum), (0.996, 1.0),
            "0.996 -> 1, cosine", "ExtreMA main.py adjust_ema_momentum",
            "updated once per optimizer step (the official, inside forward, breaks gradient accumulation)"),
        Row("loss, temperature", lambda d: (d.config.loss, d.config.temperature), ("byol", 0.2),
            "BYOL; InfoNCE at --contrast-temp 1.0", "ExtreMA main.py",
            "InfoNCE at 0.2: the released temperature 1.0 variant does not train (and crashes)",
            shown="BYOL (InfoNCE at 0.2 with --loss infonce)"),
    ],
)  # fmt: skip

SSL = "Transformer-SSL"
SSL_CONFIG = "configs/moby_swin_tiny.yaml, config.py"
MOBY = Table(
    "MoBY pretraining", "maskvision pretrain moby", moby_defaults,
    [
        Row("optimizer", lambda d: d.optimizer, "adamw_torch_fused", "AdamW, eps 1e-8", f"{SSL} optimizer.py",
            "transformers' fused AdamW kernel: the same update"),
        Row("betas", lambda d: d.betas, (0.9, 0.999), "(0.9, 0.999)", f"{SSL} config.py"),
        Row("learning rate", lambda d: d.lr, At(1e-3, 512), "BASE_LR 1e-3 x batch / 512", f"{SSL} {SSL_CONFIG}, "
            "moby_main.py"),
        Row("schedule", lambda d: d.schedule, "cosine", "timm CosineLRScheduler per step", f"{SSL} lr_scheduler.py",
            "the cosine runs over the steps after warm-up (BEiT's form); timm's counts the warm-up steps in it, a "
            "1.7% shift at 5 of 300 epochs"),
        Row("lr floor", lambda d: d.floor, At(5e-6, 512), "MIN_LR 5e-6 x batch / 512", f"{SSL} config.py, "
            "moby_main.py"),
        Row("warm-up start", lambda d: d.warmup_start, At(5e-7, 512), "WARMUP_LR 5e-7 x batch / 512",
            f"{SSL} config.py, moby_main.py"),
        Row("warm-up", lambda d: d.args.warmup_steps, 5 / 300, "5 epochs", f"{SSL} {SSL_CONFIG}",
            shown="5 of 300 epochs"),
        Row("epochs", lambda d: d.args.num_train_epochs, 300, "300", f"{SSL} {SSL_CONFIG}"),
        Row("batch per device", lambda d: d.args.per_device_train_batch_size, 64, "64 x 8 GPUs", f"{SSL} config.py"),
        Row("weight decay", lambda d: d.args.weight_decay, 0.05, "0.05", f"{SSL} {SSL_CONFIG}"),
        Row("no weight decay on", lambda d: d.no_decay, (), "1-D parameters and biases only: the MoBY wrapper "
            "defines no no_weight_decay, so relative position tables decay", f"{SSL} optimizer.py, models/moby.py",
            shown="1-D parameters (norms, biases) only"),
        Row("gradient clipping", lambda d: d.args.max_grad_norm, 2.5, "5.0 on the sum of the two directions",
            f"{SSL} config.py CLIP_GRAD", "2.5: maskvision's loss is the mean of the two directions (half the sum)"),
        Row("drop path (online, target)", lambda d: (d.config.backbone_config.drop_path_rate,
                                                     d.config.target_drop_path_rate), (0.2, 0.0), "0.2, 0",
            f"{SSL} {SSL_CONFIG}"),
        Row("momentum", lambda d: (d.config.momentum, d.config.final_momentum), (0.99, 1.0), "0.99 -> 1, cosine",
            f"{SSL} models/moby.py"),
        Row("temperature, queue", lambda d: (d.config.temperature, d.config.queue_size), (0.2, 4096), "0.2, 4096",
            f"{SSL} {SSL_CONFIG}"),
        Row("crop scale", lambda d: d.collator.views.cropper.scale, (0.08, 1.0), "(0.08, 1), two independent crops",
            f"{SSL} config.py SSL_AUG_CROP, data/build.py"),
        Row("colour augmentation", lambda d: (_jitter(d.collator.views.first_color),
                                              d.collator.views.first_color.blur_prob,
                                              d.collator.views.second_color.blur_prob,
                                              d.collator.views.second_color.solarize_prob),
            ((0.4, 0.4, 0.2, 0.1, 0.8, 0.2), 1.0, 0.1, 0.2),
            "BYOL's: ColorJitter(0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2; blur p 1.0 / 0.1, solarize p 0 / 0.2",
            f"{SSL} data/build.py (SSL_AUG_TYPE byol)",
            shown="jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2; blur 1.0 / 0.1; solarize 0 / 0.2"),
    ],
)  # fmt: skip

VQKD_DOC = "beit2/TOKENIZER.md"
VQKD_RUN = "beit2/run_vqkd_training.py"
VQKD = Table(
    "VQ-KD tokenizer (BEiT v2)", "maskvision tokenizer train --tokenizer_type vqkd --teacher CLIP", vqkd_defaults,
    [
        Row("optimizer", lambda d: d.optimizer, "adamw_torch_fused", "AdamW (--opt adamw)", f"{UNILM} {VQKD_DOC}",
            "transformers' fused AdamW kernel: the same update"),
        Row("betas", lambda d: d.betas, (0.9, 0.99), "(0.9, 0.99) (--opt_betas)", f"{UNILM} {VQKD_DOC}"),
        Row("learning rate", lambda d: d.lr, At(5e-5, 128), "5e-5 x batch / 128", f"{UNILM} {VQKD_RUN}"),
        Row("schedule", lambda d: d.schedule, "cosine", "cosine per step after a linear warm-up from 0",
            f"{UNILM} beit2/utils.py cosine_scheduler"),
        Row("lr floor", lambda d: d.floor, At(2.5e-6, 128), "min_lr 1e-5, unscaled: at the official 8 x 64 = 512",
            f"{UNILM} {VQKD_RUN}, {VQKD_DOC}", "scaled with the batch: 1e-5 at 512 as the official run"),
        Row("warm-up", lambda d: d.args.warmup_steps, 0.1, "10 epochs", f"{UNILM} {VQKD_DOC}",
            shown="10 of 100 epochs"),
        Row("epochs", lambda d: d.args.num_train_epochs, 100, "100", f"{UNILM} {VQKD_DOC}"),
        Row("batch per device", lambda d: d.args.per_device_train_batch_size, 64, "64 x 8 GPUs",
            f"{UNILM} {VQKD_DOC}"),
        Row("weight decay", lambda d: d.args.weight_decay, 1e-4, "1e-4", f"{UNILM} {VQKD_DOC}"),
        Row("no weight decay on", lambda d: d.no_decay, ("cls_token", "position_embeddings"),
            "1-D parameters, biases, the encoder's and decoder's cls_token and pos_embed, the codebook",
            f"{UNILM} beit2/modeling_vqkd.py no_weight_decay",
            shown="1-D parameters, biases, cls_token and position_embeddings of both ViTs (the codebook is an EMA "
            "buffer)"),
        Row("gradient clipping", lambda d: d.args.max_grad_norm, 0.0, "none (--clip_grad unset)",
            f"{UNILM} {VQKD_RUN}", shown="none"),
        Row("codebook", lambda d: (d.config.vocab_size, d.config.codebook_dim, d.config.codebook_decay,
                                   d.config.kmeans_init), (8192, 32, 0.99, True),
            "8192 x 32, EMA 0.99, k-means init", f"{UNILM} {VQKD_DOC}",
            shown="8192 x 32, EMA decay 0.99, k-means initialisation"),
        Row("encoder, decoder", lambda d: (d.config.encoder_config.num_hidden_layers,
                                           d.config.decoder_config.num_hidden_layers,
                                           d.config.encoder_config.use_absolute_position_embeddings,
                                           d.config.encoder_config.layer_scale_init_value),
            (12, 3, True, 0.0), "ViT-B/16 encoder, 3-layer decoder, absolute positions, no layer scale",
            f"{UNILM} beit2/modeling_vqkd.py vqkd_encoder_base_decoder_3x768x12_clip",
            shown="12 / 3 layers, absolute positions, no layer scale"),
        Row("teacher target (CLIP)", lambda d: d.clip_teacher, "ProjectedImageTower",
            "ln_post(x) @ visual.proj of every patch token (512-d for ViT-B/16)",
            f"{UNILM} beit2/modeling_vqkd.py get_regress_target", shown="ln_post(x) @ visual.proj"),
        Row("crop scale", lambda d: d.collator.views.cropper.scale, (0.08, 1.0), "(0.08, 1) (--min_crop_scale)",
            f"{UNILM} {VQKD_DOC}"),
        Row("resampling", lambda d: _resampling(d.collator.views.resample), "bicubic", "bicubic "
            "(--train_interpolation)", f"{UNILM} {VQKD_DOC}"),
        Row("colour augmentation", lambda d: _jitter(d.collator.views.color), None, "none (--color_jitter 0)",
            f"{UNILM} {VQKD_RUN}"),
    ],
)  # fmt: skip

DALLE = "DALL-E paper (Ramesh et al. 2021) appendix A.2; OpenAI released no training code"
DVAE = Table(
    "dVAE tokenizer (DALL-E)", "maskvision tokenizer train", dvae_defaults,
    [
        Row("optimizer", lambda d: d.optimizer, "adamw_torch_fused", "AdamW, eps 1e-8", DALLE,
            "transformers' fused AdamW kernel: the same update"),
        Row("betas", lambda d: d.betas, (0.9, 0.999), "(0.9, 0.999)", DALLE),
        Row("learning rate", lambda d: d.lr, At(1e-4, 512), "1e-4 at batch 512", DALLE, SCALED),
        Row("lr floor", lambda d: d.floor, At(1.25e-6, 512), "annealed to 1.25e-6 by a cosine over 1.2M updates",
            DALLE, SCALED),
        Row("warm-up", lambda d: d.args.warmup_steps, 0.1, "not given", DALLE, "10% as VQ-KD's 10 of 100 epochs",
            shown="10% of the steps"),
        Row("epochs", lambda d: d.args.num_train_epochs, 100, "3M updates of 512 (lr annealed over the first 1.2M)",
            DALLE, "a user's data is counted in epochs: 100, as VQ-KD"),
        Row("weight decay", lambda d: d.args.weight_decay, 1e-4, "1e-4", DALLE),
        Row("no weight decay on", lambda d: d.no_decay, (), "not given", DALLE,
            "the rule of every other recipe: 1-D parameters and biases", shown="1-D parameters and biases"),
        Row("gradient clipping", lambda d: d.args.max_grad_norm, 1.0, "not given", DALLE,
            "1.0 guards the Gumbel-softmax relaxation against the occasional huge gradient"),
        Row("temperature", lambda d: (d.model_args.temperature_start, d.model_args.temperature_end,
                                      d.model_args.temperature_steps), (1.0, 1 / 16, 0.125),
            "1 -> 1/16 over the first 150,000 updates (cosine)", DALLE,
            "over the same share of the run: 150,000 of the 1.2M-update schedule",
            shown="1 -> 1/16 over 12.5% of the run"),
        Row("KL weight", lambda d: (d.model_args.kl_weight, d.model_args.kl_warmup_steps), (6.6, 0.05),
            "0 -> 6.6 over the first 5,000 updates", DALLE,
            "over 5% of the run: 5,000 of 1.2M (0.4%) is under one step of a short run", shown="0 -> 6.6 over 5%"),
        Row("codebook, grid", lambda d: (d.config.vocab_size, d.config.image_size), (8192, 112),
            "8192 codes; 112 px views for BEiT's 14 x 14 grid", f"{DALLE}; {UNILM} {BEIT_RUN} --second_input_size"),
        Row("crop scale", lambda d: d.collator.views.cropper.scale, (0.08, 1.0),
            "(0.08, 1): BEiT's tokenizer view (the paper's crops are not given)", f"{UNILM} beit/transforms.py"),
        Row("resampling", lambda d: _resampling(d.collator.views.resample), "lanczos",
            "lanczos (--second_interpolation)", f"{UNILM} {BEIT_RUN}"),
    ],
)  # fmt: skip

FT_DOC = "beit/get_started_for_image_classification.md (BEiT-base, self-supervised checkpoint)"
FT_RUN = "beit/run_class_finetuning.py"
FINETUNE = Table(
    "Fine-tuning (BEiT's recipe)", "maskvision finetune", finetune_defaults,
    [
        Row("optimizer", lambda d: d.optimizer, "adamw_torch_fused", "AdamW, eps 1e-8", f"{UNILM} {FT_RUN}",
            "transformers' fused AdamW kernel: the same update"),
        Row("betas", lambda d: d.betas, (0.9, 0.999), "(0.9, 0.999) (--opt_betas unset)", f"{UNILM} {FT_RUN}"),
        Row("learning rate", lambda d: d.lr, At(4e-3, 1024), "4e-3 for 8 GPUs x 128 = 1024 (--lr, unscaled)",
            f"{UNILM} {FT_DOC}", SCALED),
        Row("schedule", lambda d: d.schedule, "cosine", "cosine per step after a linear warm-up from 0",
            f"{UNILM} {FT_RUN}"),
        Row("lr floor", lambda d: d.floor, At(1e-6, 1024), "min_lr 1e-6", f"{UNILM} {FT_RUN}", SCALED),
        Row("warm-up", lambda d: d.args.warmup_steps, 0.2, "20 epochs", f"{UNILM} {FT_DOC}",
            shown="20 of 100 epochs"),
        Row("epochs", lambda d: d.args.num_train_epochs, 100.0, "100", f"{UNILM} {FT_DOC}"),
        Row("weight decay", lambda d: d.args.weight_decay, 0.05, "0.05", f"{UNILM} {FT_DOC}"),
        Row("no weight decay on", lambda d: d.no_decay, ("cls_token",),
            "1-D parameters, biases, pos_embed, cls_token (relative position tables decay)",
            f"{UNILM} {FT_RUN}, beit/modeling_finetune.py no_weight_decay",
            shown="1-D parameters, biases, cls_token (and position_embeddings where the checkpoint has them)"),
        Row("gradient clipping", lambda d: d.args.max_grad_norm, 0.0, "none (--clip_grad unset)", f"{UNILM} {FT_RUN}",
            shown="none"),
        Row("layer decay", lambda d: d.layer_decay, 0.65, "0.65", f"{UNILM} {FT_DOC}",
            shown="0.65 for BEiT checkpoints (ViT 0.75, Swin 0.9)"),
        Row("drop path", lambda d: d.model_args.drop_path_rate, 0.1, "0.1", f"{UNILM} {FT_DOC}"),
        Row("label smoothing", lambda d: d.args.label_smoothing_factor, 0.1, "0.1 (--smoothing)",
            f"{UNILM} {FT_RUN}"),
        Row("RandAugment", lambda d: (d.model_args.rand_augment, repr(d.augmentation.rand_augment)),
            ("rand-m9-mstd0.5-inc1", "RandAugment(m=9.0, n=2, mstd=0.5, p=0.5)"), "rand-m9-mstd0.5-inc1 (--aa)",
            f"{UNILM} {FT_RUN}", "batched on the device, each image its own ops (timm's, per image in PIL)",
            shown="rand-m9-mstd0.5-inc1: 2 ops, p 0.5, magnitude N(9, 0.5), fill: the mean, bicubic"),
        Row("random erasing", lambda d: (d.model_args.random_erasing, d.augmentation.random_erasing.probability),
            (0.25, 0.25), "0.25, mode pixel, one box (--reprob, --remode, --recount)", f"{UNILM} {FT_RUN}",
            shown="0.25, per-pixel noise, one box"),
        Row("mixup, cutmix", lambda d: (d.model_args.mixup_alpha, d.model_args.cutmix_alpha, d.model_args.mixup_prob,
                                        d.model_args.mixup_switch_prob), (0.8, 1.0, 1.0, 0.5),
            "0.8, 1.0 (--mixup, --cutmix); prob 1.0, switch 0.5", f"{UNILM} {FT_DOC}, {FT_RUN}"),
        Row("crop scale, resampling", lambda d: (d.transform.views.cropper.scale,
                                                 _resampling(d.transform.views.resample)),
            ((0.08, 1.0), "bicubic"), "(0.08, 1), bicubic (timm create_transform, --train_interpolation)",
            f"{UNILM} beit/datasets.py build_transform"),
        Row("colour jitter", lambda d: d.transform.views.color, None,
            "none: timm skips --color_jitter 0.4 when RandAugment is on", f"{UNILM} beit/datasets.py build_transform"),
    ],
)  # fmt: skip

TABLES = [BEIT, EXTREMA, MOBY, VQKD, DVAE, FINETUNE]


# ------------------------------------------------------------------------------------------------------ markdown
def render_markdown() -> str:
    """RECIPES.md: every table with its rows (their values are checked against the resolved defaults by
    tests/test_recipes.py, so the page cannot go stale silently)."""
    lines = [
        "# Recipes: every default against the official code",
        "",
        "Generated by `python -m maskvision.training.recipes.official > RECIPES.md` from the rows in "
        "`maskvision/training/recipes/official.py`; `tests/test_recipes.py` resolves each recipe's defaults and checks "
        "every row, and that this file is up to date. Learning rates are given at a reference batch and scaled "
        "linearly with the effective batch (`per_device_train_batch_size x gradient_accumulation_steps x processes`), "
        "floors and warm-up starts with them. Official code: "
        + ", ".join(f"[{name}]({url})" for name, url in OFFICIAL_REPOSITORIES.items())
        + ".",
    ]
    for table in TABLES:
        lines += [
            "",
            f"## {table.title}: `{table.command}`",
            "",
            "| setting | maskvision | official | source | deliberate difference |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in table.rows:
            cells = [row.setting, row.shown or show(row.value), row.official, row.source, row.difference or "—"]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
