"""Fine-tuning: `maskvision finetune`, layer-decay groups, Mixup / CutMix, the loss, resolution change, checkpoints."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoModelForImageClassification,
    BeitConfig,
    BeitForImageClassification,
    BeitModel,
    HfArgumentParser,
    SwinConfig,
    SwinModel,
    ViTConfig,
    ViTForImageClassification,
    ViTModel,
    pipeline,
)

from maskvision.cli import main as cli_main
from maskvision.evaluation.features import build_image_processor, class_names
from maskvision.modeling.resolution import resize_position_embeddings, resize_relative_position_bias_table
from maskvision.training.inputs.mixup import MixupCutmix, smooth_one_hot
from maskvision.training.runs.finetune import FinetuneArguments, FinetuneTrainer, load_classifier
from maskvision.training.runs.pretrain import PretrainingArguments

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
)
TINY_SWIN = dict(embed_dim=16, depths=[1, 1], num_heads=[2, 2], image_size=32, patch_size=4, window_size=4)
LABELS = {0: "cat", 1: "dog", 2: "bird"}


def _save(model, path):
    model.save_pretrained(path)
    build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_beit_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = BeitConfig(
        **TINY, use_mean_pooling=True, use_relative_position_bias=True, use_absolute_position_embeddings=True
    )
    return _save(BeitModel(config), tmp_path_factory.mktemp("beit"))


def _arguments(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        learning_rate=1e-3,
        per_device_train_batch_size=4,
        use_cpu=True,
        dataloader_pin_memory=False,
        save_strategy="no",
        eval_strategy="no",
        load_best_model_at_end=False,
    )
    return FinetuneArguments(**(values | overrides))


# ------------------------------------------------------------------------------------------------------ CLI
def test_finetune_cli_result_loads_in_pipeline(tiny_beit_dir, tmp_path):
    output = tmp_path / "classifier"
    argv = [
        "finetune", "--model", tiny_beit_dir, "--dataset", "demo", "--output_dir", str(output),
        "--max_train_samples", "48", "--max_eval_samples", "24", "--num_train_epochs", "2",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "24", "--learning_rate", "1e-3",
        "--use_cpu", "--dataloader_pin_memory", "false", "--logging_steps", "1",
    ]  # fmt: skip
    assert cli_main(argv) == 0

    classify = pipeline("image-classification", model=str(output))
    names = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
    predictions = classify(Image.fromarray(np.full((40, 28, 3), 127, dtype=np.uint8)), top_k=3)
    assert len(predictions) == 3 and {p["label"] for p in predictions} <= names
    assert classify.model.config.drop_path_rate == 0.1

    saved = json.load(open(output / "eval_results.json"))
    assert list(saved) == ["results"]  # maskvision's records only, not overwritten by Trainer's metrics dict
    assert "eval_top1_accuracy" in json.load(open(output / "all_results.json"))  # Trainer's, under their own name
    results = saved["results"]
    assert {r["metric"] for r in results} == {"top1_accuracy", "top5_accuracy"}
    top1 = next(r for r in results if r["metric"] == "top1_accuracy")
    assert top1["protocol"] == "finetune" and top1["split"] == "test" and top1["settings"]["layer_decay"] == 0.65
    assert top1["command"].startswith("maskvision finetune --model")
    state = json.load(open(output / "checkpoint-6" / "trainer_state.json"))
    assert state["best_model_checkpoint"] is not None
    assert len([entry for entry in state["log_history"] if "eval_top1_accuracy" in entry]) == 2  # every epoch
    assert top1["value"] == pytest.approx(state["best_metric"])  # the kept model is the best one


def _colour_parquet(path, num_images, seed):
    """Reddish images are class 'red', bluish ones 'blue': separable by a classifier that learns anything."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(num_images):
        pixels = rng.integers(0, 120, (32, 32, 3), dtype=np.uint8)
        pixels[..., 0 if index % 2 == 0 else 2] += 120
        images.append(Image.fromarray(pixels))
        labels.append(index % 2)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["red", "blue"])})
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).to_parquet(str(path))
    return str(path)


def test_finetuning_learns_a_separable_task(tiny_beit_dir, tmp_path):
    from maskvision.training.labelled_data import LabelledDataArguments
    from maskvision.training.runs.finetune import FinetuneModelArguments, run_finetuning

    data = LabelledDataArguments(
        dataset=_colour_parquet(tmp_path / "train.parquet", 32, seed=0),
        eval_dataset=_colour_parquet(tmp_path / "test.parquet", 16, seed=1),
    )
    model = FinetuneModelArguments(
        model=tiny_beit_dir, mixup_alpha=0.0, cutmix_alpha=0.0, layer_decay=1.0, rand_augment="none", random_erasing=0.0
    )  # RandAugment's Invert swaps red and blue
    arguments = _arguments(
        tmp_path / "run",
        num_train_epochs=6,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0.1,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        logging_steps=4,
    )
    trainer, metrics = run_finetuning(model, data, arguments)
    assert metrics["eval_top1_accuracy"] == 1.0  # chance is 0.5
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses[-1] < losses[0]
    assert trainer.model.config.id2label == {0: "red", 1: "blue"}


def test_best_checkpoint_weights_are_restored(tiny_beit_dir, tmp_path):
    model, _ = load_classifier(tiny_beit_dir, LABELS)
    trainer = FinetuneTrainer(model=model, args=_arguments(tmp_path))
    best = tmp_path / "checkpoint-best"
    model.save_pretrained(best)  # Beit weights are written under their original names (beit.encoder.layer.N.)
    saved = {name: value.clone() for name, value in model.state_dict().items()}
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    trainer.state.best_model_checkpoint = str(best)
    trainer._load_best_model()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[name], msg=name)


# ------------------------------------------------------------------------------------------------ optimizer
def test_layer_decay_groups_and_weight_decay_exclusions(tiny_beit_dir, tmp_path):
    model, _ = load_classifier(tiny_beit_dir, LABELS)
    trainer = FinetuneTrainer(model=model, args=_arguments(tmp_path, weight_decay=0.05), layer_decay=0.5)
    optimizer = trainer.create_optimizer()
    group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    named = dict(model.named_parameters())

    def lr(name):
        return group_of[id(named[name])]["lr"]

    def wd(name):
        return group_of[id(named[name])]["weight_decay"]

    assert lr("classifier.weight") == pytest.approx(1e-3)
    assert lr("beit.layers.1.mlp.fc1.weight") == pytest.approx(1e-3 * 0.5)
    assert lr("beit.layers.0.mlp.fc1.weight") == pytest.approx(1e-3 * 0.5**2)
    assert lr("beit.embeddings.patch_embeddings.projection.weight") == pytest.approx(1e-3 * 0.5**3)
    assert len({round(group["lr"], 12) for group in optimizer.param_groups}) == 4  # embeddings, 2 blocks, head
    assert wd("beit.layers.0.mlp.fc1.weight") == 0.05 and wd("classifier.weight") == 0.05
    # BEiT fine-tuning's default: the relative position bias tables decay, [CLS] and position embeddings not
    assert wd("beit.layers.0.relative_position_bias.relative_position_bias_table") == 0.05
    for name in (
        "beit.embeddings.cls_token",
        "beit.embeddings.position_embeddings",
        "beit.layers.0.lambda_1",
        "classifier.bias",
        "beit.pooler.layernorm.weight",
    ):
        assert wd(name) == 0.0, name


def test_training_arguments_parse_from_flags():
    # PretrainingArguments' `report_to` type once broke HfArgumentParser for every command built on it.
    (pretraining,) = HfArgumentParser(PretrainingArguments).parse_args_into_dataclasses(["--output_dir", "x"])
    assert pretraining.output_dir == "x" and not pretraining.report_to  # "none": no trackers
    (finetuning,) = HfArgumentParser(FinetuneArguments).parse_args_into_dataclasses(["--output_dir", "x"])
    assert finetuning.label_smoothing_factor == 0.1 and finetuning.metric_for_best_model == "top1_accuracy"


# --------------------------------------------------------------------------------------------- mixup and loss
def test_mixup_and_cutmix_targets_sum_to_one_and_match_the_images():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16, generator=generator)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])

    mixup = MixupCutmix(num_classes=6, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    mixed, targets = mixup(images, labels, generator=generator)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(6))
    lam = targets[0, 0].item()  # image 0 is mixed with image 5
    assert 0 < lam < 1 and targets[0, 5].item() == pytest.approx(1 - lam)
    torch.testing.assert_close(mixed, lam * images + (1 - lam) * images.flip(0))

    cutmix = MixupCutmix(num_classes=6, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1)
    for _ in range(5):
        mixed, targets = cutmix(images, labels, generator=generator)
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(6))
        pasted = (mixed[0] != images[0]).any(dim=0).float().mean().item()  # share of pixels from the partner
        kept_weight = (targets[0, 0].item() - 0.1 / 6) / 0.9  # undo the smoothing
        assert kept_weight == pytest.approx(1 - pasted, abs=1e-5)

    never = MixupCutmix(num_classes=6, prob=0.0, label_smoothing=0.1)
    unchanged, targets = never(images, labels, generator=generator)
    assert unchanged is images
    torch.testing.assert_close(targets, smooth_one_hot(labels, 6, 0.1))
    assert targets.max().item() == pytest.approx(0.9 + 0.1 / 6)
    with pytest.raises(ValueError, match="mixup_alpha > 0 or cutmix_alpha > 0"):
        MixupCutmix(num_classes=6, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="switch_prob"):
        MixupCutmix(num_classes=6, switch_prob=1.5)


def test_classification_loss_hard_soft_and_accumulation(tmp_path):
    model = BeitForImageClassification(BeitConfig(**TINY, num_labels=3))
    trainer = FinetuneTrainer(model=model, args=_arguments(tmp_path, label_smoothing_factor=0.1))
    logits = torch.randn(4, 3)
    labels = torch.tensor([0, 2, 1, 1])
    outputs = {"logits": logits}
    model.train()
    smoothed = trainer.classification_loss(outputs, labels)
    torch.testing.assert_close(smoothed, torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1))
    soft = trainer.classification_loss(outputs, smooth_one_hot(labels, 3, 0.1))
    torch.testing.assert_close(soft, smoothed)  # soft targets carry the same smoothing
    # Summed, then divided by the examples of the whole accumulated batch (here 2 micro-batches of 4).
    torch.testing.assert_close(trainer.classification_loss(outputs, labels, num_items_in_batch=8), smoothed / 2)
    model.eval()  # evaluation reports the plain cross-entropy
    plain = torch.nn.functional.cross_entropy(logits, labels)
    torch.testing.assert_close(trainer.classification_loss(outputs, labels), plain)


# ---------------------------------------------------------------------------------------------- resolution
def test_position_tables_resample_and_keep_prefix_tokens():
    embeddings = torch.randn(1, 1 + 16, 8)
    torch.testing.assert_close(resize_position_embeddings(embeddings, 4, 4), embeddings)
    constant = torch.cat([torch.randn(1, 1, 8), torch.ones(1, 16, 8) * 3], dim=1)
    resized = resize_position_embeddings(constant, 4, 6)
    assert resized.shape == (1, 1 + 36, 8)
    torch.testing.assert_close(resized[:, 0], constant[:, 0])  # [CLS] kept
    torch.testing.assert_close(resized[:, 1:], torch.full((1, 36, 8), 3.0))
    table = torch.randn(7 * 7 + 3, 2)
    torch.testing.assert_close(resize_relative_position_bias_table(table, 4, 4), table)
    bigger = resize_relative_position_bias_table(table, 4, 6)
    assert bigger.shape == (11 * 11 + 3, 2)
    torch.testing.assert_close(bigger[-3:], table[-3:])
    with pytest.raises(ValueError, match="rows"):
        resize_relative_position_bias_table(torch.randn(10, 2), 4, 6)


def test_vit_at_a_higher_resolution_matches_stock_interpolation(tmp_path):
    torch.manual_seed(0)
    vit = ViTModel(ViTConfig(**TINY))
    path = _save(vit, tmp_path / "vit")
    model, processor = load_classifier(path, LABELS, image_size=48)
    assert model.config.image_size == 48 and dict(processor.size)["height"] == 48
    pixels = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        native = model.vit(pixel_values=pixels).last_hidden_state  # no interpolation: the tables are 48 px now
        interpolated = vit(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state
    torch.testing.assert_close(native, interpolated, atol=1e-5, rtol=1e-4)


def test_beit_higher_resolution_finetune_checkpoint_reloads(tiny_beit_dir, tmp_path):
    model, processor = load_classifier(tiny_beit_dir, LABELS, image_size=48)
    assert model.beit.embeddings.position_embeddings.shape == (1, 1 + 36, 32)
    table = model.beit.layers[0].relative_position_bias.relative_position_bias_table
    assert table.shape == (11 * 11 + 3, 2)
    model.save_pretrained(tmp_path / "ft48")
    processor.save_pretrained(tmp_path / "ft48")
    reloaded = AutoModelForImageClassification.from_pretrained(tmp_path / "ft48")
    pixels = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels).logits, model.eval()(pixels).logits)
    assert len(pipeline("image-classification", model=str(tmp_path / "ft48"))(Image.new("RGB", (64, 64)))) == 3


# ------------------------------------------------------------------------------------------ loading and data
def test_load_classifier_from_stock_checkpoints(tmp_path):
    vit_classifier = ViTForImageClassification(ViTConfig(**TINY, num_labels=5))
    model, _ = load_classifier(_save(vit_classifier, tmp_path / "vit5"), LABELS)  # a head of another size
    assert model.classifier.out_features == 3 and model.config.id2label == LABELS
    torch.testing.assert_close(model.vit.embeddings.cls_token, vit_classifier.vit.embeddings.cls_token)

    swin = SwinModel(SwinConfig(**TINY_SWIN))
    model, _ = load_classifier(_save(swin, tmp_path / "swin"), LABELS, drop_path_rate=0.2)
    assert model.config.drop_path_rate == 0.2 and model.config.label2id == {"cat": 0, "dog": 1, "bird": 2}
    assert model(torch.randn(1, 3, 32, 32)).logits.shape == (1, 3)

    BeitModel(BeitConfig(**TINY)).save_pretrained(tmp_path / "bare")  # no preprocessor_config.json
    with pytest.raises(ValueError, match="image_mean and image_std"):
        load_classifier(str(tmp_path / "bare"), LABELS)
    _, processor = load_classifier(str(tmp_path / "bare"), LABELS, image_mean=[0.4] * 3, image_std=[0.2] * 3)
    assert list(processor.image_mean) == [0.4] * 3 and dict(processor.size)["height"] == 32


def test_classification_transforms_train_crops_and_eval_processor():
    from maskvision.training.runs.finetune import ClassificationTransform, TrainingAugmentation

    processor = build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    rng = np.random.default_rng(0)
    batch = {
        "image": [Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)), Image.new("L", (20, 30))],
        "label": [2, 0],
    }
    train = ClassificationTransform(processor, train=True)(batch)
    assert [tuple(x.shape) for x in train["pixel_values"]] == [(3, 32, 32)] * 2 and train["labels"] == [2, 0]
    assert all(x.dtype == torch.uint8 for x in train["pixel_values"])  # crops: the rest runs on the device
    augmented = TrainingAugmentation(processor, "rand-m9-mstd0.5-inc1", 0.25)(torch.stack(train["pixel_values"]))
    assert augmented.dtype == torch.float32 and augmented.shape == (2, 3, 32, 32)
    evaluation = ClassificationTransform(processor, train=False)(batch)
    expected = processor(images=[image.convert("RGB") for image in batch["image"]], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(torch.stack(evaluation["pixel_values"]), expected)  # what the pipeline does
    with pytest.raises(ValueError, match="min_scale"):
        ClassificationTransform(processor, train=True, min_crop_scale=0.0)


def test_class_names_need_labels_that_agree():
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    image = Image.new("RGB", (8, 8))
    labelled = datasets.Dataset.from_dict({"image": [image], "label": [1]}, features=features)
    assert class_names(labelled, labelled, "fine-tuning") == ["a", "b"]
    unlabelled = datasets.Dataset.from_dict({"image": [image]}, features=datasets.Features({"image": datasets.Image()}))
    with pytest.raises(ValueError, match="fine-tuning protocol needs labels, and the training dataset has no label"):
        class_names(unlabelled, labelled, "fine-tuning")
    other = labelled.cast_column("label", datasets.ClassLabel(names=["a", "c"]))
    with pytest.raises(ValueError, match="name their classes differently"):
        class_names(labelled, other, "fine-tuning")


@pytest.mark.slow
def test_vit_base_224_finetune_step_slow(tmp_path):
    config = BeitConfig(image_size=224, patch_size=16, use_mean_pooling=True, num_labels=10, drop_path_rate=0.1)
    model = BeitForImageClassification(config)  # ViT-Base: 768 wide, 12 blocks, 86M parameters
    trainer = FinetuneTrainer(
        model=model,
        args=_arguments(tmp_path, per_device_train_batch_size=2),
        layer_decay=0.65,
        mixup=MixupCutmix(num_classes=10),
    )
    optimizer = trainer.create_optimizer()
    assert len(optimizer.param_groups) == 2 * 14  # (decay, no decay) x (embeddings, 12 blocks, head)
    model.train()
    loss = trainer.compute_loss(model, {"pixel_values": torch.randn(2, 3, 224, 224), "labels": torch.tensor([3, 7])})
    loss.backward()
    assert torch.isfinite(loss) and model.beit.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0
    optimizer.step()
