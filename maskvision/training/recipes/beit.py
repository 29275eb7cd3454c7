"""`maskvision pretrain beit`: BEiT masked image modeling (Bao et al. 2021) with the official recipe.

    maskvision pretrain beit --dataset SOURCE --tokenizer PATH --output_dir DIR [--model_size base ...]

Targets are the ids of a frozen visual tokenizer (`maskvision tokenizer train`, a DVAE or VQ-KD, given by path or
Hub id); ``--target pixels`` regresses normalised pixels instead and needs no tokenizer. The encoder view and the
tokenizer view come from one random-resized crop, ~40% of the patches are masked blockwise, and the optimisation
follows the official pretraining: AdamW (0.9, 0.999), lr 1.5e-3 at batch 2048 scaled linearly with the batch,
weight decay 0.05 (none on 1-D parameters, biases and [CLS]; [MASK] and the relative position bias table decay, as
the official optimizer), gradient clipping at 3.0, 800 epochs on a cosine schedule with 10 of warm-up ending at
1e-5 (at batch 2048), 128 images per device. Both views get ColorJitter(0.4, 0.4, 0.4), the same for the two. Every
row with its official source: RECIPES.md.
The checkpoint goes to ``DIR``, the stock transformers encoder (`BeitModel` + image processor) to ``DIR/encoder``.
Resume with ``--resume_from_checkpoint DIR/checkpoint-N`` (or ``last``): the tokenizer is given again by
``--tokenizer``; a checkpoint loaded with ``BeitMimForPreTraining.from_pretrained`` re-attaches it from the path in
its config. ``--model_name_or_path`` starts a new run from existing weights instead (`training.initialization`):
a BEiT run, or a stock `BeitForMaskedImageModeling` (its head too) / `BeitModel` / `ViTModel` / `DeiTModel` /
`Dinov2Model`, e.g. ``microsoft/beit-base-patch16-224-pt22k`` with the DALL-E tokenizer of ``maskvision tokenizer
import-dalle``.
"""

import os

from transformers import AutoModel

from ...configuration.configuration_beit_mim import BeitMimConfig
from ...modeling.modeling_beit_mim import BeitMimForPreTraining
from ..inputs.collators import MaskedImageModelingCollator
from ..inputs.masking import BlockwiseMaskGenerator
from ..runs.initialization import announce, fit_to_checkpoint, vit_flags
from ..runs.pretrain import DataArguments, PretrainingRecipe, run_pretraining
from .beit_arguments import BeitModelArguments, BeitTrainingArguments


class BeitRecipe(PretrainingRecipe):
    name = "beit"
    model_arguments = BeitModelArguments
    training_arguments = BeitTrainingArguments

    def build_model(self, model_args: BeitModelArguments) -> BeitMimForPreTraining:
        path = model_args.model_name_or_path
        if path:
            model_args = fit_to_checkpoint(model_args, vit_flags, BeitMimConfig.model_type)
        if model_args.target != "tokens":
            if model_args.tokenizer:
                raise ValueError(f"--tokenizer is not used with --target {model_args.target}: leave it out.")
            tokenizer, config = None, model_args.config()
        elif not model_args.tokenizer:
            raise ValueError("--tokenizer PATH is required with --target tokens (or use --target pixels).")
        else:
            tokenizer = AutoModel.from_pretrained(model_args.tokenizer)
            config = model_args.config(vocab_size=tokenizer.config.vocab_size)
        model = BeitMimForPreTraining.from_backbone(path, config) if path else BeitMimForPreTraining(config)
        if tokenizer is not None:
            model.set_tokenizer(tokenizer)  # records the path in the config: checkpoints re-attach it
        if path:
            announce(model)
        return model

    def build_collator(self, model: BeitMimForPreTraining, model_args: BeitModelArguments, seed: int):
        config = model.config
        tokenizer_image_size = (
            config.grid_size * model.tokenizer.downsample_factor if config.target == "tokens" else None
        )
        mask_generator = BlockwiseMaskGenerator(
            config.grid_size,
            num_masking_patches=config.num_masking_patches,
            min_num_patches=config.min_num_patches,
            max_num_patches=config.max_num_patches,
            min_aspect=config.min_aspect,
            exact=config.exact_masking,
        )
        return MaskedImageModelingCollator(
            image_size=config.backbone_config.image_size,
            patch_size=config.backbone_config.patch_size,
            tokenizer_image_size=tokenizer_image_size,
            mask_generator=mask_generator,
            image_mean=config.image_mean,
            image_std=config.image_std,
            min_crop_scale=model_args.min_crop_scale,
            color_jitter=model_args.color_jitter,
            seed=seed,
        )


RECIPE = BeitRecipe()


def demo_stage(context) -> dict:
    """Tiny BEiT on the demo data with the demo tokenizer (``context.path("tokenizer")``), exported to
    ``context.path("beit", "encoder")``: about 2 minutes on 2 cores, a few steps with ``context.quick``."""
    output_dir, tokenizer_dir = context.path("beit"), context.path("tokenizer")
    if not os.path.isdir(tokenizer_dir):
        raise FileNotFoundError(
            f"The BEiT stage needs the demo tokenizer in {tokenizer_dir}: run the tokenizer stage first "
            "(maskvision demo --stages tokenizer beit)."
        )
    model_args = BeitModelArguments(
        tokenizer=tokenizer_dir,
        model_size="tiny",
        image_size=32,
        patch_size=4,
        hidden_size=128,
        num_hidden_layers=6,
        num_attention_heads=4,
        drop_path_rate=0.0,
        min_crop_scale=0.35,  # 32 px images: the official 0.08 leaves 9 px crops
    )
    training_args = BeitTrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=16 if context.quick else 64,
        learning_rate=2e-3,
        warmup_steps=0.1,
        num_train_epochs=4,
        max_steps=3 if context.quick else -1,
        logging_steps=1 if context.quick else 10,
        save_strategy="no",
        seed=context.seed,
        dataloader_num_workers=0,
    )
    trainer = run_pretraining(RECIPE, DataArguments(dataset=context.dataset), model_args, training_args)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    return {
        "loss": round(logs[-1]["loss"], 3),
        "token_accuracy": round(logs[-1]["accuracy"], 4),
        "first_loss": round(logs[0]["loss"], 3),
        "encoder": os.path.join(output_dir, "encoder"),
    }
