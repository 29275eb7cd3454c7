"""Evaluation: weighted k-NN, linear probe, metric modules, feature extraction (pooling, cache), `maskvision eval`."""

import json
import math

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BeitConfig, BeitModel, SwinConfig, SwinModel, ViTConfig, ViTForImageClassification, ViTModel

from maskvision.cli import main as cli_main
from maskvision.configuration.backbones import vit_backbone_config
from maskvision.evaluation import (
    EvalResult,
    extract_features,
    knn_evaluate,
    knn_scores,
    linear_probe,
    load_encoder,
    load_metric,
    metric_path,
    write_results,
)
from maskvision.evaluation.features import build_image_processor
from maskvision.evaluation.run import parse_layers
from maskvision.modeling.modeling_utils import MaskVisionPreTrainedModel

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)
TINY_SWIN = dict(embed_dim=16, depths=[1, 1], num_heads=[2, 2], image_size=32, patch_size=4, window_size=4)


def _processor():
    return build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _image_dataset(num_images=12, num_classes=3, seed=0, labelled=True):
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (24 + i % 3, 32, 3), dtype=np.uint8)) for i in range(num_images)]
    columns = {"image": images}
    features = {"image": datasets.Image()}
    if labelled:
        columns["label"] = [i % num_classes for i in range(num_images)]
        features["label"] = datasets.ClassLabel(names=[f"class{c}" for c in range(num_classes)])
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


@pytest.fixture(scope="module")
def tiny_beit_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_beit")
    torch.manual_seed(0)
    BeitModel(BeitConfig(**TINY, use_mean_pooling=True)).save_pretrained(path)
    _processor().save_pretrained(path)
    return str(path)


# ------------------------------------------------------------------------------------------------- k-NN
def _clusters(num_classes=4, per_class=30, dim=16, noise=0.05, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centers = torch.eye(dim)[:num_classes] * 3
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    features = centers[labels] + noise * torch.randn(len(labels), dim, generator=generator)
    return features, labels


def test_knn_separable_clusters_are_classified_perfectly():
    train, train_labels = _clusters(seed=0)
    test, test_labels = _clusters(per_class=10, seed=1)
    results = knn_evaluate(train, train_labels, test, test_labels, ks=(20, 200))
    # k=200 exceeds the 120 training features: lowered to 120, and the nearest cluster still wins.
    assert set(results) == {20, 120}
    for metrics in results.values():
        assert metrics["top1_accuracy"] == 1.0


def test_knn_votes_are_exp_similarity_over_temperature():
    # One neighbour of class 0 at cosine 0.9, two of class 1 at cosine 0.6 and 0.5.
    angles = torch.tensor([math.acos(0.9), math.acos(0.6), math.acos(0.5)])
    train = torch.stack([angles.cos(), angles.sin()], dim=1)
    train_labels = torch.tensor([0, 1, 1])
    test = torch.tensor([[2.0, 0.0]])  # unnormalised on purpose: cosine similarity
    votes = knn_scores(train, train_labels, test, num_classes=2, ks=(3,), temperature=0.07)[3][0]
    expected = torch.tensor([math.exp(0.9 / 0.07), math.exp(0.6 / 0.07) + math.exp(0.5 / 0.07)])
    torch.testing.assert_close(votes, expected, rtol=1e-4, atol=0)
    assert votes.argmax() == 0  # a low temperature lets the single close neighbour win ...
    flat = knn_scores(train, train_labels, test, num_classes=2, ks=(3,), temperature=100.0)[3][0]
    assert flat.argmax() == 1  # ... a high one approaches a majority vote
    only_nearest = knn_scores(train, train_labels, test, num_classes=2, ks=(1,))[1][0]
    assert only_nearest[1] == 0 and only_nearest[0] > 0


def test_knn_top5_at_least_top1_and_errors():
    generator = torch.Generator().manual_seed(0)
    train, test = torch.randn(200, 8, generator=generator), torch.randn(50, 8, generator=generator)
    train_labels = torch.randint(0, 10, (200,), generator=generator)
    test_labels = torch.randint(0, 10, (50,), generator=generator)
    for metrics in knn_evaluate(train, train_labels, test, test_labels, num_classes=10).values():
        assert 0 <= metrics["top1_accuracy"] <= metrics["top5_accuracy"] <= 1
    with pytest.raises(ValueError, match="temperature"):
        knn_scores(train, train_labels, test, 10, temperature=0)
    with pytest.raises(ValueError, match="width"):
        knn_scores(train, train_labels, test[:, :4], 10)
    with pytest.raises(ValueError, match="train_labels must lie"):
        knn_scores(train, train_labels, test, num_classes=5)


# ------------------------------------------------------------------------------------------------ metrics
def test_metric_modules_load_offline_by_path():
    assert metric_path("top1_accuracy").endswith("top1_accuracy")
    top1 = load_metric("top1_accuracy")
    assert top1.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2]) == {"top1_accuracy": 0.75}
    top5 = load_metric("top5_accuracy")
    ranked = [[3, 1, 4, 0, 5], [9, 2, 6, 5, 3], [7, 7, 7, 7, 7, 1]]  # the 6th id of the last row does not count
    assert top5.compute(predictions=ranked, references=[0, 7, 1]) == pytest.approx({"top5_accuracy": 1 / 3})
    with pytest.raises(ValueError, match="at least 5 ranked class ids"):
        top5.compute(predictions=[[1, 2]], references=[1])
    with pytest.raises(ValueError, match="Unknown metric"):
        metric_path("accuracy@7")


# ------------------------------------------------------------------------------------------------ linear probe
def test_linear_probe_beats_chance_and_folds_the_standardisation():
    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(5, 12, generator=generator) * 2 + 10  # far from the origin: standardisation matters
    labels = torch.randint(0, 5, (400,), generator=generator)
    features = centers[labels] + torch.randn(400, 12, generator=generator)
    result = linear_probe(
        features[:300],
        labels[:300],
        features[300:],
        labels[300:],
        learning_rates=(1e-3, 1e-2),
        epochs=30,
        batch_size=64,
    )
    assert result.top1_accuracy > 0.9  # chance is 0.2
    assert result.top5_accuracy >= result.top1_accuracy
    assert set(result.validation_top1) == {1e-3, 1e-2} and result.learning_rate in result.validation_top1
    predictions = result.classifier(features[300:]).argmax(dim=1)  # applies to raw features
    assert (predictions == labels[300:]).float().mean().item() == pytest.approx(result.top1_accuracy)
    with pytest.raises(ValueError, match="learning_rates"):
        linear_probe(features, labels, features, labels, learning_rates=(0.0,))


# ------------------------------------------------------------------------------------------ features and pooling
def test_pooling_modes_match_the_model_outputs():
    torch.manual_seed(0)
    beit = BeitModel(BeitConfig(**TINY, use_mean_pooling=True))
    encoder = load_encoder(beit, image_processor=_processor(), device="cpu")
    pixels = torch.randn(3, 3, 32, 32)
    keys = encoder.check_request(["cls", "mean"], [1, -1])
    assert keys == [("cls", 1), ("cls", 2), ("mean", 1), ("mean", 2)]
    features = encoder.features(pixels, keys)
    with torch.no_grad():
        outputs = beit(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(features[("cls", 2)], outputs.last_hidden_state[:, 0])
    torch.testing.assert_close(features[("mean", 2)], outputs.pooler_output)  # Beit's own mean pooler (LayerNorm)
    torch.testing.assert_close(features[("mean", 1)], outputs.hidden_states[1][:, 1:].mean(1))
    torch.testing.assert_close(features[("cls", 1)], outputs.hidden_states[1][:, 0])
    assert encoder.default_pooling == "mean"

    vit = ViTModel(ViTConfig(**TINY))
    vit_encoder = load_encoder(vit, image_processor=_processor(), device="cpu")
    assert vit_encoder.default_pooling == "cls"
    with torch.no_grad():
        last = vit(pixel_values=pixels).last_hidden_state
    torch.testing.assert_close(vit_encoder.features(pixels, [("mean", 2)])[("mean", 2)], last[:, 1:].mean(1))

    swin = SwinModel(SwinConfig(**TINY_SWIN))
    swin_encoder = load_encoder(swin, image_processor=_processor(), device="cpu")
    assert swin_encoder.num_layers == 2 and swin_encoder.default_pooling == "mean"
    assert swin_encoder.features(pixels, [("mean", 2)])[("mean", 2)].shape == (3, 32)
    with pytest.raises(ValueError, match=r"no.*\[CLS\]|has none"):
        swin_encoder.check_request(["cls"], [-1])


def test_classifier_checkpoint_is_evaluated_through_its_backbone(tmp_path):
    classifier = ViTForImageClassification(ViTConfig(**TINY, num_labels=4))
    classifier.save_pretrained(tmp_path)
    _processor().save_pretrained(tmp_path)
    encoder = load_encoder(str(tmp_path), device="cpu")
    assert type(encoder.model).__name__ == "ViTModel"
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = classifier.vit(pixel_values=pixels).last_hidden_state[:, 0]
    torch.testing.assert_close(encoder.features(pixels, [("cls", 2)])[("cls", 2)], expected)


def test_pooling_and_layer_errors():
    encoder = load_encoder(BeitModel(BeitConfig(**TINY)), image_processor=_processor(), device="cpu")
    with pytest.raises(ValueError, match=r"Unknown pooling 'max'.*cls.*mean.*class_attention"):
        encoder.check_request(["max"], [-1])
    with pytest.raises(ValueError, match="class_attention.*ExtreMA"):
        encoder.check_request(["class_attention"], [-1])
    with pytest.raises(ValueError, match=r"layer must be in 1\.\.2"):
        encoder.check_request(["cls"], [3])
    with pytest.raises(ValueError, match="image_mean"):
        load_encoder(BeitModel(BeitConfig(**TINY)), device="cpu")  # no image processor and no mean/std


class _PoolingModel(MaskVisionPreTrainedModel):
    """Stands in for an ExtreMA pretraining model: only its ``get_image_features(pixel_values, pooling)``."""

    config_class = BeitConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.proj = torch.nn.Linear(3, 4)
        self.calls = []
        self.post_init()

    def get_image_features(self, pixel_values, pooling="class_attention"):
        self.calls.append(pooling)
        pooled = pixel_values.mean(dim=(2, 3))
        return self.proj(pooled) * (2.0 if pooling == "class_attention" else 1.0)


def test_class_attention_pooling_goes_through_get_image_features():
    model = _PoolingModel(BeitConfig(**TINY))
    encoder = load_encoder(model, image_processor=_processor(), device="cpu")
    assert encoder.default_pooling == "class_attention"
    features = encoder.features(torch.randn(2, 3, 32, 32), encoder.check_request(["class_attention", "mean"], [-1]))
    assert model.calls == ["class_attention", "mean"]
    torch.testing.assert_close(features[("class_attention", 2)], 2 * features[("mean", 2)])
    with pytest.raises(ValueError, match="last layer only"):
        encoder.check_request(["mean"], [1])
    with pytest.raises(ValueError, match=r"\[CLS\].*mean or class_attention"):
        encoder.check_request(["cls"], [-1])


def test_feature_cache_hit_and_invalidation(tiny_beit_dir, tmp_path):
    dataset = _image_dataset(num_images=10)
    encoder = load_encoder(tiny_beit_dir, device="cpu")
    calls = []
    encoder.model.register_forward_hook(lambda *args: calls.append(1))
    options = dict(poolings=["cls", "mean"], layers=[-1], batch_size=4, cache_dir=str(tmp_path), progress=False)

    first = extract_features(encoder, dataset, **options)
    assert len(calls) == 3  # 10 images in batches of 4
    assert first.features[("cls", 2)].shape == (10, 32) and first.labels.tolist() == dataset["label"]
    assert len(list(tmp_path.glob("*.safetensors"))) == 2  # one file per (pooling, layer)

    second = extract_features(encoder, dataset, **options)
    assert len(calls) == 3  # served from the cache: the model was not called
    torch.testing.assert_close(second.features[("mean", 2)], first.features[("mean", 2)])
    assert second.labels.tolist() == first.labels.tolist()

    changed = load_encoder(tiny_beit_dir, device="cpu")
    with torch.no_grad():
        changed.model.embeddings.cls_token.add_(1.0)  # other weights: another fingerprint
    changed_calls = []
    changed.model.register_forward_hook(lambda *args: changed_calls.append(1))
    third = extract_features(changed, dataset, **options)
    assert len(changed_calls) == 3
    assert not torch.allclose(third.features[("cls", 2)], first.features[("cls", 2)])

    other_data = extract_features(encoder, dataset.select(range(6)), **options)  # another dataset fingerprint
    assert len(calls) == 5 and other_data.features[("cls", 2)].shape == (6, 32)


def test_unlabelled_dataset_is_refused_by_supervised_protocols(tiny_beit_dir):
    encoder = load_encoder(tiny_beit_dir, device="cpu")
    features = extract_features(encoder, _image_dataset(4, labelled=False), cache_dir=None, progress=False)
    assert features.labels is None and features.features[("cls", 2)].shape == (4, 32)
    with pytest.raises(ValueError, match="knn protocol needs labels"):
        features.require_labels("knn")


# ----------------------------------------------------------------------------------------------- results + CLI
def test_results_file_merges_records(tmp_path):
    record = dict(
        protocol="knn",
        metric="top1_accuracy",
        dataset="demo",
        split="test",
        train_dataset="demo",
        train_split="train",
        model="m",
        settings={"k": 20},
    )
    path = write_results(str(tmp_path), [EvalResult(value=0.5, **record)])
    write_results(path, [EvalResult(value=0.6, **record), EvalResult(value=0.7, **(record | {"settings": {"k": 200}}))])
    values = {json.dumps(r["settings"]): r["value"] for r in json.load(open(path))["results"]}
    assert values == {'{"k": 20}': 0.6, '{"k": 200}': 0.7}
    with pytest.raises(ValueError, match="fraction"):
        EvalResult(value=41.0, **record)
    with pytest.raises(ValueError, match="protocol"):
        EvalResult(value=0.4, **(record | {"protocol": "probe"}))


def test_eval_cli_knn_and_linear_on_demo_data(tiny_beit_dir, tmp_path, capsys):
    output = tmp_path / "results.json"
    common = [
        "--model",
        tiny_beit_dir,
        "--dataset",
        "demo",
        "--max_train_samples",
        "120",
        "--max_eval_samples",
        "40",
        "--cache_dir",
        str(tmp_path / "cache"),
        "--output_file",
        str(output),
    ]
    assert cli_main(["eval", "knn", *common, "--pooling", "cls", "mean", "--k", "10"]) == 0
    table = capsys.readouterr().out
    assert "top1 (%)" in table and "knn" in table
    assert cli_main(["eval", "linear", *common, "--layers", "all", "--epochs", "5", "--learning_rates", "0.01"]) == 0

    records = json.load(open(output))["results"]
    knn = [r for r in records if r["protocol"] == "knn"]
    assert {(r["settings"]["pooling"], r["metric"]) for r in knn} == {
        (pooling, metric) for pooling in ("cls", "mean") for metric in ("top1_accuracy", "top5_accuracy")
    }
    linear = [r for r in records if r["protocol"] == "linear" and r["metric"] == "top1_accuracy"]
    assert sorted(r["settings"]["layer"] for r in linear) == [1, 2]  # every block, default pooling (mean)
    for record in records:
        assert 0 <= record["value"] <= 1 and record["dataset"] == "demo" and record["split"] == "test"
        assert record["command"].startswith(f"maskvision eval {record['protocol']} --model")
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2 * 3  # train + test x (cls@2, mean@2, mean@1)


def _random_label_parquet(path, num_images=80, num_classes=4) -> str:
    """Random images with random labels: nothing to learn, so only a leak scores above chance."""
    dataset = _image_dataset(num_images, num_classes)
    rng = np.random.default_rng(1)
    dataset = dataset.cast_column("label", datasets.Value("int64")).map(
        lambda row, index: {"label": int(rng.integers(num_classes))}, with_indices=True
    )
    dataset.to_parquet(str(path))
    return str(path)


def test_one_parquet_without_eval_dataset_holds_out_disjoint_rows(tiny_beit_dir, tmp_path):
    from maskvision.training.labelled_data import LabelledDataArguments

    parquet = _random_label_parquet(tmp_path / "labelled.parquet")
    data = LabelledDataArguments(dataset=parquet).load(seed=0)
    train = {image.tobytes() for image in data.train["image"]}
    evaluation = {image.tobytes() for image in data.evaluation["image"]}
    assert not train & evaluation and len(train) + len(evaluation) == 80 and len(evaluation) == 12  # 15%
    assert data.train_split == "train minus held-out 15% (seed 0)"
    assert data.eval_split == "held-out 15% of train (seed 0)"
    same = LabelledDataArguments(dataset=parquet, eval_dataset=f"{tmp_path}/./labelled.parquet", eval_split="train")
    assert same.shares_rows()  # the same file named twice is caught too
    assert not LabelledDataArguments(dataset="demo").shares_rows()  # demo's train and test splits are distinct

    output = tmp_path / "results.json"
    assert (
        cli_main(
            [
                "eval",
                "knn",
                "--model",
                tiny_beit_dir,
                "--dataset",
                parquet,
                "--k",
                "1",
                "--no_cache",
                "--output_file",
                str(output),
            ]
        )
        == 0
    )
    records = json.load(open(output))["results"]
    top1 = next(r for r in records if r["metric"] == "top1_accuracy")
    assert top1["value"] < 0.6  # chance 25%; its own row as nearest neighbour would score 100%
    assert top1["split"] == "held-out 15% of train (seed 0)" and top1["train_split"].startswith("train minus")
    assert (top1["settings"]["train_samples"], top1["settings"]["eval_samples"]) == (68, 12)
    with pytest.raises(ValueError, match="pass --eval_dataset"):
        LabelledDataArguments(dataset=parquet, holdout_fraction=0.0)


def test_eval_cli_errors(tiny_beit_dir, tmp_path):
    assert cli_main(["eval", "probe", "--model", tiny_beit_dir]) == 2
    with pytest.raises(ValueError, match="Unknown pooling"):
        cli_main(["eval", "knn", "--model", tiny_beit_dir, "--dataset", "demo", "--pooling", "gem"])
    with pytest.raises(ValueError, match="--layers"):
        cli_main(["eval", "knn", "--model", tiny_beit_dir, "--dataset", "demo", "--layers", "first"])


@pytest.mark.slow
def test_vit_tiny_224_blockwise_features_slow():
    config = vit_backbone_config("tiny", image_size=224, patch_size=16, use_mean_pooling=True)  # 192 wide, 12 blocks
    processor = build_image_processor(224, [0.5] * 3, [0.5] * 3)
    encoder = load_encoder(BeitModel(config), image_processor=processor, device="cpu")
    layers = parse_layers(["all"], encoder.num_layers)
    features = encoder.features(torch.randn(2, 3, 224, 224), encoder.check_request(["cls", "mean"], layers))
    assert len(features) == 2 * 12
    assert all(value.shape == (2, 192) and torch.isfinite(value).all() for value in features.values())
