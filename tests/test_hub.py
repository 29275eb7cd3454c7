"""Pushing to the Hub, offline, against a local stand-in that records commits: the exact files of each kind, one
commit per push, the recorded repo reloads (pipelines included), a push that fails midway publishes nothing, and
directories that hold no checkpoint are refused with a clear error."""

import json
import os

import pytest
import torch
from hub_kinds import RecordingHub, maskvision_cases, save_image, stock_classifier, stock_encoder
from huggingface_hub import ModelCard
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, BertConfig, BertModel, pipeline

import maskvision.hub as hub_module
from maskvision.cli import main as cli_main
from maskvision.hub import load_checkpoint, model_kind, push_model, write_repo_files
from maskvision.remote_code import remote_code_files

STAGED = {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
CASES = maskvision_cases()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    return RecordingHub(str(tmp_path / "hub")).install(monkeypatch)


def _commits(hub):
    return [details for name, details in hub.calls if name == "create_commit"]


def _card(folder):
    return ModelCard.load(os.path.join(folder, "README.md")).data


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_push_to_hub_of_a_maskvision_model_is_one_commit_of_weights_processor_card_and_remote_code(hub, case):
    url = case.model.push_to_hub("me/" + case.name, commit_message="first", tags=["cifar10-run"])
    assert url.startswith("https://huggingface.co/me/")
    expected = STAGED | set(remote_code_files(type(case.model)))
    assert set(hub.files("me/" + case.name)) == expected
    assert [name for name, _ in hub.calls] == ["create_repo", "create_commit"]
    assert hub.calls[0][1]["exist_ok"] and _commits(hub)[0]["message"] == "first"

    folder = hub.repo_path("me/" + case.name)
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        pretraining = {"AutoModelForPreTraining"} if case.kind == "pretraining" else set()
        assert set(json.load(handle)["auto_map"]) == {"AutoConfig", "AutoModel", *pretraining}
    # maskvision installed: its own class loads the repo (the remote code is tested where maskvision is not).
    reloaded = AutoModel.from_pretrained(folder).eval()
    assert type(reloaded) is type(case.model)
    for name, value in case.expected(reloaded).items():
        torch.testing.assert_close(value, case.expected()[name], rtol=0, atol=0)
    processor, own = AutoImageProcessor.from_pretrained(folder), case.model.image_processor()
    size = case.inputs["pixel_values"].shape[-1]
    assert (processor.size.height, processor.size.width) == (own.size.height, own.size.width) == (size, size)
    assert list(processor.image_mean) == list(own.image_mean) and processor.do_normalize == own.do_normalize
    card = _card(folder)
    assert card.library_name == "transformers" and {"custom_code", "maskvision", "cifar10-run"} <= set(card.tags)


def test_push_cli_on_a_pretraining_directory_stages_the_processor_and_the_remote_code(hub, tmp_path):
    case = CASES[0]
    case.model.save_pretrained(tmp_path / "run")
    assert (
        cli_main(
            [
                "push",
                str(tmp_path / "run"),
                "--repo-id",
                "me/run",
                "--private",
                "--revision",
                "dev",
                "--commit-message",
                "pretrained",
            ]
        )
        == 0
    )
    assert set(hub.files("me/run", "dev")) == STAGED | set(remote_code_files(type(case.model)))
    assert hub.calls[0] == ("create_repo", {"repo_id": "me/run", "private": True, "exist_ok": True})
    assert hub.calls[1] == ("create_branch", {"repo_id": "me/run", "branch": "dev"})
    assert _commits(hub)[0]["revision"] == "dev" and _commits(hub)[0]["message"] == "pretrained"
    assert set(os.listdir(tmp_path / "run")) == {"config.json", "model.safetensors"}  # nothing written into DIR


def test_exported_encoder_push_is_a_stock_repo_that_works_in_the_feature_extraction_pipeline(hub, tmp_path):
    case = CASES[0]
    encoder_dir = case.model.export_encoder(tmp_path / "run" / "encoder")
    assert cli_main(["push", encoder_dir, "--repo-id", "me/encoder"]) == 0
    assert set(hub.files("me/encoder")) == STAGED  # no remote code: stock transformers
    folder = hub.repo_path("me/encoder")
    with open(os.path.join(folder, "config.json"), encoding="utf-8") as handle:
        assert "auto_map" not in json.load(handle)
    assert _card(folder).pipeline_tag == "image-feature-extraction"

    image = save_image(str(tmp_path / "image.png"))
    features = pipeline("image-feature-extraction", model=folder)(image, return_tensors=True)
    original = AutoModel.from_pretrained(encoder_dir).eval()
    inputs = AutoImageProcessor.from_pretrained(encoder_dir)(images=Image.open(image), return_tensors="pt")
    with torch.no_grad():
        expected = original(**inputs).last_hidden_state
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-5)


def test_fine_tuned_classifier_push_works_in_the_image_classification_pipeline(hub, tmp_path):
    model, processor = stock_classifier()
    model.save_pretrained(tmp_path / "classifier")
    processor.save_pretrained(tmp_path / "classifier")
    assert cli_main(["push", str(tmp_path / "classifier"), "--repo-id", "me/classifier"]) == 0
    assert set(hub.files("me/classifier")) == STAGED
    folder = hub.repo_path("me/classifier")
    assert _card(folder).pipeline_tag == "image-classification"
    predictions = pipeline("image-classification", model=folder)(save_image(str(tmp_path / "image.png")), top_k=3)
    assert {prediction["label"] for prediction in predictions} == {"airplane", "automobile", "bird"}
    assert sum(prediction["score"] for prediction in predictions) == pytest.approx(1.0, abs=1e-4)


def test_a_push_that_fails_midway_publishes_nothing(hub, tmp_path):
    hub.fail_after = 2  # the connection drops after two files were read
    with pytest.raises(ConnectionError, match="simulated"):
        CASES[0].model.push_to_hub("me/broken")
    assert hub.files("me/broken") == []
    assert [name for name, _ in hub.calls] == ["create_repo", "failed_commit"]  # no file-by-file upload either


def test_a_push_that_fails_while_staging_touches_no_repo(hub, monkeypatch):
    def broken_card(*args, **kwargs):
        raise RuntimeError("card rendering failed")

    monkeypatch.setattr(hub_module, "render_card", broken_card)
    with pytest.raises(RuntimeError, match="card rendering failed"):
        push_model(CASES[0].model, "me/never")
    assert hub.calls == []


def test_directories_holding_no_checkpoint_are_refused_naming_the_kinds(tmp_path):
    (tmp_path / "empty").mkdir()
    kinds = "holds no checkpoint.*visual tokenizer.*pretraining checkpoint.*encoder.*classifier"
    with pytest.raises(ValueError, match=kinds):
        load_checkpoint(tmp_path / "empty")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="pickled"):
        load_checkpoint(tmp_path / "pickled")
    (tmp_path / "crashed" / "checkpoint-40").mkdir(parents=True)
    with pytest.raises(ValueError, match="checkpoint-40"):
        load_checkpoint(tmp_path / "crashed")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_checkpoint(tmp_path / "missing")


def test_kinds_are_detected_and_other_models_refused(tmp_path):
    assert [model_kind(case.model) for case in CASES] == [case.kind for case in CASES]
    assert model_kind(stock_encoder()[0]) == "encoder" and model_kind(stock_classifier()[0]) == "classifier"
    text_model = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ValueError, match="BertModel.*none of the checkpoints maskvision pushes"):
        model_kind(text_model)


def test_stage_needs_an_empty_folder_and_a_processor_for_stock_models(tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="empty directory"):
        write_repo_files(CASES[0].model, tmp_path / "busy")
    (tmp_path / "stock").mkdir()
    with pytest.raises(ValueError, match="needs its image processor"):
        write_repo_files(stock_encoder()[0], tmp_path / "stock")
    model, processor = stock_encoder()
    (tmp_path / "ok").mkdir()
    assert write_repo_files(model, tmp_path / "ok", image_processor=processor, repo_id="me/ok") == sorted(STAGED)
