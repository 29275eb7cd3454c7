"""The flags of `maskvision finetune` (`FinetuneModelArguments`, and `FinetuneArguments` with BEiT-B's fine-tuning
defaults), apart from the run (`maskvision.training.runs.finetune`): ``maskvision finetune --help`` imports these and
transformers' `TrainingArguments`, not the Trainer, the data loading or the models."""

from dataclasses import dataclass, field

from .arguments import PretrainingArguments


@dataclass
class FinetuneModelArguments:
    model: str = field(
        metadata={"help": "Checkpoint to fine-tune: a local directory or Hub repo id (stock Beit/ViT/Swin model or "
                  "classifier, a maskvision <run>/encoder, or a maskvision pretraining run)."}
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Fine-tuning resolution (default: the checkpoint's); position tables are resampled."},
    )
    image_mean: list[float] | None = field(
        default=None, metadata={"help": "Normalisation mean (default: the checkpoint's)."}
    )
    image_std: list[float] | None = field(
        default=None, metadata={"help": "Normalisation std (default: the checkpoint's)."}
    )
    layer_decay: float | None = field(
        default=None,
        metadata={"help": "Layer-wise lr decay; default by architecture: beit 0.65, vit 0.75, swin 0.9. 1 disables."},
    )
    drop_path_rate: float = field(default=0.1, metadata={"help": "Stochastic depth rate (set on the config)."})
    mixup_alpha: float = field(default=0.8, metadata={"help": "Mixup Beta(α, α); 0 disables."})
    cutmix_alpha: float = field(default=1.0, metadata={"help": "CutMix Beta(α, α); 0 disables."})
    mixup_prob: float = field(default=1.0, metadata={"help": "Probability of mixing a batch."})
    mixup_switch_prob: float = field(default=0.5, metadata={"help": "Probability of CutMix when both are on."})
    min_crop_scale: float = field(default=0.08, metadata={"help": "Smallest area share of the random-resized crop."})
    rand_augment: str = field(
        default="rand-m9-mstd0.5-inc1",
        metadata={"help": "RandAugment in timm's notation (BEiT: rand-m9-mstd0.5-inc1); 'none' disables it."},
    )
    random_erasing: float = field(default=0.25, metadata={"help": "Probability of random erasing; 0 disables it."})


@dataclass
class FinetuneArguments(PretrainingArguments):
    """BEiT-B's fine-tuning defaults (lr 4e-3 at batch 1024 on a cosine to 1e-6; 100 epochs, 20 of warm-up; weight
    decay 0.05; no gradient clipping)."""

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the classifier go."})
    base_learning_rate: float = field(default=4e-3, metadata={"help": "Learning rate at lr_reference_batch."})
    lr_reference_batch: int = field(default=1024, metadata={"help": "Batch size base_learning_rate is given for."})
    base_min_learning_rate: float = field(
        default=1e-6, metadata={"help": "Learning rate the cosine ends at, at lr_reference_batch (official min_lr)."}
    )
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    num_train_epochs: float = field(default=100.0, metadata={"help": "Epochs."})
    warmup_steps: float = field(default=0.2, metadata={"help": "Warm-up steps, or a fraction of training if < 1."})
    label_smoothing_factor: float = field(default=0.1, metadata={"help": "Label smoothing of the targets."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Gradient clipping norm; 0 disables (as BEiT)."})
    eval_strategy: str = field(default="epoch", metadata={"help": "Evaluate every epoch."})
    save_strategy: str = field(default="epoch", metadata={"help": "Save every epoch."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Keep the best checkpoint as the result."})
    metric_for_best_model: str | None = field(
        default="top1_accuracy", metadata={"help": "Selects the best checkpoint."}
    )
    greater_is_better: bool | None = field(default=True, metadata={"help": "Higher top-1 is better."})
