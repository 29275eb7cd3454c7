"""`maskvision demo --quick`: every stage of the main job runs in order and leaves what the README promises — a
preview per method, a tokenizer, each method's stock encoder and training curves, results.json with a k-NN score per
encoder, and a table."""

import json
import os

import torch
from transformers import AutoImageProcessor, AutoModel

from maskvision.cli import main as cli_main
from maskvision.cli.demo import STAGES

METHODS = ("beit", "extrema", "moby")


def test_quick_demo_runs_every_stage_end_to_end(tmp_path, capsys):
    output = tmp_path / "demo"
    assert cli_main(["demo", "--quick", "--output-dir", str(output)]) == 0

    with open(output / "results.json", encoding="utf-8") as handle:
        results = json.load(handle)
    assert list(results) == [name for name, _ in STAGES]
    assert all(results[name]["seconds"] >= 0 for name in results)
    evaluation = results["evaluate"]
    for name in ("random_init", *METHODS):
        assert 0.0 <= evaluation[f"knn_top1_{name}"] <= 1.0
    assert os.path.isfile(output / "tokenizer" / "config.json")
    for name in ("tokenizer", *METHODS):  # every run draws its logged scalars
        assert os.path.getsize(output / name / "training_curves.png") > 0
    assert all(os.path.isfile(output / f"preview_{method}.png") for method in METHODS)

    pixels = torch.rand(2, 3, 32, 32)
    for method in METHODS:  # stock encoders: AutoModel + the saved image processor, no maskvision code needed
        encoder = AutoModel.from_pretrained(output / method / "encoder").eval()
        processor = AutoImageProcessor.from_pretrained(output / method / "encoder")
        assert type(encoder).__module__.startswith("transformers.models.")
        inputs = processor(
            list((pixels * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()),
            return_tensors="pt",
        )
        with torch.no_grad():
            features = encoder(**inputs).pooler_output
        assert features.shape[0] == 2 and torch.isfinite(features).all()

    table = capsys.readouterr().out
    assert "knn_top1_random_init" in table and all(f"=== maskvision demo: {name} ===" in table for name, _ in STAGES)
