"""Argument parsing for every command, one style: `HfArgumentParser` over dataclasses, from flags, from a YAML/JSON
file, or from a file followed by flags that override it (``maskvision pretrain beit run.yaml --max_steps 100``).

- Flags are spelt either way, ``--output-dir`` or ``--output_dir``: names are normalised to ``_`` before parsing
  (`normalise_flags`; values are left as they are), YAML/JSON keys too.
- A mistake in the command line raises `UsageError` (the dispatcher prints it in one or two lines and exits 2): an
  unknown flag or file key with the closest valid ones, a bad value with the allowed ones, a missing local path
  (`sources.check_sources`, before any heavy work).
- ``--help`` shows a command's own and its method's flags, then the common training flags; ``--help-all`` every flag.
"""

import argparse
import dataclasses
import difflib
import json
import os
import re
import sys

_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
_PERCENT = re.compile(r"%(?!\()")  # a % that is not argparse's own "%(default)s"
HELP_FLAGS = ("-h", "--help")
HELP_ALL_FLAG = "--help_all"
ANY_HELP_FLAG = (*HELP_FLAGS, "--help-all", HELP_ALL_FLAG)  # as typed, before `normalise_flags`
# The `TrainingArguments` flags `--help` shows besides a command's own; `--help-all` lists the other ~150.
COMMON_TRAINING_FLAGS = (
    "output_dir", "per_device_train_batch_size", "gradient_accumulation_steps", "num_train_epochs", "max_steps",
    "learning_rate", "weight_decay", "lr_scheduler_type", "warmup_steps", "bf16", "fp16", "logging_steps",
    "save_strategy", "save_steps", "save_total_limit", "resume_from_checkpoint", "report_to", "seed",
    "dataloader_num_workers",
)  # fmt: skip
PUSH_TO_HUB_REFUSAL = (
    "--push_to_hub would upload the output folder without its remote code or model card (a pushed run would not "
    "load); after the run: maskvision push DIR --repo-id ID (DIR: the output_dir, or DIR/encoder)"
)


class UsageError(ValueError):
    """A mistake in the command line (a flag, a value, a path): printed in one or two lines, exit status 2. ``prog`` is
    the command it was made in (set by the innermost parser or dispatcher that sees it). A `ValueError`, as callers of
    `parse_arguments` caught before."""

    def __init__(self, message: str, prog: str | None = None):
        super().__init__(message)
        self.prog = prog


def normalise_flags(argv: list[str]) -> list[str]:
    """``--output-dir`` → ``--output_dir`` for every ``--flag`` (and ``--flag=value``) before a bare ``--``; values
    and short options are left as they are."""
    normalised = []
    for index, token in enumerate(argv):
        if token == "--":
            return normalised + argv[index:]
        if token.startswith("--") and len(token) > 2:
            name, equals, value = token.partition("=")
            token = "--" + name[2:].replace("-", "_") + equals + value
        normalised.append(token)
    return normalised


def closest(name: str, candidates, prefix: str = "") -> str:
    """``; did you mean --dataset?`` for the candidates closest to ``name`` (difflib), or an empty string."""
    found = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    found = [prefix + match for match in found]
    return f"; did you mean {', '.join(found[:-1]) + ' or ' if found[1:] else ''}{found[-1]}?" if found else ""


class CommandParser(argparse.ArgumentParser):
    """argparse's errors (a bad value, a missing required flag) as `UsageError` instead of usage text and exit."""

    def error(self, message: str):
        raise UsageError(message, self.prog)


def _parser(dataclass_types: tuple, prog: str, description: str | None, usage: str | None):
    from transformers import HfArgumentParser

    class _Parser(CommandParser, HfArgumentParser):
        pass

    class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
        """Defaults after each flag's help; the description (a command's docstring) as it is written."""

    usage = (usage or f"{prog} [flags]  |  {prog} config.yaml [flags]").removeprefix("usage: ")
    parser = _Parser(dataclass_types, prog=prog, description=description, usage=usage, formatter_class=_Formatter)
    for action in parser._actions:
        if action.help:  # argparse %-formats help strings: a literal "80%" would crash --help
            action.help = _PERCENT.sub("%%", action.help)
        # Help lists one spelling: `normalise_flags` turns the other into it before parsing.
        action.option_strings = [flag for flag in action.option_strings if "-" not in flag[2:]] or action.option_strings
    return parser


def _trainer_fields(dataclass_types: tuple) -> set[str]:
    """The fields every command inherits from transformers' `TrainingArguments` (not its own additions)."""
    for dataclass_type in dataclass_types:
        for base in dataclass_type.__mro__:
            if base.__name__ == "TrainingArguments" and base.__module__.startswith("transformers."):
                return {field.name for field in dataclasses.fields(base)}
    return set()


def focused_help(parser: argparse.ArgumentParser, dataclass_types: tuple) -> str:
    """The command's own and its method's flags, then the common training flags, then how to list the rest."""
    trainer = _trainer_fields(dataclass_types)
    actions = [action for action in parser._actions if action.dest != "help"]
    own = [action for action in actions if action.dest not in trainer]
    common = [action for action in actions if action.dest in trainer and action.dest in COMMON_TRAINING_FLAGS]
    hidden = len(actions) - len(own) - len(common)
    formatter = parser._get_formatter()
    formatter.add_usage(parser.usage, [], [])
    formatter.add_text(parser.description)
    for title, group in (("flags", own), ("common training flags (transformers' TrainingArguments)", common)):
        if group:
            formatter.start_section(title)
            formatter.add_arguments(group)
            formatter.end_section()
    if hidden:
        formatter.add_text(
            f"{hidden} more flags of transformers' TrainingArguments (evaluation, distribution, "
            f"compilation...): {parser.prog} --help-all lists every flag."
        )
    return formatter.format_help()


def _read_config_file(path: str, parser: argparse.ArgumentParser) -> dict:
    if not os.path.isfile(path):
        raise UsageError(f"config file {path}: no such file")
    import yaml

    with open(path, encoding="utf-8") as handle:
        try:
            values = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
        except (ValueError, yaml.YAMLError) as error:
            raise UsageError(f"config file {path} does not parse: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a mapping of flag names to values")
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    known = {action.dest for action in parser._actions} - {"help"}
    for key in values:
        if key not in known:
            raise UsageError(f"unknown key {key!r} in {path}{closest(key, known)}")
    return values


def parse_arguments(
    dataclass_types: tuple, argv: list[str], prog: str, description: str | None = None, usage: str | None = None
) -> tuple:
    """Parse ``argv`` into one instance per dataclass; then check the data and model paths they name (`sources`).
    ``usage``: the usage line of a command taking positional arguments (`leading_arguments`)."""
    try:
        return _parse_arguments(dataclass_types, normalise_flags(argv), prog, description, usage)
    except UsageError as error:
        error.prog = error.prog or prog
        raise


def _parse_arguments(dataclass_types: tuple, argv: list[str], prog: str, description: str | None, usage: str | None):
    parser = _parser(dataclass_types, prog, description, usage)
    if HELP_ALL_FLAG in argv or any(flag in argv for flag in HELP_FLAGS):
        print(parser.format_help() if HELP_ALL_FLAG in argv else focused_help(parser, dataclass_types))
        raise SystemExit(0)
    if argv and argv[0].endswith(_CONFIG_SUFFIXES) and not argv[0].startswith("-"):
        values = _read_config_file(argv[0], parser)
        # File values become defaults, then flags on the command line override them. Values that argparse
        # would have parsed from text (lists, enums) are given as strings so their field types apply.
        parser.set_defaults(**values)
        for action in parser._actions:
            if action.dest in values:
                action.required = False
        argv = argv[1:]
    *parsed, rest = parser.parse_args_into_dataclasses(args=argv, return_remaining_strings=True)
    if rest:
        raise UsageError(_unknown(rest[0], parser))
    if any(getattr(arguments, "push_to_hub", False) for arguments in parsed):
        raise UsageError(PUSH_TO_HUB_REFUSAL)
    from .sources import check_sources

    check_sources(parsed)
    return tuple(parsed)


def _unknown(token: str, parser: argparse.ArgumentParser) -> str:
    if not token.startswith("-"):
        return f"unexpected argument {token!r}"
    flags = [flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")]
    flag = token.split("=")[0]
    return f"unknown flag {flag}{closest(flag, flags)}"


def leading_arguments(argv: list[str], names: tuple[str, ...], usage: str) -> tuple[list[str | None], list[str]]:
    """(the positional arguments ``names``, the flags after them) for commands of the form ``maskvision <command> DIR
    [flags]``; a missing one is a `UsageError` quoting ``usage``. With ``--help`` first, (Nones, the flags): the
    command's `parse_arguments` prints its help."""
    if argv[:1] and argv[0] in ANY_HELP_FLAG:
        return [None] * len(names), argv
    values = []
    for name in names:
        if not argv or argv[0].startswith("-"):
            raise UsageError(f"{name} is missing: {usage.removeprefix('usage: ')}")
        values.append(argv[0])
        argv = argv[1:]
    return values, argv


def dispatch(prog: str, handlers: dict, argv: list[str], usage: str | None = None) -> int:
    """The one dispatcher of commands with subcommands: ``handlers`` maps each subcommand to ``handler(argv) -> int``.
    Without one (or with ``--help``) prints ``usage`` (default: the subcommands in braces, which the help test
    walks)."""
    usage = usage or f"usage: {prog} {{{','.join(handlers)}}} [flags]   ({prog} <subcommand> --help for its flags)"
    if not argv or argv[0] in ANY_HELP_FLAG:
        print(usage)
        return 0
    name = argv[0]
    if name not in handlers:
        kind = "subcommand" if " " in prog else "command"
        raise UsageError(f"unknown {kind} {name!r}: choose one of {', '.join(handlers)}{closest(name, handlers)}", prog)
    try:
        return int(handlers[name](argv[1:]) or 0)
    except UsageError as error:
        error.prog = error.prog or f"{prog} {name}"
        raise


def exit_status(trainer, training_args) -> int:
    """A training command's exit status: 0 when the run finished; for a run stopped by a preemption signal, the message
    naming its checkpoint (printed once, by the main process) and ``--preemption_exit_code``."""
    if not trainer.preempted:
        return 0
    if trainer.is_world_process_zero():
        print(trainer.preemption.message(training_args.output_dir), file=sys.stderr)
    return training_args.preemption_exit_code
