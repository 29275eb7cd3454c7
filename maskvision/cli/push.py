"""`maskvision push DIR --repo-id ID`: publish a checkpoint directory on the Hugging Face Hub in one commit.

    maskvision push runs/moby --repo-id me/moby-swin-t                 # pretraining checkpoint (+ remote code)
    maskvision push runs/moby/encoder --repo-id me/moby-swin-t-encoder # stock encoder + image processor
    maskvision push runs/moby-cifar10 --repo-id me/moby-cifar10 --private

DIR is any of the four kinds maskvision writes: a visual tokenizer, a pretraining checkpoint, an exported encoder or
a fine-tuned classifier. The repo gets config.json, model.safetensors, preprocessor_config.json, a model card
rendered from the directory's files (as `maskvision card` renders it) and, for maskvision classes, self-contained
remote code; all in one commit, so a push that fails midway publishes nothing.
"""

import sys
from dataclasses import dataclass, field

from ..hub import push_directory
from .args import leading_arguments, parse_arguments
from .sources import check_source


@dataclass
class PushArguments:
    repo_id: str = field(metadata={"help": "Hub repository to push to (created if needed): 'user/name'."})
    private: bool = field(default=False, metadata={"help": "Create the repository private (if it does not exist)."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (created if needed)."})
    commit_message: str | None = field(default=None, metadata={"help": "Message of the commit."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing."})
    results: list[str] = field(
        default_factory=list,
        metadata={"help": "Further results JSON files (maskvision eval / finetune) for the card, besides DIR's own."},
    )
    token: str | None = field(default=None, metadata={"help": "Hub token (default: the stored login)."})


def main(argv: list[str]) -> int:
    usage = "usage: maskvision push DIR --repo_id ID [--private] [--revision BRANCH] [--commit_message MSG]"
    (directory,), rest = leading_arguments(argv, ("DIR",), usage)
    (args,) = parse_arguments((PushArguments,), rest, "maskvision push", __doc__, usage)
    check_source("DIR", directory, "file")
    commit = push_directory(
        directory,
        args.repo_id,
        results=args.results,
        private=args.private or None,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
        token=args.token,
    )
    print(f"pushed {directory} to {args.repo_id}: {commit}", file=sys.stdout)
    return 0
