"""The user's commands, unchanged, under the launchers: `maskvision pretrain` across two "nodes" (two torchrun
launches meeting through a c10d rendezvous on localhost, as two machines would; on CPU without ``--use_cpu``) and
`maskvision finetune` under `accelerate launch` with examples/accelerate/ddp.yaml and 2 processes."""

import json
import os

import pytest
from launcher import ROOT, accelerate_launch, torchrun_nodes
from transformers import BeitConfig, BeitModel

from maskvision.evaluation.features import build_image_processor

COMMON = ["--max_steps", "2", "--per_device_train_batch_size", "4", "--logging_steps", "1", "--save_strategy", "no",
          "--dataloader_num_workers", "0", "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip


def _epoch(output_dir, name="trainer_state.json") -> float:
    return json.loads((output_dir / name).read_text())["epoch"]


@pytest.mark.distributed
def test_pretrain_command_runs_unchanged_on_two_nodes(tmp_path):
    output = tmp_path / "beit"
    outputs = torchrun_nodes([
        "-m", "maskvision", "pretrain", "beit", "--target", "pixels", "--dataset", "demo", "--max_train_samples", "64",
        "--model_size", "tiny", "--image_size", "32", "--patch_size", "8", "--hidden_size", "32",
        "--num_hidden_layers", "2", "--num_attention_heads", "2", "--output_dir", str(output), *COMMON,
    ])  # fmt: skip
    assert len(outputs) == 2
    # 2 steps x 4 images x 2 processes of 64 images: a quarter of an epoch (one process alone: an eighth).
    assert _epoch(output) == pytest.approx(0.25)
    assert (output / "encoder" / "config.json").exists() and (output / "data_args.json").exists()


@pytest.mark.distributed
def test_finetune_command_runs_unchanged_under_accelerate_launch(tmp_path):
    encoder = tmp_path / "encoder"
    BeitModel(
        BeitConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            use_mean_pooling=True,
        )
    ).save_pretrained(encoder)
    build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).save_pretrained(encoder)
    output = tmp_path / "classifier"
    accelerate_launch(os.path.join(ROOT, "examples", "accelerate", "ddp.yaml"), ["--num_processes", "2",
        "-m", "maskvision", "finetune", "--model", str(encoder), "--dataset", "demo", "--max_train_samples", "64",
        "--max_eval_samples", "32", "--output_dir", str(output), "--eval_strategy", "no", *COMMON,
    ])  # fmt: skip
    results = json.loads((output / "eval_results.json").read_text())["results"]
    assert {result["metric"] for result in results} == {"top1_accuracy", "top5_accuracy"}
    assert all(result["settings"]["batch_size"] == 8 for result in results)  # 4 images x 2 processes per step
    assert _epoch(output, "all_results.json") == pytest.approx(0.25)
    assert (output / "config.json").exists() and (output / "preprocessor_config.json").exists()
