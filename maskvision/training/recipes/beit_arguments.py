"""`maskvision pretrain beit`: BEiT masked image modeling (Bao et al. 2021) with the official recipe.

Its flags (`BeitModelArguments`, and `BeitTrainingArguments` with the official optimisation), apart from the
recipe (`maskvision.training.recipes.beit`): ``maskvision pretrain beit --help`` imports them, not the models.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...configuration.choices import TARGETS
from ..runs.arguments import PretrainingArguments

if TYPE_CHECKING:  # imported by `config` when it runs: the configs cost --help half a second (`configuration.choices`)
    from ...configuration.configuration_beit_mim import BeitMimConfig


@dataclass
class BeitModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from a checkpoint (directory or Hub id): a BEiT run (continued with its settings) or "
            "a stock BeitForMaskedImageModeling, BeitModel, ViTModel, DeiTModel or Dinov2Model; the "
            "encoder's shape comes from it."
        },
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "Visual tokenizer (path or Hub id) whose ids are the targets; needed with --target tokens."},
    )
    target: str = field(default="tokens", metadata={"help": "What masked patches predict.", "choices": TARGETS})
    model_size: str = field(default="base", metadata={"help": "Encoder size: tiny, small, base or large."})
    image_size: int = field(default=224, metadata={"help": "Encoder input size in pixels."})
    patch_size: int = field(default=16, metadata={"help": "Patch size in pixels; must divide image_size."})
    hidden_size: int | None = field(default=None, metadata={"help": "Custom width (default: the size's)."})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "Custom depth (default: the size's)."})
    num_attention_heads: int | None = field(default=None, metadata={"help": "Custom heads (default: the size's)."})
    intermediate_size: int | None = field(default=None, metadata={"help": "Custom MLP width (default: the size's)."})
    drop_path_rate: float = field(default=0.1, metadata={"help": "Stochastic depth of the last layer."})
    layer_scale_init_value: float | None = field(
        default=None, metadata={"help": "Layer scale at init (default: 0.1, 1e-5 for large)."}
    )
    num_masking_patches: int | None = field(
        default=None, metadata={"help": "Patches masked per image (default: 75 of 196, scaled with the grid)."}
    )
    min_num_patches: int | None = field(
        default=None, metadata={"help": "Smallest masking block (default: 16 of 196, scaled with the grid)."}
    )
    max_num_patches: int | None = field(default=None, metadata={"help": "Largest masking block (default: no limit)."})
    min_aspect: float = field(default=0.3, metadata={"help": "Smallest aspect ratio of a masking block."})
    exact_masking: bool = field(
        default=False, metadata={"help": "Mask exactly num_masking_patches per image (BEiT v2, e.g. with VQ-KD)."}
    )
    min_crop_scale: float = field(default=0.08, metadata={"help": "Smallest area fraction of the random crop."})
    color_jitter: float = field(
        default=0.4,
        metadata={"help": "Brightness, contrast and saturation jitter, the same on both views of an image; 0: none."},
    )

    def config(self, vocab_size: int | None = None) -> "BeitMimConfig":
        from ...configuration.configuration_beit_mim import BeitMimConfig

        backbone = {
            name: getattr(self, name)
            for name in (
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "layer_scale_init_value",
            )
            if getattr(self, name) is not None
        }
        own = {
            name: getattr(self, name)
            for name in ("num_masking_patches", "min_num_patches", "max_num_patches")
            if getattr(self, name) is not None
        }
        if vocab_size is not None:
            own["vocab_size"] = vocab_size
        if "hidden_size" in backbone and "intermediate_size" not in backbone:
            backbone["intermediate_size"] = 4 * backbone["hidden_size"]
        return BeitMimConfig.from_size(
            self.model_size,
            image_size=self.image_size,
            patch_size=self.patch_size,
            drop_path_rate=self.drop_path_rate,
            target=self.target,
            min_aspect=self.min_aspect,
            exact_masking=self.exact_masking,
            **backbone,
            **own,
        )


@dataclass
class BeitTrainingArguments(PretrainingArguments):
    """The official BEiT pretraining optimisation (unilm/beit README: 16 GPUs x 128 images) on top of
    `PretrainingArguments`."""

    base_learning_rate: float = field(default=1.5e-3, metadata={"help": "Learning rate at lr_reference_batch."})
    lr_reference_batch: int = field(default=2048, metadata={"help": "Batch size base_learning_rate is given for."})
    base_min_learning_rate: float = field(
        default=1e-5, metadata={"help": "Learning rate the cosine ends at, at lr_reference_batch (official min_lr)."}
    )
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=3.0, metadata={"help": "Gradient clipping norm."})
    num_train_epochs: float = field(default=800, metadata={"help": "Epochs (the paper: 800; its ablations 300)."})
    warmup_steps: float = field(default=10 / 800, metadata={"help": "Warm-up steps, or a fraction of training if < 1."})
    per_device_train_batch_size: int = field(default=128, metadata={"help": "Images per device and micro-batch."})


# The flags of `maskvision pretrain beit` besides `DataArguments`, in the order they are parsed.
ARGUMENTS = (BeitModelArguments, BeitTrainingArguments)
