"""Training and inspecting the visual tokenizers (BEiT's stage 1) with `MaskVisionTrainer`.

    dataset rows (PIL images) → `TokenizerCollator` (random-resized crop + flip, [0, 1]) → tokenizer(pixel_values)
    → loss → Trainer → callbacks (relaxation schedule, codebook EMA / health / re-seeding)
    → output_dir: weights, config, image processor, codebook_health.json and reconstructions.png

`maskvision tokenizer train|inspect|import-dalle` (``cli/tokenizer.py``) and the demo's ``tokenizer``
stage run these functions.
"""

import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import yaml
from PIL import Image
from transformers import set_seed

from ..configuration.backbones import vit_backbone_config
from ..configuration.configuration_dvae import DVAEConfig
from ..configuration.configuration_vqkd import VQKD_VIT_DEFAULTS, VQKDConfig
from ..data import to_rgb
from ..data.streaming import ImageStream
from ..modeling.modeling_dvae import DVAETokenizer
from ..modeling.modeling_vqkd import VQKDTokenizer, load_teacher
from ..modeling.tokenizer_utils import VisualTokenizerModel, code_counts, codebook_health
from ..progress import progress_bar
from ..visualization.curves import write_training_curves
from .collators import _PretrainingCollator
from .pretrain import DataArguments, PretrainingArguments, resolve_checkpoint
from .streaming import training_rows
from .tokenizer_callbacks import CodebookCallback, RelaxationScheduleCallback
from .trainer import MaskVisionTrainer
from .transforms import BeitViews

logger = logging.getLogger(__name__)

# Size presets: "base" is the official model (DALL-E's dVAE; BEiT v2's VQ-KD with a ViT-B/16 encoder and a
# 3-layer decoder, the config defaults); "tiny" trains on CPU in minutes: 32 px and an 8 x 8 grid of codes, the grid
# of a ViT with 4-pixel patches.
_TINY_VIT = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256)


def _dvae_config(size: str) -> dict:
    if size == "tiny":
        return dict(vocab_size=512, hidden_size=64, num_groups=3, blocks_per_group=1, code_embedding_size=64,
                    image_size=32)
    return {}


def _vqkd_config(size: str) -> dict:
    if size == "tiny":
        return dict(
            vocab_size=512,
            image_size=32,
            patch_size=4,
            encoder_config=vit_backbone_config("tiny", **_TINY_VIT, **VQKD_VIT_DEFAULTS),
            decoder_config=vit_backbone_config("tiny", **{**_TINY_VIT, "num_hidden_layers": 1}, **VQKD_VIT_DEFAULTS),
        )
    return {}


TOKENIZERS = {"dvae": (DVAEConfig, DVAETokenizer, _dvae_config), "vqkd": (VQKDConfig, VQKDTokenizer, _vqkd_config)}
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
}  # fmt: skip


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


# ----------------------------------------------------------------------------------------------------- model
def parse_config_overrides(overrides: str | None) -> dict:
    """'a=1,b=x' → {"a": 1, "b": "x"} (values parsed as YAML scalars)."""
    values = {}
    for item in filter(None, (part.strip() for part in (overrides or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"config_overrides entries must look like name=value, got {item!r}.")
        values[key.strip()] = yaml.safe_load(value)
    return values


def build_tokenizer(args: TokenizerArguments) -> VisualTokenizerModel:
    """A freshly initialised tokenizer of ``args.tokenizer_type`` and ``args.model_size`` (VQ-KD: teacher attached)."""
    if args.tokenizer_type not in TOKENIZERS:
        raise ValueError(f"tokenizer_type must be one of {sorted(TOKENIZERS)}, got {args.tokenizer_type!r}.")
    if args.model_size not in MODEL_SIZES:
        raise ValueError(f"model_size must be one of {MODEL_SIZES}, got {args.model_size!r}.")
    config_class, model_class, preset = TOKENIZERS[args.tokenizer_type]
    kwargs = {**preset(args.model_size), **parse_config_overrides(args.config_overrides)}
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    unknown = sorted(set(kwargs) - {f.name for f in config_class.__dataclass_fields__.values()})
    if unknown:
        raise ValueError(f"Unknown {config_class.__name__} field(s) {unknown} in config_overrides.")
    if args.tokenizer_type == "vqkd":
        if not args.teacher:
            raise ValueError("tokenizer_type 'vqkd' needs --teacher: a transformers image encoder (name or path).")
        teacher, teacher_fields = load_teacher(args.teacher)
        model = model_class(config_class(**kwargs, **teacher_fields))
        model.set_teacher(teacher)
        return model
    return model_class(config_class(**kwargs))


def tokenizer_callbacks(model: VisualTokenizerModel, args: TokenizerArguments) -> list:
    callbacks = [CodebookCallback(reseed_interval=args.reseed_interval)]
    if isinstance(model, DVAETokenizer):
        callbacks.append(
            RelaxationScheduleCallback(
                temperature_start=args.temperature_start,
                temperature_end=args.temperature_end,
                temperature_steps=args.temperature_steps,
                kl_weight=args.kl_weight,
                kl_warmup_steps=args.kl_warmup_steps,
            )
        )
    return callbacks


# ------------------------------------------------------------------------------------------------------ data
class TokenizerCollator(_PretrainingCollator):
    """Rows holding a PIL ``image`` → ``{"pixel_values": (B, 3, S, S)}`` in [0, 1]: one random-resized crop (area
    ``min_crop_scale``-1 of the image) + flip, no colour augmentation (VQ-KD's ``--color_jitter 0``), resized with
    ``interpolation`` (`BeitViews`' view recipe at the tokenizer's size, unnormalised: tokenizers map their input
    themselves)."""

    def __init__(self, image_size: int, min_crop_scale: float = 0.08, seed: int = 0, augment_on_device: bool = False,
                 interpolation: str = "lanczos"):  # fmt: skip
        super().__init__(seed, augment_on_device)
        self.views = BeitViews(image_size, None, image_mean=(0.0, 0.0, 0.0), image_std=(1.0, 1.0, 1.0),
                               min_scale=min_crop_scale, interpolation=interpolation)

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        generator = self.generator_for(rows)
        crops = self.views.crop(self.images(rows), generator)
        pixel_values, _ = crops if self.augment_on_device else self.views.augment(crops, generator)
        return {"pixel_values": pixel_values}

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pixel_values, _ = self.views.augment((batch["pixel_values"], None), self.device_generator)
        return {**batch, "pixel_values": pixel_values}


# ------------------------------------------------------------------------------------------- health, images
@torch.no_grad()
def evaluate_tokenizer(
    model: VisualTokenizerModel,
    dataset,
    max_images: int = 2048,
    batch_size: int = 256,
    num_grid_images: int = 8,
    progress: bool = True,
) -> tuple[dict, torch.Tensor | None]:
    """Codebook health of the codes of up to ``max_images`` images (a fixed random subset of larger datasets, which
    are often sorted by class), resized by the tokenizer's image processor; for tokenizers that decode to pixels,
    also the reconstruction error (MSE, PSNR in dB) and a grid of ``num_grid_images`` originals evenly spaced
    through the images, above their reconstructions (None otherwise). A progress bar over the images on a terminal,
    unless ``progress`` is False."""
    processor = model.image_processor()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counts = torch.zeros(model.config.vocab_size, device=device)
    squared_error, values, originals, reconstructions = 0.0, 0, [], []
    total = min(max_images, len(dataset))
    grid_indices = set(torch.linspace(0, total - 1, min(num_grid_images, total)).round().long().tolist())
    if total < len(dataset):
        subset = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:total]
        dataset = dataset.select(sorted(subset.tolist()))
    for start in progress_bar(range(0, total, batch_size), enabled=progress, desc="codebook health",
                              unit="batch"):  # fmt: skip
        rows = dataset[start : min(start + batch_size, total)]["image"]
        pixel_values = processor([to_rgb(image) for image in rows], return_tensors="pt")["pixel_values"]
        pixel_values = pixel_values.to(device)
        indices = model.get_codebook_indices(pixel_values)
        counts += code_counts(indices, model.config.vocab_size)
        if hasattr(model, "decode"):
            reconstruction = model.decode(indices)
            squared_error += float((reconstruction - pixel_values).pow(2).sum())
            values += pixel_values.numel()
            picked = [index - start for index in range(start, start + len(rows)) if index in grid_indices]
            originals.append(pixel_values[picked].cpu())
            reconstructions.append(reconstruction[picked].cpu())
    model.train(was_training)
    grid = torch.cat(originals + reconstructions) if values else None
    report = {"images": total, "vocab_size": model.config.vocab_size, **codebook_health(counts.cpu())}
    if values:
        mse = squared_error / values
        psnr = -10 * math.log10(max(mse, 1e-12))
        report.update(reconstruction_mse=round(mse, 6), reconstruction_psnr=round(psnr, 3))
    return report, grid


def save_image_grid(images: torch.Tensor, path: str, columns: int, min_tile: int = 96) -> str:
    """Images (N, C, H, W) in [0, 1] → a PNG of ``columns`` tiles per row (tiles enlarged to ``min_tile`` px)."""
    rows = math.ceil(images.shape[0] / columns)
    height, width = images.shape[2:]
    scale = max(1, math.ceil(min_tile / max(height, width)))
    canvas = torch.ones(3, rows * height, columns * width)
    for index, image in enumerate(images.float().clamp(0, 1)):
        row, column = divmod(index, columns)
        canvas[:, row * height : (row + 1) * height, column * width : (column + 1) * width] = image[:3]
    array = (canvas.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    picture.save(path)
    return path


def write_report(
    model, dataset, json_path: str, png_path: str, max_images: int, batch_size: int = 256, progress: bool = True
) -> dict:
    """`evaluate_tokenizer` → a JSON report, and a PNG of originals above reconstructions when the tokenizer
    decodes to pixels (the report's ``reconstructions`` entry then gives its path)."""
    report, grid = evaluate_tokenizer(model, dataset, max_images=max_images, batch_size=batch_size, progress=progress)
    if grid is not None:
        report["reconstructions"] = save_image_grid(grid, png_path, columns=grid.shape[0] // 2)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report


# -------------------------------------------------------------------------------------------------- training
def train_tokenizer(
    data_args: DataArguments, model_args: TokenizerArguments, training_args: TokenizerTrainingArguments
) -> tuple[MaskVisionTrainer, dict]:
    """Train a tokenizer and save it (weights, config, image processor) with its codebook report in output_dir."""
    if not training_args.output_dir:
        raise ValueError("--output_dir is required.")
    # Before the data: a checkpoint named by path that is incomplete fails at once.
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    with training_args.main_process_first(desc="loading and checking the images"):
        dataset = data_args.load(training_args.seed)
    set_seed(training_args.seed)  # the initialisation follows --seed (as in run_pretraining)
    model = build_tokenizer(model_args)
    training_args.resolve_for(model_args.tokenizer_type)
    trainer = MaskVisionTrainer(
        model=model,
        args=training_args,
        train_dataset=training_rows(dataset, data_args, training_args),  # batches from (seed, epoch, samples)
        data_collator=TokenizerCollator(model.config.image_size, model_args.min_crop_scale, seed=training_args.seed,
                                        augment_on_device=training_args.augment_on_device,
                                        interpolation=TOKENIZER_INTERPOLATION[model_args.tokenizer_type]),
        callbacks=tokenizer_callbacks(model, model_args),
        processing_class=model.image_processor(),
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.preempted:  # the checkpoint is written; the run ends when a resumed one does
        return trainer, {}
    trainer.save_model()
    write_training_curves(trainer)  # training_curves.png: loss, temperature, KL weight, codebook health
    report = {}
    if trainer.is_world_process_zero():
        output_dir = training_args.output_dir
        if isinstance(dataset, ImageStream):  # the stream's first images: a random draw would read them all
            dataset = dataset.head(model_args.eval_images)
        report = write_report(model, dataset, os.path.join(output_dir, "codebook_health.json"),
                              os.path.join(output_dir, "reconstructions.png"), model_args.eval_images,
                              progress=not training_args.disable_tqdm)
        logger.info("Codebook health on %d training images: %s", report["images"], report)
    return trainer, report


# ------------------------------------------------------------------------------------------------------ demo
def stage(context) -> dict:
    """Demo stage ``tokenizer``: the tiny dVAE trained on the demo images into ``context.path("tokenizer")`` (about
    two minutes on two CPU cores; a handful of steps with ``context.quick``), which the BEiT stage then loads."""
    quick = context.quick
    data_args = DataArguments(dataset=context.dataset)
    model_args = TokenizerArguments(
        model_size="tiny",
        # A short run: hard codes from the first step and a milder final temperature use more of the codebook
        # (CIFAR-10, 200 steps: 44% of the codes used, perplexity 84, against 31% and 37 with DALL-E's schedule).
        config_overrides="straight_through=true",
        temperature_end=0.5,
        min_crop_scale=0.35,  # 32 px images: the official 0.08 leaves 9 px crops (as the BEiT stage's views)
        reseed_interval=2 if quick else 25,
        eval_images=32 if quick else 1024,
    )
    training_args = TokenizerTrainingArguments(
        output_dir=context.path("tokenizer"),
        max_steps=2 if quick else 100,
        per_device_train_batch_size=8 if quick else 64,
        base_learning_rate=1e-3,
        lr_reference_batch=64,
        logging_steps=1 if quick else 20,
        save_strategy="no",
        seed=context.seed,
        dataloader_num_workers=0,
    )
    _, report = train_tokenizer(data_args, model_args, training_args)
    return {key: report[key] for key in ("used_fraction", "perplexity", "reconstruction_psnr") if key in report}
