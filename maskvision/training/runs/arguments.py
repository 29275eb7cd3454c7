"""The arguments of every pretraining run (`DataArguments`, `PretrainingArguments`; the visual tokenizers' and each
method's extend them), apart from the run itself: a command's ``--help`` imports this module, which needs only
transformers' `TrainingArguments`, not the Trainer, the data loading or the models."""

import logging
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from ...data.arguments import ON_BAD_IMAGE, StreamingArguments
from ..loop.preemption import PREEMPTION_SIGNALS, parse_signals

logger = logging.getLogger(__name__)

NAN_POLICIES = ("stop", "skip")  # what `MaskVisionTrainer` does with a NaN/inf loss


@dataclass
class DataArguments(StreamingArguments):
    dataset: str = field(
        default="demo",
        metadata={"help": "Images to pretrain on: 'demo', an image folder, a parquet file or glob, WebDataset .tar "
                          "shards (a glob), or a Hub dataset."},
    )
    split: str = field(default="train", metadata={"help": "Dataset split."})
    on_bad_image: str = field(
        default="skip",
        metadata={"help": "skip drops corrupt images with a warning, raise stops on the first.", "choices": ON_BAD_IMAGE},
    )
    image_column: str | None = field(default=None, metadata={"help": "Image column (default: found by type)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use N images drawn at random (fixed by --seed)."}
    )

    def load(self, seed: int = 0):
        """The images as a `datasets.Dataset` with an ``image`` column (`maskvision.data.load_image_dataset`): all of
        them, or ``max_train_samples`` drawn at random by ``seed`` (never the first rows: many datasets are stored
        sorted by class); with ``streaming``, an `ImageStream` of them."""
        from ...data import load_image_dataset, random_subset

        dataset = load_image_dataset(
            self.dataset, split=self.split, on_bad_image=self.on_bad_image, image_column=self.image_column,
            streaming=self.streaming,
        )
        return random_subset(dataset, self.max_train_samples, seed)


def _has_accelerator() -> bool:
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6: CUDA, ROCm, XPU, MPS, ...
    return accelerator.is_available() if accelerator is not None else torch.cuda.is_available()


def default_num_workers(max_workers: int = 8) -> int:
    """Data-loader workers per process: this process's share of the usable CPU cores (the processes launched on this
    machine share them), one left to the training process itself, at most ``max_workers``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, min(max_workers, cores // processes - 1))


@dataclass
class PretrainingArguments(TrainingArguments):
    """`TrainingArguments` whose learning rate follows the linear scaling rule unless given explicitly:
    ``learning_rate = base_learning_rate * effective_batch / lr_reference_batch``.

    Data loading: ``dataloader_num_workers`` defaults to the process's share of the CPU cores (`default_num_workers`),
    the workers are not persistent (see the field), and ``augment_on_device`` moves the batched augmentation to the
    accelerator. Launched as several processes on a machine without an accelerator, the run uses the CPUs (gloo) as
    one data-parallel run."""

    output_dir: str | None = field(default=None, metadata={"help": "Where checkpoints and the encoder go."})
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate; default: base_learning_rate scaled by batch size."}
    )
    base_learning_rate: float = field(default=1.5e-4, metadata={"help": "Learning rate at lr_reference_batch."})
    lr_reference_batch: int = field(default=256, metadata={"help": "Batch size base_learning_rate is given for."})
    base_min_learning_rate: float = field(
        default=0.0,
        metadata={"help": "Learning rate the cosine schedule ends at, at lr_reference_batch (scaled with the batch "
                          "like the peak)."},
    )
    base_warmup_learning_rate: float = field(
        default=0.0,
        metadata={"help": "Learning rate the linear warm-up starts from, at lr_reference_batch (scaled likewise)."},
    )
    remove_unused_columns: bool = field(default=False, metadata={"help": "Collators need the image column."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule."})
    warmup_steps: float = field(default=0.05, metadata={"help": "Warm-up steps, or a fraction of training if < 1."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N optimizer steps."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints to keep."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers."})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Gradient clipping norm (recipes set the official one); 0 disables."}
    )
    nan_policy: str = field(
        default="stop",
        metadata={"help": "A NaN/inf loss: 'stop' the run with an error naming the step, or 'skip' the step (no "
                          "optimizer or teacher update)."},
    )
    dataloader_num_workers: int = field(
        default=-1,
        metadata={"help": "Data-loader worker processes per device; -1: min(8, this process's share of the CPU cores "
                          "- 1), 0: load in the training process."},
    )
    dataloader_persistent_workers: bool = field(
        default=False,
        metadata={"help": "Keep the workers between epochs (with dataloader_num_workers > 0). Off by default: "
                          "a persistent worker's collator keeps the first epoch in its batches' random streams."},
    )
    augment_on_device: bool = field(
        default=False,
        metadata={"help": "Collate uint8 crops and run the batched augmentation (colour, blur, normalisation) on the "
                          "device: keeps data loading ahead of a fast GPU."},
    )
    preemption_signals: list[str] = field(
        default_factory=lambda: list(PREEMPTION_SIGNALS),
        metadata={"help": "Signals that stop the run after its optimizer step with a complete checkpoint (SLURM, "
                          "Kubernetes and spot instances send SIGTERM; SLURM's --signal USR1); 'none' to not catch."},
    )
    preemption_exit_code: int = field(
        default=0,
        metadata={"help": "Exit status after such a stop (0; a job script may pick another to requeue the job)."},
    )
    images_on_device: bool = field(
        default=False,
        metadata={"help": "Decode the training images once into one uint8 tensor on the device (images of one size, "
                          "e.g. CIFAR-10) and crop them there: no data-loader workers, no decoding per epoch."},
    )

    def __post_init__(self):
        # Launched as several processes (torchrun, accelerate launch) on a machine without an accelerator: accelerate
        # sets up gloo data parallelism only with `use_cpu`; without it every process would silently train a copy
        # of its own. The same command then runs on CPUs as it does on GPUs.
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not self.use_cpu and not _has_accelerator():
            logger.info("%s processes and no accelerator: training on the CPUs with gloo.", os.environ["WORLD_SIZE"])
            self.use_cpu = True
        if self.images_on_device:  # the collators read device memory: in this process, nothing to pin
            self.dataloader_num_workers, self.dataloader_pin_memory = 0, False
        if self.dataloader_num_workers == -1:
            self.dataloader_num_workers = default_num_workers()
        if self.dataloader_num_workers == 0:
            self.dataloader_persistent_workers = False  # nothing to keep, and torch refuses the flag without workers
        super().__post_init__()
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"--nan_policy must be one of {NAN_POLICIES}, got {self.nan_policy!r}.")
        if self.max_grad_norm is not None and self.max_grad_norm < 0:  # None: set later (the tokenizers')
            raise ValueError(f"--max_grad_norm must be >= 0 (0 disables gradient clipping), got {self.max_grad_norm!r}.")
        parse_signals(self.preemption_signals)  # an unknown name: an error now, not at the first step

    def effective_batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * self.world_size

    def resolve_learning_rate(self) -> float:
        if self.learning_rate is None:
            self.learning_rate = self.base_learning_rate * self.effective_batch_size() / self.lr_reference_batch
        return self.learning_rate

    def schedule_bounds(self) -> tuple[float, float]:
        """(the warm-up's first learning rate, the cosine's last), scaled with the batch as the official BEiT and MoBY
        code scale theirs: the same share of the peak as at ``lr_reference_batch``."""
        scale = self.effective_batch_size() / self.lr_reference_batch
        start, floor = self.base_warmup_learning_rate * scale, self.base_min_learning_rate * scale
        peak = self.resolve_learning_rate()
        if peak == 0:  # nothing moves (a check of the starting weights): no schedule to bound
            return 0.0, 0.0
        if not 0 <= start <= peak or not 0 <= floor < peak:
            raise ValueError(
                f"The schedule's bounds must lie below the peak learning rate {peak:.3g}: warm-up start {start:.3g} "
                f"and floor {floor:.3g} (--base_warmup_learning_rate, --base_min_learning_rate at batch "
                f"{self.lr_reference_batch}, scaled to batch {self.effective_batch_size()})."
            )
        return start, floor
