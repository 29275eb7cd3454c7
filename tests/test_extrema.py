"""ExtreMA: config, visible-only student, momentum teacher, losses, checkpoints, export, training."""

import pytest
import torch
from conftest import tiny_extrema_config
from transformers import AutoConfig, AutoModel, AutoModelForImageClassification, BeitModel

from maskvision import ExtremaConfig, ExtremaForPreTraining
from maskvision.modeling.momentum import copy_student_to_teacher_
from maskvision.modeling.pos_embed import sincos_2d_position_embedding
from maskvision.training.inputs.masking import RandomMaskGenerator
from maskvision.training.loop.callbacks import MomentumTeacherCallback
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments


def make_batch(config: ExtremaConfig, batch_size: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    size = config.backbone_config.image_size
    grid = size // config.backbone_config.patch_size
    masks = RandomMaskGenerator(grid, config.mask_ratio, config.num_masks).gen(batch_size, generator=generator)
    return {
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
        "teacher_pixel_values": torch.randn(batch_size, 3, size, size, generator=generator),
        "bool_masked_pos": masks,
    }


class BatchDataset(torch.utils.data.Dataset):
    """Fixed random batches split into rows: what a collator would hand the model, without image decoding."""

    def __init__(self, config: ExtremaConfig, length: int = 16):
        self.rows = make_batch(config, batch_size=length)

    def __len__(self):
        return self.rows["pixel_values"].shape[0]

    def __getitem__(self, index):
        return {key: value[index] for key, value in self.rows.items()}


def trainer_args(tmp_path, **overrides) -> PretrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        warmup_steps=0,
        dataloader_num_workers=0,
        seed=0,
        data_seed=0,
    )
    return PretrainingArguments(**{**defaults, **overrides})


def teacher_state(model: ExtremaForPreTraining) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.named_parameters() if name.startswith("teacher_")}


# ------------------------------------------------------------------------------------------------------ config
def test_default_config_is_the_papers_vit_base():
    config = ExtremaConfig()
    backbone = config.backbone_config
    assert (backbone.hidden_size, backbone.num_hidden_layers, backbone.num_attention_heads) == (768, 12, 12)
    assert (backbone.image_size, backbone.patch_size) == (224, 16)
    assert backbone.use_absolute_position_embeddings and not backbone.use_relative_position_bias
    assert backbone.layer_scale_init_value == 0.0 and backbone.drop_path_rate == 0.1
    assert (config.mask_ratio, config.num_masks, config.num_visible_patches) == (0.8, 5, 39)
    assert (config.pooling_depth, config.pooling_layer_scale) == (2, 0.1)
    assert (config.projector_num_layers, config.projector_hidden_size, config.projection_size) == (3, 4096, 256)
    assert (config.predictor_num_layers, config.predictor_hidden_size) == (2, 4096)
    assert (config.loss, config.temperature, config.base_momentum, config.final_momentum) == ("byol", 0.2, 0.996, 1.0)


def test_config_round_trip_and_auto_classes(tmp_path):
    config = tiny_extrema_config(mask_ratio=0.9, num_masks=8, loss="infonce")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, ExtremaConfig) and loaded.model_type == "maskvision_extrema"
    saved, original = loaded.to_dict(), config.to_dict()
    saved.pop("_name_or_path"), original.pop("_name_or_path")
    assert saved == original
    assert isinstance(AutoModel.from_config(loaded), ExtremaForPreTraining)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": 0.0}, "mask_ratio"),
        ({"num_masks": 0}, "num_masks"),
        ({"num_masks": 6}, "num_masks"),  # 6 x 12 visible > 64 patches
        ({"loss": "mse"}, "loss"),
        ({"temperature": 0.0}, "temperature"),
        ({"base_momentum": 1.5}, "base_momentum"),
        ({"pooling_depth": 0}, "pooling_depth"),
        ({"projection_size": 0}, "projection_size"),
        ({"image_std": [0.2, 0.0, 0.2]}, "image_std"),
        ({"backbone": {"use_relative_position_bias": True}}, "use_relative_position_bias"),
        ({"backbone": {"use_absolute_position_embeddings": False}}, "use_absolute_position_embeddings"),
        ({"backbone": {"hidden_size": 30, "num_attention_heads": 2}}, "hidden_size"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_extrema_config(**overrides)


# ------------------------------------------------------------------------------------------------------ student
def test_visible_only_student_equals_stock_beit_with_attention_restricted_to_visible_tokens():
    model = ExtremaForPreTraining(tiny_extrema_config(backbone={"drop_path_rate": 0.0})).eval()
    batch = make_batch(model.config, batch_size=3)
    pixel_values, masks = batch["pixel_values"], batch["bool_masked_pos"]
    visible_count = model.config.num_visible_patches
    with torch.no_grad():
        tokens = model.embed(model.backbone, pixel_values)
        student = model.forward_encoder(model.backbone, model.select_visible(tokens, masks))  # (B·M, V, D)
        student = student.view(3, model.config.num_masks, visible_count, -1)
        for index in range(model.config.num_masks):
            visible = ~masks[:, index]
            attention_mask = torch.cat([torch.zeros(3, 1, dtype=torch.long), visible.long()], dim=1)  # [CLS] off
            stock = model.backbone(pixel_values, attention_mask=attention_mask).last_hidden_state[:, 1:]
            expected = stock[visible].view(3, visible_count, -1)
            torch.testing.assert_close(student[:, index], expected, atol=1e-5, rtol=1e-5)


def test_select_visible_gathers_disjoint_visible_sets_in_raster_order():
    config = tiny_extrema_config()
    masks = make_batch(config, batch_size=2)["bool_masked_pos"]
    # Token n of image b carries the value (b, n), so the gathered tokens name their own positions.
    positions = torch.arange(config.num_patches, dtype=torch.float32)
    tokens = torch.stack([positions, torch.zeros_like(positions)], dim=-1).repeat(2, 1, 1)
    tokens[1, :, 1] = 1
    selected = ExtremaForPreTraining.select_visible(tokens, masks).view(2, config.num_masks, -1, 2)
    for image in range(2):
        assert torch.all(selected[image, ..., 1] == image)
        chosen = selected[image, ..., 0].long()  # (M, V)
        assert torch.all(chosen[:, 1:] > chosen[:, :-1])  # raster order
        assert chosen.unique().numel() == chosen.numel()  # disjoint across masks
        for index in range(config.num_masks):
            assert set(chosen[index].tolist()) == set((~masks[image, index]).nonzero().flatten().tolist())


def test_bad_masks_and_images_raise_clear_errors():
    model = ExtremaForPreTraining(tiny_extrema_config())
    batch = make_batch(model.config, batch_size=2)
    uneven = batch["bool_masked_pos"].clone()
    uneven[0, 0, (~uneven[0, 0]).nonzero()[0]] = True  # one mask hides one patch more
    with pytest.raises(ValueError, match="same, non-zero number"):
        model(pixel_values=batch["pixel_values"], bool_masked_pos=uneven)
    with pytest.raises(ValueError, match="bool_masked_pos must have shape"):
        model(pixel_values=batch["pixel_values"], bool_masked_pos=batch["bool_masked_pos"][..., :10])
    with pytest.raises(ValueError, match="image_size"):
        model(pixel_values=torch.randn(2, 3, 48, 48), bool_masked_pos=batch["bool_masked_pos"])


# ------------------------------------------------------------------------------------------------------ teacher
def test_teacher_starts_equal_frozen_in_eval_mode_with_fixed_sincos_positions():
    model = ExtremaForPreTraining(tiny_extrema_config()).train()
    for student, teacher in model.momentum_pairs():
        assert not teacher.training
        for (name, s), (_, t) in zip(student.named_parameters(), teacher.named_parameters()):
            assert torch.equal(s, t) and not t.requires_grad, name
    assert model.teacher_backbone.config.drop_path_rate == 0.0 and model.backbone.config.drop_path_rate == 0.1
    table = sincos_2d_position_embedding(8, 8, 32)
    torch.testing.assert_close(model.backbone.embeddings.position_embeddings[0, 1:], table)
    assert not model.backbone.embeddings.position_embeddings.requires_grad


def test_teacher_copy_overwrites_uninitialised_memory():
    student, teacher = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
    with torch.no_grad():
        teacher.weight.fill_(float("nan"))
        teacher.bias.fill_(float("inf"))
    copy_student_to_teacher_(teacher, student)
    assert torch.equal(teacher.weight, student.weight) and torch.equal(teacher.bias, student.bias)
    assert not teacher.weight.requires_grad


def test_no_gradient_reaches_the_teacher_and_every_student_parameter_gets_one():
    model = ExtremaForPreTraining(tiny_extrema_config()).train()
    output = model(**make_batch(model.config))
    output.loss.backward()
    for _, teacher in model.momentum_pairs():
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(not name.startswith("teacher_") for name in trainable)
    # No unused parameter: DDP runs with find_unused_parameters=False.
    missing = [name for name, p in trainable.items() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert output.predictions.shape == (4, 4, 16) and output.targets.shape == (4, 16)
    assert 0.0 <= output.loss.item() <= 4.0 and -1.0 <= output.prediction_cosine.item() <= 1.0


def test_teacher_is_updated_once_per_optimizer_step_never_on_micro_steps(tmp_path):
    config = tiny_extrema_config()
    model = ExtremaForPreTraining(config)
    seen = []  # the teacher's first weight at every teacher forward (one per micro-step)
    model.teacher_backbone.layers[0].register_forward_pre_hook(
        lambda module, args: seen.append(module.attention.q_proj.weight.detach().clone())
    )
    students, teachers = [], []
    original_update = model.update_teacher

    def update(momentum):
        students.append({n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("teacher_")})
        teachers.append(teacher_state(model))
        original_update(momentum)

    model.update_teacher = update
    callback = MomentumTeacherCallback(config.base_momentum, config.final_momentum)
    args = trainer_args(tmp_path, gradient_accumulation_steps=2, max_steps=2, per_device_train_batch_size=2)
    MaskVisionTrainer(model=model, args=args, train_dataset=BatchDataset(config), callbacks=[callback]).train()

    assert len(teachers) == 2 and len(seen) == 4
    assert torch.equal(seen[0], seen[1]) and torch.equal(seen[2], seen[3])  # no update between micro-steps
    assert not torch.equal(seen[1], seen[2])
    # After the first optimizer step: teacher = m * teacher + (1 - m) * student with m = 0.996, bit for bit in the
    # update's arithmetic (teacher + (1 - m) * (student - teacher), a lerp, as torch._foreach_lerp_ does).
    momentum = callback.momentum_at(0, 2)
    assert momentum == pytest.approx(0.996)
    for name, before in teachers[0].items():
        student = students[0][name.replace("teacher_", "", 1)]
        expected = torch.lerp(before, student, 1 - momentum)
        torch.testing.assert_close(teachers[1][name], expected, rtol=0, atol=0)


def test_get_image_features_come_from_the_teacher():
    model = ExtremaForPreTraining(tiny_extrema_config()).eval()
    pixel_values = make_batch(model.config)["pixel_values"]
    features = {pooling: model.get_image_features(pixel_values, pooling) for pooling in ("class_attention", "mean")}
    assert all(value.shape == (4, 32) for value in features.values())
    with torch.no_grad():
        for parameter in model.backbone.parameters():
            parameter.add_(1.0)  # the student moves, the teacher's features do not
    for pooling, value in features.items():
        torch.testing.assert_close(model.get_image_features(pixel_values, pooling), value)
    with pytest.raises(ValueError, match="pooling"):
        model.get_image_features(pixel_values, pooling="cls")


def test_weight_decay_only_on_matrices_of_the_student(tmp_path):
    model = ExtremaForPreTraining(tiny_extrema_config())
    assert {"pooler.cls_token", "backbone.embeddings.position_embeddings"} <= model.no_weight_decay()
    trainer = MaskVisionTrainer(
        model=model, args=trainer_args(tmp_path, weight_decay=0.1), train_dataset=BatchDataset(model.config)
    )
    decayed = set(trainer.get_decay_parameter_names(model))
    assert {"backbone.layers.0.attention.q_proj.weight", "projector.layers.0.weight"} <= decayed
    assert not decayed & {"pooler.cls_token", "pooler.blocks.0.gamma1", "backbone.layers.0.layernorm_before.weight"}
    optimizer = trainer.create_optimizer()
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for _, teacher in model.momentum_pairs() for p in teacher.parameters())


# ------------------------------------------------------------------------------------------------------ losses
@pytest.mark.parametrize("loss", ["byol", "infonce"])
def test_both_losses_train(loss):
    config = tiny_extrema_config(loss=loss, backbone={"drop_path_rate": 0.0})
    model = ExtremaForPreTraining(config).train()
    batch = make_batch(config, batch_size=16)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3, betas=(0.9, 0.95))
    losses = []
    for step in range(12):
        output = model(**batch)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        model.update_teacher(0.99)
        losses.append(output.loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    final = sum(losses[-3:]) / 3
    # BYOL starts near 2 (random directions) and falls fast; InfoNCE starts at 2T·ln(16) ≈ 1.1 and falls slower.
    assert final < (0.5 * losses[0] if loss == "byol" else losses[0] - 0.1), losses


def test_infonce_is_moco_v3_cross_entropy_scaled_by_two_temperatures():
    config = tiny_extrema_config(loss="infonce", temperature=0.5)
    model = ExtremaForPreTraining(config)
    predictions, targets = torch.randn(3, 2, 16), torch.randn(3, 16)
    loss = model.forward_loss(predictions, targets)
    normalise = torch.nn.functional.normalize
    expected = (
        torch.stack(
            [
                torch.nn.functional.cross_entropy(
                    normalise(predictions[:, i], dim=-1) @ normalise(targets, dim=-1).T / 0.5, torch.arange(3)
                )
                for i in range(2)
            ]
        ).mean()
        * 2
        * 0.5
    )
    torch.testing.assert_close(loss, expected)


# ------------------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_holds_the_teacher_and_reloads_frozen(tmp_path):
    model = ExtremaForPreTraining(tiny_extrema_config())
    with torch.no_grad():
        for parameter in model.teacher_projector.parameters():
            parameter.add_(0.5)  # teacher differs from student
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    loaded.train()
    assert not any(p.requires_grad for _, teacher in loaded.momentum_pairs() for p in teacher.parameters())
    assert not any(teacher.training for _, teacher in loaded.momentum_pairs())
    assert not loaded.backbone.embeddings.position_embeddings.requires_grad


def test_checkpoint_without_teacher_weights_loads_an_initialised_teacher(tmp_path):
    from safetensors.torch import load_file, save_file

    ExtremaForPreTraining(tiny_extrema_config()).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("teacher_")},
        tmp_path / "model.safetensors",
        metadata={"format": "pt"},
    )
    loaded = AutoModel.from_pretrained(tmp_path)  # the teacher was built without initialisation: not left empty
    teacher = [p for _, module in loaded.momentum_pairs() for p in module.parameters()]
    assert all(torch.isfinite(p).all() and p.abs().max() <= 1.0 for p in teacher)
    assert loaded.teacher_projector.layers[0].weight.std() > 0.01


def test_resume_restores_the_teacher(tmp_path):
    config = tiny_extrema_config(backbone={"drop_path_rate": 0.0})
    dataset = BatchDataset(config)

    def train(output_dir, resume=None, **overrides):
        torch.manual_seed(0)
        model = ExtremaForPreTraining(config)
        callback = MomentumTeacherCallback(config.base_momentum)
        args = trainer_args(output_dir, max_steps=3, **overrides)
        MaskVisionTrainer(model=model, args=args, train_dataset=dataset, callbacks=[callback]).train(
            resume_from_checkpoint=resume
        )
        return model

    straight = train(tmp_path / "straight")
    train(tmp_path / "first", save_strategy="steps", save_steps=2)
    resumed = train(tmp_path / "resumed", resume=str(tmp_path / "first" / "checkpoint-2"))
    for name, value in teacher_state(straight).items():
        torch.testing.assert_close(teacher_state(resumed)[name], value, rtol=1e-5, atol=1e-6)
    assert not torch.equal(
        teacher_state(straight)["teacher_projector.layers.0.weight"],
        teacher_state(ExtremaForPreTraining(config))["teacher_projector.layers.0.weight"],
    )


# ------------------------------------------------------------------------------------------------------ export
def test_export_is_a_stock_beit_whose_mean_pooled_features_match_the_teacher(tmp_path):
    model = ExtremaForPreTraining(tiny_extrema_config())
    with torch.no_grad():  # move the teacher away from its initialisation
        for parameter in model.teacher_backbone.layers.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    calibration = make_batch(model.config, batch_size=16, seed=1)["pixel_values"]
    held_out = make_batch(model.config, batch_size=16, seed=2)["pixel_values"]
    errors = model.calibrate_export(calibration, steps=30)
    assert errors["export_error"] < errors["export_error_uncalibrated"]
    model.export_encoder(tmp_path)

    classifier, info = AutoModelForImageClassification.from_pretrained(
        tmp_path, num_labels=10, output_loading_info=True
    )
    assert type(classifier).__module__.startswith("transformers.models.beit")
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias"} and not info["unexpected_keys"]
    encoder = BeitModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        exported = encoder(held_out).pooler_output
        expected = model.get_image_features(held_out, pooling="mean")
    # Stated tolerance: mean relative error of the export's features on unseen full views at most 1%.
    relative_error = ((exported - expected).norm(dim=-1) / expected.norm(dim=-1)).mean().item()
    assert relative_error < 0.01
    torch.testing.assert_close(encoder.embeddings.position_embeddings[0, 1:], sincos_2d_position_embedding(8, 8, 32))
    assert encoder.embeddings.position_embeddings[0, 0].abs().sum() == 0


def test_export_before_calibration_warns(tmp_path, caplog):
    model = ExtremaForPreTraining(tiny_extrema_config())
    with caplog.at_level("WARNING"):
        model.export_encoder(tmp_path)
    assert "not calibrated" in caplog.text


# ------------------------------------------------------------------------------------------------------ real size
def test_slow_vit_base_224_forward_backward_at_80_percent_by_5_masks():
    torch.manual_seed(0)
    model = ExtremaForPreTraining(ExtremaConfig()).train()
    assert model.config.num_visible_patches == 39
    lengths = []
    model.backbone.layers[0].register_forward_hook(lambda module, args, output: lengths.append(output.shape))
    output = model(**make_batch(model.config, batch_size=2))
    output.loss.backward()
    assert lengths == [torch.Size([10, 39, 768])]  # 2 images x 5 masks, 39 visible tokens each
    assert output.predictions.shape == (2, 5, 256) and torch.isfinite(output.loss)
    assert model.backbone.layers[11].mlp.fc2.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------------ recipe
def test_recipe_defaults_are_the_official_ones():
    from maskvision.training.recipes.extrema import ExtremaModelArguments, ExtremaTrainingArguments, build_config

    args = ExtremaTrainingArguments(output_dir="unused", per_device_train_batch_size=128, gradient_accumulation_steps=2)
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay) == (0.9, 0.95, 0.1)
    assert args.resolve_learning_rate() == pytest.approx(1.5e-4)  # 1.5e-4 x 256 / 256
    assert args.warmup_steps == pytest.approx(40 / 300) and args.lr_scheduler_type == "cosine"
    assert args.ddp_find_unused_parameters is False
    config = build_config(ExtremaModelArguments()).to_dict()
    default = ExtremaConfig().to_dict()
    assert config == default


def test_loss_falls_on_demo_images_with_the_recipe_collator(tmp_path):
    from maskvision.data import load_image_dataset
    from maskvision.training.recipes.extrema import RECIPE, ExtremaModelArguments

    args = ExtremaModelArguments(
        model_size="tiny",
        image_size=32,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_masks=4,
        projector_hidden_size=64,
        projection_size=16,
    )
    model = RECIPE.build_model(args)
    collator = RECIPE.build_collator(model, args, seed=0)
    dataset = load_image_dataset("demo").select(range(256))
    batch = collator([dataset[index] for index in range(8)])
    visible = ~batch["bool_masked_pos"]  # (B, M, N): 4 disjoint sets of int(64 x 0.2) = 12 patches per image
    assert batch["bool_masked_pos"].shape == (8, 4, 64) and torch.all(visible.sum(-1) == 12)
    assert torch.all(visible.sum(1) <= 1)
    assert not torch.equal(batch["pixel_values"], batch["teacher_pixel_values"])  # own colour per branch

    training = trainer_args(
        tmp_path, per_device_train_batch_size=32, max_steps=16, learning_rate=2e-3, adam_beta2=0.95, warmup_steps=2
    )
    trainer = MaskVisionTrainer(
        model=model,
        args=training,
        train_dataset=dataset,
        data_collator=collator,
        callbacks=RECIPE.build_callbacks(model, args)[:1],
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert all("momentum" in entry and "target_std" in entry for entry in logs)
    losses = [entry["loss"] for entry in logs]
    assert sum(losses[-4:]) / 4 < 0.5 * losses[0], losses


def test_pretrain_command_from_a_yaml_file_writes_checkpoint_and_stock_encoder(tmp_path):
    from maskvision.cli import main

    run = tmp_path / "run.yaml"
    run.write_text(
        "dataset: demo\nmax_train_samples: 32\nmodel_size: tiny\nimage_size: 32\npatch_size: 8\nhidden_size: 32\n"
        "num_hidden_layers: 1\nnum_attention_heads: 2\nmask_ratio: 0.75\nnum_masks: 4\nloss: infonce\n"
        "projector_hidden_size: 32\nprojection_size: 16\ncalibration_images: 8\ncalibration_steps: 2\n"
        "per_device_train_batch_size: 8\nlogging_steps: 1\nsave_strategy: 'no'\nuse_cpu: true\n"
        "dataloader_num_workers: 0\ndisable_tqdm: true\n"
    )
    output_dir = tmp_path / "out"
    assert main(["pretrain", "extrema", str(run), "--output_dir", str(output_dir), "--max_steps", "2"]) == 0
    model = AutoModel.from_pretrained(output_dir)
    assert isinstance(model, ExtremaForPreTraining) and model.config.loss == "infonce"
    assert torch.any(model.export_cls_token)  # calibrated before the checkpoint was written
    encoder = AutoModelForImageClassification.from_pretrained(output_dir / "encoder", num_labels=3)
    assert encoder.config.model_type == "beit" and encoder.config.hidden_size == 32


def test_demo_stage_quick_writes_checkpoint_and_encoder(tmp_path):
    from maskvision.cli.demo import DemoContext
    from maskvision.training.recipes.extrema import demo_stage

    results = demo_stage(DemoContext(output_dir=str(tmp_path), quick=True))
    assert results["steps"] == 3 and results["export_error"] < 0.05
    assert isinstance(AutoModel.from_pretrained(tmp_path / "extrema"), ExtremaForPreTraining)
    assert BeitModel.from_pretrained(results["encoder"]).config.hidden_size == 64
