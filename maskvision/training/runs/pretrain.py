"""The pretraining run shared by every method: data → collator → `MaskVisionTrainer` → checkpoint → encoder.

A method plugs in through a `PretrainingRecipe` (``maskvision/training/recipes/<method>.py``): its argument
dataclasses (model/masking arguments, and a `PretrainingArguments` subclass carrying the method's official
optimisation defaults), its builders and hooks. `run_pretraining` runs it through the one run driver
(`maskvision.training.runs.run.run_training`), the same way for every method and for the visual tokenizers:

    dataset rows (PIL images) → recipe collator (views + masks) → model(**batch).loss → Trainer
    → callbacks (teachers, schedules) → output_dir (checkpoint) → output_dir/encoder (stock transformers)
"""

import os

from transformers import TrainerCallback

from ...run_files import ENCODER_DIR
from .arguments import DataArguments, PretrainingArguments, default_num_workers
from .run import Run, run_training
from ..inputs.streaming import training_rows
from ..loop.trainer import MaskVisionTrainer

__all__ = ["DataArguments", "PretrainingArguments", "PretrainingRecipe", "default_num_workers", "run_pretraining"]


class PretrainingRecipe:
    """One method's plug into `run_pretraining`: its argument types and builders, and the hooks where a kind of
    pretraining differs (the visual tokenizers are a recipe too: `maskvision.training.runs.tokenizer.TOKENIZER_RECIPE`)."""

    name: str
    model_arguments: type
    training_arguments: type = PretrainingArguments

    def prepare(self, model_args, training_args) -> None:
        """Check the arguments and resolve the defaults that depend on them, before any data is read."""

    def build_model(self, model_args):
        raise NotImplementedError

    def build_collator(self, model, model_args, seed: int):
        """The collator making the method's views and masks; its random streams start from ``seed``."""
        raise NotImplementedError

    def build_callbacks(self, model, model_args) -> list[TrainerCallback]:
        return []

    def processing_class(self, model):
        """The image processor saved with every checkpoint (None: the checkpoint has none)."""
        return None

    def export(self, model, dataset, model_args, training_args) -> dict:
        """After training, on the main process: the stock encoder to ``output_dir/encoder``."""
        model.export_encoder(os.path.join(training_args.output_dir, ENCODER_DIR))
        return {}


class PretrainingRun(Run):
    """`run_training`'s hooks for a `PretrainingRecipe`: its model, collator and callbacks, then its export."""

    def __init__(self, recipe: PretrainingRecipe, model_args):
        self.recipe, self.model_args = recipe, model_args

    def check(self, training_args) -> None:
        self.recipe.prepare(self.model_args, training_args)

    def build_trainer(self, dataset, data_args, training_args) -> MaskVisionTrainer:
        model = self.recipe.build_model(self.model_args)
        collator = self.recipe.build_collator(model, self.model_args, seed=training_args.seed)
        collator.augment_on_device = training_args.augment_on_device
        return MaskVisionTrainer(
            model=model,
            args=training_args,
            train_dataset=training_rows(dataset, data_args, training_args),  # batches from (seed, epoch, samples)
            data_collator=collator,
            callbacks=self.recipe.build_callbacks(model, self.model_args),
            processing_class=self.recipe.processing_class(model),
        )

    def export(self, trainer, dataset, metrics: dict) -> dict:
        return self.recipe.export(trainer.model, dataset, self.model_args, trainer.args)


def run_pretraining(recipe: PretrainingRecipe, data_args: DataArguments, model_args, training_args):
    """Train (`run_training`), save the checkpoint to ``output_dir`` with the run's files and the recipe's export
    (the stock encoder in ``output_dir/encoder``). Returns the trainer."""
    return run_training(PretrainingRun(recipe, model_args), data_args, training_args)[0]
