"""Launched by test_extrema_ddp.py under `torchrun --nproc_per_node 2` (gloo, CPU): a few ExtreMA steps with the
Trainer, InfoNCE loss (targets gathered across ranks), gradient accumulation and no unused-parameter search.

Around every optimizer step it checks, on each rank, that the teacher became exactly ``m * teacher + (1 - m) *
student``, and across ranks that teachers and students are identical while the ranks saw different images and
masks. `train` is also what the test runs in one process with twice the batch: the same global batches (precomputed
views and masks, no drop path), so the same loss trajectory and final weights. Rank 0 writes a summary to the JSON
path given as the only argument and the final weights beside it (safetensors).
"""

import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from transformers import TrainerCallback
from workers import differs_across_ranks, identical_across_ranks, logged_losses, write_summary

from maskvision import ExtremaConfig, ExtremaForPreTraining
from maskvision.configuration.configuration_extrema import extrema_backbone_config
from maskvision.training.inputs.masking import RandomMaskGenerator
from maskvision.training.loop.callbacks import MomentumTeacherCallback, unwrap_model
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments

BATCH, ACCUMULATION, STEPS = 4, 2, 2  # per rank; the one-process reference runs 2 * BATCH


class RandomViews(torch.utils.data.Dataset):
    """Rows as a collator would give them: two views and disjoint masks (one permutation per image)."""

    def __init__(self, config: ExtremaConfig, length: int):
        generator = torch.Generator().manual_seed(0)
        size = config.backbone_config.image_size
        masking = RandomMaskGenerator(size // config.backbone_config.patch_size, config.mask_ratio, config.num_masks)
        self.masks = masking.gen(length, generator=generator)
        self.views = torch.randn(length, 2, 3, size, size, generator=generator)

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, index):
        return {
            "pixel_values": self.views[index, 0],
            "teacher_pixel_values": self.views[index, 1],
            "bool_masked_pos": self.masks[index],
        }


def teacher_tensors(model) -> list[torch.Tensor]:
    return [p.detach().clone() for _, teacher in model.momentum_pairs() for p in teacher.parameters()]


def student_tensors(model) -> list[torch.Tensor]:
    return [p.detach().clone() for student, _ in model.momentum_pairs() for p in student.parameters()]


class BeforeUpdate(TrainerCallback):
    """Runs before `MomentumTeacherCallback`: keeps the teacher and the freshly stepped student."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = unwrap_model(model)
        self.teacher, self.student = teacher_tensors(model), student_tensors(model)


class AfterUpdate(TrainerCallback):
    """Runs after `MomentumTeacherCallback`: exact EMA on this rank, identical teachers on all ranks."""

    def __init__(self, before: BeforeUpdate, momentum: MomentumTeacherCallback):
        self.before, self.momentum = before, momentum
        self.steps, self.exact, self.identical = 0, True, True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = unwrap_model(model)
        m = self.momentum.momentum
        for after, teacher, student in zip(teacher_tensors(model), self.before.teacher, self.before.student):
            # m * teacher + (1 - m) * student, in the update's arithmetic: teacher + (1 - m) * (student - teacher).
            self.exact &= torch.equal(after, torch.lerp(teacher, student, 1 - m))
        self.identical &= identical_across_ranks(teacher_tensors(model))
        self.steps += 1


def build_model() -> ExtremaForPreTraining:
    torch.manual_seed(0)
    backbone = extrema_backbone_config(
        "tiny",
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        drop_path_rate=0.0,
    )
    config = ExtremaConfig(
        backbone_config=backbone,
        mask_ratio=0.75,
        num_masks=4,
        loss="infonce",
        projector_hidden_size=64,
        predictor_hidden_size=64,
        projection_size=16,
    )
    return ExtremaForPreTraining(config)


def train(output_dir: str, per_device_batch: int, model=None, callbacks=()) -> MaskVisionTrainer:
    """A few ExtreMA steps on precomputed views and masks (the same global batches on any number of processes) with
    the momentum teacher updated by ``callbacks``' `MomentumTeacherCallback` (one is added when none is given)."""
    model = build_model() if model is None else model
    if not any(isinstance(callback, MomentumTeacherCallback) for callback in callbacks):
        callbacks = [MomentumTeacherCallback(model.config.base_momentum, model.config.final_momentum)]
    # SGD, not AdamW: the class-attention key biases have no true gradient (softmax ignores them), and Adam would
    # turn the float noise of their gradients into full-size steps that differ between the runs.
    args = PretrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=per_device_batch,
        gradient_accumulation_steps=ACCUMULATION,
        optim="sgd",
        learning_rate=0.05,
        max_steps=STEPS,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        warmup_steps=0,
        dataloader_num_workers=0,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
        ddp_find_unused_parameters=False,
        seed=0,
    )
    trainer = MaskVisionTrainer(
        model=model, args=args, train_dataset=RandomViews(model.config, 64), callbacks=list(callbacks)
    )
    trainer.train()
    return trainer


def main(summary_path: str) -> None:
    model = build_model()
    initial_teacher = teacher_tensors(model)
    seen_masks = []
    forward = model.forward

    def recording_forward(**batch):
        seen_masks.append(batch["bool_masked_pos"].clone())
        return forward(**batch)

    model.forward = recording_forward
    momentum = MomentumTeacherCallback(model.config.base_momentum, model.config.final_momentum)
    before = BeforeUpdate()
    after = AfterUpdate(before, momentum)
    trainer = train(summary_path + ".run", BATCH, model, callbacks=[before, momentum, after])

    local_masks = torch.cat(seen_masks)
    summary = {
        "world_size": dist.get_world_size(),
        "steps_checked": after.steps,
        "micro_batches": len(seen_masks),
        "ema_exact": after.exact,
        "teachers_identical": after.identical,
        "students_identical": identical_across_ranks(student_tensors(model)),
        "teacher_moved": not all(torch.equal(a, b) for a, b in zip(teacher_tensors(model), initial_teacher)),
        "ranks_saw_different_masks": differs_across_ranks([local_masks]),
        "final_momentum": momentum.momentum,
        "losses": logged_losses(trainer),
    }
    if dist.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, summary_path + ".safetensors")
    write_summary(summary_path, summary)


if __name__ == "__main__":
    main(sys.argv[1])
