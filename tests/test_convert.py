"""`maskvision convert`: official releases built here in their key layouts (tests/official_layouts.py), converted
through the restricted unpickler; every key consumed; the converted models compute what the official code computes
with those weights; malicious pickles and files of another layout refused."""

import argparse
import os
import pickle
import subprocess

import official_layouts as official
import pytest
import torch
from transformers import AutoModel, BeitForImageClassification, BeitModel, SwinModel

from maskvision import BeitMimForPreTraining, ExtremaForPreTraining, MobyForPreTraining, VQKDTokenizer
from maskvision.cli import main as cli
from maskvision.official import convert_release
from maskvision.safe_pickle import UnsafePickleError

ATOL = 1e-4


def save(tmp_path, checkpoint, name="release.pth") -> str:
    path = str(tmp_path / name)
    torch.save(checkpoint, path)
    return path


def pixels(batch=2):
    return torch.randn(batch, 3, 32, 32)


# ---------------------------------------------------------------------------------------------------- BEiT
@pytest.mark.parametrize("version", [1, 2])
def test_beit_pretraining_release_predicts_the_official_tokens(tmp_path, version):
    state = official.beit_pretraining_state(version)
    args = argparse.Namespace(model="beit_base_patch16_224_8k_vocab", lr=1.5e-3)  # unilm's save_model keeps args
    path = save(tmp_path, {"model": state, "epoch": 799, "args": args, "optimizer": {"state": {}}})
    assert cli(["convert", "beit", path, "--output-dir", str(tmp_path / "out")]) == 0
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert isinstance(model, BeitMimForPreTraining) and model.config.vocab_size == official.VOCAB
    assert model.config.exact_masking == (version == 2)
    images, mask = pixels(), torch.rand(2, official.GRID**2) < 0.4
    tokens = official.vit_tokens(state, "", images, official.HEADS, bool_masked_pos=mask)
    expected = torch.nn.functional.linear(
        official.layer_norm(tokens, state, "norm")[:, 1:][mask], state["lm_head.weight"], state["lm_head.bias"]
    )
    logits = model(images, bool_masked_pos=mask, labels=torch.zeros(2, official.GRID**2, dtype=torch.long)).logits
    torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
    encoder = BeitModel.from_pretrained(tmp_path / "out" / "encoder")
    assert torch.equal(encoder.layers[0].attention.q_proj.weight, state["blocks.0.attn.qkv.weight"][: official.DIM])


@pytest.mark.parametrize("mean_pooling", [True, False])
def test_beit_finetuned_release_classifies_as_the_official_model(tmp_path, mean_pooling):
    state = official.beit_finetuned_state(labels=5, mean_pooling=mean_pooling)
    path = save(tmp_path, {"model": state})
    conversion = convert_release("beit", path, tmp_path / "out")
    assert conversion.converted == len(state) - official.DEPTH  # every key but the index buffers
    model = BeitForImageClassification.from_pretrained(tmp_path / "out").eval()
    images = pixels()
    tokens = official.vit_tokens(state, "", images, official.HEADS)
    if mean_pooling:
        features = official.layer_norm(tokens[:, 1:].mean(1), state, "fc_norm")
    else:
        features = official.layer_norm(tokens, state, "norm")[:, 0]
    expected = torch.nn.functional.linear(features, state["head.weight"], state["head.bias"])
    torch.testing.assert_close(model(images).logits, expected, atol=ATOL, rtol=0)
    assert isinstance(AutoModel.from_pretrained(tmp_path / "out" / "encoder"), BeitModel)


def test_vqkd_release_gives_the_official_codes(tmp_path):
    state = official.vqkd_state()
    path = save(tmp_path, {"model": state})
    conversion = convert_release("vqkd", path, tmp_path / "out", num_attention_heads=official.HEADS)
    assert any("distillation teacher" in line for line in conversion.dropped)
    tokenizer = AutoModel.from_pretrained(tmp_path / "out")
    assert isinstance(tokenizer, VQKDTokenizer) and tokenizer.config.teacher_hidden_size == official.TEACHER_DIM
    images = torch.rand(2, 3, 32, 32)
    codes = tokenizer.get_codebook_indices(images).flatten(1)
    assert torch.equal(codes, official.vqkd_codes(state, images))


# ------------------------------------------------------------------------------------------------- ExtreMA
def test_extrema_release_student_teacher_and_predictor_match_the_official_model(tmp_path):
    state = official.extrema_state()
    path = save(tmp_path, {"epoch": 300, "arch": "vit_custom", "state_dict": state, "optimizer": {}, "scaler": {}})
    convert_release(
        "extrema",
        path,
        tmp_path / "out",
        num_attention_heads=official.HEADS,
        config_overrides="mask_ratio=0.75,num_masks=4,loss=infonce",
    )  # settings the weights do not hold
    model = ExtremaForPreTraining.from_pretrained(tmp_path / "out").eval()
    assert (model.config.mask_ratio, model.config.loss) == (0.75, "infonce")
    images = pixels()
    order = torch.stack([torch.randperm(official.GRID**2) for _ in range(2)])
    visible = [order[:, 12 * m : 12 * (m + 1)].sort(dim=1).values for m in range(4)]  # 4 disjoint masks
    bool_masked_pos = torch.ones(2, 4, official.GRID**2, dtype=torch.bool)
    for m, indices in enumerate(visible):
        bool_masked_pos[:, m].scatter_(1, indices, False)
    output = model(images, bool_masked_pos=bool_masked_pos)
    for m, indices in enumerate(visible):
        student = official.extrema_branch(state, "base_encoder", images, indices)
        torch.testing.assert_close(
            output.predictions[:, m], official.extrema_predict(state, student), atol=ATOL, rtol=0
        )
    torch.testing.assert_close(
        output.targets, official.extrema_branch(state, "momentum_encoder", images), atol=ATOL, rtol=0
    )


# ---------------------------------------------------------------------------------------------------- MoBY
@pytest.mark.parametrize("encoder", ["swin", "deit"])
def test_moby_release_features_heads_and_queues_match_the_official_model(tmp_path, encoder):
    state = official.moby_state(encoder)
    path = save(tmp_path, {"model": state, "epoch": 299, "max_accuracy": 0.0})
    options = {"image_size": 32} if encoder == "swin" else {"num_attention_heads": official.HEADS}
    convert_release("moby", path, tmp_path / "out", **options)
    model = MobyForPreTraining.from_pretrained(tmp_path / "out").eval()
    images = pixels()
    features = {"swin": official.swin_features, "deit": official.deit_features}[encoder]
    for branch, ours, projector in (
        ("encoder.", model.encoder, "projector."),
        ("encoder_k.", model.target_encoder, "projector_k."),
    ):
        expected = features(state, branch, images)
        pooled = ours(pixel_values=images).pooler_output
        torch.testing.assert_close(pooled, expected, atol=ATOL, rtol=0)
        head = model.projector if branch == "encoder." else model.target_projector
        torch.testing.assert_close(head(pooled), official.moby_mlp(expected, state, projector), atol=ATOL, rtol=0)
    keys = torch.randn(3, official.MOBY_OUT)
    torch.testing.assert_close(model.predictor(keys), official.moby_mlp(keys, state, "predictor."), atol=ATOL, rtol=0)
    assert torch.equal(model.queue_1, state["queue1"].T) and int(model.queue_ptr) == 4
    encoder_class = SwinModel if encoder == "swin" else BeitModel
    assert isinstance(AutoModel.from_pretrained(tmp_path / "out" / "encoder"), encoder_class)


def test_moby_image_size_comes_from_the_shift_masks_when_not_given(tmp_path):
    path = save(tmp_path, {"model": official.moby_state("swin")})
    convert_release("moby", path, tmp_path / "out")
    assert MobyForPreTraining.from_pretrained(tmp_path / "out").config.backbone_config.image_size == 32


# ---------------------------------------------------------------------------------------- every key, safely
@pytest.mark.parametrize(
    "kind,state,options",
    [
        ("beit", official.beit_pretraining_state, {}),
        ("vqkd", official.vqkd_state, {"num_attention_heads": 2}),
        ("extrema", official.extrema_state, {"num_attention_heads": 2}),
        ("moby", lambda: official.moby_state("swin"), {"image_size": 32}),
    ],
)
def test_a_key_the_converter_does_not_know_stops_the_conversion(tmp_path, kind, state, options):
    weights = state()
    weights["blocks.0.attn.extra_adapter.weight"] = torch.zeros(2)
    path = save(tmp_path, {"model": weights, "state_dict": weights} if kind == "extrema" else {"model": weights})
    with pytest.raises(ValueError, match="keys were not converted .*extra_adapter.*nothing was written"):
        convert_release(kind, path, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_config_overrides_may_not_change_shapes_and_are_validated(tmp_path):
    path = save(tmp_path, {"state_dict": official.extrema_state()})
    with pytest.raises(ValueError, match="would change the converted tensors' shapes"):
        convert_release("extrema", path, tmp_path / "a", num_attention_heads=2, config_overrides="projection_size=8")
    with pytest.raises(ValueError, match="mask_ratio must be in \\(0, 1\\)"):
        convert_release("extrema", path, tmp_path / "b", num_attention_heads=2, config_overrides="mask_ratio=1.5")


def test_a_release_of_another_kind_is_refused_naming_the_missing_key(tmp_path):
    path = save(tmp_path, {"model": official.moby_state("swin")})
    with pytest.raises(ValueError, match="key 'head.weight' is missing: not a checkpoint of the expected layout"):
        convert_release("beit", path, tmp_path / "out")


class Payload:
    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("kind", ["beit", "extrema", "moby"])
def test_a_malicious_release_is_refused_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "marker"
    weights = official.beit_pretraining_state()
    path = save(tmp_path, {"model": weights, "args": Payload(subprocess.call, ["touch", str(marker)])})
    with pytest.raises(UnsafePickleError, match="Refusing to load global .*call: .*nothing from it was executed"):
        cli(["convert", kind, path, "--output-dir", str(tmp_path / "out")])
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as handle:
        pickle.dump({"model": Payload(os.system, f"touch {marker}")}, handle, protocol=2)
    with pytest.raises(UnsafePickleError, match="nothing from it was executed"):
        convert_release(kind, evil, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()
