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
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import SwinConfig

from ...configuration.backbones import SWIN_SIZES, swin_backbone_config
from ...configuration.configuration_moby import HEAD_NORMS, MobyConfig, moby_vit_backbone_config
from ...modeling.modeling_moby import MobyForPreTraining
from ..callbacks import MomentumTeacherCallback
from ..collators import TwoViewCollator
from ..initialization import announce, fit_to_checkpoint, size_name, vit_flags
from ..pretrain import DataArguments, PretrainingArguments, PretrainingRecipe, run_pretraining

logger = logging.getLogger(__name__)

BACKBONES = {"swin": ("tiny", 4), "vit": ("small", 16)}  # backbone → (default size, default patch size)
_SWIN_ONLY = ("window_size", "embed_dim", "depths", "num_heads")
_VIT_ONLY = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@dataclass
class MobyModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from a checkpoint (directory or Hub id): a MoBY run (continued with its settings), a "
                          "stock SwinModel, or a ViT-family encoder (BeitModel, ViTModel, DeiTModel, Dinov2Model); "
                          "the encoder's shape comes from it."},  # fmt: skip
    )
    backbone: str = field(
        default="swin", metadata={"help": "Encoder (vit: a DeiT-style ViT).", "choices": list(BACKBONES)}
    )
    model_size: str | None = field(
        default=None, metadata={"help": "Encoder size: Swin tiny/small/base (default tiny), ViT tiny/small/base/large "
                                        "(default small)."}  # fmt: skip
    )
    image_size: int = field(default=224, metadata={"help": "Side of the views in pixels."})
    patch_size: int | None = field(default=None, metadata={"help": "Patch size (default: 4 for Swin, 16 for ViT)."})
    window_size: int | None = field(default=None, metadata={"help": "Swin attention window (default 7)."})
    embed_dim: int | None = field(default=None, metadata={"help": "Custom Swin width of the first stage."})
    depths: list[int] | None = field(default=None, metadata={"help": "Custom Swin blocks per stage."})
    num_heads: list[int] | None = field(default=None, metadata={"help": "Custom Swin attention heads per stage."})
    hidden_size: int | None = field(default=None, metadata={"help": "Custom ViT width."})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "Custom ViT depth."})
    num_attention_heads: int | None = field(default=None, metadata={"help": "Custom ViT attention heads."})
    intermediate_size: int | None = field(default=None, metadata={"help": "Custom ViT MLP width (default 4x)."})
    drop_path_rate: float = field(default=0.2, metadata={"help": "Drop path of the online encoder."})
    target_drop_path_rate: float = field(default=0.0, metadata={"help": "Drop path of the target encoder."})
    projection_dim: int = field(default=256, metadata={"help": "Output width of projector and predictor."})
    projector_hidden_size: int = field(default=4096, metadata={"help": "Hidden width of the projector."})
    predictor_hidden_size: int = field(default=4096, metadata={"help": "Hidden width of the predictor."})
    head_norm: str = field(
        default="batch", metadata={"help": f"Heads' normalisation: {' or '.join(HEAD_NORMS)} (small batches)."}
    )
    sync_batch_norm: bool = field(
        default=True, metadata={"help": "Synchronise the heads' BatchNorm across processes (DDP on GPUs)."}
    )
    queue_size: int = field(default=4096, metadata={"help": "Keys per queue (the negatives)."})
    temperature: float = field(default=0.2, metadata={"help": "InfoNCE temperature."})
    momentum: float = field(default=0.99, metadata={"help": "Target momentum at the first step (cosine to 1)."})
    min_crop_scale: float = field(default=0.08, metadata={"help": "Smallest area fraction of a random crop."})

    def config(self) -> MobyConfig:
        if self.backbone not in BACKBONES:
            raise ValueError(f"--backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}.")
        other = _VIT_ONLY if self.backbone == "swin" else _SWIN_ONLY
        misplaced = [name for name in other if getattr(self, name) is not None]
        if misplaced:
            raise ValueError(f"--{', --'.join(misplaced)} do not apply to --backbone {self.backbone}.")
        size, patch_size = BACKBONES[self.backbone]
        own = _SWIN_ONLY if self.backbone == "swin" else _VIT_ONLY
        overrides = {name: getattr(self, name) for name in own if getattr(self, name) is not None}
        common = {"image_size": self.image_size, "patch_size": self.patch_size or patch_size}
        if self.backbone == "swin":
            backbone = swin_backbone_config(self.model_size or size, drop_path_rate=self.drop_path_rate, **common,
                                            **overrides)  # fmt: skip
        else:
            if "hidden_size" in overrides and "intermediate_size" not in overrides:
                overrides["intermediate_size"] = 4 * overrides["hidden_size"]
            backbone = moby_vit_backbone_config(self.model_size or size, drop_path_rate=self.drop_path_rate, **common,
                                                **overrides)  # fmt: skip
        return MobyConfig(
            backbone_config=backbone,
            projection_dim=self.projection_dim,
            projector_hidden_size=self.projector_hidden_size,
            predictor_hidden_size=self.predictor_hidden_size,
            head_norm=self.head_norm,
            queue_size=self.queue_size,
            temperature=self.temperature,
            momentum=self.momentum,
            target_drop_path_rate=self.target_drop_path_rate,
        )


@dataclass
class MobyTrainingArguments(PretrainingArguments):
    """The official MoBY optimisation (Transformer-SSL ``moby_swin_tiny.yaml``) on top of `PretrainingArguments`."""

    base_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate at lr_reference_batch."})
    lr_reference_batch: int = field(default=512, metadata={"help": "Batch size base_learning_rate is given for."})
    base_min_learning_rate: float = field(
        default=5e-6, metadata={"help": "Learning rate the cosine ends at, at lr_reference_batch (official MIN_LR)."}
    )
    base_warmup_learning_rate: float = field(
        default=5e-7, metadata={"help": "Learning rate the warm-up starts from, at lr_reference_batch (WARMUP_LR)."}
    )
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(
        default=2.5, metadata={"help": "Gradient clipping norm (the official 5.0 on the sum of the two directions)."}
    )
    num_train_epochs: float = field(default=300, metadata={"help": "Epochs (the paper: 300)."})
    warmup_steps: float = field(default=5 / 300, metadata={"help": "Warm-up steps, or a fraction of training if < 1."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Images per device and micro-batch."})
    dataloader_drop_last: bool = field(default=True, metadata={"help": "Drop the last incomplete batch (BatchNorm)."})
    ddp_broadcast_buffers: bool | None = field(
        default=False, metadata={"help": "Broadcast buffers under DDP (not needed: the queues stay identical)."}
    )


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
        shape = {name: getattr(encoder, name) for name in ("patch_size", *_SWIN_ONLY)}
        return {"backbone": "swin", **shape}, {"model_size": size_name(encoder, SWIN_SIZES)}
    shape, checks = vit_flags(encoder)
    return {"backbone": "vit", **shape}, checks


RECIPE = MobyRecipe()


def demo_stage(context) -> dict:
    """A tiny Swin (32 px, patch 4, windows of 4, two stages) pretrained with MoBY on the demo data and exported
    to ``context.path("moby", "encoder")``: about 2 minutes on 2 cores, a few steps with ``context.quick``."""
    output_dir = context.path("moby")
    model_args = MobyModelArguments(
        image_size=32, patch_size=4, window_size=4, embed_dim=48, depths=[2, 6], num_heads=[3, 6],
        drop_path_rate=0.0, projector_hidden_size=1024, predictor_hidden_size=1024,
        queue_size=512,  # a quarter of the 2 000 demo images: a queue near the data size holds each image's own keys
        min_crop_scale=0.35,  # 32 px images: the official 0.08 leaves 9 px crops
    )  # fmt: skip
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
