"""`maskvision pretrain extrema`: ExtreMA (Wu et al. 2022) with the official recipe.

Its flags (`ExtremaModelArguments`, and `ExtremaTrainingArguments` with the official optimisation), apart from the
recipe (`maskvision.training.recipes.extrema`): ``maskvision pretrain extrema --help`` imports them, not the models.
"""

from dataclasses import dataclass, field

from ...configuration.choices import LOSSES
from ..runs.arguments import PretrainingArguments


@dataclass
class ExtremaModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from a checkpoint (directory or Hub id): an ExtreMA run (continued with its "
            "settings) or a stock BeitModel (without relative position bias), ViTModel, DeiTModel or "
            "Dinov2Model; the encoder's shape comes from it."
        },
    )
    model_size: str = field(default="base", metadata={"help": "ViT size: tiny | small | base | large."})
    image_size: int = field(default=224, metadata={"help": "Input side in pixels."})
    patch_size: int = field(default=16, metadata={"help": "Patch side in pixels; must divide image_size."})
    hidden_size: int | None = field(default=None, metadata={"help": "Override the size's width."})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "Override the size's depth."})
    num_attention_heads: int | None = field(default=None, metadata={"help": "Override the size's heads."})
    intermediate_size: int | None = field(default=None, metadata={"help": "Override the MLP width (default 4x)."})
    drop_path_rate: float = field(default=0.1, metadata={"help": "Student stochastic depth (the teacher has none)."})
    mask_ratio: float = field(default=0.8, metadata={"help": "Share of patches each mask hides (paper: 0.75-0.9)."})
    num_masks: int = field(default=5, metadata={"help": "Disjoint masks per image (5 at mask ratio 0.8, 8 at 0.9)."})
    loss: str = field(default="byol", metadata={"help": "Objective.", "choices": LOSSES})
    temperature: float = field(default=0.2, metadata={"help": "Temperature of the infonce loss."})
    base_momentum: float = field(default=0.996, metadata={"help": "Teacher momentum at the first step."})
    final_momentum: float = field(default=1.0, metadata={"help": "Teacher momentum at the last step."})
    pooling_depth: int = field(default=2, metadata={"help": "Class-attention blocks pooling the tokens."})
    pooling_layer_scale: float | None = field(
        default=None, metadata={"help": "Layer scale of the class-attention blocks (default: 0.1, 1e-5 for large)."}
    )
    projector_hidden_size: int = field(default=4096, metadata={"help": "Hidden width of projector and predictor."})
    projection_size: int = field(default=256, metadata={"help": "Output width of projector and predictor."})
    min_crop_scale: float = field(default=0.2, metadata={"help": "Smallest shared crop, as a share of the image."})
    calibration_images: int = field(
        default=64, metadata={"help": "Full views that calibrate the exported encoder's [CLS] slot (0: skip)."}
    )
    calibration_steps: int = field(
        default=100, metadata={"help": "Steps of that calibration, each a forward/backward of the encoder on them."}
    )


@dataclass
class ExtremaTrainingArguments(PretrainingArguments):
    base_learning_rate: float = field(default=1.5e-4, metadata={"help": "Learning rate at lr_reference_batch."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2."})
    num_train_epochs: float = field(default=300, metadata={"help": "Epochs (the paper: 300)."})
    per_device_train_batch_size: int = field(
        default=256, metadata={"help": "Images per device and micro-batch (official: 2048 on 8 GPUs)."}
    )
    warmup_steps: float = field(default=40 / 300, metadata={"help": "Warm-up steps, or a fraction if < 1."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Gradient clipping norm; 0: none, as the official."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Every trainable parameter is used: no search for unused ones."}
    )


# The flags of `maskvision pretrain extrema` besides `DataArguments`, in the order they are parsed.
ARGUMENTS = (ExtremaModelArguments, ExtremaTrainingArguments)
