"""The shared training machinery: MaskVisionTrainer, the momentum callback, parameter groups, argument files."""

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import ModelOutput

from maskvision.cli.args import parse_arguments
from maskvision.modeling.momentum import MomentumTeacherMixin, cosine_schedule, update_momentum_
from maskvision.training.loop.callbacks import MomentumTeacherCallback
from maskvision.training.loop.optim import layer_id, param_groups
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments


@dataclass
class ToyOutput(ModelOutput):
    loss: torch.Tensor | None = None
    agreement: torch.Tensor | None = None


class ToyTeacherModel(MomentumTeacherMixin, nn.Module):
    """A linear student with an EMA teacher; regresses the teacher's output plus one."""

    main_input_name = "pixel_values"

    def __init__(self):
        super().__init__()
        self.config = PreTrainedConfig()
        self.student = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.teacher = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.position = nn.Parameter(torch.zeros(4))
        self.init_teachers()

    def momentum_pairs(self):
        return [(self.student, self.teacher)]

    def no_weight_decay(self):
        return {"position"}

    def forward(self, pixel_values):
        with torch.no_grad():
            target = self.teacher(pixel_values)
        prediction = self.student(pixel_values) + self.position
        loss = ((prediction - target - 1) ** 2).mean()
        return ToyOutput(loss=loss, agreement=torch.cosine_similarity(prediction, target, dim=-1).mean())


class ToyDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 32

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        return {"pixel_values": torch.randn(4, generator=generator)}


def _args(tmp_path, **overrides):
    defaults = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        base_learning_rate=0.1,
        lr_reference_batch=4,
        max_steps=4,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        warmup_steps=0,
        dataloader_num_workers=0,
    )
    return PretrainingArguments(**{**defaults, **overrides})


def test_cosine_schedule_endpoints():
    assert cosine_schedule(0, 100, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine_schedule(50, 100, 0.996, 1.0) == pytest.approx(0.998)
    assert cosine_schedule(100, 100, 0.996, 1.0) == pytest.approx(1.0)


def test_update_momentum_is_exact_ema():
    teacher, student = nn.Linear(3, 3), nn.Linear(3, 3)
    expected = [torch.lerp(t.detach(), s.detach(), 0.1) for t, s in zip(teacher.parameters(), student.parameters())]
    update_momentum_(teacher, student, 0.9)
    for value, want in zip(teacher.parameters(), expected):
        torch.testing.assert_close(value.detach(), want, rtol=0, atol=0)


def test_update_momentum_keeps_a_teacher_equal_to_its_student_bit_for_bit():
    student = nn.Linear(64, 64)
    teacher = nn.Linear(64, 64)
    teacher.load_state_dict(student.state_dict())
    for momentum in (0.996, 0.99, 0.5, 0.0):
        update_momentum_(teacher, student, momentum)
        for t, s in zip(teacher.parameters(), student.parameters()):
            assert torch.equal(t, s)


def test_teacher_update_once_per_optimizer_step_under_accumulation(tmp_path):
    model = ToyTeacherModel()
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t) and not t.requires_grad
    callback = MomentumTeacherCallback(base_momentum=0.9)
    updates = []
    original = model.update_teacher
    model.update_teacher = lambda m: (updates.append(m), original(m))
    args = _args(tmp_path, gradient_accumulation_steps=2, max_steps=3)
    trainer = MaskVisionTrainer(model=model, args=args, train_dataset=ToyDataset(), callbacks=[callback])
    trainer.train()
    # 3 optimizer steps from 6 micro-batches: exactly 3 updates, on BYOL's schedule.
    assert updates == pytest.approx([callback.momentum_at(k, 3) for k in range(3)])
    assert updates[0] == pytest.approx(0.9)
    assert all(p.grad is None for p in model.teacher.parameters())


def test_trainer_logs_output_scalars_momentum_and_throughput(tmp_path):
    model = ToyTeacherModel()
    trainer = MaskVisionTrainer(
        model=model, args=_args(tmp_path), train_dataset=ToyDataset(), callbacks=[MomentumTeacherCallback(0.99)]
    )
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logs) == 4
    assert all({"agreement", "momentum", "images_per_second"} <= set(entry) for entry in logs)
    assert all(-1 <= entry["agreement"] <= 1 and entry["images_per_second"] > 0 for entry in logs)
    assert logs[0]["loss"] > logs[-1]["loss"]


def test_learning_rate_scales_with_effective_batch(tmp_path):
    args = _args(
        tmp_path,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=4,
        base_learning_rate=1e-3,
        lr_reference_batch=256,
    )
    assert args.resolve_learning_rate() == pytest.approx(1e-3 * 32 / 256)
    explicit = _args(tmp_path, learning_rate=0.5)
    assert explicit.resolve_learning_rate() == 0.5


def test_no_weight_decay_on_norms_biases_and_listed_parameters(tmp_path):
    trainer = MaskVisionTrainer(
        model=ToyTeacherModel(), args=_args(tmp_path, weight_decay=0.05), train_dataset=ToyDataset()
    )
    decayed = set(trainer.get_decay_parameter_names(trainer.model))
    assert decayed == {"student.0.weight", "teacher.0.weight"}
    optimizer = trainer.create_optimizer()
    by_decay = {group["weight_decay"]: group["params"] for group in optimizer.param_groups}
    assert len(by_decay[0.05]) == 1  # the teacher's frozen weight is never optimised
    assert any(p is trainer.model.position for p in by_decay[0.0])


def test_layer_ids_for_stock_names():
    assert layer_id("beit.embeddings.cls_token", 12) == 0
    assert layer_id("beit.layers.0.attention.q_proj.weight", 12) == 1
    assert layer_id("vit.encoder.layer.11.output.dense.weight", 12) == 12
    assert layer_id("classifier.weight", 12) == 13
    depths = [2, 2, 6, 2]
    assert layer_id("swin.embeddings.patch_embeddings.projection.weight", 12, depths) == 0
    assert layer_id("swin.encoder.layers.2.blocks.1.attention.self.query.weight", 12, depths) == 6
    assert layer_id("swin.encoder.layers.1.downsample.reduction.weight", 12, depths) == 4
    assert layer_id("swin.layernorm.weight", 12, depths) == 13


def test_param_groups_apply_layer_decay():
    model = nn.ModuleDict(
        {"embeddings": nn.Linear(2, 2), "layers": nn.ModuleList([nn.Linear(2, 2)] * 1), "classifier": nn.Linear(2, 2)}
    )
    groups = param_groups(
        model,
        learning_rate=1.0,
        weight_decay=0.1,
        decay_parameter_names={"classifier.weight"},
        layer_decay=0.5,
        num_layers=1,
    )
    lrs = sorted({group["lr"] for group in groups})
    assert lrs == [0.25, 0.5, 1.0]
    assert {group["weight_decay"] for group in groups if group["lr"] == 1.0} == {0.0, 0.1}
    with pytest.raises(ValueError, match="layer_decay"):
        param_groups(model, 1.0, 0.1, set(), layer_decay=1.5, num_layers=1)


@dataclass
class _Options:
    dataset: str = "demo"
    steps: int = 1


def test_arguments_from_file_with_flag_overrides(tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset": str(tmp_path), "steps": 5}))  # a folder that exists: it is checked
    (options,) = parse_arguments((_Options,), [str(config), "--steps", "7"], prog="test")
    assert (options.dataset, options.steps) == (str(tmp_path), 7)
    config.write_text(json.dumps({"datset": "typo"}))
    with pytest.raises(ValueError, match="datset"):
        parse_arguments((_Options,), [str(config)], prog="test")


def test_checkpoints_hold_no_pickled_training_arguments(tmp_path):
    args = _args(tmp_path, save_strategy="steps", save_steps=2, max_steps=2)
    trainer = MaskVisionTrainer(model=ToyTeacherModel(), args=args, train_dataset=ToyDataset())
    trainer.train()
    trainer.save_model()
    for folder in (tmp_path / "checkpoint-2", tmp_path):
        assert not (folder / "training_args.bin").exists()
        assert json.loads((folder / "training_args.json").read_text())["max_steps"] == 2
