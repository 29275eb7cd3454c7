"""`maskvision pretrain extrema`: ExtreMA (Wu et al. 2022) with the official recipe, and its demo stage.

Official defaults (ViT-B/16, 300 epochs on ImageNet-1K): AdamW with betas (0.9, 0.95), learning rate 1.5e-4 x batch /
256 with 40 warm-up epochs and a cosine decay to 0, weight decay 0.1, no gradient clipping, student drop path 0.1,
80% x 5 disjoint masks, one shared crop (scale 0.2-1) with a colour augmentation per branch, teacher momentum
0.996 -> 1 (cosine), updated once per optimizer step; class-attention layer scale 0.1 (1e-5 for ViT-L). Every row
with its official source: RECIPES.md.

    maskvision pretrain extrema --dataset DIR_OR_PARQUET --output_dir runs/extrema \\
        --per_device_train_batch_size 256 --num_train_epochs 300

After training, the [CLS] slot of the exported stock encoder is calibrated on a few full views of the training set
(`ExportCalibrationCallback`), then the checkpoint goes to ``output_dir`` and the encoder to ``output_dir/encoder``.
"""

import logging
import os

import torch
from transformers import TrainerCallback

from ...configuration.configuration_extrema import (
    DEFAULT_POOLING_LAYER_SCALE,
    POOLING_LAYER_SCALE,
    ExtremaConfig,
    extrema_backbone_config,
)
from ...data.streaming import ImageStream
from ...modeling.modeling_extrema import ExtremaForPreTraining
from ..inputs.collators import MultiMaskCollator
from ..inputs.masking import RandomMaskGenerator
from ..loop.callbacks import MomentumTeacherCallback, unwrap_model
from ..runs.initialization import announce, fit_to_checkpoint, vit_flags
from ..runs.pretrain import DataArguments, PretrainingRecipe, run_pretraining
from .extrema_arguments import ExtremaModelArguments, ExtremaTrainingArguments

logger = logging.getLogger(__name__)


def build_config(args: ExtremaModelArguments) -> ExtremaConfig:
    overrides = {
        name: getattr(args, name)
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        if getattr(args, name) is not None
    }
    if "hidden_size" in overrides and "intermediate_size" not in overrides:
        overrides["intermediate_size"] = 4 * overrides["hidden_size"]
    backbone = extrema_backbone_config(
        args.model_size,
        image_size=args.image_size,
        patch_size=args.patch_size,
        drop_path_rate=args.drop_path_rate,
        **overrides,
    )
    return ExtremaConfig(
        backbone_config=backbone,
        mask_ratio=args.mask_ratio,
        num_masks=args.num_masks,
        loss=args.loss,
        temperature=args.temperature,
        base_momentum=args.base_momentum,
        final_momentum=args.final_momentum,
        pooling_depth=args.pooling_depth,
        pooling_layer_scale=(
            args.pooling_layer_scale
            if args.pooling_layer_scale is not None
            else POOLING_LAYER_SCALE.get(args.model_size, DEFAULT_POOLING_LAYER_SCALE)
        ),
        projector_hidden_size=args.projector_hidden_size,
        predictor_hidden_size=args.projector_hidden_size,
        projection_size=args.projection_size,
    )


class ExportCalibrationCallback(TrainerCallback):
    """At the end of training, calibrates the [CLS] slot of the exported encoder on the first ``num_images`` rows of
    the training set (their teacher views: full images), on the main process, before the checkpoint is saved."""

    def __init__(self, num_images: int = 64, steps: int = 100):
        if num_images < 0 or steps < 1:
            raise ValueError(f"num_images ({num_images}) must be >= 0 and steps ({steps}) >= 1.")
        self.num_images, self.steps = num_images, steps
        self.errors: dict[str, float] = {}

    def on_train_end(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if not self.num_images or not state.is_world_process_zero or train_dataloader is None:
            return
        if state.global_step < state.max_steps:  # stopped early (preempted): the run that finishes it calibrates
            return
        dataset, collate = train_dataloader.dataset, train_dataloader.collate_fn
        if isinstance(dataset, ImageStream):  # its first images; its loader's collate_fn wraps the collator
            dataset, collate = dataset.head(self.num_images), collate.collator
        rows = [dataset[index] for index in range(min(self.num_images, len(dataset)))]
        model = unwrap_model(model)
        device = next(model.parameters()).device
        batch = {key: value.to(device) for key, value in collate(rows).items()}
        if getattr(collate, "augment_on_device", False):  # uint8 crops: augment them as training did
            batch = collate.augment(batch)
        self.errors = model.calibrate_export(batch["teacher_pixel_values"], steps=self.steps)
        logger.info(
            "Export [CLS] slot calibrated on %d images: relative feature error %.4f (uncalibrated %.4f).",
            len(rows),
            self.errors["export_error"],
            self.errors["export_error_uncalibrated"],
        )


class ExtremaRecipe(PretrainingRecipe):
    name = "extrema"
    model_arguments = ExtremaModelArguments
    training_arguments = ExtremaTrainingArguments

    def build_model(self, model_args: ExtremaModelArguments) -> ExtremaForPreTraining:
        path = model_args.model_name_or_path
        if not path:
            return ExtremaForPreTraining(build_config(model_args))
        model_args = fit_to_checkpoint(model_args, vit_flags, ExtremaConfig.model_type)
        model = ExtremaForPreTraining.from_backbone(path, build_config(model_args))
        announce(model)
        return model

    def build_collator(
        self, model: ExtremaForPreTraining, model_args: ExtremaModelArguments, seed: int
    ) -> MultiMaskCollator:
        config = model.config
        backbone = config.backbone_config
        grid = backbone.image_size // backbone.patch_size
        return MultiMaskCollator(
            image_size=backbone.image_size,
            patch_size=backbone.patch_size,
            image_mean=config.image_mean,
            image_std=config.image_std,
            mask_generator=RandomMaskGenerator(grid, config.mask_ratio, config.num_masks),
            min_crop_scale=model_args.min_crop_scale,
            seed=seed,
        )

    def build_callbacks(self, model: ExtremaForPreTraining, model_args: ExtremaModelArguments) -> list[TrainerCallback]:
        return [
            MomentumTeacherCallback(model.config.base_momentum, model.config.final_momentum),
            ExportCalibrationCallback(model_args.calibration_images, model_args.calibration_steps),
        ]


RECIPE = ExtremaRecipe()


def demo_stage(context) -> dict:
    """A tiny ExtreMA (32 px, patch 4, width 64, 4 layers, 80% x 4 masks) on the demo set: ~2 min on 2 CPU cores."""
    output_dir = context.path("extrema")
    quick = context.quick
    model_args = ExtremaModelArguments(
        model_size="tiny",
        image_size=32,
        patch_size=4,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_masks=4,
        projector_hidden_size=256,
        projection_size=64,
        calibration_images=16 if quick else 64,
        calibration_steps=5 if quick else 50,
    )
    training_args = ExtremaTrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=16 if quick else 64,
        max_steps=3 if quick else 250,
        learning_rate=1e-3,
        warmup_steps=0.1,
        logging_steps=1 if quick else 10,
        save_strategy="no",
        dataloader_num_workers=0,
        seed=context.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=quick,
    )
    trainer = run_pretraining(RECIPE, DataArguments(dataset=context.dataset), model_args, training_args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    calibration = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, ExportCalibrationCallback))
    return {
        "steps": trainer.state.global_step,
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "export_error": round(calibration.errors.get("export_error", float("nan")), 5),
        "export_error_uncalibrated": round(calibration.errors.get("export_error_uncalibrated", float("nan")), 5),
        "encoder": os.path.join(output_dir, "encoder"),
    }
