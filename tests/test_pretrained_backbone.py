"""`from_backbone`: every method starts from a stock transformers encoder or continues a checkpoint of its own; the
Beit-layout conversions keep the encoder's function; incompatible checkpoints fail naming the difference; position
tables follow the image size; the report says what was initialised and what is new."""

import pytest
import torch
from conftest import TINY_VIT, tiny_beit_config, tiny_extrema_config, tiny_moby_config, tiny_swin_config
from transformers import (
    AutoModelForPreTraining,
    BeitConfig,
    BeitForMaskedImageModeling,
    BeitModel,
    DeiTConfig,
    DeiTModel,
    Dinov2Config,
    Dinov2Model,
    ResNetConfig,
    SwinConfig,
    SwinModel,
    ViTConfig,
    ViTModel,
)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from maskvision import BeitMimForPreTraining, DVAEConfig, ExtremaForPreTraining, MobyForPreTraining
from maskvision.modeling.pretrained_backbone import load_stock_encoder
from maskvision.modeling.resolution import resize_position_embeddings, resize_relative_position_bias_table


def randomized(model):
    """Every parameter random (stock initialisations zero the biases, which would hide a dropped key bias)."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    return model.eval()


def saved(model, tmp_path, name):
    path = tmp_path / name
    randomized(model).save_pretrained(path)
    return str(path)


# ------------------------------------------------------------------------------------ exact Beit layouts
@pytest.mark.parametrize("architecture", ["vit", "vit_without_qkv_bias", "dinov2"])
def test_a_vit_family_encoder_in_the_beit_layout_computes_the_same_tokens(tmp_path, architecture):
    if architecture == "dinov2":
        source = Dinov2Model(
            Dinov2Config(
                hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2, image_size=28, patch_size=14
            )
        )
        pixels = torch.randn(2, 3, 28, 28)
    else:
        source = ViTModel(ViTConfig(**TINY_VIT, qkv_bias=architecture == "vit"), add_pooling_layer=False)
        pixels = torch.randn(2, 3, 32, 32)
    path = saved(source, tmp_path, architecture)
    converted = load_stock_encoder(path)
    assert any("key biases dropped" in note for note in converted.notes)
    encoder = BeitModel(converted.config, add_pooling_layer=False).eval()
    encoder.load_state_dict(converted.tensors, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(pixels).last_hidden_state, source(pixels).last_hidden_state, atol=1e-5, rtol=1e-5
        )


def test_beit_from_a_vit_keeps_the_encoder_exactly_with_zero_bias_and_unit_layer_scale(tmp_path):
    source = ViTModel(ViTConfig(**TINY_VIT), add_pooling_layer=False)
    path = saved(source, tmp_path, "vit")
    model = BeitMimForPreTraining.from_backbone(path).eval()
    notes = " ".join(model.init_report.notes)
    assert "starts at zero" in notes and "starts at 1" in notes
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = model.layernorm(model.forward_encoder(pixels, torch.zeros(2, 64, dtype=torch.bool)))
        torch.testing.assert_close(ours, source(pixels).last_hidden_state, atol=1e-5, rtol=1e-5)


def test_beit_from_beit_for_masked_image_modeling_takes_its_head_and_export_round_trips(tmp_path):
    config = BeitConfig(**TINY_VIT, use_mask_token=True, use_shared_relative_position_bias=True, vocab_size=48)
    source = randomized(BeitForMaskedImageModeling(config))
    path = saved(source, tmp_path, "beit-mim")
    model = BeitMimForPreTraining.from_backbone(path).eval()
    assert model.config.vocab_size == 48 and model.init_report.new == []
    pixels, mask = torch.randn(2, 3, 32, 32), torch.rand(2, 64) < 0.4
    with torch.no_grad():
        expected = source(pixels, bool_masked_pos=mask).logits[mask]
        logits = model(pixels, bool_masked_pos=mask, labels=torch.zeros(2, 64, dtype=torch.long)).logits
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    exported = model.encoder_for_export()  # and back: the export's pooler norm is the head's LayerNorm
    assert torch.equal(exported.pooler.layernorm.weight, source.layernorm.weight)


def test_deit_loses_its_distillation_token_and_the_report_says_so(tmp_path):
    path = saved(DeiTModel(DeiTConfig(**TINY_VIT), add_pooling_layer=False), tmp_path, "deit")
    config = tiny_moby_config(backbone_config=BeitConfig(**TINY_VIT, use_absolute_position_embeddings=True))
    model = MobyForPreTraining.from_backbone(path, config)
    report = model.init_report
    assert "embeddings.distillation_token" in report.unused
    assert any("distillation token" in note for note in report.notes)
    assert model.encoder.embeddings.position_embeddings.shape == (1, 65, 32)


def test_the_checkpoints_normalisation_replaces_the_methods(tmp_path):
    path = saved(ViTModel(ViTConfig(**TINY_VIT)), tmp_path, "vit")
    model = ExtremaForPreTraining.from_backbone(path, tiny_extrema_config())
    assert model.config.image_mean == [0.485, 0.456, 0.406]  # no image processor: ExtreMA's own
    assert any("has no image processor" in note for note in model.init_report.notes)
    ViTImageProcessorPil(image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(path)
    model = ExtremaForPreTraining.from_backbone(path, tiny_extrema_config())
    assert model.config.image_mean == [0.5] * 3 and model.config.image_std == [0.5] * 3


# ------------------------------------------------------------------------------------------- the report
def test_the_report_lists_initialised_new_copied_and_unused_tensors(tmp_path):
    path = saved(BeitModel(BeitConfig(**TINY_VIT), add_pooling_layer=True), tmp_path, "beit")
    model = ExtremaForPreTraining.from_backbone(path, tiny_extrema_config())
    report = model.init_report
    assert "backbone.layers.0.attention.q_proj.weight" in report.initialised
    assert "projector.layers.0.weight" in report.new and "pooler.cls_token" in report.new
    assert report.copied and all(name.startswith("teacher_") for name in report.copied)
    assert {"embeddings.cls_token", "pooler.layernorm.weight"} <= set(report.unused)
    summary = report.summary()
    assert "backbone.layers.*.mlp.fc1.weight (x2)" in summary and "teacher_backbone.*" in summary
    for student, teacher in model.momentum_pairs():  # teachers start as copies of the student
        for a, b in zip(student.parameters(), teacher.parameters()):
            assert torch.equal(a, b)


# ------------------------------------------------------------------------------------ incompatibilities
@pytest.mark.parametrize(
    "method,source,config,message",
    [
        ("beit", "beit", lambda: tiny_beit_config(hidden_size=64, intermediate_size=128),
         "hidden size: 32 in the checkpoint, 64 in the config"),
        ("beit", "beit", lambda: tiny_beit_config(**{**TINY_VIT, "patch_size": 8}),
         "patch size: 4 in the checkpoint, 8 in the config"),
        ("beit", "swin", lambda: None, "is a Swin encoder \\(architecture\\): BEiT pretrains a ViT"),
        ("extrema", "beit-rel", lambda: tiny_extrema_config(), "relative position bias \\(architecture\\)"),
        ("moby", "vit", lambda: tiny_moby_config(
            backbone_config=tiny_swin_config(embed_dim=16, depths=[1, 1], num_heads=[1, 2])),
         "holds a beit encoder but the config asks for a swin one \\(architecture\\)"),
        ("beit", "resnet", lambda: None, "Architecture 'resnet' cannot initialise a maskvision encoder"),
        ("beit", "dvae", lambda: None, "holds a 'maskvision_dvae' checkpoint, not a 'maskvision_beit_mim' one"),
    ],
)  # fmt: skip
def test_an_incompatible_checkpoint_fails_naming_what_differs(tmp_path, method, source, config, message):
    sources = {
        "beit": lambda: saved(BeitModel(BeitConfig(**TINY_VIT)), tmp_path, "beit"),
        "beit-rel": lambda: saved(BeitModel(BeitConfig(**TINY_VIT, use_relative_position_bias=True)), tmp_path, "rel"),
        "vit": lambda: saved(ViTModel(ViTConfig(**TINY_VIT)), tmp_path, "vit"),
        "swin": lambda: saved(
            SwinModel(
                SwinConfig(embed_dim=16, depths=[1, 1], num_heads=[1, 2], image_size=32, patch_size=4, window_size=4)
            ),
            tmp_path,
            "swin",
        ),
        "resnet": lambda: ResNetConfig().save_pretrained(tmp_path / "resnet") or str(tmp_path / "resnet"),
        "dvae": lambda: (
            DVAEConfig(vocab_size=16, hidden_size=8, num_groups=2, blocks_per_group=1).save_pretrained(
                tmp_path / "dvae"
            )
            or str(tmp_path / "dvae")
        ),
    }
    model_class = {"beit": BeitMimForPreTraining, "extrema": ExtremaForPreTraining, "moby": MobyForPreTraining}[method]
    with pytest.raises(ValueError, match=message):
        model_class.from_backbone(sources[source](), config())


# ------------------------------------------------------------------------------------------ image sizes
def test_position_tables_are_resampled_to_the_requested_image_size(tmp_path):
    source = BeitModel(BeitConfig(**TINY_VIT, use_absolute_position_embeddings=True, use_relative_position_bias=True))
    path = saved(source, tmp_path, "beit")
    model = BeitMimForPreTraining.from_backbone(path, tiny_beit_config(**{**TINY_VIT, "image_size": 48}))
    embeddings = model.beit.embeddings.position_embeddings
    assert embeddings.shape == (1, 1 + 12 * 12, 32)
    torch.testing.assert_close(embeddings, resize_position_embeddings(source.embeddings.position_embeddings, 8, 12))
    table = model.beit.layers[0].relative_position_bias.relative_position_bias_table
    expected = resize_relative_position_bias_table(
        source.layers[0].relative_position_bias.relative_position_bias_table, 8, 12
    )
    torch.testing.assert_close(table, expected)
    assert any("resampled from 32 px to 48 px" in note for note in model.init_report.notes)
    assert model.config.num_masking_patches == round(75 / 196 * 144)


def test_continuing_a_run_of_the_same_method_keeps_every_tensor_and_may_change_the_image_size(tmp_path):
    run = ExtremaForPreTraining(tiny_extrema_config())
    run.save_pretrained(tmp_path / "run")
    model = ExtremaForPreTraining.from_backbone(tmp_path / "run")
    for name, tensor in run.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert "kept" in model.init_report.notes[0]
    larger = ExtremaForPreTraining.from_backbone(tmp_path / "run", tiny_extrema_config(backbone={"image_size": 48}))
    assert larger.config.backbone_config.image_size == 48
    assert larger.teacher_backbone.embeddings.position_embeddings.shape == (1, 1 + 144, 32)
    assert torch.equal(larger.projector.layers[0].weight, run.projector.layers[0].weight)


def test_auto_model_for_pretraining_loads_every_pretraining_checkpoint(tmp_path):
    models = [
        BeitMimForPreTraining(tiny_beit_config(**TINY_VIT)),
        ExtremaForPreTraining(tiny_extrema_config()),
        MobyForPreTraining(
            tiny_moby_config(backbone_config=tiny_swin_config(embed_dim=16, depths=[1, 1], num_heads=[1, 2]))
        ),
    ]
    for index, model in enumerate(models):
        model.save_pretrained(tmp_path / str(index))
        loaded = AutoModelForPreTraining.from_pretrained(tmp_path / str(index))
        assert type(loaded) is type(model)
