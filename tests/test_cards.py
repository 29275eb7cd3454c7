"""Model cards: rendered from a real run's files (pretraining → k-NN → fine-tuning) with the measured results as
model-index entries, the right metadata per kind, the method's citation, and usage snippets that run offline in an
interpreter without maskvision."""

import json
import os
import re

import pytest
from hub_kinds import RecordingHub, maskvision_cases, run_isolated, save_image
from huggingface_hub import ModelCard
from transformers import AutoModel

from maskvision.cli import main as cli_main
from maskvision.hub import load_checkpoint, write_repo_files
from maskvision.model_card import CITATIONS, METHODS, collect_sources, eval_results, read_result_files, render_card

HUB_CARDS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "hub_cards")
TINY_MOBY = [
    "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim", "16", "--depths", "1", "1",
    "--num_heads", "1", "2", "--projector_hidden_size", "32", "--predictor_hidden_size", "32", "--projection_dim", "16",
    "--queue_size", "16",
]  # fmt: skip
CPU = ["--use_cpu", "--dataloader_pin_memory", "false", "--disable_tqdm", "true"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real (tiny) pipeline: MoBY pretraining on 16 demo images, k-NN of its encoder, fine-tuning of it."""
    root = tmp_path_factory.mktemp("cards")
    pretraining, classifier = str(root / "moby"), str(root / "classifier")
    assert cli_main(["pretrain", "moby", "--dataset", "demo", "--max_train_samples", "16", "--output_dir", pretraining,
                     "--per_device_train_batch_size", "8", "--max_steps", "2", "--save_strategy", "no",
                     "--logging_steps", "1", *TINY_MOBY, *CPU]) == 0  # fmt: skip
    encoder = os.path.join(pretraining, "encoder")
    assert cli_main(["eval", "knn", "--model", encoder, "--dataset", "demo", "--max_train_samples", "40",
                     "--max_eval_samples", "20", "--k", "5", "10", "--no_cache", "--device", "cpu"]) == 0  # fmt: skip
    assert cli_main(["finetune", "--model", encoder, "--dataset", "demo", "--output_dir", classifier,
                     "--max_train_samples", "16", "--max_eval_samples", "16", "--num_train_epochs", "1",
                     "--per_device_train_batch_size", "16", "--save_total_limit", "1", *CPU]) == 0  # fmt: skip
    return {"root": str(root), "pretraining": pretraining, "encoder": encoder, "classifier": classifier}


def _records(path, metric="top1_accuracy"):
    with open(path, encoding="utf-8") as handle:
        return [record for record in json.load(handle)["results"] if record["metric"] == metric]


def _render(directory, output, *extra):
    assert cli_main(["card", directory, "--output", output, "--repo-id", "me/model", *extra]) == 0
    return ModelCard.load(output)


def test_pretraining_card_reports_the_run_and_the_measured_knn_results(run):
    card = _render(run["pretraining"], os.path.join(run["root"], "pretraining.md"))
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag is None  # no pipeline runs a MoBY checkpoint
    assert {"maskvision", "self-supervised", "moby", "custom_code", "swin"} <= set(data.tags)
    knn = _records(os.path.join(run["encoder"], "eval_results.json"))
    assert len(knn) == 2  # k 5 and k 10
    (result,) = data.eval_results  # one protocol, one evaluated split
    assert result.metric_value == round(max(record["value"] for record in knn), 4)
    assert result.metric_name.startswith("k-NN top-1 (k ") and result.dataset_split == "test"
    assert result.task_type == "image-classification" and result.metric_type == "accuracy"
    text = card.text
    assert "16 images of `demo`" in text and "| optimizer steps | 2 |" in text and "**Demo checkpoint.**" in text
    assert "| `queue_size` | 16 |" in text and CITATIONS["moby"] in text
    assert "maskvision eval knn --model" in text  # the command that reproduces the numbers
    assert 'AutoModel.from_pretrained("me/model", trust_remote_code=True)' in text


def test_encoder_card_is_described_by_the_run_it_was_exported_from(run):
    data = _render(run["encoder"], os.path.join(run["root"], "encoder.md")).data
    assert data.pipeline_tag == "image-feature-extraction" and "moby" in data.tags and "custom_code" not in data.tags
    assert [result.metric_name.split(" (")[0] for result in data.eval_results] == ["k-NN top-1"]


def test_classifier_card_has_one_model_index_entry_per_protocol_from_the_results_files(run):
    card = _render(
        run["classifier"],
        os.path.join(run["root"], "classifier.md"),
        "--results",
        os.path.join(run["encoder"], "eval_results.json"),
    )
    data = card.data
    assert data.pipeline_tag == "image-classification" and "moby" in data.tags
    by_protocol = {result.metric_name.split(" top-1")[0]: result.metric_value for result in data.eval_results}
    assert set(by_protocol) == {"k-NN", "fine-tuning"}
    finetune = _records(os.path.join(run["classifier"], "eval_results.json"))
    assert by_protocol["fine-tuning"] == round(finetune[0]["value"], 4)
    assert "## Fine-tuning" in card.text and "| batch size per device | 16 |" in card.text
    assert "fine-tuned\nfrom an encoder pretrained with MoBY" in card.text


def test_cards_show_the_training_curves_of_the_run_that_made_the_checkpoint(run):
    for kind, run_dir in (("pretraining", "moby"), ("encoder", "moby"), ("classifier", "classifier")):
        assert os.path.isfile(os.path.join(run["root"], run_dir, "training_curves.png"))  # written by the run
        text = _render(run[kind], os.path.join(run["root"], f"{kind}-curves.md")).text
        assert f"]({run_dir}/training_curves.png)" in text  # linked from where the card is written
    text = _render(run["encoder"], os.path.join(run["encoder"], "README.md")).text
    assert "](../training_curves.png)" in text


def test_push_uploads_the_training_curves_beside_the_card(run, tmp_path, monkeypatch):
    hub = RecordingHub(str(tmp_path / "hub")).install(monkeypatch)
    assert cli_main(["push", run["encoder"], "--repo-id", "me/encoder"]) == 0
    assert "training_curves.png" in hub.files("me/encoder")
    folder = hub.repo_path("me/encoder")
    assert "](training_curves.png)" in ModelCard.load(os.path.join(folder, "README.md")).text
    with open(os.path.join(run["root"], "moby", "training_curves.png"), "rb") as original:
        with open(os.path.join(folder, "training_curves.png"), "rb") as pushed:
            assert pushed.read() == original.read()


def test_eval_results_keep_each_protocols_best_top1_per_evaluated_split():
    def record(protocol, value, split="test", metric="top1_accuracy", **settings):
        return dict(
            protocol=protocol,
            metric=metric,
            value=value,
            dataset="/data/cifar10/test.parquet",
            split=split,
            train_dataset="/data/cifar10/train.parquet",
            train_split="train",
            model="m",
            settings=settings,
        )

    records = [
        record("linear", 0.41, pooling="cls", layer=12), record("linear", 0.47, pooling="mean", layer=9),
        record("knn", 0.38, k=20, pooling="mean", layer=12), record("knn", 0.35, k=200, pooling="mean", layer=12),
        record("knn", 0.9, metric="top5_accuracy", k=20), record("finetune", 0.81, epochs=100, image_size=32),
        record("knn", 0.30, split="validation", k=20),
    ]  # fmt: skip
    results = eval_results(records)
    assert [(r.metric_name, r.metric_value, r.dataset_split) for r in results] == [
        ("k-NN top-1 (k 20, pooling mean, layer 12)", 0.38, "test"),
        ("k-NN top-1 (k 20)", 0.3, "validation"),
        ("linear probe top-1 (pooling mean, layer 9)", 0.47, "test"),
        ("fine-tuning top-1 (epochs 100, image_size 32)", 0.81, "test"),
    ]
    assert {(r.dataset_type, r.dataset_name) for r in results} == {("cifar10", "cifar10/test.parquet")}


def test_beit_card_cites_the_tokenizer_it_learned_from(tmp_path):
    model = next(case.model for case in maskvision_cases() if case.name == "beit")
    (tmp_path / "dvae").mkdir()
    (tmp_path / "dvae" / "config.json").write_text(json.dumps({"model_type": "maskvision_dvae"}))
    model.config.tokenizer_name_or_path = str(tmp_path / "dvae")
    text = render_card(collect_sources(model, "pretraining")).text
    assert text.count(CITATIONS["beit"]) == 1 and CITATIONS["dalle"] in text and CITATIONS["beitv2"] not in text
    assert f"| `tokenizer_name_or_path` | {tmp_path / 'dvae'} |" in text


def test_results_files_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="No results file"):
        read_result_files([str(tmp_path / "missing.json")])
    (tmp_path / "other.json").write_text(json.dumps({"eval_top1_accuracy": 0.5}))
    with pytest.raises(ValueError, match="not a maskvision results file"):
        read_result_files([str(tmp_path / "other.json")])


def test_every_maskvision_model_type_has_a_method_description_and_citation():
    mapping = AutoModel._model_mapping._extra_content
    model_types = {config.model_type for config in mapping if config.model_type.startswith("maskvision_")}
    assert model_types <= set(METHODS)
    assert all(method.citations and set(method.citations) <= set(CITATIONS) for method in METHODS.values())
    assert {key: re.match(r"@\w+\{(\w+),", text).group(1) for key, text in CITATIONS.items()} == {
        "beit": "bao2022beit",
        "beitv2": "peng2022beitv2",
        "extrema": "wu2022extreme",
        "moby": "xie2021moby",
        "dalle": "ramesh2021zero",
    }


def test_usage_snippets_run_offline_without_maskvision(run, tmp_path):
    """The card's snippet of every kind, pointed at the staged repo, runs where maskvision is not installed."""
    models = {kind: load_checkpoint(run[kind]) for kind in ("pretraining", "encoder", "classifier")}
    assert {kind: detected for kind, (_, _, detected) in models.items()} == {kind: kind for kind in models}
    models |= {case.name: (case.model, None, case.kind) for case in maskvision_cases()}
    checks = []
    for name, (model, processor, kind) in models.items():
        folder = tmp_path / f"repo-{name}"
        folder.mkdir()
        write_repo_files(model, folder, image_processor=processor, repo_id="me/model")
        (snippet,) = re.findall(r"```python\n(.*?)```", (folder / "README.md").read_text(), flags=re.DOTALL)
        workdir = tmp_path / f"user-{name}"
        workdir.mkdir()
        save_image(str(workdir / "image.jpg"))
        code = snippet.replace('"me/model"', repr(str(folder)))
        checks.append({"type": "snippet", "name": name, "code": code, "cwd": str(workdir)})
    results = run_isolated(checks, str(tmp_path))
    assert results["_maskvision_blocked"]
    for name in models:
        assert results[name].get("ran"), results[name].get("error")
    for name, (_, _, kind) in models.items():
        if kind == "pretraining":  # model.export_encoder("encoder") in the snippet
            assert "encoder" in results[name]["files"]


def test_committed_hub_cards_are_valid_model_cards():
    cards = [name for name in os.listdir(HUB_CARDS) if name.endswith(".md") and name != "README.md"]
    assert cards
    for name in cards:
        data = ModelCard.load(os.path.join(HUB_CARDS, name)).data
        assert data.library_name == "transformers" and "maskvision" in data.tags and data.eval_results
