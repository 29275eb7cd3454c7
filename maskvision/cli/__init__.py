"""The `maskvision` command. Each subcommand lives in its own module with a ``main(argv) -> int``; modules are
imported only when their command runs, so ``maskvision --help`` stays fast.

`main` is the command for Python callers and tests: usage errors are printed (exit status 2), other errors raised.
`entry_point` is the installed ``maskvision`` script: an error during a run is one line on stderr and the traceback goes
to a log file, unless ``maskvision --debug <command> ...`` or ``MASKVISION_DEBUG=1``.
"""

import functools
import importlib
import logging
import os
import sys
import tempfile
import time
import traceback

from .args import UsageError, dispatch

# name → (module, one-line help). Order is the order of `maskvision --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("maskvision.cli.demo", "run the whole pipeline on the embedded demo data"),
    "preview": ("maskvision.cli.preview", "a picture of the views and masks a method trains on"),
    "pretrain": ("maskvision.cli.pretrain", "pretrain an encoder with a method: beit | extrema | moby"),
    "tokenizer": ("maskvision.cli.tokenizer", "visual tokenizers for BEiT: train | inspect | import-dalle"),
    "convert": ("maskvision.cli.convert", "convert an official BEiT / VQ-KD / ExtreMA / MoBY .pth release"),
    "eval": ("maskvision.cli.evaluate", "evaluate a frozen encoder: knn | linear probe"),
    "finetune": ("maskvision.cli.finetune", "fine-tune an encoder into an image classifier"),
    "visualize": ("maskvision.cli.visualize", "pictures of a model: beit | attention | pca | curves"),
    "card": ("maskvision.cli.card", "render the model card of a checkpoint from its files"),
    "push": ("maskvision.cli.push", "publish a checkpoint on the Hugging Face Hub in one commit"),
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


def _run_command(module_name: str, argv: list[str]) -> int:
    _log_info_to_stderr()
    return importlib.import_module(module_name).main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    handlers = {name: functools.partial(_run_command, module) for name, (module, _) in COMMANDS.items()}
    try:
        return dispatch("maskvision", handlers, argv, usage())
    except UsageError as error:  # one line naming the mistake, one saying where the flags are listed
        prog = error.prog or "maskvision"
        print(
            f"{prog}: {error}\n({prog} --help for {'the flags' if prog != 'maskvision' else 'the commands'})",
            file=sys.stderr,
        )
        return 2
    except Exception as error:
        from ..training.loop.checkpoints import IncompleteCheckpointError  # here: `maskvision --help` imports no torch

        if not isinstance(error, IncompleteCheckpointError):
            raise
        print(f"maskvision {argv[0]}: {error}", file=sys.stderr)  # a usage error: one line naming the bad file
        return 2


def _end_process_group() -> None:
    """Leave the process group a distributed run joined (torchrun, accelerate launch) before the interpreter exits:
    torch tears down a group still alive at exit with its threads running, and a gloo rank then aborts ("terminate
    called without an active exception") after a run that finished. The script's job, not `main`'s: code calling
    `main` in a distributed process keeps its group."""
    distributed = sys.modules.get("torch.distributed")  # never imported by `maskvision --help`
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


def entry_point(argv: list[str] | None = None) -> int:
    """The ``maskvision`` script: `main`, with an error during a run as one line and a log file holding its traceback
    (``--debug`` first, or ``MASKVISION_DEBUG=1``: the traceback itself)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = argv[:1] == ["--debug"] or os.environ.get("MASKVISION_DEBUG", "") not in ("", "0")
    argv = argv[1:] if argv[:1] == ["--debug"] else argv
    try:
        return main(argv) if debug else _main_in_one_line(argv)
    finally:
        _end_process_group()


def _main_in_one_line(argv: list[str]) -> int:
    """`main`, an error during a run printed as one line plus the path of the log holding its traceback."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("maskvision: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output piped into a command that stopped reading (`| head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:  # noqa: BLE001 (every library error becomes one line and a log)
        command = " ".join(["maskvision", *argv[:1]])
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"{command}: {type(error).__name__}: {message}\nfull traceback: {_error_log(argv)} "
            f"(or run with maskvision --debug ...)",
            file=sys.stderr,
        )
        return 1


def _error_log(argv: list[str]) -> str:
    """Write the traceback being handled, under the command line that raised it, to a new file; returns its path."""
    folder = os.path.join(tempfile.gettempdir(), "maskvision-logs")
    os.makedirs(folder, exist_ok=True)
    name = f"{argv[0] if argv else 'maskvision'}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(" ".join(["maskvision", *argv]) + "\n\n" + traceback.format_exc())
    return path


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
