"""Fine-tuning an encoder into an image classifier: the stock ``AutoModelForImageClassification`` on `Trainer`.

BEiT's recipe (Bao et al. 2021, after DeiT): AdamW with layer-wise learning-rate decay (0.65 for BEiT-style
checkpoints), weight decay 0.05 but none on norms, biases, position embeddings, [CLS] and relative position
bias tables, cosine schedule with warm-up, label smoothing 0.1, drop path 0.1, Mixup 0.8 / CutMix 1.0,
random-resized-crop + flip augmentation; evaluation every epoch, best checkpoint kept. The output directory is
a stock checkpoint with its image processor: ``pipeline("image-classification", model=DIR)`` loads it.

Works on stock checkpoints (BeitModel, ViTModel, SwinModel and their ForImageClassification variants, local or
on the Hub), on maskvision encoder exports (``<run>/encoder``) and on maskvision pretraining runs (their encoder
is exported on the fly). ``image_size`` fine-tunes at another resolution (position embeddings and relative
position bias tables resampled once, see `maskvision.modeling.resolution`).
"""

import logging
import os
import tempfile
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
)

from ..data import to_rgb
from ..evaluation.features import (
    class_names,
    processor_settings,
    resolve_image_processor,
)
from ..evaluation.metrics import accuracy_from_scores
from ..evaluation.results import RESULTS_FILE, EvalResult, write_results
from ..modeling.modeling_utils import MaskVisionPreTrainedModel
from ..modeling.resolution import resize_state_dict
from .labelled_data import LabelledDataArguments
from .mixup import MixupCutmix
from .pretrain import PretrainingArguments, resolve_checkpoint
from .trainer import MaskVisionTrainer
from .transforms import BeitViews

logger = logging.getLogger(__name__)

# Layer-wise lr decay by architecture: BEiT's 0.65 (ViT-B), MAE's 0.75 (ViT-B), SimMIM's 0.9 (Swin-B).
DEFAULT_LAYER_DECAY = {"beit": 0.65, "data2vec-vision": 0.65, "vit": 0.75, "swin": 0.9}
# Parameters kept out of weight decay besides the 1-D ones (timm / BEiT `no_weight_decay`).


# ------------------------------------------------------------------------------------------------- arguments
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


@dataclass
class FinetuneArguments(PretrainingArguments):
    """BEiT-B's fine-tuning defaults (lr 4e-3 at batch 1024, i.e. 1e-3 at 256; 100 epochs, 20 of warm-up; weight
    decay 0.05; no gradient clipping)."""

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the classifier go."})
    base_learning_rate: float = field(default=1e-3, metadata={"help": "Learning rate at lr_reference_batch."})
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


# ----------------------------------------------------------------------------------------------------- model
def load_classifier(
    model_name_or_path: str,
    id2label: dict[int, str],
    image_size: int | None = None,
    drop_path_rate: float | None = None,
    image_mean=None,
    image_std=None,
):
    """(stock image classifier with a fresh ``len(id2label)``-way head, its image processor)."""
    config = AutoConfig.from_pretrained(model_name_or_path)
    if hasattr(config, "backbone_config") and config.model_type.startswith("maskvision_"):
        pretrained = AutoModel.from_pretrained(model_name_or_path)
        if not isinstance(pretrained, MaskVisionPreTrainedModel):
            raise ValueError(f"{model_name_or_path} holds a {type(pretrained).__name__}, not an encoder to fine-tune.")
        with tempfile.TemporaryDirectory() as export:
            pretrained.export_encoder(export)
            return load_classifier(export, id2label, image_size, drop_path_rate, image_mean, image_std)

    try:
        image_processor = AutoImageProcessor.from_pretrained(model_name_or_path)
    except (OSError, ValueError):
        image_processor = None
    overrides = {}
    if drop_path_rate is not None:
        if hasattr(config, "drop_path_rate"):
            overrides["drop_path_rate"] = drop_path_rate
        elif drop_path_rate > 0:
            logger.warning(
                "%s (%s) has no stochastic depth: drop_path_rate is not used.", model_name_or_path, config.model_type
            )
    model = AutoModelForImageClassification.from_pretrained(
        model_name_or_path,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={label: index for index, label in id2label.items()},
        ignore_mismatched_sizes=True,  # a classifier checkpoint's head has another number of classes
        **overrides,
    )
    native_size = model.config.image_size if isinstance(model.config.image_size, int) else model.config.image_size[0]
    if image_size is not None and image_size != native_size:
        state_dict = resize_state_dict(model.state_dict(), model.config, image_size)
        model.config.image_size = image_size
        model = type(model)(model.config)
        model.load_state_dict(state_dict)
    if image_size == processor_settings(image_processor)[0]:
        image_size = None  # the checkpoint's processor already gives this size: keep it as it is
    image_processor = resolve_image_processor(
        image_processor, model.config, model_name_or_path, image_size, image_mean, image_std
    )
    return model, image_processor


# ------------------------------------------------------------------------------------------------ data
class ClassificationTransform:
    """Dataset transform (``Dataset.with_transform``) for rows with ``image`` and ``label``.

    Training: BEiT's random-resized crop (scale ``min_crop_scale``-1, bicubic) + horizontal flip, normalised like
    the image processor (the encoder view of `BeitViews`, without a tokenizer view); evaluation: the image
    processor itself, exactly what ``pipeline("image-classification")`` does at inference.
    """

    def __init__(self, image_processor, train: bool, min_crop_scale: float = 0.08):
        self.image_processor = image_processor
        self.views = None
        if train:
            size, mean, std = processor_settings(image_processor)
            self.views = BeitViews(size, None, mean, std, min_scale=min_crop_scale, interpolation="bicubic")

    def __call__(self, batch: dict) -> dict:
        images = [to_rgb(image) for image in batch["image"]]
        if self.views is not None:
            pixel_values, _ = self.views(images)
        else:
            pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": list(pixel_values), "labels": list(batch["label"])}


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([row["pixel_values"] for row in rows]),
        "labels": torch.tensor([row["labels"] for row in rows], dtype=torch.long),
    }


# ---------------------------------------------------------------------------------------------- trainer
def compute_metrics(eval_prediction) -> dict[str, float]:
    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return accuracy_from_scores(torch.as_tensor(logits), torch.as_tensor(eval_prediction.label_ids))


class FinetuneTrainer(MaskVisionTrainer):
    """`MaskVisionTrainer` for classification: Mixup / CutMix on training batches (on the device, as DeiT and BEiT
    do), soft-target cross-entropy with label smoothing."""

    def __init__(self, *args, mixup: MixupCutmix | None = None, **kwargs):
        super().__init__(*args, compute_loss_func=self.classification_loss, **kwargs)
        self.mixup = mixup

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.mixup is not None and model.training:
            inputs = dict(inputs)
            inputs["pixel_values"], inputs["labels"] = self.mixup(inputs["pixel_values"], inputs["labels"])
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def classification_loss(self, outputs, labels, num_items_in_batch=None) -> torch.Tensor:
        """Cross-entropy summed over the batch and divided by the examples in the accumulated batch.

        Soft targets (B, K) come from Mixup / CutMix with the smoothing already in them; hard labels (B,) are
        smoothed here while training. Evaluation reports the plain cross-entropy.
        """
        logits = outputs["logits"].float()
        if labels.ndim == 2:
            loss = -(labels * F.log_softmax(logits, dim=-1)).sum()
        else:
            smoothing = self.args.label_smoothing_factor if self.model.training else 0.0
            loss = F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="sum")
        return loss / (num_items_in_batch if num_items_in_batch is not None else labels.shape[0])


def _mixup(model_args: FinetuneModelArguments, num_classes: int, label_smoothing: float) -> MixupCutmix | None:
    if model_args.mixup_alpha == 0 and model_args.cutmix_alpha == 0:
        return None
    return MixupCutmix(
        num_classes,
        mixup_alpha=model_args.mixup_alpha,
        cutmix_alpha=model_args.cutmix_alpha,
        prob=model_args.mixup_prob,
        switch_prob=model_args.mixup_switch_prob,
        label_smoothing=label_smoothing,
    )


def run_finetuning(
    model_args: FinetuneModelArguments,
    data_args: LabelledDataArguments,
    training_args: FinetuneArguments,
    command: str = "",
):
    """Fine-tune, keep the best checkpoint in ``output_dir`` (with its image processor) and record its accuracy
    in ``output_dir/eval_results.json``. Returns the trainer and the final evaluation's metrics."""
    if not training_args.output_dir:
        raise ValueError("--output_dir is required.")
    for flag in ("augment_on_device", "images_on_device"):
        if getattr(training_args, flag):
            raise ValueError(f"--{flag} applies to pretraining (maskvision pretrain, tokenizer train); "
                             "fine-tuning transforms each image in the data loader: leave it out.")  # fmt: skip
    with training_args.main_process_first(desc="loading and checking the images"):
        train, evaluation = data_args.load(training_args.seed)
    names = class_names(train, evaluation, "fine-tuning")
    model, image_processor = load_classifier(
        model_args.model,
        dict(enumerate(names)),
        image_size=model_args.image_size,
        drop_path_rate=model_args.drop_path_rate,
        image_mean=model_args.image_mean,
        image_std=model_args.image_std,
    )
    layer_decay = model_args.layer_decay
    if layer_decay is None:
        layer_decay = DEFAULT_LAYER_DECAY.get(model.config.model_type)
    trainer = FinetuneTrainer(
        model=model,
        args=training_args,
        train_dataset=train.with_transform(
            ClassificationTransform(image_processor, train=True, min_crop_scale=model_args.min_crop_scale)
        ),
        eval_dataset=evaluation.with_transform(ClassificationTransform(image_processor, train=False)),
        data_collator=collate,
        compute_metrics=compute_metrics,
        processing_class=image_processor,  # saved with every checkpoint and the result
        layer_decay=None if layer_decay == 1 else layer_decay,
        mixup=_mixup(model_args, len(names), training_args.label_smoothing_factor),
    )
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()  # the best checkpoint (load_best_model_at_end)
    metrics = trainer.evaluate()
    trainer.save_metrics("eval", metrics)

    if trainer.is_world_process_zero():
        settings = {
            "image_size": processor_settings(image_processor)[0],
            "epochs": training_args.num_train_epochs,
            "learning_rate": training_args.learning_rate,
            "batch_size": training_args.effective_batch_size(),
            "layer_decay": layer_decay,
            "drop_path_rate": model_args.drop_path_rate,
            "mixup_alpha": model_args.mixup_alpha,
            "cutmix_alpha": model_args.cutmix_alpha,
            "label_smoothing": training_args.label_smoothing_factor,
        }
        if data_args.max_train_samples is not None or data_args.max_eval_samples is not None:
            settings |= {"train_samples": len(train), "eval_samples": len(evaluation)}
        record = dict(
            protocol="finetune",
            dataset=data_args.eval_source,
            split=data_args.eval_split,
            train_dataset=data_args.dataset,
            train_split=data_args.split,
            model=model_args.model,
            settings=settings,
            command=command,
        )
        results = [
            EvalResult(metric=metric, value=float(metrics[f"eval_{metric}"]), **record)
            for metric in ("top1_accuracy", "top5_accuracy")
            if f"eval_{metric}" in metrics
        ]
        write_results(os.path.join(training_args.output_dir, RESULTS_FILE), results)
    return trainer, metrics
