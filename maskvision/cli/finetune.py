"""`maskvision finetune --model PATH_OR_REPO --dataset SOURCE --output_dir DIR`: fine-tune an encoder into a
stock image classifier on `Trainer` (BEiT's recipe by default: layer-wise lr decay, RandAugment, random erasing,
Mixup / CutMix, label smoothing, drop path; evaluation every epoch, best checkpoint kept).

    maskvision finetune --model runs/beit/encoder --dataset cifar10/train.parquet \\
        --eval_dataset cifar10/test.parquet --output_dir runs/beit-cifar10 --num_train_epochs 100

The result loads in ``pipeline("image-classification", model=DIR)``; its top-1 / top-5 go to
``DIR/eval_results.json``. Without ``--eval_dataset`` on a one-split source, a seeded 15% of the rows is held out
for evaluation (``--holdout_fraction``). Flags or a YAML/JSON file followed by overriding flags, like
`maskvision pretrain`.
"""

from ..data.labelled import LabelledDataArguments
from ..training.runs.finetune_arguments import FinetuneArguments, FinetuneModelArguments
from .args import exit_status, parse_arguments


def main(argv: list[str]) -> int:
    model_args, data_args, training_args = parse_arguments(
        (FinetuneModelArguments, LabelledDataArguments, FinetuneArguments),
        argv,
        prog="maskvision finetune",
        description=__doc__.split("\n\n")[0],
    )
    from ..evaluation.results import command_line
    from ..training.runs.finetune import run_finetuning  # the models and the Trainer: after --help

    trainer, metrics = run_finetuning(
        model_args, data_args, training_args, command=command_line("maskvision finetune", argv)
    )
    if metrics:
        print({key: value for key, value in metrics.items() if "accuracy" in key})
    return exit_status(trainer, training_args)
