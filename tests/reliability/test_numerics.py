"""Numerical guards: a NaN/inf loss stops the run naming the step, or skips the step without any update;
gradient clipping is on by default for every method; the methods normalise in fp32."""

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import PreTrainedConfig, TrainerCallback
from transformers.modeling_outputs import ModelOutput

from maskvision.modeling.momentum import MomentumTeacherMixin
from maskvision.training.loop.callbacks import MomentumTeacherCallback
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments

POISONED = 2  # the third optimizer step (batch size 4, no shuffling) sees a NaN input


@dataclass
class Output(ModelOutput):
    loss: torch.Tensor | None = None


class TeacherStudent(MomentumTeacherMixin, nn.Module):
    main_input_name = "pixel_values"

    def __init__(self):
        super().__init__()
        self.config = PreTrainedConfig()
        self.student = nn.Linear(4, 4)
        self.teacher = nn.Linear(4, 4)
        self.init_teachers()

    def momentum_pairs(self):
        return [(self.student, self.teacher)]

    def forward(self, pixel_values):
        with torch.no_grad():
            target = self.teacher(pixel_values)
        return Output(loss=((self.student(pixel_values) - target - 1) ** 2).mean())


class Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 24

    def __getitem__(self, index):
        value = torch.full((4,), float("nan")) if index // 4 == POISONED else torch.randn(4)
        return {"pixel_values": value}


class Snapshots(TrainerCallback):
    def __init__(self):
        self.student, self.teacher = [], []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.student.append(model.student.weight.detach().clone())
        self.teacher.append(model.teacher.weight.detach().clone())


def _trainer(tmp_path, **kwargs):
    args = PretrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=5,
        learning_rate=0.1,
        warmup_steps=0,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        **kwargs,
    )
    snapshots = Snapshots()
    trainer = MaskVisionTrainer(
        model=TeacherStudent(),
        args=args,
        train_dataset=Rows(),
        callbacks=[MomentumTeacherCallback(0.5), snapshots],
    )
    trainer.get_train_dataloader = lambda: torch.utils.data.DataLoader(Rows(), batch_size=4)  # fixed order
    return trainer, snapshots


def test_non_finite_loss_stops_naming_the_step(tmp_path):
    trainer, _ = _trainer(tmp_path)
    with pytest.raises(FloatingPointError, match=rf"optimizer step {POISONED + 1} of 5.*--nan_policy skip"):
        trainer.train()


def test_skip_policy_leaves_student_and_teacher_untouched_for_that_step(tmp_path):
    trainer, snapshots = _trainer(tmp_path, nan_policy="skip")
    trainer.train()
    assert trainer.state.global_step == 5 and trainer.skipped_steps == 1
    before, skipped = POISONED - 1, POISONED
    assert torch.equal(snapshots.student[skipped], snapshots.student[before])
    assert torch.equal(snapshots.teacher[skipped], snapshots.teacher[before])
    for later in (skipped + 1, skipped + 2):  # training goes on: both move again, and stay finite
        assert not torch.equal(snapshots.student[later], snapshots.student[later - 1])
        assert not torch.equal(snapshots.teacher[later], snapshots.teacher[later - 1])
    assert all(torch.isfinite(weight).all() for weight in snapshots.student + snapshots.teacher)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged[-1]["skipped_steps"] == 1
    assert "skipped_steps" not in logged[0]


def test_nan_policy_and_clipping_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"--nan_policy must be one of \('stop', 'skip'\), got 'ignore'"):
        PretrainingArguments(output_dir=str(tmp_path), nan_policy="ignore")
    with pytest.raises(ValueError, match="--max_grad_norm must be >= 0"):
        PretrainingArguments(output_dir=str(tmp_path), max_grad_norm=-1.0)


def test_gradient_clipping_defaults_are_the_official_ones():
    # BEiT clips at 3.0 and MoBY at 5.0 on its summed loss (2.5 on maskvision's mean); ExtreMA and VQ-KD clip nothing
    from maskvision.cli.pretrain import RECIPES, load_recipe
    from maskvision.training.runs.tokenizer import TokenizerTrainingArguments

    defaults = {name: load_recipe(name).training_arguments().max_grad_norm for name in RECIPES}
    assert defaults == {"beit": 3.0, "extrema": 0.0, "moby": 2.5}
    assert TokenizerTrainingArguments().resolve_for("vqkd").max_grad_norm == 0.0


def test_a_skipped_moby_step_enqueues_none_of_its_keys(tmp_path):
    from maskvision import MobyConfig, MobyForPreTraining
    from maskvision.configuration.backbones import swin_backbone_config

    class Views(torch.utils.data.Dataset):
        def __len__(self):
            return 20

        def __getitem__(self, index):
            generator = torch.Generator().manual_seed(index)
            first, second = torch.randn(2, 3, 32, 32, generator=generator)
            if index // 4 == POISONED:
                first = torch.full_like(first, float("inf"))
            return {"pixel_values": first, "pixel_values_2": second}

    backbone = swin_backbone_config(
        "tiny", image_size=32, patch_size=4, window_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2]
    )
    model = MobyForPreTraining(
        MobyConfig(
            backbone_config=backbone,
            projector_hidden_size=32,
            predictor_hidden_size=32,
            projection_dim=16,
            queue_size=64,
            head_norm="layer",
        )
    )
    args = PretrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=5,
        learning_rate=1e-3,
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        nan_policy="skip",
    )
    callbacks = [MomentumTeacherCallback(0.99)]
    trainer = MaskVisionTrainer(model=model, args=args, train_dataset=Views(), callbacks=callbacks)
    trainer.get_train_dataloader = lambda: torch.utils.data.DataLoader(Views(), batch_size=4)
    trainer.train()
    assert trainer.skipped_steps == 1
    assert int(model.queue_ptr) == 4 * 4  # four steps of four keys: the skipped step's keys never entered
    assert torch.isfinite(model.queue_1).all() and torch.isfinite(model.queue_2).all()
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())


@settings(max_examples=30, deadline=None)
@given(exponent=st.integers(-8, 4), dtype=st.sampled_from([torch.float16, torch.bfloat16]), seed=st.integers(0, 999))
def test_joint_embedding_losses_normalise_in_fp32_at_any_scale(exponent, dtype, seed):
    """fp16/bf16 features far from unit norm (the users' NaN in F.normalize): the losses stay finite, in fp32."""
    from maskvision.modeling.losses import byol_loss, info_nce_loss

    generator = torch.Generator().manual_seed(seed)
    shapes = ((4, 8), (4, 8), (16, 8))
    query, key, queue = (torch.randn(shape, generator=generator) * 10.0**exponent for shape in shapes)
    query, key, queue = query.to(dtype), key.to(dtype), queue.to(dtype)
    for loss in (byol_loss(query, key), info_nce_loss(query, key, 0.2, queue), info_nce_loss(query, key, 0.2)):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_a_bf16_autocast_forward_gives_a_finite_fp32_loss():
    from maskvision import MobyConfig, MobyForPreTraining
    from maskvision.configuration.backbones import swin_backbone_config

    backbone = swin_backbone_config(
        "tiny", image_size=32, patch_size=4, window_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2]
    )
    model = MobyForPreTraining(
        MobyConfig(
            backbone_config=backbone,
            projector_hidden_size=32,
            predictor_hidden_size=32,
            projection_dim=16,
            queue_size=16,
        )
    )
    views = torch.randn(2, 4, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(pixel_values=views[0], pixel_values_2=views[1]).loss
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
