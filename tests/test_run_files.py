"""Every kind of run goes through the one run driver (`maskvision.training.runs.run.run_training`) and so leaves the same run
files (`maskvision.run_files.RUN_FILES`): a pretraining method, a visual tokenizer and a fine-tuning run; and the
tokenizer's model card, which reads them, states its data, steps and loss."""

import json
import os

import pytest
from huggingface_hub import ModelCard

from maskvision.cli import main as cli_main
from maskvision.run_files import DATA_ARGS, RUN_FILES, TRAINER_STATE

TINY_MOBY = [
    "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim", "16", "--depths", "1", "1",
    "--num_heads", "1", "2", "--projector_hidden_size", "32", "--predictor_hidden_size", "32", "--projection_dim", "16",
    "--queue_size", "16",
]  # fmt: skip
TINY_DVAE = ["--model_size", "tiny", "--image_size", "16", "--config_overrides",
             "vocab_size=32,hidden_size=16,code_embedding_size=16", "--eval_images", "8"]  # fmt: skip
RUN = ["--dataset", "demo", "--max_train_samples", "16", "--per_device_train_batch_size", "8", "--max_steps", "2",
       "--save_strategy", "no", "--logging_steps", "1", "--use_cpu", "--dataloader_pin_memory", "false",
       "--disable_tqdm", "true"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, str]:
    """One tiny run of each kind on 16 demo images, two optimizer steps each: {kind: output_dir}."""
    root = tmp_path_factory.mktemp("runs")
    runs = {kind: str(root / kind) for kind in ("pretraining", "tokenizer", "finetuning")}
    assert cli_main(["pretrain", "moby", "--output_dir", runs["pretraining"], *RUN, *TINY_MOBY]) == 0
    assert cli_main(["tokenizer", "train", "--output_dir", runs["tokenizer"], *RUN, *TINY_DVAE]) == 0
    encoder = os.path.join(runs["pretraining"], "encoder")
    assert (
        cli_main(
            [
                "finetune",
                "--model",
                encoder,
                "--output_dir",
                runs["finetuning"],
                *RUN,
                "--max_eval_samples",
                "8",
                "--eval_strategy",
                "no",
                "--load_best_model_at_end",
                "false",
            ]
        )
        == 0
    )
    return runs


def _read(directory: str, name: str) -> dict:
    with open(os.path.join(directory, name), encoding="utf-8") as handle:
        return json.load(handle)


def test_every_kind_of_run_writes_the_same_run_files(runs):
    written = {kind: sorted(set(os.listdir(directory)) & set(RUN_FILES)) for kind, directory in runs.items()}
    assert written == {kind: sorted(RUN_FILES) for kind in runs}
    for kind, directory in runs.items():
        assert _read(directory, DATA_ARGS)["num_images"] == 16, kind
        assert _read(directory, DATA_ARGS)["dataset"] == "demo", kind
        assert _read(directory, TRAINER_STATE)["global_step"] == 2, kind


def test_tokenizer_card_shows_its_data_steps_and_loss(runs, tmp_path):
    output = str(tmp_path / "tokenizer.md")
    assert cli_main(["card", runs["tokenizer"], "--output", output, "--repo-id", "me/dvae"]) == 0
    text = ModelCard.load(output).text
    assert "16 images of `demo`" in text
    assert "| optimizer steps | 2 |" in text
    losses = [entry["loss"] for entry in _read(runs["tokenizer"], TRAINER_STATE)["log_history"] if "loss" in entry]
    assert f"| last logged training loss | {losses[-1]:.4g} |" in text
