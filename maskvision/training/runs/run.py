"""The one run driver every training run goes through: pretraining of each method, tokenizer training, fine-tuning.

    check the arguments → resolve the checkpoint to resume → load the data → seed → build model + collator + trainer
    → train → (preempted: return, the checkpoint is written) → save the model → evaluate → save the state
    (trainer_state.json) → draw the curves → data_args.json → export

A kind of run is a `Run`: the hooks that differ (how its data loads, how its model and trainer are built, what it
evaluates and exports). The steps and the files they leave (`maskvision.run_files.RUN_FILES`) are the same for all,
so that every run's model card can state its data, steps and loss.
"""

import json
import os
from dataclasses import asdict

from transformers import set_seed

from ...data.streaming import ImageStream
from ...run_files import DATA_ARGS
from ...visualization.curves import write_training_curves
from ..loop.checkpoints import resolve_checkpoint


class Run:
    """One kind of run's hooks into `run_training`. ``build_trainer`` is required; the others default to a
    pretraining run's behaviour."""

    def check(self, training_args) -> None:
        """Refuse arguments this kind of run cannot use, before any data is read."""

    def load_data(self, data_args, seed: int):
        """The run's data, as ``data_args.load(seed)`` gives it."""
        return data_args.load(seed)

    def build_trainer(self, data, data_args, training_args):
        """The model, its collator and the `MaskVisionTrainer` that trains it (after `set_seed`)."""
        raise NotImplementedError

    def num_images(self, data) -> int | None:
        """The training images counted into ``data_args.json`` (None: a stream, which has no length)."""
        return None if isinstance(data, ImageStream) else len(data)

    def evaluate(self, trainer, data) -> dict:
        """After training, on every process (an evaluation is collective): the metrics to return and record."""
        return {}

    def export(self, trainer, data, metrics: dict) -> dict:
        """On the main process, after the run's files: exports and reports; returns what the run reports."""
        return metrics


def write_data_args(output_dir: str, data_args, num_images: int | None) -> str:
    """``output_dir/data_args.json``: the data arguments and the number of training images, for the model card."""
    path = os.path.join(output_dir, DATA_ARGS)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({**asdict(data_args), "num_images": num_images}, handle, indent=2)
    return path


def run_training(run: Run, data_args, training_args):
    """Train one run of any kind; returns ``(trainer, report)`` (the report is empty when the run was preempted)."""
    if not training_args.output_dir:
        raise ValueError("--output_dir is required.")
    run.check(training_args)
    # Before the data: a checkpoint named by path that is incomplete fails at once.
    checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
    with training_args.main_process_first(desc="loading and checking the images"):
        data = run.load_data(data_args, training_args.seed)
    set_seed(training_args.seed)  # the model's initialisation follows --seed too
    trainer = run.build_trainer(data, data_args, training_args)
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.preempted:  # the checkpoint is written; the run ends when a resumed one does
        return trainer, {}
    trainer.save_model()
    metrics = run.evaluate(trainer, data)
    trainer.save_state()  # trainer_state.json: steps, epochs and the logged losses, for the model card
    write_training_curves(trainer)  # training_curves.png, embedded in the model card
    report = {}
    if trainer.is_world_process_zero():
        write_data_args(training_args.output_dir, data_args, run.num_images(data))
        report = run.export(trainer, data, metrics)
    return trainer, report
