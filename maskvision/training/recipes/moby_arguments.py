"""`maskvision pretrain moby`: MoBY (Xie et al. 2021, arXiv:2105.04553) with the official recipe.

Its flags (`MobyModelArguments`, and `MobyTrainingArguments` with the official optimisation), apart from the
recipe (`maskvision.training.recipes.moby`): ``maskvision pretrain moby --help`` imports them, not the models.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...configuration.choices import HEAD_NORMS
from ..runs.arguments import PretrainingArguments

if TYPE_CHECKING:  # imported by `config` when it runs: the configs cost --help half a second (`configuration.choices`)
    from ...configuration.configuration_moby import MobyConfig

BACKBONES = {"swin": ("tiny", 4), "vit": ("small", 16)}  # backbone → (default size, default patch size)
SWIN_ONLY = ("window_size", "embed_dim", "depths", "num_heads")
VIT_ONLY = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@dataclass
class MobyModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from a checkpoint (directory or Hub id): a MoBY run (continued with its settings), a "
            "stock SwinModel, or a ViT-family encoder (BeitModel, ViTModel, DeiTModel, Dinov2Model); "
            "the encoder's shape comes from it."
        },
    )
    backbone: str = field(
        default="swin", metadata={"help": "Encoder (vit: a DeiT-style ViT).", "choices": list(BACKBONES)}
    )
    model_size: str | None = field(
        default=None,
        metadata={
            "help": "Encoder size: Swin tiny/small/base (default tiny), ViT tiny/small/base/large (default small)."
        },
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

    def config(self) -> "MobyConfig":
        from ...configuration.backbones import swin_backbone_config
        from ...configuration.configuration_moby import MobyConfig, moby_vit_backbone_config

        if self.backbone not in BACKBONES:
            raise ValueError(f"--backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}.")
        other = VIT_ONLY if self.backbone == "swin" else SWIN_ONLY
        misplaced = [name for name in other if getattr(self, name) is not None]
        if misplaced:
            raise ValueError(f"--{', --'.join(misplaced)} do not apply to --backbone {self.backbone}.")
        size, patch_size = BACKBONES[self.backbone]
        own = SWIN_ONLY if self.backbone == "swin" else VIT_ONLY
        overrides = {name: getattr(self, name) for name in own if getattr(self, name) is not None}
        common = {"image_size": self.image_size, "patch_size": self.patch_size or patch_size}
        if self.backbone == "swin":
            backbone = swin_backbone_config(
                self.model_size or size, drop_path_rate=self.drop_path_rate, **common, **overrides
            )
        else:
            if "hidden_size" in overrides and "intermediate_size" not in overrides:
                overrides["intermediate_size"] = 4 * overrides["hidden_size"]
            backbone = moby_vit_backbone_config(
                self.model_size or size, drop_path_rate=self.drop_path_rate, **common, **overrides
            )
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


# The flags of `maskvision pretrain moby` besides `DataArguments`, in the order they are parsed.
ARGUMENTS = (MobyModelArguments, MobyTrainingArguments)
