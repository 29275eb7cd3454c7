"""MoBY: config, queues, loss, momentum target, checkpoints, export, real sizes, recipe, command and demo stage.

The DDP behaviour (keys gathered from every rank, identical queues and targets) is in tests/distributed/."""

import math
import os

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import tiny_moby_config, tiny_swin_config
from transformers import AutoModel, AutoModelForImageClassification, BeitConfig, SwinModel, ViTConfig

from maskvision import MobyConfig, MobyForPreTraining
from maskvision.cli import main as cli_main
from maskvision.cli.demo import DemoContext
from maskvision.configuration.configuration_moby import moby_vit_backbone_config
from maskvision.data import load_image_dataset
from maskvision.training.inputs.collators import TwoViewCollator
from maskvision.training.inputs.transforms import ColorAugmentation
from maskvision.training.loop.callbacks import MomentumTeacherCallback
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.recipes.moby import RECIPE, MobyModelArguments, MobyTrainingArguments, demo_stage
from maskvision.training.runs.pretrain import PretrainingArguments


def views(batch=8, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, 3, size, size, generator=generator) for _ in range(2))


# ------------------------------------------------------------------------------------------------------ config
def test_default_config_is_the_paper_swin_t():
    config = MobyConfig()
    backbone = config.backbone_config
    assert (backbone.model_type, backbone.embed_dim, tuple(backbone.depths), tuple(backbone.num_heads)) == (
        "swin",
        96,
        (2, 2, 6, 2),
        (3, 6, 12, 24),
    )
    assert (backbone.image_size, backbone.patch_size, backbone.window_size, backbone.drop_path_rate) == (224, 4, 7, 0.2)
    assert (config.projector_hidden_size, config.projection_dim, config.predictor_hidden_size) == (4096, 256, 4096)
    assert (config.queue_size, config.temperature, config.momentum, config.final_momentum) == (4096, 0.2, 0.99, 1.0)
    assert (config.target_drop_path_rate, config.head_norm, config.encoder_hidden_size) == (0.0, "batch", 768)


@pytest.mark.parametrize("backbone", ["swin", "vit"])
def test_config_round_trips_through_json(tmp_path, backbone):
    config = (
        tiny_moby_config()
        if backbone == "swin"
        else tiny_moby_config(
            backbone_config=moby_vit_backbone_config("tiny", image_size=32, patch_size=8, num_hidden_layers=2)
        )
    )
    config.save_pretrained(tmp_path)
    loaded = MobyConfig.from_pretrained(tmp_path)
    assert type(loaded.backbone_config) is type(config.backbone_config)
    assert loaded.backbone_config.to_dict() == config.backbone_config.to_dict()
    assert loaded.queue_size == 64 and loaded.image_mean == config.image_mean


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"head_norm": "group"}, "head_norm"),
        ({"temperature": 0.0}, "temperature"),
        ({"momentum": 0.9, "final_momentum": 0.5}, "momentum"),
        ({"queue_size": 0}, "queue_size"),
        ({"projection_dim": 0}, "projection_dim"),
        ({"predictor_num_layers": 0}, "predictor_num_layers"),
        ({"target_drop_path_rate": 1.0}, "target_drop_path_rate"),
        ({"image_mean": [0.5, 0.5]}, "image_mean"),
        ({"image_std": [0.5, 0.0, 0.5]}, "image_std"),
        ({"backbone_config": ViTConfig()}, "backbone_config"),
        ({"backbone_config": BeitConfig(use_absolute_position_embeddings=False)}, "use_absolute_position_embeddings"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_moby_config(**overrides)


# ------------------------------------------------------------------------------------------------------ queues
def test_queue_pointer_wraps_around():
    model = MobyForPreTraining(tiny_moby_config(queue_size=10))
    keys = F.normalize(torch.randn(2, 30, 32), dim=-1)
    model.enqueue(keys[0, :4], keys[1, :4])
    model.enqueue(keys[0, 4:8], keys[1, 4:8])
    assert int(model.queue_ptr) == 8
    before = model.queue_1[2:8].clone()
    model.enqueue(keys[0, 8:12], keys[1, 8:12])  # positions 8, 9, 0, 1
    assert int(model.queue_ptr) == 2
    torch.testing.assert_close(model.queue_1[[8, 9, 0, 1]], keys[0, 8:12])
    torch.testing.assert_close(model.queue_2[[8, 9, 0, 1]], keys[1, 8:12])
    torch.testing.assert_close(model.queue_1[2:8], before)  # untouched
    # More keys than the queue holds (13 > 10) from pointer 2: the newest 10 stay, as if written one by one.
    model.enqueue(keys[0, 12:25], keys[1, 12:25])
    assert int(model.queue_ptr) == (2 + 13) % 10
    expected = torch.empty(10, 32)
    for offset, key in enumerate(keys[0, 12:25]):
        expected[(2 + offset) % 10] = key
    torch.testing.assert_close(model.queue_1, expected)
    with pytest.raises(ValueError, match="Keys of both views"):
        model.enqueue(keys[0, :3], keys[1, :4])


def test_keys_enter_the_queues_once_per_optimizer_step_with_all_micro_batches():
    model = MobyForPreTraining(tiny_moby_config()).train()
    initial = model.queue_1.clone()
    first, second = model(*views(seed=1)), model(*views(seed=2))  # two micro-batches of one accumulation cycle
    torch.testing.assert_close(model.queue_1, initial)  # nothing enqueued inside forward
    model.update_teacher(0.99)
    assert int(model.queue_ptr) == 16
    torch.testing.assert_close(model.queue_1[:16], torch.cat([first.target_keys[0], second.target_keys[0]]))
    torch.testing.assert_close(model.queue_2[:16], torch.cat([first.target_keys[1], second.target_keys[1]]))
    torch.testing.assert_close(model.queue_1[16:], initial[16:])
    torch.testing.assert_close(model.queue_1.norm(dim=1), torch.ones(64))
    model.eval()(*views(seed=3))  # evaluation forwards never reach the queues
    model.update_teacher(0.99)
    assert int(model.queue_ptr) == 16


# -------------------------------------------------------------------------------------------------------- loss
def test_loss_is_symmetric_in_the_two_views():
    model = MobyForPreTraining(tiny_moby_config()).train()
    model.enqueue(*F.normalize(torch.randn(2, 64, 32), dim=-1))  # distinct queues for the two views
    first, second = views()
    loss = model(first, second).loss
    # Swapping the views swaps the roles of the two queues; with both swapped the loss is unchanged.
    model.queue_1, model.queue_2 = model.queue_2.clone(), model.queue_1.clone()
    torch.testing.assert_close(model(second, first).loss, loss)


def test_loss_pairs_each_prediction_with_the_other_views_key_and_queue():
    model = MobyForPreTraining(tiny_moby_config()).train()
    model.enqueue(*F.normalize(torch.randn(2, 64, 32), dim=-1))
    output = model(*views())
    predictions, keys = F.normalize(output.predictions.detach(), dim=-1), output.target_keys

    def info_nce(query, key, queue):  # written out: logits [q·k+, q·queue] / τ, the positive is class 0
        logits = torch.cat([(query * key).sum(-1, keepdim=True), query @ queue.T], dim=1) / 0.2
        return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long))

    expected = (info_nce(predictions[0], keys[1], model.queue_2) + info_nce(predictions[1], keys[0], model.queue_1)) / 2
    torch.testing.assert_close(output.loss, expected)
    assert 0 <= output.contrastive_accuracy <= 1 and -1 <= output.positive_similarity <= 1


def test_initial_loss_is_about_log_of_queue_size_plus_one():
    config = tiny_moby_config(projection_dim=256, projector_hidden_size=512, predictor_hidden_size=512, queue_size=4096)
    model = MobyForPreTraining(config).train()
    loss = model(*views(batch=16)).loss.item()
    assert abs(loss - math.log(4096 + 1)) < 0.3


# ------------------------------------------------------------------------------------------------------ target
def test_target_starts_equal_frozen_without_drop_path_and_in_the_models_mode():
    model = MobyForPreTraining(tiny_moby_config(backbone_config=tiny_swin_config(drop_path_rate=0.2)))
    for online, target in model.momentum_pairs():
        for (name, p), q in zip(online.named_parameters(), target.parameters()):
            assert torch.equal(p, q) and not q.requires_grad, name
    assert model.encoder.config.drop_path_rate == 0.2 and model.target_encoder.config.drop_path_rate == 0.0
    assert not any("drop_path" in type(m).__name__.lower() for m in model.target_encoder.modules())
    assert model.training and model.target_projector.training and model.target_encoder.training
    assert not model.eval().target_projector.training and model.train().target_projector.training


def test_update_teacher_is_an_ema_of_the_online_branch():
    model = MobyForPreTraining(tiny_moby_config()).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(*views()).loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    targets = [t.clone() for t in model.target_projector.parameters()]
    model.update_teacher(0.9)
    for before, online, after in zip(targets, model.projector.parameters(), model.target_projector.parameters()):
        torch.testing.assert_close(after, 0.9 * before + 0.1 * online)
    assert not torch.equal(next(model.target_projector.parameters()), next(model.projector.parameters()))


def test_weight_decay_follows_the_official_optimizer(tmp_path):
    # Transformer-SSL's build_optimizer: only 1-D parameters and biases skip decay (the MoBY wrapper lists no names)
    model = MobyForPreTraining(tiny_moby_config())
    assert model.no_weight_decay() == set()
    decayed = set(
        MaskVisionTrainer(model=model, args=PretrainingArguments(str(tmp_path))).get_decay_parameter_names(model)
    )
    assert any(name.endswith("relative_position_bias_table") for name in decayed)
    assert {"projector.layers.0.weight", "encoder.embeddings.patch_embeddings.projection.weight"} <= decayed
    assert not {"encoder.embeddings.norm.weight", "projector.layers.1.weight"} & decayed  # LayerNorm, BatchNorm


# ------------------------------------------------------------------------------------------- checkpoints, export
def _trained_model(config=None, steps=2):
    model = MobyForPreTraining(config or tiny_moby_config()).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for step in range(steps):
        model(*views(seed=step)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.update_teacher(0.9)
    return model


def test_save_pretrained_restores_queues_pointer_and_target(tmp_path):
    model = _trained_model()
    model.save_pretrained(tmp_path)
    loaded, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(loaded, MobyForPreTraining)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert int(loaded.queue_ptr) == 16
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, msg=name)
    for online, target in loaded.momentum_pairs():  # the target was loaded, not re-copied from the online branch
        assert not all(torch.equal(p, q) for p, q in zip(online.parameters(), target.parameters()))
        assert not any(q.requires_grad for q in target.parameters())
    torch.testing.assert_close(loaded.eval()(*views()).loss, model.eval()(*views()).loss)


def _trainer(model, output_dir, **overrides):
    arguments = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        max_steps=4,
        save_steps=2,
        logging_steps=1,
        use_cpu=True,
        warmup_steps=0,
        dataloader_num_workers=0,
        dataloader_drop_last=True,
        save_total_limit=None,
        seed=0,
        data_seed=0,
    )
    dataset = [{"pixel_values": a, "pixel_values_2": b} for a, b in zip(*views(batch=48, seed=7))]
    return MaskVisionTrainer(
        model=model,
        args=PretrainingArguments(**{**arguments, **overrides}),
        train_dataset=dataset,
        callbacks=[MomentumTeacherCallback(model.config.momentum)],
    )


def test_trainer_resume_restores_queues_and_target(tmp_path):
    torch.manual_seed(0)
    straight = MobyForPreTraining(tiny_moby_config())
    _trainer(straight, tmp_path).train()
    assert int(straight.queue_ptr) == (4 * 8) % 64
    torch.manual_seed(1)  # a different initialisation: everything must come from the checkpoint
    resumed = MobyForPreTraining(tiny_moby_config())
    _trainer(resumed, tmp_path).train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    for name in ("queue_1", "queue_2", "queue_ptr"):
        torch.testing.assert_close(getattr(resumed, name), getattr(straight, name), msg=name)
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(q, p, msg=name)


@pytest.mark.parametrize("backbone", ["swin", "vit"])
def test_export_gives_a_stock_classifier_with_every_encoder_weight(tmp_path, backbone):
    config = (
        tiny_moby_config()
        if backbone == "swin"
        else tiny_moby_config(
            backbone_config=moby_vit_backbone_config(
                "tiny",
                image_size=32,
                patch_size=8,
                num_hidden_layers=2,
                hidden_size=64,
                num_attention_heads=2,
                intermediate_size=128,
            )
        )
    )
    model = _trained_model(config, steps=1).eval()
    model.export_encoder(tmp_path)
    classifier, info = AutoModelForImageClassification.from_pretrained(
        tmp_path, num_labels=10, output_loading_info=True
    )
    expected = "SwinForImageClassification" if backbone == "swin" else "BeitForImageClassification"
    assert type(classifier).__name__ == expected
    assert all(key.startswith("classifier.") for key in info["missing_keys"]) and not info["unexpected_keys"]
    image = views(batch=2)[0]
    prefix = classifier.base_model_prefix
    features = getattr(classifier, prefix)(pixel_values=image).pooler_output
    torch.testing.assert_close(features, model.encoder(pixel_values=image).pooler_output)
    # The online encoder is exported, not the target.
    exported = AutoModel.from_pretrained(tmp_path)
    assert isinstance(exported, type(model.encoder))
    assert torch.equal(next(exported.parameters()), next(model.encoder.parameters()))


# ----------------------------------------------------------------------------------------------- real sizes
def _forward_backward_real_size(config):
    model = MobyForPreTraining(config).train()
    first, second = views(batch=2, size=224)
    output = model(first, second)
    output.loss.backward()
    assert output.loss.isfinite() and output.predictions.shape == output.target_keys.shape == (2, 2, 256)
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    return sum(p.numel() for p in model.encoder.parameters())


def test_slow_swin_t_224_forward_backward():
    torch.manual_seed(0)
    parameters = _forward_backward_real_size(MobyConfig())
    assert 27e6 < parameters < 29e6  # Swin-T: 28M


def test_slow_deit_s_224_forward_backward():
    torch.manual_seed(0)
    parameters = _forward_backward_real_size(MobyConfig(backbone_config=moby_vit_backbone_config("small")))
    assert 21e6 < parameters < 23e6  # DeiT-S: 22M


# ------------------------------------------------------------------------------------------ recipe, CLI, demo
def test_recipe_defaults_are_the_papers(tmp_path):
    model_args = MobyModelArguments()
    assert model_args.config().to_dict() == MobyConfig().to_dict()  # Swin-T, the paper's heads, queues, momentum
    deit = MobyModelArguments(backbone="vit").config().backbone_config
    assert (deit.hidden_size, deit.num_hidden_layers, deit.patch_size, deit.drop_path_rate) == (384, 12, 16, 0.2)
    args = MobyTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=64, gradient_accumulation_steps=2
    )
    assert args.resolve_learning_rate() == pytest.approx(1e-3 * 128 / 512)
    assert (args.weight_decay, args.max_grad_norm, args.num_train_epochs, args.lr_scheduler_type) == (
        0.05,
        2.5,
        300,
        "cosine",
    )
    assert args.dataloader_drop_last and args.ddp_broadcast_buffers is False
    callbacks = RECIPE.build_callbacks(MobyForPreTraining(tiny_moby_config()), model_args)
    assert [type(c) for c in callbacks] == [MomentumTeacherCallback] and callbacks[0].base_momentum == 0.99
    with pytest.raises(ValueError, match="window_size"):
        MobyModelArguments(backbone="vit", window_size=7).config()
    with pytest.raises(ValueError, match="backbone"):
        MobyModelArguments(backbone="resnet").config()


def test_loss_falls_on_the_demo_data(tmp_path):
    # The real collator on the demo images, with milder views than the paper's (crops >= 50%, no colour changes)
    # so that a few dozen steps show learning: the full recipe needs epochs (see the demo stage).
    model = MobyForPreTraining(
        tiny_moby_config(queue_size=256, projection_dim=64, projector_hidden_size=256, predictor_hidden_size=256)
    )
    plain = ColorAugmentation(jitter_prob=0.0, grayscale_prob=0.0)
    collator = TwoViewCollator(
        image_size=32,
        image_mean=model.config.image_mean,
        image_std=model.config.image_std,
        min_crop_scale=0.5,
        first_color=plain,
        second_color=plain,
    )
    args = MobyTrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        warmup_steps=0.1,
        max_steps=30,
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        use_cpu=True,
    )
    trainer = MaskVisionTrainer(
        model=model,
        args=args,
        train_dataset=load_image_dataset("demo"),
        data_collator=collator,
        callbacks=[MomentumTeacherCallback(0.99)],
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    loss = torch.tensor([entry["loss"] for entry in logs])
    accuracy = torch.tensor([entry["contrastive_accuracy"] for entry in logs])
    assert loss[0] == pytest.approx(math.log(257), abs=0.4)
    # After 8 steps the queue holds only real keys: from there on the loss must still fall.
    assert loss[-5:].mean() < loss[8:13].mean() - 0.2 and loss[-5:].mean() < loss[0] - 1.0
    assert accuracy[-5:].mean() > accuracy[:3].mean() + 0.05


def test_pretrain_command_from_a_yaml_file_writes_checkpoint_and_stock_encoder(tmp_path):
    options = {
        "dataset": "demo", "max_train_samples": 64, "image_size": 32, "patch_size": 4, "window_size": 4,
        "embed_dim": 32, "depths": [2, 2], "num_heads": [2, 4], "projector_hidden_size": 64,
        "predictor_hidden_size": 64,
        "projection_dim": 32, "queue_size": 40, "per_device_train_batch_size": 8, "learning_rate": 1e-3,
        "max_steps": 2, "save_strategy": "no", "dataloader_num_workers": 0, "disable_tqdm": True, "use_cpu": True,
    }  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(options))
    output_dir = tmp_path / "out"
    assert (
        cli_main(["pretrain", "moby", str(tmp_path / "run.yaml"), "--output_dir", str(output_dir), "--max_steps", "3"])
        == 0
    )
    model = AutoModel.from_pretrained(output_dir)
    assert isinstance(model, MobyForPreTraining) and int(model.queue_ptr) == (3 * 8) % 40
    assert tuple(model.config.backbone_config.depths) == (2, 2) and model.config.queue_size == 40
    classifier, info = AutoModelForImageClassification.from_pretrained(
        output_dir / "encoder", num_labels=3, output_loading_info=True
    )
    assert type(classifier).__name__ == "SwinForImageClassification"
    assert all(key.startswith("classifier.") for key in info["missing_keys"])


def test_demo_stage_quick(tmp_path):
    results = demo_stage(DemoContext(output_dir=str(tmp_path), quick=True))
    assert math.isfinite(results["loss"]) and 0 <= results["contrastive_accuracy"] <= 1
    encoder = SwinModel.from_pretrained(results["encoder"])
    assert encoder.config.image_size == 32 and os.path.isfile(
        os.path.join(results["encoder"], "preprocessor_config.json")
    )
