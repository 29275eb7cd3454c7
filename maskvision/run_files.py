"""The names of the files a run leaves in its ``output_dir``: written by the run driver (`maskvision.training.runs.run`),
the trainer and the evaluations; read by the model card, the training-curves plot and the Hub staging.

A leaf: it imports nothing, so that every layer (the cards and the Hub too) can name the files without importing
the code that writes them.
"""

TRAINING_ARGS = "training_args.json"  # the run's TrainingArguments (`MaskVisionTrainer`)
TRAINER_STATE = "trainer_state.json"  # steps, epochs, the logged scalars (`Trainer.save_state`)
DATA_ARGS = "data_args.json"  # the data the run trained on, with ``num_images`` (None for a stream)
TRAINING_CURVES = "training_curves.png"  # the logged scalars drawn (`visualization.curves`), beside the card
EVAL_RESULTS = "eval_results.json"  # `maskvision eval` / `maskvision finetune` records (`evaluation.results`)
CODEBOOK_HEALTH = "codebook_health.json"  # a tokenizer's codebook report on its training images
RECONSTRUCTIONS = "reconstructions.png"  # a pixel tokenizer's originals beside their reconstructions
ENCODER_DIR = "encoder"  # a pretraining run's stock encoder export

# What every run writes, whatever it trains (tests/test_run_files.py): the model card reads them.
RUN_FILES = (TRAINING_ARGS, TRAINER_STATE, DATA_ARGS, TRAINING_CURVES)
# The run's files a card states facts from (JSON), beside the checkpoint or the run it was exported from.
CARD_FILES = (TRAINING_ARGS, TRAINER_STATE, DATA_ARGS, CODEBOOK_HEALTH)
