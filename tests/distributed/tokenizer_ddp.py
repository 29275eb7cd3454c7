"""Launched by test_tokenizer_ddp.py under `torchrun --nproc_per_node 2` (gloo, CPU): `maskvision tokenizer train`'s
own code (its argument parsing and `train_tokenizer`) on the arguments given after the summary path, for a VQ-KD
tokenizer with its EMA codebook, k-means initialisation and dead-code re-seeding.

Every rank encodes different images, yet the codebook statistics are summed over the ranks and the re-seeding draws
from the gathered samples with a step-seeded generator: every rank must end with the same codebook and weights, and
codes must have been re-seeded. Rank 0 writes a summary to the JSON path.
"""

import sys

import torch
import torch.distributed as dist
from workers import identical_across_ranks, logged_losses, write_summary

from maskvision.cli.args import parse_arguments
from maskvision.training.runs.pretrain import DataArguments
from maskvision.training.runs.tokenizer import TokenizerArguments, TokenizerTrainingArguments, train_tokenizer
from maskvision.training.runs.tokenizer_callbacks import CodebookCallback


def main(summary_path: str, argv: list[str]) -> None:
    torch.set_num_threads(1)
    arguments = parse_arguments(
        (DataArguments, TokenizerArguments, TokenizerTrainingArguments), argv, prog="maskvision tokenizer train"
    )
    trainer, _ = train_tokenizer(*arguments)
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    callback = next(c for c in trainer.callback_handler.callbacks if isinstance(c, CodebookCallback))
    summary = {
        "world_size": dist.get_world_size(),
        "trainer_world_size": trainer.args.world_size,
        "losses": logged_losses(trainer),
        "codebook_initialized": bool(model.codebook_initialized),
        "codebooks_identical": identical_across_ranks([model.codebook]),
        "weights_identical": identical_across_ranks(list(model.parameters())),
        "reseeded_codes": callback.reseeded_codes,
    }
    write_summary(summary_path, summary)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
