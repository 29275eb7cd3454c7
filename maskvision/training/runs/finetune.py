"""Fine-tuning an encoder into an image classifier: the stock ``AutoModelForImageClassification`` on `Trainer`.

The defaults are BEiT-B's fine-tuning recipe (unilm beit/run_class_finetuning.py with the command of its
get_started_for_image_classification.md; every row with its source: RECIPES.md): AdamW with layer-wise
learning-rate decay (0.65 for BEiT-style checkpoints), lr 4e-3 at batch 1024, weight decay 0.05 but none on 1-D
parameters, position embeddings and [CLS], 100 epochs with 20 of warm-up on a cosine to 1e-6, label smoothing 0.1,
drop path 0.1, a random-resized crop + flip, RandAugment ``rand-m9-mstd0.5-inc1``, random erasing 0.25 and Mixup 0.8
/ CutMix 1.0; each piece has its flag (``--rand_augment none``, ``--random_erasing 0``, ``--mixup_alpha 0``, ...).
Crops are made per image in the data loader; RandAugment, normalisation, random erasing and Mixup / CutMix then run
on the batch on the device (`FinetuneTrainer`). Evaluation every epoch, best checkpoint kept. The output directory
is a stock checkpoint with its image processor: ``pipeline("image-classification", model=DIR)`` loads it.

Works on stock checkpoints (BeitModel, ViTModel, SwinModel and their ForImageClassification variants, local or
on the Hub), on maskvision encoder exports (``<run>/encoder``) and on maskvision pretraining runs (their encoder
is exported on the fly). ``image_size`` fine-tunes at another resolution (position embeddings and relative
position bias tables resampled once, see `maskvision.modeling.resolution`).
"""

import logging
import os
import tempfile

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from ...data import to_rgb
from ...data.labelled import LabelledDataArguments
from ...data.streaming import ImageStream
from ...evaluation.labels import class_names
from ...evaluation.metrics import METRICS, accuracy_from_scores
from ...evaluation.processors import load_image_processor, processor_settings, resolve_image_processor
from ...evaluation.results import result_records, write_results
from ...modeling.modeling_utils import MaskVisionPreTrainedModel
from ...modeling.resolution import resize_state_dict
from ...run_files import EVAL_RESULTS
from .finetune_arguments import FinetuneArguments, FinetuneModelArguments
from ..inputs.mixup import MixupCutmix
from ..inputs.rand_augment import RandomErasing, parse_rand_augment
from .run import Run, run_training
from ..inputs.streaming import training_rows
from ..loop.trainer import MaskVisionTrainer
from ..inputs.transforms import BeitViews, normalize, to_float

logger = logging.getLogger(__name__)

# Layer-wise lr decay by architecture: BEiT's 0.65 (ViT-B), MAE's 0.75 (ViT-B), SimMIM's 0.9 (Swin-B).
DEFAULT_LAYER_DECAY = {"beit": 0.65, "data2vec-vision": 0.65, "vit": 0.75, "swin": 0.9}


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

    image_processor = load_image_processor(model_name_or_path)
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

    Training: BEiT's random-resized crop (scale ``min_crop_scale``-1, bicubic) + horizontal flip as uint8 crops (the
    encoder view of `BeitViews`, without a tokenizer view), which `TrainingAugmentation` finishes on the device;
    evaluation: the image processor itself, exactly what ``pipeline("image-classification")`` does at inference.
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
            pixel_values, _ = self.views.crop(images)
        else:
            pixel_values = self.image_processor(images=images, return_tensors="pt")["pixel_values"]
        return {"pixel_values": list(pixel_values), "labels": list(batch["label"])}


def collate(rows: list[dict]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([row["pixel_values"] for row in rows]),
        "labels": torch.tensor([row["labels"] for row in rows], dtype=torch.long),
    }


class TrainingAugmentation:
    """The training batch's augmentation, on whatever device it is: uint8 crops (B, 3, S, S) → RandAugment →
    normalisation → random erasing (timm's order in BEiT's fine-tuning transform)."""

    def __init__(self, image_processor, rand_augment: str | None = None, random_erasing: float = 0.0):
        _, mean, std = processor_settings(image_processor)
        self.mean, self.std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        self.rand_augment = parse_rand_augment(rand_augment, fill=mean)  # geometric ops fill with the mean, as timm
        self.random_erasing = RandomErasing(random_erasing) if random_erasing else None

    def __call__(self, crops: torch.Tensor) -> torch.Tensor:
        images = to_float(crops)
        if self.rand_augment is not None:
            images = self.rand_augment(images)
        images = normalize(images, self.mean, self.std)
        return images if self.random_erasing is None else self.random_erasing(images)


# ---------------------------------------------------------------------------------------------- trainer
def compute_metrics(eval_prediction) -> dict[str, float]:
    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    return accuracy_from_scores(torch.as_tensor(logits), torch.as_tensor(eval_prediction.label_ids))


class FinetuneTrainer(MaskVisionTrainer):
    """`MaskVisionTrainer` for classification: the training batches' augmentation (`TrainingAugmentation`) then
    Mixup / CutMix on the device, as DeiT and BEiT do, and soft-target cross-entropy with label smoothing."""

    def __init__(
        self, *args, augmentation: TrainingAugmentation | None = None, mixup: MixupCutmix | None = None, **kwargs
    ):
        super().__init__(*args, compute_loss_func=self.classification_loss, **kwargs)
        self.augmentation, self.mixup = augmentation, mixup

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training and (self.augmentation is not None or self.mixup is not None):
            inputs = dict(inputs)
            if self.augmentation is not None:
                inputs["pixel_values"] = self.augmentation(inputs["pixel_values"])
            if self.mixup is not None:
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


class FinetuneRun(Run):
    """`run_training`'s hooks for fine-tuning: labelled data, a stock classifier on `FinetuneTrainer`, the best
    checkpoint's evaluation at the end, recorded in ``eval_results.json``."""

    def __init__(self, model_args: FinetuneModelArguments, command: str = ""):
        self.model_args, self.command = model_args, command

    def check(self, training_args: FinetuneArguments) -> None:
        for flag in ("augment_on_device", "images_on_device"):
            if getattr(training_args, flag):
                raise ValueError(f"--{flag} applies to pretraining (maskvision pretrain, tokenizer train); "
                                 "fine-tuning transforms each image in the data loader: leave it out.")

    def num_images(self, data) -> int | None:
        return None if isinstance(data.train, ImageStream) else len(data.train)

    def build_trainer(self, data, data_args: LabelledDataArguments, training_args: FinetuneArguments):
        model_args = self.model_args
        train, evaluation = data.train, data.evaluation
        names = class_names(train, evaluation, "fine-tuning")
        if names is None:
            raise ValueError(
                "Fine-tuning a stream needs its classes before reading it: its label column must be a ClassLabel "
                "(integer labels name no classes); store ClassLabel labels or drop --streaming."
            )
        if isinstance(train, ImageStream):
            epochly = [flag for flag in ("eval_strategy", "save_strategy") if getattr(training_args, flag) == "epoch"]
            if epochly:
                raise ValueError(
                    f"--streaming true has no epochs to {' and '.join(epochly)} by (a stream has no length): pass "
                    "--eval_strategy steps --save_strategy steps with --eval_steps / --save_steps."
                )
            train = training_rows(train, data_args, training_args)  # this rank's part, repeating, shuffled
        model, image_processor = load_classifier(
            model_args.model,
            dict(enumerate(names)),
            image_size=model_args.image_size,
            drop_path_rate=model_args.drop_path_rate,
            image_mean=model_args.image_mean,
            image_std=model_args.image_std,
        )
        self.layer_decay = model_args.layer_decay
        if self.layer_decay is None:
            self.layer_decay = DEFAULT_LAYER_DECAY.get(model.config.model_type)
        self.data_args, self.image_processor = data_args, image_processor
        return FinetuneTrainer(
            model=model,
            args=training_args,
            train_dataset=train.with_transform(
                ClassificationTransform(image_processor, train=True, min_crop_scale=model_args.min_crop_scale)
            ),
            eval_dataset=evaluation.with_transform(ClassificationTransform(image_processor, train=False)),
            data_collator=collate,
            compute_metrics=compute_metrics,
            processing_class=image_processor,  # saved with every checkpoint and the result
            layer_decay=None if self.layer_decay == 1 else self.layer_decay,
            augmentation=TrainingAugmentation(image_processor, model_args.rand_augment, model_args.random_erasing),
            mixup=_mixup(model_args, len(names), training_args.label_smoothing_factor),
        )

    def evaluate(self, trainer, data) -> dict:
        """The best checkpoint (load_best_model_at_end) on the evaluation images."""
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        # Trainer's metrics under their own name (all_results.json): eval_results.json holds maskvision's records only
        trainer.save_metrics("all", metrics, combined=False)
        return metrics

    def export(self, trainer, data, metrics: dict) -> dict:
        """The accuracy records in ``output_dir/eval_results.json``, with the settings that gave them."""
        model_args, training_args = self.model_args, trainer.args
        settings = {
            "image_size": processor_settings(self.image_processor)[0],
            "epochs": training_args.num_train_epochs,
            "learning_rate": training_args.learning_rate,
            "batch_size": training_args.effective_batch_size(),
            "layer_decay": self.layer_decay,
            "drop_path_rate": model_args.drop_path_rate,
            "rand_augment": model_args.rand_augment,
            "random_erasing": model_args.random_erasing,
            "mixup_alpha": model_args.mixup_alpha,
            "cutmix_alpha": model_args.cutmix_alpha,
            "label_smoothing": training_args.label_smoothing_factor,
        }
        if not self.data_args.streaming:  # a stream has no length
            settings |= {"train_samples": len(data.train), "eval_samples": len(data.evaluation)}
        accuracy = {metric: metrics.get(f"eval_{metric}") for metric in METRICS}
        results = result_records("finetune", accuracy, settings, data_args=self.data_args, data=data,
                                 model=model_args.model, command=self.command)
        write_results(os.path.join(training_args.output_dir, EVAL_RESULTS), results)
        return metrics


def run_finetuning(
    model_args: FinetuneModelArguments,
    data_args: LabelledDataArguments,
    training_args: FinetuneArguments,
    command: str = "",
):
    """Fine-tune (`run_training`), keep the best checkpoint in ``output_dir`` (with its image processor and the run's
    files) and record its accuracy in ``output_dir/eval_results.json``. Returns the trainer and the final evaluation's
    metrics (empty when preempted)."""
    return run_training(FinetuneRun(model_args, command), data_args, training_args)
