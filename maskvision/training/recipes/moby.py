"""`maskvision pretrain moby`: MoBY (Xie et al. 2021, arXiv:2105.04553) with the official recipe.

    maskvision pretrain moby --dataset SOURCE --output_dir DIR [--backbone swin|vit --model_size tiny ...]

Swin-T by default (``--backbone vit`` for the paper's DeiT-S), two independently cropped views with BYOL's colour
recipe, projector and predictor with BatchNorm, momentum target 0.99 → 1 and two 4096-key queues, symmetric InfoNCE
at temperature 0.2. Optimisation follows the official configs (Transformer-SSL ``moby_swin_tiny.yaml``): AdamW
(0.9, 0.999), lr 1e-3 at batch 512 scaled linearly with the batch, weight decay 0.05 on all but the 1-D parameters
and biases (the official optimizer), 5 of 300 epochs of warm-up from 5e-7 then a cosine to 5e-6 (both at batch 512,
scaled alike), gradient clipping (5.0 on the official summed loss: 2.5 on maskvision's mean of the two directions),
the last incomplete batch dropped (BatchNorm heads) and no buffer broadcast under DDP (the queues are kept identical
by construction). Under DDP on GPUs the heads' BatchNorm is synchronised across processes, as the official code
does. Every row with its official source: RECIPES.md.
The checkpoint goes to ``DIR``, the stock transformers encoder (`SwinModel` / `BeitModel` + image processor) to
``DIR/encoder``.
"""

import logging
import os

import torch
from torch import nn
from transformers import SwinConfig

from ...configuration.backbones import SWIN_SIZES
from ...configuration.configuration_moby import MobyConfig
from ...modeling.modeling_moby import MobyForPreTraining
from ..inputs.collators import TwoViewCollator
from ..loop.callbacks import MomentumTeacherCallback
from ..runs.initialization import announce, fit_to_checkpoint, size_name, vit_flags
from ..runs.pretrain import DataArguments, PretrainingRecipe, run_pretraining
from .moby_arguments import SWIN_ONLY, MobyModelArguments, MobyTrainingArguments

logger = logging.getLogger(__name__)


class MobyRecipe(PretrainingRecipe):
    name = "moby"
    model_arguments = MobyModelArguments
    training_arguments = MobyTrainingArguments

    def build_model(self, model_args: MobyModelArguments) -> MobyForPreTraining:
        path = model_args.model_name_or_path
        if path:
            model_args = fit_to_checkpoint(model_args, _shape_flags, MobyConfig.model_type)
            model = MobyForPreTraining.from_backbone(path, model_args.config())
            announce(model)
        else:
            model = MobyForPreTraining(model_args.config())
        distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if model_args.sync_batch_norm and model_args.head_norm == "batch" and distributed and torch.cuda.is_available():
            logger.info("Synchronising the heads' BatchNorm across %s processes.", os.environ["WORLD_SIZE"])
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model

    def build_collator(self, model: MobyForPreTraining, model_args: MobyModelArguments, seed: int) -> TwoViewCollator:
        config = model.config
        return TwoViewCollator(
            image_size=config.backbone_config.image_size,
            image_mean=config.image_mean,
            image_std=config.image_std,
            min_crop_scale=model_args.min_crop_scale,
            seed=seed,
        )

    def build_callbacks(self, model: MobyForPreTraining, model_args: MobyModelArguments):
        return [MomentumTeacherCallback(model.config.momentum, model.config.final_momentum)]


def _shape_flags(encoder) -> tuple[dict, dict]:
    if isinstance(encoder, SwinConfig):
        shape = {name: getattr(encoder, name) for name in ("patch_size", *SWIN_ONLY)}
        return {"backbone": "swin", **shape}, {"model_size": size_name(encoder, SWIN_SIZES)}
    shape, checks = vit_flags(encoder)
    return {"backbone": "vit", **shape}, checks


RECIPE = MobyRecipe()


def demo_stage(context) -> dict:
    """A tiny Swin (32 px, patch 4, windows of 4, two stages) pretrained with MoBY on the demo data and exported
    to ``context.path("moby", "encoder")``: about 2 minutes on 2 cores, a few steps with ``context.quick``."""
    output_dir = context.path("moby")
    model_args = MobyModelArguments(
        image_size=32,
        patch_size=4,
        window_size=4,
        embed_dim=48,
        depths=[2, 6],
        num_heads=[3, 6],
        drop_path_rate=0.0,
        projector_hidden_size=1024,
        predictor_hidden_size=1024,
        queue_size=512,  # a quarter of the 2 000 demo images: a queue near the data size holds each image's own keys
        min_crop_scale=0.35,  # 32 px images: the official 0.08 leaves 9 px crops
    )
    training_args = MobyTrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=64,
        learning_rate=2e-3,
        warmup_steps=0.1,
        num_train_epochs=8,
        max_steps=3 if context.quick else -1,
        logging_steps=1 if context.quick else 10,
        save_strategy="no",
        seed=context.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = run_pretraining(RECIPE, DataArguments(dataset=context.dataset), model_args, training_args)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return {
        "first_loss": round(logs[0]["loss"], 3),
        "loss": round(logs[-1]["loss"], 3),
        "contrastive_accuracy": round(logs[-1]["contrastive_accuracy"], 4),
        "encoder": os.path.join(output_dir, "encoder"),
    }
