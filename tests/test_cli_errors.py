"""Mistakes on the command line, one test per kind: each exits 2 with one or two lines naming the problem and the fix
(the closest valid flag, the allowed values, the missing path), before any data is read or a model built. An error
during a run is one line and a log file holding its traceback (exit 1), the traceback itself with --debug."""

import os
import subprocess
import sys

import pytest
from hub_kinds import RecordingHub
from huggingface_hub import constants

from maskvision.cli import entry_point, main
from maskvision.cli.args import normalise_flags, parse_arguments
from maskvision.cli.push import PushArguments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _usage_error(capsys, argv: list[str]) -> str:
    """Run ``maskvision ARGV``: it must exit 2 with at most two lines on stderr and none on stdout; returns stderr."""
    status = main(argv)
    captured = capsys.readouterr()
    assert status == 2, captured
    lines = captured.err.strip().splitlines()
    assert 1 <= len(lines) <= 2 and not captured.out, captured.err
    return captured.err


def test_a_misspelt_flag_names_the_closest_valid_ones(capsys):
    err = _usage_error(capsys, ["pretrain", "beit", "--datset", "demo"])
    assert "unknown flag --datset; did you mean --dataset" in err and "maskvision pretrain beit --help" in err


def test_a_misspelt_command_and_subcommand_name_the_closest(capsys):
    assert "unknown command 'pretrian'" in _usage_error(capsys, ["pretrian"])
    assert "did you mean pretrain?" in _usage_error(capsys, ["pretrian"])
    assert "did you mean beit?" in _usage_error(capsys, ["pretrain", "bit"])
    assert "choose one of knn, linear" in _usage_error(capsys, ["eval", "lineer"])


def test_a_bad_value_lists_the_allowed_ones(capsys):
    err = _usage_error(capsys, ["pretrain", "beit", "--target", "logits"])
    assert "--target: invalid choice: 'logits' (choose from 'tokens', 'pixels')" in err
    assert "(choose from 'skip', 'raise')" in _usage_error(capsys, ["pretrain", "moby", "--on_bad_image", "drop"])


@pytest.mark.parametrize("flag", ["--dataset", "--tokenizer", "--model_name_or_path"])
def test_a_missing_local_path_is_named_before_any_work(capsys, tmp_path, flag):
    missing = str(tmp_path / "nowhere" / "images")
    argv = ["pretrain", "beit", "--dataset", "demo", "--output_dir", str(tmp_path / "run"), flag, missing]
    err = _usage_error(capsys, argv)
    assert f"{flag} {missing}: no such file or folder" in err
    assert not os.path.exists(tmp_path / "run")  # nothing ran


def test_a_missing_directory_or_file_argument_is_named(capsys, tmp_path):
    assert "DIR is missing" in _usage_error(capsys, ["push", "--repo_id", "me/model"])
    err = _usage_error(capsys, ["card", str(tmp_path / "no-run")])
    assert f"DIR {tmp_path / 'no-run'}: no such file or folder" in err
    err = _usage_error(capsys, ["eval", "knn", "--model", str(tmp_path / "encoder"), "--dataset", "demo"])
    assert "--model" in err and "no such file or folder" in err


def test_a_hub_id_while_offline_and_not_cached_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    err = _usage_error(capsys, ["eval", "knn", "--model", "someone/encoder", "--dataset", "demo"])
    assert "--model someone/encoder: no such local path, and not a cached Hub model (HF_HUB_OFFLINE=1" in err
    os.makedirs(tmp_path / "hub-cache" / "models--someone--encoder")  # cached: it passes to the library
    from maskvision.cli.sources import check_source

    check_source("--model", "someone/encoder", "model")


def test_an_unknown_key_in_a_config_file_names_the_closest(capsys, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: demo\nmax-steps: 2\nmask_ratoi: 0.9\n")
    err = _usage_error(capsys, ["pretrain", "extrema", str(config)])
    assert f"unknown key 'mask_ratoi' in {config}; did you mean mask_ratio?" in err
    assert "config file" in _usage_error(capsys, ["pretrain", "extrema", str(tmp_path / "missing.yaml")])


def test_push_to_hub_is_refused_with_a_pointer_to_maskvision_push_before_anything_runs(capsys, tmp_path, monkeypatch):
    hub = RecordingHub(str(tmp_path / "hub")).install(monkeypatch)
    run = tmp_path / "run"
    err = _usage_error(capsys, ["pretrain", "moby", "--dataset", "demo", "--output_dir", str(run), "--push_to_hub"])
    assert "--push_to_hub" in err and "maskvision push DIR --repo-id ID" in err
    err = _usage_error(capsys, ["finetune", "--model", str(tmp_path), "--dataset", "demo", "--push-to-hub", "true"])
    assert "maskvision push" in err
    assert hub.calls == [] and not run.exists()


def test_every_flag_is_accepted_in_both_spellings():
    assert normalise_flags(["--output-dir", "a-b", "--max_steps=-1", "-h", "--", "--keep-me"]) == [
        "--output_dir",
        "a-b",
        "--max_steps=-1",
        "-h",
        "--",
        "--keep-me",
    ]
    for spelling in (["--repo-id", "me/x", "--create-pr"], ["--repo_id", "me/x", "--create_pr"]):
        (args,) = parse_arguments((PushArguments,), spelling, prog="maskvision push")
        assert (args.repo_id, args.create_pr) == ("me/x", True)


def test_a_run_error_is_one_line_and_a_log_with_the_traceback(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("MASKVISION_DEBUG", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert entry_point(["card", str(empty)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("maskvision card: ValueError: "), lines
    log = lines[1].split("full traceback: ")[1].split(" ")[0]
    with open(log, encoding="utf-8") as handle:
        assert "Traceback (most recent call last)" in handle.read()

    with pytest.raises(ValueError):  # --debug: the traceback itself
        entry_point(["--debug", "card", str(empty)])
    monkeypatch.setenv("MASKVISION_DEBUG", "1")
    with pytest.raises(ValueError):
        entry_point(["card", str(empty)])


def test_the_installed_command_prints_at_most_three_lines_for_a_misspelt_flag():
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ROOT}
    argv = [sys.executable, "-m", "maskvision", "pretrain", "beit", "--datset", "demo"]
    result = subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) <= 3 and "did you mean --dataset" in result.stderr, result.stderr


def test_convert_lists_the_kinds_of_release_the_converter_knows():
    from maskvision.cli.convert import KINDS as LISTED
    from maskvision.official import KINDS

    assert LISTED == KINDS
