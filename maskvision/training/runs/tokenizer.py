"""Training the visual tokenizers (BEiT's first step) as a pretraining recipe, through the one run driver:

    dataset rows (PIL images) → `TokenizerCollator` (random-resized crop + flip, [0, 1]) → tokenizer(pixel_values)
    → loss → Trainer → callbacks (relaxation schedule, codebook EMA / health / re-seeding)
    → output_dir: weights, config, image processor, the run files (`maskvision.run_files.RUN_FILES`),
      codebook_health.json and reconstructions.png

Arguments: `maskvision.training.runs.tokenizer_arguments`, size presets: `tokenizer_presets`; the codebook report and its picture:
`maskvision.training.runs.tokenizer_report`. `maskvision tokenizer train|inspect|import-dalle`
(``cli/tokenizer.py``) and the demo's ``tokenizer`` stage run these functions.
"""

import logging
import os

import yaml

from ...data.streaming import ImageStream
from ...modeling.modeling_dvae import DVAETokenizer
from ...modeling.modeling_vqkd import load_teacher
from ...modeling.tokenizer_utils import VisualTokenizerModel
from ...run_files import CODEBOOK_HEALTH, RECONSTRUCTIONS
from ..inputs.collators import TokenizerCollator
from .pretrain import DataArguments, PretrainingRecipe, PretrainingRun
from .run import run_training
from .tokenizer_arguments import MODEL_SIZES, TOKENIZER_INTERPOLATION, TokenizerArguments, TokenizerTrainingArguments
from .tokenizer_callbacks import CodebookCallback, RelaxationScheduleCallback
from .tokenizer_presets import TOKENIZERS
from .tokenizer_report import evaluate_tokenizer, write_report
from ..loop.trainer import MaskVisionTrainer

logger = logging.getLogger(__name__)


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


def check_tokenizer_arguments(args: TokenizerArguments) -> None:
    """Refuse an unknown type or size, or VQ-KD without its teacher, before any data is read."""
    if args.tokenizer_type not in TOKENIZERS:
        raise ValueError(f"tokenizer_type must be one of {sorted(TOKENIZERS)}, got {args.tokenizer_type!r}.")
    if args.model_size not in MODEL_SIZES:
        raise ValueError(f"model_size must be one of {MODEL_SIZES}, got {args.model_size!r}.")
    if args.tokenizer_type == "vqkd" and not args.teacher:
        raise ValueError("tokenizer_type 'vqkd' needs --teacher: a transformers image encoder (name or path).")


def build_tokenizer(args: TokenizerArguments) -> VisualTokenizerModel:
    """A freshly initialised tokenizer of ``args.tokenizer_type`` and ``args.model_size`` (VQ-KD: teacher attached)."""
    check_tokenizer_arguments(args)
    config_class, model_class, preset = TOKENIZERS[args.tokenizer_type]
    kwargs = {**preset(args.model_size), **parse_config_overrides(args.config_overrides)}
    if args.image_size is not None:
        kwargs["image_size"] = args.image_size
    unknown = sorted(set(kwargs) - {f.name for f in config_class.__dataclass_fields__.values()})
    if unknown:
        raise ValueError(f"Unknown {config_class.__name__} field(s) {unknown} in config_overrides.")
    if args.tokenizer_type == "vqkd":
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


# ---------------------------------------------------------------------------------------------------- recipe
class TokenizerRecipe(PretrainingRecipe):
    """The visual tokenizers as a pretraining recipe: the tokenizer's official optimisation resolved before the run,
    its image processor saved with every checkpoint, and its codebook report instead of an encoder export."""

    name = "tokenizer"
    model_arguments = TokenizerArguments
    training_arguments = TokenizerTrainingArguments

    def prepare(self, model_args: TokenizerArguments, training_args: TokenizerTrainingArguments) -> None:
        check_tokenizer_arguments(model_args)
        training_args.resolve_for(model_args.tokenizer_type)

    def build_model(self, model_args: TokenizerArguments) -> VisualTokenizerModel:
        return build_tokenizer(model_args)

    def build_collator(self, model, model_args: TokenizerArguments, seed: int) -> TokenizerCollator:
        return TokenizerCollator(model.config.image_size, model_args.min_crop_scale, seed=seed,
                                 interpolation=TOKENIZER_INTERPOLATION[model_args.tokenizer_type])

    def build_callbacks(self, model, model_args: TokenizerArguments) -> list:
        return tokenizer_callbacks(model, model_args)

    def processing_class(self, model):
        return model.image_processor()

    def export(self, model, dataset, model_args: TokenizerArguments, training_args) -> dict:
        """``codebook_health.json`` (and ``reconstructions.png``) on ``eval_images`` of the training images."""
        if isinstance(dataset, ImageStream):  # the stream's first images: a random draw would read them all
            dataset = dataset.head(model_args.eval_images)
        output_dir = training_args.output_dir
        report = write_report(model, dataset, os.path.join(output_dir, CODEBOOK_HEALTH),
                              os.path.join(output_dir, RECONSTRUCTIONS), model_args.eval_images,
                              progress=not training_args.disable_tqdm)
        logger.info("Codebook health on %d training images: %s", report["images"], report)
        return report


TOKENIZER_RECIPE = TokenizerRecipe()


def train_tokenizer(
    data_args: DataArguments, model_args: TokenizerArguments, training_args: TokenizerTrainingArguments
) -> tuple[MaskVisionTrainer, dict]:
    """Train a tokenizer (`run_training` with `TOKENIZER_RECIPE`) and save it (weights, config, image processor) with
    the run's files and its codebook report in output_dir. Returns the trainer and the report (empty when
    preempted)."""
    return run_training(PretrainingRun(TOKENIZER_RECIPE, model_args), data_args, training_args)


# ------------------------------------------------------------------------------------------------------ demo
def demo_stage(context) -> dict:
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


__all__ = [  # with the names moved to tokenizer_arguments, tokenizer_report and collators, imported from here
    "TOKENIZER_RECIPE",
    "TokenizerArguments",
    "TokenizerCollator",
    "TokenizerRecipe",
    "TokenizerTrainingArguments",
    "build_tokenizer",
    "demo_stage",
    "evaluate_tokenizer",
    "parse_config_overrides",
    "tokenizer_callbacks",
    "train_tokenizer",
    "write_report",
]
