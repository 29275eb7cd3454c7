"""`maskvision pretrain <method> --model_name_or_path`: a tiny stock checkpoint saved with save_pretrained, one step
at learning rate 0, and the exported encoder's transformer layers equal the checkpoint's exactly (BEiT from a
BeitForMaskedImageModeling, ExtreMA from a BeitModel, MoBY from a SwinModel); the report is printed; flags that
contradict the checkpoint are refused."""

import pytest
import torch
from transformers import (
    BeitConfig,
    BeitForMaskedImageModeling,
    BeitModel,
    SwinConfig,
    SwinModel,
    ViTConfig,
    ViTModel,
)

import maskvision
from maskvision import BeitMimForPreTraining
from maskvision.cli import main as cli

VOCAB = 64
SHAPE = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=4
)
RUN = ["--dataset", "demo", "--max_train_samples", "16", "--per_device_train_batch_size", "8", "--max_steps", "1",
       "--base_learning_rate", "0", "--save_strategy", "no", "--dataloader_num_workers", "0", "--use_cpu", "true",
       "--disable_tqdm", "true"]  # fmt: skip
METHOD_FLAGS = {
    "beit": [],
    "extrema": ["--num_masks", "4", "--projector_hidden_size", "64", "--projection_size", "16",
                "--calibration_images", "8", "--calibration_steps", "2"],
    "moby": ["--projector_hidden_size", "32", "--predictor_hidden_size", "32", "--projection_dim", "16",
             "--queue_size", "16"],
}  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    """A tiny DALL-E-style tokenizer (4x downsampling) with the vocabulary of the stock MIM head."""
    path = str(tmp_path_factory.mktemp("tokenizer"))
    config = maskvision.DVAEConfig(
        vocab_size=VOCAB, hidden_size=16, num_groups=3, blocks_per_group=1, code_embedding_size=16, image_size=32
    )
    maskvision.DVAETokenizer(config).save_pretrained(path)
    return path


def stock(method: str):
    """The stock checkpoint of the issue's bar, with random layer scales (so that a reset would show)."""
    torch.manual_seed(1)
    if method == "beit":
        config = BeitConfig(**SHAPE, use_mask_token=True, use_shared_relative_position_bias=True, vocab_size=VOCAB)
        return BeitForMaskedImageModeling(config), "beit."
    if method == "extrema":
        return BeitModel(BeitConfig(**SHAPE)), ""
    return SwinModel(
        SwinConfig(embed_dim=16, depths=[2, 1], num_heads=[1, 2], image_size=32, patch_size=4, window_size=4)
    ), ""


def layers(state: dict, prefix: str = "") -> dict:
    """The transformer layers' tensors (Beit's ``layers.*``, Swin's ``encoder.layers.*``) without ``prefix``."""
    state = {name.removeprefix(prefix): tensor for name, tensor in state.items() if name.startswith(prefix)}
    return {name: tensor for name, tensor in state.items() if name.startswith(("layers.", "encoder.layers."))}


@pytest.mark.parametrize("method", ["beit", "extrema", "moby"])
def test_one_step_at_learning_rate_zero_exports_the_checkpoint_layers_exactly(tmp_path, tokenizer_dir, capsys, method):
    source, prefix = stock(method)
    with torch.no_grad():
        for name, parameter in source.named_parameters():
            if "lambda" in name or "relative_position_bias_table" in name:
                parameter.normal_()
    source.save_pretrained(tmp_path / "stock")
    extra = ["--tokenizer", tokenizer_dir] if method == "beit" else []
    argv = ["pretrain", method, "--model_name_or_path", str(tmp_path / "stock"), "--output_dir", str(tmp_path / "run")]
    assert cli(argv + RUN + METHOD_FLAGS[method] + extra) == 0
    printed = capsys.readouterr().out
    assert f"Starting from {tmp_path / 'stock'}" in printed and "initialised from the checkpoint" in printed
    encoder_class = SwinModel if method == "moby" else BeitModel
    exported = layers(encoder_class.from_pretrained(tmp_path / "run" / "encoder").state_dict())
    expected = layers(source.state_dict(), prefix)
    assert exported and set(expected) <= set(exported)
    for name, tensor in expected.items():
        assert torch.equal(exported[name], tensor), name
    if method == "beit":  # the shared relative position bias, copied into every exported layer, and the head
        source_state = source.state_dict()
        for index in range(SHAPE["num_hidden_layers"]):
            table = exported[f"layers.{index}.relative_position_bias.relative_position_bias_table"]
            assert torch.equal(table, source_state["beit.shared_position_bias.relative_position_bias_table"])
        model = BeitMimForPreTraining.from_pretrained(tmp_path / "run")
        assert torch.equal(model.lm_head.weight, source.lm_head.weight) and "  new (" not in printed


def test_a_flag_contradicting_the_checkpoint_is_refused(tmp_path, tokenizer_dir):
    ViTModel(ViTConfig(**SHAPE)).save_pretrained(tmp_path / "vit")
    argv = ["pretrain", "beit", "--model_name_or_path", str(tmp_path / "vit"), "--output_dir", str(tmp_path / "run"),
            "--tokenizer", tokenizer_dir, "--hidden_size", "64", "--model_size", "small"]  # fmt: skip
    with pytest.raises(
        ValueError,
        match="--model_size small \\(the checkpoint's: another\\), --hidden_size 64 "
        "\\(the checkpoint's: 32\\) contradict --model_name_or_path",
    ):
        cli(argv + RUN)


def test_a_continued_run_keeps_its_settings_and_refuses_others(tmp_path):
    argv = ["pretrain", "moby", "--output_dir", str(tmp_path / "first"), "--image_size", "32", "--patch_size", "4",
            "--window_size", "4", "--embed_dim", "16", "--depths", "1", "1", "--num_heads", "1", "2"]  # fmt: skip
    assert cli(argv + RUN + METHOD_FLAGS["moby"]) == 0
    again = ["pretrain", "moby", "--model_name_or_path", str(tmp_path / "first"), "--output_dir", str(tmp_path / "two")]
    assert cli(again + RUN) == 0  # shape, heads and queue from the run, no flag repeated
    first = SwinModel.from_pretrained(tmp_path / "first" / "encoder").state_dict()
    second = SwinModel.from_pretrained(tmp_path / "two" / "encoder").state_dict()
    assert all(torch.equal(second[name], tensor) for name, tensor in first.items())
    with pytest.raises(ValueError, match="--queue_size 32 \\(the checkpoint's: 16\\)"):
        cli(again + RUN + ["--queue_size", "32"])


def test_moby_flags_follow_a_vit_checkpoint(tmp_path):
    from maskvision.training.recipes.moby import RECIPE, MobyModelArguments

    ViTModel(ViTConfig(**SHAPE)).save_pretrained(tmp_path / "vit")
    model = RECIPE.build_model(
        MobyModelArguments(
            model_name_or_path=str(tmp_path / "vit"),
            projector_hidden_size=32,
            predictor_hidden_size=32,
            projection_dim=16,
            queue_size=16,
        )
    )
    backbone = model.config.backbone_config
    assert (backbone.model_type, backbone.hidden_size, backbone.patch_size, backbone.image_size) == ("beit", 32, 4, 32)
    assert not backbone.use_mean_pooling  # a ViT pools its normalised [CLS] token: kept
