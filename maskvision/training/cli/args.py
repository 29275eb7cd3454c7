"""Argument parsing for every command: `HfArgumentParser` over dataclasses, from flags, from a YAML/JSON file,
or from a file followed by flags that override it (``maskvision pretrain beit run.yaml --max_steps 100``)."""

import json
import os
import re
import sys

import yaml
from transformers import HfArgumentParser

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_PERCENT = re.compile(r"%(?!\()")  # a % that is not argparse's own "%(default)s"


def _read_config_file(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Config file {path!r} does not exist.")
    with open(path, encoding="utf-8") as handle:
        values = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    if not isinstance(values, dict):
        raise ValueError(f"Config file {path!r} must hold a mapping of argument names to values.")
    return values


def parse_arguments(dataclass_types: tuple, argv: list[str], prog: str, description: str | None = None) -> tuple:
    """Parse ``argv`` into one instance per dataclass; unknown arguments are an error naming them."""
    parser = HfArgumentParser(dataclass_types, prog=prog, description=description)
    for action in parser._actions:
        if action.help:  # argparse %-formats help strings: a literal "80%" would crash --help
            action.help = _PERCENT.sub("%%", action.help)
    if argv and argv[0].endswith(_CONFIG_SUFFIXES):
        values = _read_config_file(argv[0])
        known = {action.dest for action in parser._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown argument(s) {unknown} in {argv[0]!r}; run `{prog} --help` for the list.")
        # File values become defaults, then flags on the command line override them. Values that argparse
        # would have parsed from text (lists, enums) are given as strings so their field types apply.
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        argv = argv[1:]
    return parser.parse_args_into_dataclasses(args=argv)


def leading_directory(argv: list[str], usage: str, doc: str) -> tuple[str, list[str]]:
    """(DIR, the options after it) for commands of the form ``maskvision <command> DIR [options]``. Without a DIR
    first, prints ``usage`` and ``doc`` and exits: status 0 for -h/--help, 2 (a usage error) otherwise."""
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    print(f"{usage}\n")
    print(doc)
    raise SystemExit(0 if argv[:1] in (["-h"], ["--help"]) else 2)


def exit_status(trainer, training_args) -> int:
    """A training command's exit status: 0 when the run finished; for a run stopped by a preemption signal, the message
    naming its checkpoint (printed once, by the main process) and ``--preemption_exit_code``."""
    if not trainer.preempted:
        return 0
    if trainer.is_world_process_zero():
        print(trainer.preemption.message(training_args.output_dir), file=sys.stderr)
    return training_args.preemption_exit_code
