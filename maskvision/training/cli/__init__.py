"""The `maskvision` command. Each subcommand lives in its own module with a ``main(argv) -> int``; modules are
imported only when their command runs, so ``maskvision --help`` stays fast."""

import importlib
import logging
import os
import sys

# name → (module, one-line help). Order is the order of `maskvision --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("maskvision.training.cli.demo", "run the whole pipeline on the embedded demo data"),
    "preview": ("maskvision.training.cli.preview", "a picture of the views and masks a method trains on"),
    "pretrain": ("maskvision.training.cli.pretrain", "pretrain an encoder with a method: beit | extrema | moby"),
    "tokenizer": ("maskvision.training.cli.tokenizer", "visual tokenizers for BEiT: train | inspect | import-dalle"),
    "convert": ("maskvision.training.cli.convert", "convert an official BEiT / VQ-KD / ExtreMA / MoBY .pth release"),
    "eval": ("maskvision.training.cli.evaluate", "evaluate a frozen encoder: knn | linear probe"),
    "finetune": ("maskvision.training.cli.finetune", "fine-tune an encoder into an image classifier"),
    "visualize": ("maskvision.training.cli.visualize", "pictures of a model: beit | attention | pca | curves"),
    "card": ("maskvision.training.cli.card", "render the model card of a checkpoint from its files"),
    "push": ("maskvision.training.cli.push", "publish a checkpoint on the Hugging Face Hub in one commit"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [
        "usage: maskvision <command> [options]   (maskvision <command> --help for a command's options)",
        "",
        "Self-supervised pretraining of vision transformers by masked image modeling.",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"maskvision: unknown command {name!r}.\n\n{usage()}", file=sys.stderr)
        return 2
    _log_info_to_stderr()
    module = importlib.import_module(COMMANDS[name][0])
    from ..checkpoints import IncompleteCheckpointError

    try:
        return int(module.main(rest) or 0)
    except IncompleteCheckpointError as error:  # a usage error: one line naming the bad file, no traceback
        print(f"maskvision {name}: {error}", file=sys.stderr)
        return 2


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record comes (as `logging.lastResort` does), not to the
    stream it was created with: a handler outlives a replaced or closed stderr (pytest's capture, a redirect)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; the property always answers sys.stderr
        pass


def _log_info_to_stderr() -> None:
    """maskvision's INFO messages (the images found, kept and skipped, ...) on stderr, from one process per machine
    (the others still print warnings)."""
    logger = logging.getLogger("maskvision")
    if not logger.handlers and os.environ.get("LOCAL_RANK", "0") == "0":
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
