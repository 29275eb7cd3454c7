"""BEiT masked image modeling: config, model stages against the stock transformers model, training, export."""

import math

import pytest
import torch
from conftest import tiny_beit_config
from safetensors import safe_open
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    BeitConfig,
    BeitForImageClassification,
    BeitForMaskedImageModeling,
    BeitModel,
)

from maskvision import BeitMimConfig, BeitMimForPreTraining

VOCAB = 512  # tiny_beit_config's
GRID = 8  # 32 px images, 4 px patches


def random_batch(batch: int = 4, masked: int = 24, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    order = torch.rand(batch, GRID * GRID, generator=generator).argsort(dim=1).argsort(dim=1)
    return {
        "pixel_values": torch.randn(batch, 3, 32, 32, generator=generator),
        "bool_masked_pos": order < masked,
        "labels": torch.randint(0, VOCAB, (batch, GRID * GRID), generator=generator),
    }


def stock_model_from(model: BeitMimForPreTraining) -> BeitForMaskedImageModeling:
    config = BeitConfig.from_dict(model.config.backbone_config.to_dict())
    config.vocab_size = model.config.vocab_size
    stock = BeitForMaskedImageModeling(config)
    stock.load_state_dict(model.state_dict())  # the same parameter names
    return stock


# ------------------------------------------------------------------------------------------------------- config
def test_default_config_is_official_vit_base():
    config = BeitMimConfig()
    backbone = config.backbone_config
    assert isinstance(backbone, BeitConfig)
    assert (backbone.hidden_size, backbone.num_hidden_layers) == (768, 12)
    assert (backbone.image_size, backbone.patch_size) == (224, 16)
    assert backbone.use_mask_token and backbone.use_shared_relative_position_bias
    assert not backbone.use_absolute_position_embeddings and not backbone.use_relative_position_bias
    assert (backbone.layer_scale_init_value, backbone.drop_path_rate, backbone.layer_norm_eps) == (0.1, 0.1, 1e-6)
    assert (config.num_masking_patches, config.min_num_patches, config.vocab_size) == (75, 16, 8192)
    assert config.target == "tokens"


@pytest.mark.parametrize(
    ("size", "width", "depth", "layer_scale"),
    [("tiny", 192, 12, 0.1), ("small", 384, 12, 0.1), ("base", 768, 12, 0.1), ("large", 1024, 24, 1e-5)],
)
def test_named_sizes(size, width, depth, layer_scale):
    backbone = BeitMimConfig.from_size(size).backbone_config
    assert (backbone.hidden_size, backbone.num_hidden_layers) == (width, depth)
    assert backbone.layer_scale_init_value == layer_scale


def test_custom_size_and_mask_scaling_with_grid():
    config = tiny_beit_config(drop_path_rate=0.2, num_masking_patches=None)
    assert config.backbone_config.hidden_size == 64 and config.backbone_config.drop_path_rate == 0.2
    assert config.vocab_size == VOCAB  # a field of BeitMimConfig, not forwarded to the backbone
    # 75 / 196 and 16 / 196 of an 8 x 8 grid
    assert (config.num_masking_patches, config.min_num_patches) == (24, 5)


def test_config_round_trips_through_auto_config(tmp_path):
    config = tiny_beit_config(target="pixels", num_masking_patches=20)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, BeitMimConfig) and isinstance(loaded.backbone_config, BeitConfig)
    assert loaded.to_diff_dict() == config.to_diff_dict()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target": "logits"}, "target must be one of"),
        ({"num_masking_patches": 0}, "num_masking_patches must be in"),
        ({"num_masking_patches": 64}, "num_masking_patches must be in \\[1, 63\\]"),
        ({"min_num_patches": 30, "num_masking_patches": 20}, "min_num_patches must be in"),
        ({"max_num_patches": 2, "min_num_patches": 4}, "max_num_patches"),
        ({"min_aspect": 1.5}, "min_aspect must be in"),
        ({"image_mean": [0.5, 0.5]}, "image_mean needs 3 values"),
        ({"use_mask_token": False}, "use_mask_token must be True"),
        ({"image_size": 30}, "must divide"),
        ({"vocab_size": 1}, "vocab_size must be at least 2"),
    ],
)
def test_config_validation_names_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_beit_config(**overrides)


# ------------------------------------------------------------------------------------------------------- model
def test_initial_loss_is_log_vocab():
    model = BeitMimForPreTraining(tiny_beit_config()).eval()
    output = model(**random_batch())
    assert abs(output.loss.item() - math.log(VOCAB)) < 0.05
    assert output.accuracy.shape == () and 0.0 <= output.accuracy.item() <= 0.05


def test_official_initialisation():
    model = BeitMimForPreTraining(tiny_beit_config())
    embeddings = model.beit.embeddings
    # truncated normal at +-1 std (0.02), like unilm/beit, including [CLS] and [MASK] (transformers zeroes them)
    first_mlp = model.beit.layers[0].mlp.fc1.weight
    for tensor in (embeddings.cls_token, embeddings.mask_token, model.lm_head.weight, first_mlp):
        assert tensor.abs().max() <= 0.02 and tensor.std() > 0.005
    # output projections of layer l divided by sqrt(2 l)
    fc1, fc2 = model.beit.layers[1].mlp.fc1.weight, model.beit.layers[1].mlp.fc2.weight
    assert fc2.abs().max() <= 0.02 / 2 + 1e-7 and fc1.abs().max() > 0.015
    # layer scale and relative position bias as BeitModel initialises them
    assert torch.all(model.beit.layers[0].lambda_1 == 0.1)
    assert torch.all(model.beit.shared_position_bias.relative_position_bias_table == 0)


def test_matches_stock_beit_for_masked_image_modeling():
    model = BeitMimForPreTraining(tiny_beit_config()).eval()
    stock = stock_model_from(model).eval()
    batch = random_batch()
    mask = batch["bool_masked_pos"]

    output = model(**batch)
    # our stages with the head over all positions, restricted to the masked ones afterwards
    hidden = model.forward_encoder(batch["pixel_values"], mask)
    full_logits = model.forward_head(hidden[:, 1:])  # (B, N, vocab)
    full_loss = torch.nn.functional.cross_entropy(full_logits[mask], batch["labels"][mask])
    stock_output = stock(pixel_values=batch["pixel_values"], bool_masked_pos=mask, labels=batch["labels"][mask])

    assert full_logits.shape == (4, GRID * GRID, VOCAB)
    torch.testing.assert_close(full_loss, stock_output.loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(output.loss, stock_output.loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(output.logits, full_logits[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(output.logits, stock_output.logits[mask], atol=1e-5, rtol=0)
    assert output.logits.shape == (int(mask.sum()), VOCAB)


def test_gradients_match_stock():
    model = BeitMimForPreTraining(tiny_beit_config(drop_path_rate=0.0))
    stock = stock_model_from(model)
    batch = random_batch()
    model(**batch).loss.backward()
    stock(
        pixel_values=batch["pixel_values"],
        bool_masked_pos=batch["bool_masked_pos"],
        labels=batch["labels"][batch["bool_masked_pos"]],
    ).loss.backward()
    stock_grads = dict(stock.named_parameters())
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, stock_grads[name].grad, atol=1e-6, rtol=1e-4)


def test_overfits_one_batch():
    model = BeitMimForPreTraining(tiny_beit_config(drop_path_rate=0.0))
    batch = random_batch(batch=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    losses = []
    for _ in range(150):
        output = model(**batch)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.loss.item())
    assert losses[0] > 6.0 and losses[-1] < 0.5, losses[::10]
    assert output.accuracy.item() > 0.9


def test_pixel_target_trains():
    model = BeitMimForPreTraining(tiny_beit_config(target="pixels", drop_path_rate=0.0))
    assert model.lm_head.out_features == 4 * 4 * 3
    batch = random_batch()
    del batch["labels"]
    # linear ramps a x + b y per image and channel: a masked patch is predictable from the visible ones
    ramp = torch.linspace(-1, 1, 32)
    slopes = torch.randn(2, 4, 3, 1, 1)
    batch["pixel_values"] = slopes[0] * ramp[None, :] + slopes[1] * ramp[:, None]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        output = model(**batch)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.loss.item())
    assert output.accuracy is None and output.logits.shape == (4 * 24, 48)
    assert losses[-1] < 0.6 * losses[0], losses[::10]


def test_pixel_targets_are_normalised_patches():
    model = BeitMimForPreTraining(tiny_beit_config(target="pixels"))
    pixels = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, GRID * GRID, dtype=torch.bool)
    mask[1, GRID + 2] = True  # patch (row 1, column 2) of the second image
    target = model.targets(pixels, mask)
    patch = pixels[1, :, 4:8, 8:12].permute(1, 2, 0).reshape(-1)  # (P, P, C) order
    expected = (patch - patch.mean()) / (patch.var() + 1e-6).sqrt()
    torch.testing.assert_close(target, expected[None])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bool_masked_pos": torch.zeros(4, 63, dtype=torch.bool)}, "expected \\(4, 64\\)"),
        ({"bool_masked_pos": torch.zeros(4, 64, dtype=torch.bool)}, "masks no patch"),
        ({"bool_masked_pos": None}, "bool_masked_pos .* is required"),
        ({"labels": torch.zeros(4, 10, dtype=torch.long)}, "one id per patch"),
        ({"labels": None}, "needs tokenizer_pixel_values"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    model = BeitMimForPreTraining(tiny_beit_config())
    batch = {**random_batch(), **change}
    with pytest.raises(ValueError, match=message):
        model(**batch)


def test_mask_accepts_grid_shape():
    model = BeitMimForPreTraining(tiny_beit_config()).eval()
    batch = random_batch()
    flat = model(**batch)
    grid = model(**{**batch, "bool_masked_pos": batch["bool_masked_pos"].reshape(4, GRID, GRID)})
    torch.testing.assert_close(flat.loss, grid.loss)


def test_missing_tokenizer_is_a_clear_error():
    model = BeitMimForPreTraining(tiny_beit_config())
    batch = random_batch()
    del batch["labels"]
    with pytest.raises(ValueError, match="No visual tokenizer"):
        model(**batch, tokenizer_pixel_values=torch.rand(4, 3, 32, 32))


def test_no_weight_decay_lists_the_official_names():
    # unilm beit/modeling_pretrain.py: {'pos_embed', 'cls_token'}; [MASK] and the relative position table decay there
    model = BeitMimForPreTraining(tiny_beit_config())
    assert model.no_weight_decay() == {"beit.embeddings.cls_token"}  # relative positions: no absolute table


def test_save_and_load_reproduce_the_outputs(tmp_path):
    model = BeitMimForPreTraining(tiny_beit_config()).eval()
    model.save_pretrained(tmp_path)
    loaded, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, BeitMimForPreTraining)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    batch = random_batch()
    torch.testing.assert_close(loaded.eval()(**batch).logits, model(**batch).logits)


# ------------------------------------------------------------------------------------------------------ export
def test_export_loads_in_stock_classes_with_the_same_features(tmp_path):
    model = BeitMimForPreTraining(tiny_beit_config())
    with torch.no_grad():  # make the shared bias and the head norm non-trivial, as after training
        model.beit.shared_position_bias.relative_position_bias_table.normal_(0, 0.5)
        model.layernorm.weight.uniform_(0.5, 1.5)
    model.eval()
    path = model.export_encoder(tmp_path / "encoder")

    classifier, info = BeitForImageClassification.from_pretrained(path, num_labels=5, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    assert {key.split(".")[0] for key in info["missing_keys"]} == {"classifier"}  # no encoder weight missing
    auto = AutoModelForImageClassification.from_pretrained(path, num_labels=5)
    assert isinstance(auto, BeitForImageClassification)
    assert AutoImageProcessor.from_pretrained(path).size == {"height": 32, "width": 32}

    encoder = BeitModel.from_pretrained(path).eval()
    assert encoder.config.use_relative_position_bias and not encoder.config.use_shared_relative_position_bias
    assert encoder.embeddings.mask_token is None and encoder.config.use_mean_pooling
    with safe_open(f"{path}/model.safetensors", "pt") as weights:
        assert not any("mask_token" in key or "shared_position_bias" in key for key in weights.keys())

    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.beit(pixels).last_hidden_state
        exported = encoder(pixels)
        logits = classifier.eval()(pixels).logits
    torch.testing.assert_close(exported.last_hidden_state, expected, atol=1e-5, rtol=1e-5)
    pooled = model.layernorm(expected[:, 1:].mean(dim=1))  # the pooler's norm starts from the head's
    torch.testing.assert_close(exported.pooler_output, pooled, atol=1e-5, rtol=1e-5)
    assert logits.shape == (2, 5)


@pytest.mark.slow
def test_vit_base_224_forward_backward():
    model = BeitMimForPreTraining(BeitMimConfig())
    assert 85e6 < sum(p.numel() for p in model.beit.parameters()) < 87e6
    mask = torch.zeros(2, 196, dtype=torch.bool)
    mask[:, :75] = True
    output = model(
        pixel_values=torch.randn(2, 3, 224, 224),
        bool_masked_pos=mask,
        labels=torch.randint(0, 8192, (2, 196)),
    )
    output.loss.backward()
    assert output.logits.shape == (150, 8192)
    assert abs(output.loss.item() - math.log(8192)) < 0.1
    assert model.beit.embeddings.mask_token.grad.abs().sum() > 0
    assert model.beit.shared_position_bias.relative_position_bias_table.grad.abs().sum() > 0
