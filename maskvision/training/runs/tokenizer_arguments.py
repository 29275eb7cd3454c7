"""The visual tokenizers' official optimisation and argument dataclasses (`maskvision tokenizer train`): what
`maskvision.training.runs.tokenizer.TOKENIZER_RECIPE` trains from; the size presets it builds from are in
`tokenizer_presets`. Imports no model: ``maskvision tokenizer train --help`` parses these alone."""

from dataclasses import dataclass, field
from typing import Literal

from .arguments import PretrainingArguments

MODEL_SIZES = ("tiny", "base")
# Each tokenizer's official optimisation, taken by the `TokenizerTrainingArguments` fields left None (sources and
# differences: RECIPES.md). DALL-E (paper, appendix A.2; no training code): lr 1e-4 at batch 512 annealed to 1.25e-6,
# betas (0.9, 0.999). VQ-KD (unilm beit2/run_vqkd_training.py, TOKENIZER.md): lr 5e-5 x batch / 128, min_lr 1e-5
# unscaled (2.5e-6 at 128 gives it at the official batch of 8 x 64), betas (0.9, 0.99), no gradient clipping.
# The crops' resampling: the dVAE sees BEiT's tokenizer view (lanczos, beit/run_beit_pretraining.py
# --second_interpolation), VQ-KD trains on bicubic crops (beit2/TOKENIZER.md --train_interpolation).
TOKENIZER_INTERPOLATION = {"dvae": "lanczos", "vqkd": "bicubic"}
TOKENIZER_OPTIMISATION = {
    "dvae": dict(base_learning_rate=1e-4, lr_reference_batch=512, base_min_learning_rate=1.25e-6, adam_beta2=0.999,
                 max_grad_norm=1.0),
    "vqkd": dict(base_learning_rate=5e-5, lr_reference_batch=128, base_min_learning_rate=2.5e-6, adam_beta2=0.99,
                 max_grad_norm=0.0),
}


@dataclass
class TokenizerArguments:
    tokenizer_type: Literal["dvae", "vqkd"] = field(
        default="dvae", metadata={"help": "dvae (DALL-E's discrete VAE) or vqkd (BEiT v2's VQ-KD; needs --teacher)."}
    )
    model_size: Literal["tiny", "base"] = field(
        default="base", metadata={"help": "base (the official model) or tiny (32 px, trains on CPU in minutes)."}
    )
    image_size: int | None = field(default=None, metadata={"help": "Training resolution; default: the size's."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config fields to override, e.g. 'vocab_size=1024,hidden_size=128'."}
    )
    teacher: str | None = field(
        default=None,
        metadata={"help": "VQ-KD: the transformers image encoder (Hub name or path) whose patch features are "
                          "distilled; referenced by the checkpoint, never saved in it."},
    )
    min_crop_scale: float = field(
        default=0.08, metadata={"help": "Smallest random-resized-crop area (BEiT's and VQ-KD's 0.08)."}
    )
    temperature_start: float = field(default=1.0, metadata={"help": "dVAE: initial Gumbel-softmax temperature."})
    temperature_end: float = field(
        default=1.0 / 16,
        metadata={"help": "dVAE: final temperature (DALL-E: 1/16; short runs: 0.5 with straight_through=true)."},
    )
    temperature_steps: float = field(
        default=0.125,
        metadata={"help": "dVAE: steps to anneal the temperature over, or a fraction of the run if < 1 (DALL-E: "
                          "150k steps, an eighth of its learning-rate schedule)."},
    )
    kl_weight: float = field(default=6.6, metadata={"help": "dVAE: final weight of the KL term (DALL-E: 6.6)."})
    kl_warmup_steps: float = field(
        default=0.05, metadata={"help": "dVAE: steps to ramp the KL weight up over, or a fraction of the run if < 1."}
    )
    reseed_interval: int = field(
        default=100,
        metadata={"help": "Re-seed codes unused for this many optimizer steps from encoder outputs; 0 disables."},
    )
    eval_images: int = field(
        default=2048, metadata={"help": "Images of the training set measured after training (codebook health)."}
    )


@dataclass
class TokenizerTrainingArguments(PretrainingArguments):
    """Optimisation defaults of the official tokenizers: AdamW, weight decay 1e-4, a cosine schedule with 10% of
    warm-up over 100 epochs (VQ-KD's); the fields left None take the tokenizer's own official value
    (`TOKENIZER_OPTIMISATION`, applied by `resolve_for`)."""

    base_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate at lr_reference_batch; default: the tokenizer's official."}
    )
    lr_reference_batch: int | None = field(
        default=None, metadata={"help": "Batch size base_learning_rate is given for; default: the official."}
    )
    base_min_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate the cosine ends at, at lr_reference_batch; default: official."}
    )
    adam_beta2: float | None = field(default=None, metadata={"help": "AdamW beta2; default: the tokenizer's official."})
    max_grad_norm: float | None = field(
        default=None, metadata={"help": "Gradient clipping norm (0: none); default: the tokenizer's official."}
    )
    num_train_epochs: float = field(default=100, metadata={"help": "Epochs (VQ-KD: 100)."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up steps, or a fraction of training if < 1."})
    per_device_train_batch_size: int = field(default=64, metadata={"help": "Images per device and step."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay (DALL-E, BEiT v2: 1e-4)."})
    restore_callback_states_from_checkpoint: bool = field(
        default=True, metadata={"help": "Resume the codebook re-seeding window from the checkpoint."}
    )

    def resolve_for(self, tokenizer_type: str) -> "TokenizerTrainingArguments":
        """Give the fields left None the official value of ``tokenizer_type`` (`TOKENIZER_OPTIMISATION`)."""
        for name, value in TOKENIZER_OPTIMISATION[tokenizer_type].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        return self
