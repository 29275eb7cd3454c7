"""VQ-KD tokenizer training under DDP: `torchrun --nproc_per_node 2` (gloo, CPU) runs tests/distributed/tokenizer_ddp.py
with `maskvision tokenizer train`'s arguments."""

import json

import pytest
from launcher import script, torchrun
from transformers import BeitConfig, BeitModel


@pytest.mark.distributed
def test_vqkd_codebooks_stay_identical_on_every_rank(tmp_path):
    teacher = tmp_path / "teacher"
    BeitModel(
        BeitConfig(
            image_size=16,
            patch_size=4,
            hidden_size=24,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=48,
        ),
        add_pooling_layer=False,
    ).save_pretrained(teacher)
    summary_path = tmp_path / "summary.json"
    arguments = [
        "--dataset", "demo", "--max_train_samples", "64", "--output_dir", str(tmp_path / "vqkd"),
        "--tokenizer_type", "vqkd", "--teacher", str(teacher), "--model_size", "tiny", "--image_size", "16",
        "--config_overrides", "vocab_size=64", "--reseed_interval", "1", "--eval_images", "8", "--save_strategy", "no",
        "--max_steps", "3", "--per_device_train_batch_size", "4", "--base_learning_rate", "1e-3",
        "--logging_steps", "1", "--dataloader_num_workers", "0", "--report_to", "none", "--disable_tqdm", "true",
    ]  # fmt: skip
    torchrun([script("tokenizer_ddp.py"), str(summary_path), *arguments])
    summary = json.loads(summary_path.read_text())
    # No --use_cpu on a machine without GPUs: the processes still train as one data-parallel run.
    assert summary["world_size"] == summary["trainer_world_size"] == 2 and len(summary["losses"]) == 3
    assert summary["codebook_initialized"] and summary["reseeded_codes"] > 0
    assert summary["codebooks_identical"] and summary["weights_identical"]
    assert (tmp_path / "vqkd" / "codebook_health.json").exists()  # written once, by rank 0
