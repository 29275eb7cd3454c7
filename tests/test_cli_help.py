"""Every command's --help exits 0 and prints its usage: the commands in `COMMANDS` and the subcommands each one's own
usage names (``maskvision pretrain {beit,extrema,moby}``, ``maskvision tokenizer train ...``), so that a command
another branch adds is walked too."""

import contextlib
import io
import re
from dataclasses import dataclass, field

import pytest

from maskvision.cli import COMMANDS, main
from maskvision.cli.args import parse_arguments


def _help(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main([*argv, "--help"])
        except SystemExit as exit_:  # argparse's --help
            status = exit_.code
    return status, out.getvalue()


def _subcommands(command: str, usage: str) -> list[str]:
    """The subcommands a command's usage names: ``maskvision CMD {a,b}`` or ``maskvision CMD name ...`` lines."""
    names = []
    for found in re.findall(rf"maskvision {re.escape(command)} (\{{[^}}]*\}}|[a-z][a-z-]*)", usage):
        names += found.strip("{}").split(",")
    return list(dict.fromkeys(names))


def _every_command() -> list[list[str]]:
    commands = []
    for command in COMMANDS:
        status, usage = _help([command])
        assert status == 0, f"maskvision {command} --help exited {status}:\n{usage}"
        commands.append([command])
        commands += [[command, sub] for sub in _subcommands(command, usage)]
    return commands


EVERY_COMMAND = _every_command()


def test_the_walk_reaches_every_known_subcommand():
    walked = {" ".join(argv) for argv in EVERY_COMMAND}
    known = {"demo", "pretrain beit", "pretrain extrema", "pretrain moby", "tokenizer train", "tokenizer inspect",
             "tokenizer import-dalle", "eval knn", "eval linear", "finetune", "card", "push"}  # fmt: skip
    assert known <= walked


@pytest.mark.parametrize("argv", EVERY_COMMAND, ids=" ".join)
def test_every_command_help_exits_zero_and_prints_usage(argv):
    status, output = _help(argv)
    assert status == 0, f"maskvision {' '.join(argv)} --help exited {status}:\n{output}"
    assert "usage" in output.lower()
    if len(argv) > 1 or argv[0] in ("demo", "finetune"):  # a command of its own: its options are listed
        assert "--" in output


@dataclass
class _PercentArguments:
    num_masks: int = field(default=5, metadata={"help": "Disjoint masks per image (80% x 5)."})


def test_a_percent_sign_in_a_help_string_is_printed_as_is():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        parse_arguments((_PercentArguments,), ["--help"], "maskvision test")
    assert exit_.value.code == 0 and "80% x 5" in out.getvalue()


def test_a_command_help_shows_its_own_flags_then_the_common_training_flags_and_how_to_list_the_rest():
    status, focused = _help(["pretrain", "beit"])
    assert status == 0
    own, common = focused.index("--tokenizer"), focused.index("--learning_rate")
    assert own < common and "--per_device_train_batch_size" in focused and "--bf16" in focused
    assert "--neftune_noise_alpha" not in focused and focused.rstrip().endswith("--help-all lists every flag.")
    status, everything = _help(["pretrain", "beit", "--help-all"])
    assert status == 0 and "--neftune_noise_alpha" in everything and len(everything) > 3 * len(focused)
