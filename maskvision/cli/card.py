"""`maskvision card DIR [--results JSON ...] [--output README.md]`: render the model card of a checkpoint.

    maskvision card runs/moby/encoder --repo-id me/moby-swin-t-encoder --output hub_cards/moby-swin-t-encoder.md

The card (huggingface_hub `ModelCard`) is built from files only: the config, the run's training_args.json /
trainer_state.json / data_args.json, and the results `maskvision eval` and `maskvision finetune` wrote
(DIR/eval_results.json and any --results files) as model-index entries, one per protocol, and it shows the run's
training_curves.png (linked from where the card is written). It is the card `maskvision push` uploads, with the
picture beside it.
"""

import os
from dataclasses import dataclass, field

from ..hub import card_for_directory
from .args import leading_arguments, parse_arguments
from .sources import check_source


@dataclass
class CardArguments:
    results: list[str] = field(
        default_factory=list,
        metadata={"help": "Further results JSON files (maskvision eval / finetune) besides DIR/eval_results.json."},
    )
    output: str | None = field(default=None, metadata={"help": "Where to write the card (default: DIR/README.md)."})
    repo_id: str | None = field(
        default=None, metadata={"help": "The Hub repository the card is for (its usage snippet loads it)."}
    )


def main(argv: list[str]) -> int:
    usage = "usage: maskvision card DIR [--results JSON ...] [--output README.md] [--repo_id ID]"
    (directory,), rest = leading_arguments(argv, ("DIR",), usage)
    (args,) = parse_arguments((CardArguments,), rest, "maskvision card", __doc__, usage)
    check_source("DIR", directory, "file")
    output = args.output or f"{directory.rstrip('/')}/README.md"
    card_dir = os.path.dirname(os.path.abspath(output))  # the card links its pictures from where it is written
    card = card_for_directory(directory, repo_id=args.repo_id, results=args.results, card_dir=card_dir)
    card.save(output)
    print(f"card: {output}")
    return 0
