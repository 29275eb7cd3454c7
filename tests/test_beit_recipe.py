"""BEiT pretraining: the tokenizer attached to the model, the recipe's defaults, the CLI end to end (train, checkpoint,
resume, export) and the demo stage."""

import json
import math
import os
from unittest import mock

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from transformers import BeitForImageClassification

import maskvision
from maskvision import BeitMimConfig, BeitMimForPreTraining
from maskvision.cli import main as cli_main
from maskvision.cli.demo import DemoContext
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.recipes.beit import RECIPE, BeitModelArguments, BeitTrainingArguments, demo_stage

VOCAB = 512
TINY_MODEL_FLAGS = [
    "--model_size", "tiny", "--image_size", "32", "--patch_size", "4", "--hidden_size", "64",
    "--num_hidden_layers", "2", "--num_attention_heads", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    """A tiny DALL-E-style tokenizer (4x downsampling, 512 codes) saved like `maskvision tokenizer train` does."""
    torch.manual_seed(0)
    config = maskvision.DVAEConfig(
        vocab_size=VOCAB, hidden_size=16, num_groups=3, blocks_per_group=1, code_embedding_size=16, image_size=32
    )
    path = str(tmp_path_factory.mktemp("tokenizer"))
    maskvision.DVAETokenizer(config).save_pretrained(path)
    return path


def tiny_config(**overrides) -> BeitMimConfig:
    return BeitMimConfig.from_size(
        "tiny",
        image_size=32,
        patch_size=4,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        **{"vocab_size": VOCAB, **overrides},
    )


def tiny_model(tokenizer=None) -> BeitMimForPreTraining:
    model = BeitMimForPreTraining(tiny_config())
    if tokenizer is not None:
        model.set_tokenizer(tokenizer)
    return model


def tokenizer_batch(batch: int = 2) -> dict:
    mask = torch.zeros(batch, 64, dtype=torch.bool)
    mask[:, 10:30] = True
    return {
        "pixel_values": torch.randn(batch, 3, 32, 32),
        "tokenizer_pixel_values": torch.rand(batch, 3, 32, 32),
        "bool_masked_pos": mask,
    }


# ---------------------------------------------------------------------------------------------- the tokenizer
def test_tokenizer_targets_are_its_codebook_indices(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    tokenizer = model.tokenizer
    assert not tokenizer.training and not any(p.requires_grad for p in tokenizer.parameters())
    assert model.config.tokenizer_name_or_path == tokenizer_dir
    batch = tokenizer_batch()
    ids = tokenizer.get_codebook_indices(batch["tokenizer_pixel_values"]).flatten(1)
    model.eval()  # no drop path: the two passes must agree
    output = model(**batch)
    expected = model(**{**batch, "tokenizer_pixel_values": None, "labels": ids})
    torch.testing.assert_close(output.loss, expected.loss)
    output.loss.backward()  # ids made under inference mode are usable as targets
    assert model.lm_head.weight.grad is not None


def test_tokenizer_is_not_a_submodule(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    bare = tiny_model()
    assert set(model.state_dict()) == set(bare.state_dict())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in bare.parameters())
    assert all(not name.startswith("_tokenizer") for name, _ in model.named_modules())
    model.train()
    assert not model.tokenizer.training  # train() does not reach it


def test_tokenizer_follows_the_model_device(tokenizer_dir):
    model = tiny_model(tokenizer_dir)
    with mock.patch.object(model.tokenizer, "to", wraps=model.tokenizer.to) as moved:
        model.to(torch.float64)
        model.cpu()
    assert [call.args[0] for call in moved.call_args_list] == [torch.device("cpu")] * 2
    assert next(model.tokenizer.parameters()).dtype == torch.float32  # keeps its own dtype
    if torch.cuda.is_available():
        model.cuda()
        assert next(model.tokenizer.parameters()).is_cuda


def test_save_and_load_without_the_tokenizer(tokenizer_dir, tmp_path):
    model = tiny_model(tokenizer_dir).eval()
    model.save_pretrained(tmp_path)
    with safe_open(os.path.join(tmp_path, "model.safetensors"), "pt") as weights:
        keys = set(weights.keys())
    # no tokenizer weights (transformers writes BeitModel's tensors under their legacy names)
    assert len(keys) == len(model.state_dict())
    assert {key.split(".")[0] for key in keys} == {"beit", "layernorm", "lm_head"}
    loaded = BeitMimForPreTraining.from_pretrained(tmp_path).eval()
    assert loaded._tokenizer is None  # loading does not need it ...
    batch = tokenizer_batch()
    torch.testing.assert_close(loaded(**batch).loss, model(**batch).loss)  # ... forward re-attaches it from the path
    assert loaded.tokenizer is not None


def test_tokenizer_mismatch_errors(tokenizer_dir):
    model = BeitMimForPreTraining(tiny_config(vocab_size=8192))
    with pytest.raises(ValueError, match="vocab_size=512 .* config.vocab_size=8192"):
        model.set_tokenizer(tokenizer_dir)
    with pytest.raises(ValueError, match="target='tokens' only"):
        BeitMimForPreTraining(tiny_config(target="pixels")).set_tokenizer(tokenizer_dir)
    model = tiny_model(tokenizer_dir)
    with pytest.raises(ValueError, match="8x8 patch grid"):
        model(**{**tokenizer_batch(), "tokenizer_pixel_values": torch.rand(2, 3, 16, 16)})


# --------------------------------------------------------------------------------------------------- recipe
def test_training_defaults_are_the_official_ones():
    args = BeitTrainingArguments(output_dir="unused", per_device_train_batch_size=256, gradient_accumulation_steps=2)
    assert args.resolve_learning_rate() == pytest.approx(1.5e-3 * 512 / 2048)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (0.9, 0.999, 0.05, 3.0)
    assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 10 / 800 and args.num_train_epochs == 800
    assert not args.remove_unused_columns


def test_model_arguments_build_custom_sizes_and_mask_settings(tokenizer_dir):
    args = BeitModelArguments(
        tokenizer=tokenizer_dir,
        model_size="small",
        image_size=64,
        patch_size=8,
        num_hidden_layers=3,
        hidden_size=96,
        num_attention_heads=3,
        num_masking_patches=30,
        exact_masking=True,
    )
    model = RECIPE.build_model(args)
    backbone = model.config.backbone_config
    assert (backbone.hidden_size, backbone.intermediate_size, backbone.num_hidden_layers) == (96, 384, 3)
    assert (model.config.vocab_size, model.config.num_masking_patches, model.config.min_num_patches) == (VOCAB, 30, 5)
    collator = RECIPE.build_collator(model, args, seed=0)
    images = [{"image": Image.new("RGB", (50, 40), (120, 30, 200)), "label": 3} for _ in range(3)]
    batch = collator(images)
    assert batch["pixel_values"].shape == (3, 3, 64, 64)
    assert batch["tokenizer_pixel_values"].shape == (3, 3, 32, 32)  # 8 x 8 grid x 4 (the tokenizer's factor)
    assert batch["bool_masked_pos"].shape == (3, 64) and batch["bool_masked_pos"].sum(1).tolist() == [30] * 3
    with pytest.raises(ValueError, match="--tokenizer PATH is required"):
        RECIPE.build_model(BeitModelArguments())
    with pytest.raises(ValueError, match="--tokenizer is not used with --target pixels"):
        RECIPE.build_model(BeitModelArguments(target="pixels", tokenizer=tokenizer_dir))


def test_optimizer_decays_as_the_official_beit_pretraining():
    model = tiny_model()
    trainer = MaskVisionTrainer(model=model, args=BeitTrainingArguments(output_dir="unused", report_to="none"))
    optimizer = trainer.create_optimizer()
    names = {id(parameter): name for name, parameter in model.named_parameters()}
    decayed = {names[id(p)] for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    assert decayed
    assert not decayed & model.no_weight_decay()
    assert not any("layernorm" in name for name in decayed)
    assert "lm_head.weight" in decayed and "beit.layers.0.attention.q_proj.weight" in decayed
    # as the official optimizer: [MASK] and the shared relative position bias table decay, [CLS] and layer scale not
    assert {"beit.embeddings.mask_token", "beit.shared_position_bias.relative_position_bias_table"} <= decayed
    assert not {"beit.embeddings.cls_token", "beit.layers.0.lambda_1"} & decayed


# ------------------------------------------------------------------------------------------------------ CLI
def read_log(output_dir: str) -> list[dict]:
    checkpoints = sorted(name for name in os.listdir(output_dir) if name.startswith("checkpoint-"))
    with open(os.path.join(output_dir, checkpoints[-1], "trainer_state.json"), encoding="utf-8") as handle:
        return json.load(handle)["log_history"]


def pretrain(tokenizer_dir: str, output_dir: str, *flags: str) -> int:
    return cli_main(
        ["pretrain", "beit", "--dataset", "demo", "--tokenizer", tokenizer_dir, "--output_dir", output_dir,
         *TINY_MODEL_FLAGS, "--per_device_train_batch_size", "16", "--max_train_samples", "256",
         "--logging_steps", "1", "--save_steps", "2", "--dataloader_num_workers", "0", "--disable_tqdm", "true",
         *flags]
    )  # fmt: skip


def test_cli_trains_checkpoints_resumes_and_exports(tokenizer_dir, tmp_path):
    output_dir = str(tmp_path / "run")
    assert pretrain(tokenizer_dir, output_dir, "--max_steps", "2") == 0
    first = read_log(output_dir)
    assert {"loss", "accuracy", "learning_rate", "images_per_second"} <= set(first[0])

    # resume from the last checkpoint: the step count, optimizer and schedule go on from step 2
    assert pretrain(tokenizer_dir, output_dir, "--max_steps", "4", "--resume_from_checkpoint", "last") == 0
    resumed = read_log(output_dir)
    assert [entry["step"] for entry in resumed if "loss" in entry] == [1, 2, 3, 4]

    checkpoint = os.path.join(output_dir, "checkpoint-4")
    with safe_open(os.path.join(checkpoint, "model.safetensors"), "pt") as weights:
        assert all(key.split(".")[0] in {"beit", "layernorm", "lm_head"} for key in weights.keys())
    model = BeitMimForPreTraining.from_pretrained(checkpoint)  # re-attaches the tokenizer from its config
    assert model.tokenizer.config.vocab_size == VOCAB

    classifier, info = BeitForImageClassification.from_pretrained(
        os.path.join(output_dir, "encoder"), num_labels=10, output_loading_info=True
    )
    assert {key.split(".")[0] for key in info["missing_keys"]} == {"classifier"}
    final = BeitMimForPreTraining.from_pretrained(output_dir)
    torch.testing.assert_close(classifier.beit.embeddings.cls_token, final.beit.embeddings.cls_token)


def test_cli_pixel_target_needs_no_tokenizer(tmp_path):
    output_dir = str(tmp_path / "pixels")
    argv = ["pretrain", "beit", "--dataset", "demo", "--target", "pixels", "--output_dir", output_dir,
            *TINY_MODEL_FLAGS, "--per_device_train_batch_size", "8", "--max_steps", "2", "--logging_steps", "1",
            "--save_strategy", "no", "--max_train_samples", "32", "--dataloader_num_workers", "0"]  # fmt: skip
    assert cli_main(argv) == 0
    model = BeitMimForPreTraining.from_pretrained(output_dir)
    assert model.config.target == "pixels" and model.lm_head.out_features == 4 * 4 * 3
    assert os.path.isfile(os.path.join(output_dir, "encoder", "model.safetensors"))


def test_trainer_run_on_demo_data_lowers_the_loss(tokenizer_dir, tmp_path):
    output_dir = str(tmp_path / "run")
    assert pretrain(
        tokenizer_dir, output_dir, "--max_steps", "30", "--learning_rate", "3e-3", "--warmup_steps", "3",
        "--save_steps", "30", "--drop_path_rate", "0", "--min_crop_scale", "0.35",
    ) == 0  # fmt: skip
    losses = [entry["loss"] for entry in read_log(output_dir) if "loss" in entry]
    assert losses[0] > math.log(VOCAB) - 1.0
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0, losses


def test_demo_stage_quick(tokenizer_dir, tmp_path):
    context = DemoContext(output_dir=str(tmp_path), quick=True)
    os.symlink(tokenizer_dir, context.path("tokenizer"))  # what the tokenizer stage leaves behind
    results = demo_stage(context)
    assert math.isfinite(results["loss"]) and 0 <= results["token_accuracy"] <= 1
    assert os.path.isfile(os.path.join(results["encoder"], "model.safetensors"))
