"""The pictures, each through its command: `maskvision preview` (the views and masks of each method's real collator),
`maskvision visualize beit` (predictions behind the mask), `attention` and `pca` (any ViT-like encoder), `curves` (a
run's logged scalars). Each PNG is checked for its size and panels and for content that is not blank; the pieces
behind them (filling the masked patches, unpatchify, [CLS] attention) against what they must compute."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hub_kinds import stock_encoder
from PIL import Image
from transformers import Dinov2Config, Dinov2Model, SwinConfig, SwinModel, ViTConfig, ViTModel

from maskvision.cli import main as cli_main
from maskvision.cli.demo import DemoContext
from maskvision.data import load_image_dataset
from maskvision.evaluation.features import build_image_processor
from maskvision.training.recipes.beit import RECIPE as BEIT
from maskvision.training.recipes.beit import BeitModelArguments
from maskvision.training.runs.tokenizer import TokenizerArguments, build_tokenizer
from maskvision.visualization.beit import beit_prediction_columns, unpatchify
from maskvision.visualization.curves import (
    MISSING_PLOTS,
    PlotsExtraMissing,
    plot_training_curves,
    write_training_curves,
)
from maskvision.visualization.encoder import attention_maps, load_visual_encoder
from maskvision.visualization.images import HEADER
from maskvision.visualization.preview import demo_stage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TILE = 64
TINY_VIT = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)


@pytest.fixture(scope="module")
def demo():
    return load_image_dataset("demo", split="test")


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    """A tiny dVAE (32 px → 8 x 8 codes), untrained: the tests need its shapes, not its quality."""
    path = str(tmp_path_factory.mktemp("tokenizer"))
    torch.manual_seed(0)
    model = build_tokenizer(TokenizerArguments(model_size="tiny"))
    model.save_pretrained(path)
    model.image_processor().save_pretrained(path)
    return path


def tiles(path: str, columns: int, rows: int, tile: int = TILE) -> list[list[np.ndarray]]:
    """The picture's tiles [row][column] as float arrays, after checking the grid's size (a caption line and the
    column titles above the tiles; wider only if the caption is)."""
    with Image.open(path) as picture:
        pixels = np.asarray(picture.convert("RGB")).astype(float)
    top = 2 * HEADER
    assert pixels.shape[0] == top + rows * tile and pixels.shape[1] >= columns * tile
    assert pixels[top:, columns * tile :].min(initial=255) == 255  # nothing right of the last column
    return [
        [pixels[top + r * tile : top + (r + 1) * tile, c * tile : (c + 1) * tile] for c in range(columns)]
        for r in range(rows)
    ]


def not_blank(tile: np.ndarray) -> bool:
    return tile.std() > 3


def beit_args(**overrides) -> BeitModelArguments:
    values = dict(
        model_size="tiny",
        image_size=32,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        drop_path_rate=0.0,
    )
    return BeitModelArguments(**{**values, **overrides})


# -- maskvision preview -------------------------------------------------------------------------------------------
SIZES = ["--image_size", "32", "--patch_size", "4"]
PREVIEWS = {  # method → (extra flags, columns)
    "beit": ([], ["image", "view", "masked"]),
    "extrema": (["--num_masks", "4"], ["image", "mask 1", "4 masks", "teacher"]),
    "moby": (["--window_size", "4"], ["image", "view 1", "view 2"]),
}


@pytest.mark.parametrize("method", list(PREVIEWS))
def test_preview_draws_the_views_and_masks_of_the_methods_collator(method, tmp_path, capsys):
    flags, columns = PREVIEWS[method]
    output = str(tmp_path / f"{method}.png")
    assert cli_main(["preview", "--dataset", "demo", "--split", "test", "--method", method, *SIZES, *flags,
                     "--num_images", "3", "--tile", str(TILE), "--output", output]) == 0  # fmt: skip
    assert ", ".join(columns) in capsys.readouterr().out
    grid = tiles(output, len(columns), 3)
    assert all(not_blank(tile) for row in grid for tile in row)
    if method == "beit":  # the masked column greys out patches of the view next to it
        assert all(np.abs(row[1] - row[2]).max() > 30 for row in grid)


def test_preview_of_beit_with_a_tokenizer_shows_the_tokenizers_view(tmp_path, tokenizer_dir):
    output = str(tmp_path / "beit.png")
    assert cli_main(["preview", "--dataset", "demo", "--split", "test", "--method", "beit", *SIZES, "--tokenizer",
                     tokenizer_dir, "--num_images", "2", "--tile", str(TILE), "--output", output]) == 0  # fmt: skip
    grid = tiles(output, 4, 2)
    assert all(not_blank(row[3]) for row in grid)


def test_preview_needs_a_method(capsys):
    assert cli_main(["preview", "--dataset", "demo"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) <= 2 and "--method" in error[0] and "beit" in error[0]


def test_demo_preview_stage_writes_one_picture_per_method_at_the_official_settings(tmp_path):
    results = demo_stage(DemoContext(output_dir=str(tmp_path), quick=True))
    assert results["images"] == 4
    assert abs(results["beit_masked"] - 75 / 196) < 0.03  # BEiT: 75 of 14 x 14 patches
    assert results["extrema_masked"] == pytest.approx(157 / 196, abs=1e-3)  # ExtreMA: 80%
    for method, count in (("beit", 3), ("extrema", 4), ("moby", 3)):
        grid = tiles(str(tmp_path / f"preview_{method}.png"), count, 4, tile=96)
        assert all(not_blank(tile) for row in grid for tile in row)


# -- maskvision visualize beit ------------------------------------------------------------------------------------
def test_visualize_beit_draws_the_tokens_behind_the_mask(tmp_path, tokenizer_dir):
    run = str(tmp_path / "beit")
    torch.manual_seed(0)
    BEIT.build_model(beit_args(tokenizer=tokenizer_dir)).save_pretrained(run)
    assert (
        cli_main(
            ["visualize", "beit", run, "--dataset", "demo", "--split", "test", "--num_images", "2", "--tile", str(TILE)]
        )
        == 0
    )
    grid = tiles(os.path.join(run, "beit_predictions.png"), 5, 2)  # view, masked, tokenizer, prediction, right/wrong
    assert all(not_blank(row[column]) for row in grid for column in (0, 1, 4))


def test_beit_prediction_fills_only_the_masked_patches_with_the_predicted_tokens(tokenizer_dir, demo):
    torch.manual_seed(0)
    model = BEIT.build_model(beit_args(tokenizer=tokenizer_dir)).eval()
    with torch.no_grad():  # a head that predicts token 7 everywhere
        model.lm_head.weight.zero_()
        model.lm_head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(7), model.config.vocab_size).float())
    batch = BEIT.build_collator(model, beit_args(min_crop_scale=1.0), seed=0)([demo[0], demo[1]])
    columns, caption = beit_prediction_columns(model, batch)
    assert list(columns) == ["view", "masked", "tokenizer", "prediction", "right/wrong"]
    true_ids = model.tokenize(batch["tokenizer_pixel_values"]).clone()
    filled = torch.where(batch["bool_masked_pos"], torch.full_like(true_ids, 7), true_ids).view(-1, 8, 8)
    torch.testing.assert_close(columns["prediction"], model.tokenizer.decode(filled).clamp(0, 1))
    torch.testing.assert_close(columns["tokenizer"], model.tokenizer.decode(true_ids.view(-1, 8, 8)).clamp(0, 1))
    accuracy = (true_ids[batch["bool_masked_pos"]] == 7).float().mean().item()
    assert caption.startswith(f"BEiT: {accuracy:.0%} of the masked")


def test_beit_pixel_prediction_keeps_the_visible_patches_and_predicts_the_masked_ones(demo, tmp_path):
    torch.manual_seed(0)
    model = BEIT.build_model(beit_args(target="pixels")).eval()
    batch = BEIT.build_collator(model, beit_args(min_crop_scale=1.0), seed=0)([demo[0], demo[1]])
    columns, _ = beit_prediction_columns(model, batch)
    assert list(columns) == ["view", "masked", "prediction"]
    visible = 1 - torch.nn.functional.interpolate(batch["bool_masked_pos"].float().view(-1, 1, 8, 8), scale_factor=4)
    torch.testing.assert_close(columns["prediction"] * visible, columns["view"] * visible)
    assert ((columns["prediction"] - columns["view"]).abs() * (1 - visible)).max() > 0.05

    run = str(tmp_path / "pixels")
    model.save_pretrained(run)
    assert (
        cli_main(
            [
                "visualize",
                "beit",
                run,
                "--dataset",
                "demo",
                "--split",
                "test",
                "--num_images",
                "2",
                "--tile",
                str(TILE),
                "--output",
                str(tmp_path / "pixels.png"),
            ]
        )
        == 0
    )
    assert all(not_blank(tile) for row in tiles(str(tmp_path / "pixels.png"), 3, 2) for tile in row)


def test_unpatchify_inverts_patchify():
    model = BEIT.build_model(beit_args(target="pixels"))
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(unpatchify(model.patchify(images), 4), images)


def test_visualize_beit_refuses_other_checkpoints(tmp_path):
    encoder, _ = stock_encoder()
    encoder.save_pretrained(tmp_path / "encoder")
    with pytest.raises(ValueError, match="needs a BEiT pretraining checkpoint"):
        cli_main(["visualize", "beit", str(tmp_path / "encoder"), "--dataset", "demo"])


# -- maskvision visualize attention | pca ----------------------------------------------------------------------------
def _stock(kind: str, path: str) -> str:
    torch.manual_seed(0)
    if kind == "vit":
        model = ViTModel(ViTConfig(**TINY_VIT), add_pooling_layer=False)
    elif kind == "dinov2":
        model = Dinov2Model(Dinov2Config(**TINY_VIT))
    elif kind == "swin":
        model = SwinModel(
            SwinConfig(image_size=32, patch_size=4, window_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2])
        )
    else:  # a BEiT encoder as maskvision exports it
        model, _ = stock_encoder()
    model.save_pretrained(path)
    build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).save_pretrained(path)
    return path


@pytest.mark.parametrize("kind", ["vit", "dinov2", "beit"])
def test_visualize_attention_draws_each_heads_cls_attention(kind, tmp_path, demo):
    path = _stock(kind, str(tmp_path / kind))
    assert (
        cli_main(
            [
                "visualize",
                "attention",
                path,
                "--dataset",
                "demo",
                "--split",
                "test",
                "--num_images",
                "3",
                "--tile",
                str(TILE),
            ]
        )
        == 0
    )
    grid = tiles(os.path.join(path, "attention.png"), 4, 3)  # input, mean, 2 heads
    assert all(not_blank(tile) for row in grid for tile in row)

    encoder = load_visual_encoder(path, device="cpu")
    maps = attention_maps(encoder, encoder.preprocess([demo[0]["image"], demo[1]["image"]]))
    assert maps.shape == (2, 2, 4, 4)  # images, heads, 32 / 8 patches a side
    sums = maps.flatten(2).sum(-1)  # the [CLS] row's share on the patches (the rest on [CLS] itself)
    assert (maps >= 0).all() and (sums > 0).all() and (sums <= 1 + 1e-5).all()


def test_visualize_pca_maps_the_patch_features_to_colours(tmp_path):
    for kind in ("vit", "swin"):  # Swin: no [CLS], its last stage's patches
        path = _stock(kind, str(tmp_path / kind))
        output = str(tmp_path / f"{kind}.png")
        assert (
            cli_main(
                [
                    "visualize",
                    "pca",
                    path,
                    "--dataset",
                    "demo",
                    "--split",
                    "test",
                    "--num_images",
                    "3",
                    "--tile",
                    str(TILE),
                    "--output",
                    output,
                ]
            )
            == 0
        )
        grid = tiles(output, 2, 3)
        assert all(not_blank(row[1]) for row in grid)
        colours = np.stack([row[1] for row in grid]).reshape(-1, 3)
        assert len(np.unique(colours.round(), axis=0)) >= 4  # patches differ in colour, not one flat tint


def test_attention_of_a_swin_is_refused_naming_pca(tmp_path):
    encoder = load_visual_encoder(_stock("swin", str(tmp_path / "swin")), device="cpu")
    with pytest.raises(ValueError, match="visualize pca"):
        attention_maps(encoder, torch.zeros(1, 3, 32, 32))


# -- training curves ----------------------------------------------------------------------------------------------
LOG_HISTORY = [
    {
        "step": step,
        "epoch": step / 10,
        "loss": 6 - step / 5,
        "learning_rate": 1e-3 * step / 10,
        "grad_norm": 2.0,
        "codebook_perplexity": 10.0 + step,
        "images_per_second": float("nan"),
    }
    for step in range(1, 11)
] + [
    {"step": 10, "eval_loss": 3.0, "eval_runtime": 1.0},
    {"step": 10, "train_runtime": 9.0, "train_loss": 5.0, "total_flos": 1.0},
]


def test_training_curves_draw_a_panel_per_logged_scalar(tmp_path):
    path = str(tmp_path / "curves.png")
    drawn = plot_training_curves(LOG_HISTORY, path, title="run")
    assert drawn == ["loss", "learning_rate", "grad_norm", "codebook_perplexity", "eval_loss"]  # no bookkeeping, no NaN
    with Image.open(path) as picture:
        assert picture.size == (4 * 240, 2 * 168)  # 4 panels a row of 3 x 2.1 inches at 80 dpi, 2 rows
        pixels = np.asarray(picture.convert("L")).astype(float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # lines and text on white


def test_every_run_flow_writes_its_training_curves(tmp_path):
    class Trainer:  # what the hook reads: the main process, the output folder, the log history
        args = type("Args", (), {"output_dir": str(tmp_path)})()
        state = type("State", (), {"log_history": LOG_HISTORY})()

        @staticmethod
        def is_world_process_zero():
            return True

    assert write_training_curves(Trainer()) == str(tmp_path / "training_curves.png")
    assert os.path.isfile(tmp_path / "training_curves.png")

    def source(name):
        with open(os.path.join(ROOT, "maskvision", "training", "runs", name), encoding="utf-8") as handle:
            return handle.read()

    assert source("run.py").count("write_training_curves(trainer)") == 1  # the hook: once, in the one run driver
    for name in ("pretrain.py", "tokenizer.py", "finetune.py"):  # which every run flow goes through
        assert "return run_training(" in source(name), name


def test_visualize_curves_redraws_a_runs_curves(tmp_path, capsys):
    with open(tmp_path / "trainer_state.json", "w", encoding="utf-8") as handle:
        json.dump({"log_history": LOG_HISTORY}, handle)
    capsys.readouterr()  # only what the command itself prints
    assert cli_main(["visualize", "curves", str(tmp_path)]) == 0
    assert "loss, learning_rate" in capsys.readouterr().out and os.path.isfile(tmp_path / "training_curves.png")


def test_missing_matplotlib_is_one_clear_line_and_never_fails_a_run(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(PlotsExtraMissing, match=r"pip install 'maskvision\[plots\]'"):
        plot_training_curves(LOG_HISTORY, str(tmp_path / "curves.png"))
    assert "\n" not in MISSING_PLOTS

    class Trainer:
        args = type("Args", (), {"output_dir": str(tmp_path)})()
        state = type("State", (), {"log_history": LOG_HISTORY})()
        is_world_process_zero = staticmethod(lambda: True)

    assert write_training_curves(Trainer()) is None and MISSING_PLOTS in caplog.text

    with open(tmp_path / "trainer_state.json", "w", encoding="utf-8") as handle:
        json.dump({"log_history": LOG_HISTORY}, handle)
    capsys.readouterr()  # only what the command itself prints
    assert cli_main(["visualize", "curves", str(tmp_path)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "maskvision[plots]" in error[0]


def test_importing_maskvision_does_not_import_matplotlib():
    code = "import sys, maskvision, maskvision.hub; print('matplotlib' in sys.modules)"  # hub: cards, run flows
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
