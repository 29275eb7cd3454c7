"""`maskvision tokenizer train → inspect` on tiny configs, the collator, resuming, and the demo stage."""

import json
import os
import shutil

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, BeitConfig, BeitModel

from maskvision import DVAETokenizer, VQKDTokenizer
from maskvision.cli import main as cli
from maskvision.cli.demo import DemoContext
from maskvision.training.runs.tokenizer import TokenizerCollator, demo_stage, parse_config_overrides
from maskvision.visualization.images import HEADER

# A tiny dVAE: 16 px, 4 x 4 codes of a vocabulary of 32.
TINY = "vocab_size=32,hidden_size=16,code_embedding_size=16"
COMMON = ["--max_steps", "4", "--per_device_train_batch_size", "8", "--base_learning_rate", "1e-3",
          "--logging_steps", "2", "--use_cpu", "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip


@pytest.fixture(scope="module")
def parquet(tmp_path_factory) -> str:
    """48 small images of coloured rectangles, as a parquet file with a datasets Image column."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(48):
        array = np.full((24, 20, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        top, left = rng.integers(0, 12, 2)
        array[top : top + 10, left : left + 8] = rng.integers(0, 256, 3)
        images.append(Image.fromarray(array))
    path = str(tmp_path_factory.mktemp("data") / "images.parquet")
    datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image()).to_parquet(path)
    return path


def test_collator_tokenizer_views_and_overrides():
    rows = [{"image": Image.new("RGB", (40, 30), (255, 0, 0)), "label": 3}, {"image": Image.new("L", (10, 50))}]
    batch = TokenizerCollator(16, min_crop_scale=0.2, seed=1)(rows)
    assert set(batch) == {"pixel_values"} and batch["pixel_values"].shape == (2, 3, 16, 16)
    assert torch.allclose(batch["pixel_values"][0, 0], torch.ones(16, 16))  # [0, 1], not normalised
    assert float(batch["pixel_values"][0, 1:].abs().max()) == 0.0
    assert torch.equal(TokenizerCollator(16, 0.2, seed=1)(rows)["pixel_values"], batch["pixel_values"])
    assert parse_config_overrides("vocab_size=64, reconstruction_loss=mse") == {
        "vocab_size": 64,
        "reconstruction_loss": "mse",
    }
    with pytest.raises(ValueError, match="name=value"):
        parse_config_overrides("vocab_size")


def test_train_then_inspect_dvae(parquet, tmp_path):
    output = tmp_path / "dvae"
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset: {parquet}\nmodel_size: tiny\nimage_size: 16\nconfig_overrides: '{TINY}'\n")
    assert cli(["tokenizer", "train", str(config), "--output_dir", str(output), "--reseed_interval", "2",
                "--temperature_steps", "4",
                "--eval_images", "24", "--save_strategy", "steps", "--save_steps", "2", *COMMON]) == 0  # fmt: skip
    files = set(os.listdir(output))
    assert {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "codebook_health.json",
        "reconstructions.png",
    } <= files
    model = AutoModel.from_pretrained(output)
    assert isinstance(model, DVAETokenizer) and model.config.vocab_size == 32
    processor = AutoImageProcessor.from_pretrained(output)
    assert processor.size == {"height": 16, "width": 16} and not processor.do_normalize
    health = json.loads((output / "codebook_health.json").read_text())
    assert health["images"] == 24 and 0 < health["used_fraction"] <= 1 and health["perplexity"] >= 1
    grid = Image.open(output / "reconstructions.png")
    assert grid.size[1] == 2 * HEADER + 8 * 96  # 8 rows: an original beside its reconstruction, under a caption
    state = json.loads((output / "checkpoint-4" / "trainer_state.json").read_text())
    logged = [entry for entry in state["log_history"] if "loss" in entry]
    assert {
        "temperature",
        "kl_weight",
        "codebook_perplexity",
        "codebook_used_fraction",
        "dead_codes",
        "reconstruction_loss",
        "kl_divergence",
        "perplexity",
    } <= set(logged[-1])
    assert logged[-1]["temperature"] < logged[0]["temperature"]

    assert (
        cli(
            [
                "tokenizer",
                "inspect",
                str(output),
                "--dataset",
                parquet,
                "--max-images",
                "40",
                "--output-dir",
                str(tmp_path / "inspect"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "inspect" / "inspect.json").read_text())
    assert report["images"] == 40 and report["vocab_size"] == 32
    assert report["dead_codes"] == 32 - round(report["used_fraction"] * 32)
    assert "reconstruction_psnr" in report and os.path.isfile(tmp_path / "inspect" / "inspect_reconstructions.png")


def test_resume_restores_the_schedule(parquet, tmp_path):
    """A run interrupted after checkpoint-2 and resumed logs the same schedule values as the uninterrupted run."""
    output = tmp_path / "resume"
    args = ["tokenizer", "train", "--dataset", parquet, "--output_dir", str(output), "--model_size", "tiny",
            "--image_size", "16", "--config_overrides", TINY, "--temperature_steps", "4", "--kl_warmup_steps", "4",
            "--save_steps", "2", "--eval_images", "8", *COMMON]  # fmt: skip

    def schedule_at_step_4():
        state = json.loads((output / "checkpoint-4" / "trainer_state.json").read_text())
        entry = next(e for e in state["log_history"] if e.get("step") == 4 and "temperature" in e)
        return entry["temperature"], entry["kl_weight"]

    assert cli(args) == 0
    uninterrupted = schedule_at_step_4()
    shutil.rmtree(output / "checkpoint-4")
    assert cli([*args, "--resume_from_checkpoint", str(output / "checkpoint-2")]) == 0
    assert schedule_at_step_4() == uninterrupted
    # step 4 ran with the values of optimizer step index 3 of a 4-step cosine anneal
    cosine = (1 + np.cos(np.pi * 3 / 4)) / 2
    assert uninterrupted == (
        pytest.approx(1 / 16 + (1 - 1 / 16) * cosine, rel=1e-4),
        pytest.approx(6.6 * (1 - cosine), rel=1e-4),
    )


def test_train_vqkd_with_a_teacher(parquet, tmp_path):
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
    output = tmp_path / "vqkd"
    assert cli(["tokenizer", "train", "--dataset", parquet, "--output_dir", str(output), "--tokenizer_type", "vqkd",
                "--teacher", str(teacher), "--model_size", "tiny", "--image_size", "16",
                "--config_overrides", "vocab_size=32", "--eval_images", "16", "--save_strategy", "no",
                *COMMON]) == 0  # fmt: skip
    model = AutoModel.from_pretrained(output)
    assert isinstance(model, VQKDTokenizer) and model.config.teacher_name_or_path == str(teacher)
    assert bool(model.codebook_initialized)  # k-means on the first step's encoder outputs
    health = json.loads((output / "codebook_health.json").read_text())
    assert health["images"] == 16 and "reconstructions" not in health
    with pytest.raises(ValueError, match="needs --teacher"):
        cli(["tokenizer", "train", "--dataset", parquet, "--output_dir", str(output), "--tokenizer_type", "vqkd"])


def test_demo_stage_quick(tmp_path):
    results = demo_stage(DemoContext(output_dir=str(tmp_path), quick=True))  # the embedded demo set
    assert set(results) == {"used_fraction", "perplexity", "reconstruction_psnr"}
    assert 0 < results["used_fraction"] <= 1
    model = AutoModel.from_pretrained(tmp_path / "tokenizer")
    assert model.get_codebook_indices(torch.rand(1, 3, 32, 32)).shape == (1, 8, 8)
