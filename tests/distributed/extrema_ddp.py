"""Launched by test_extrema_ddp.py under `torchrun --nproc_per_node 2` (gloo, CPU): a few ExtreMA steps with the
Trainer, InfoNCE loss (targets gathered across ranks), gradient accumulation and no unused-parameter search.

Around every optimizer step it checks, on each rank, that the teacher became exactly ``m * teacher + (1 - m) *
student``, and across ranks that teachers and students are identical while the ranks saw different images and
masks. Rank 0 writes a summary to the JSON path given as the only argument.
"""

import json
import sys

import torch
import torch.distributed as dist
from transformers import TrainerCallback

from maskvision import ExtremaConfig, ExtremaForPreTraining
from maskvision.configuration.configuration_extrema import extrema_backbone_config
from maskvision.modeling.distributed import all_gather_no_grad
from maskvision.training.callbacks import MomentumTeacherCallback, _unwrap
from maskvision.training.masking import RandomMaskGenerator
from maskvision.training.pretrain import PretrainingArguments
from maskvision.training.trainer import MaskVisionTrainer

BATCH, ACCUMULATION, STEPS = 4, 2, 2


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


def identical_across_ranks(tensors: list[torch.Tensor]) -> bool:
    flat = torch.cat([tensor.reshape(-1) for tensor in tensors]).unsqueeze(0)
    gathered = all_gather_no_grad(flat)
    return all(torch.equal(gathered[0], row) for row in gathered[1:])


class BeforeUpdate(TrainerCallback):
    """Runs before `MomentumTeacherCallback`: keeps the teacher and the freshly stepped student."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = _unwrap(model)
        self.teacher, self.student = teacher_tensors(model), student_tensors(model)


class AfterUpdate(TrainerCallback):
    """Runs after `MomentumTeacherCallback`: exact EMA on this rank, identical teachers on all ranks."""

    def __init__(self, before: BeforeUpdate, momentum: MomentumTeacherCallback):
        self.before, self.momentum = before, momentum
        self.steps, self.exact, self.identical = 0, True, True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = _unwrap(model)
        m = self.momentum.momentum
        for after, teacher, student in zip(teacher_tensors(model), self.before.teacher, self.before.student):
            # m * teacher + (1 - m) * student, in the update's arithmetic: (1 - m) * student fused into the add.
            self.exact &= torch.equal(after, torch.add(m * teacher, student, alpha=1 - m))
        self.identical &= identical_across_ranks(teacher_tensors(model))
        self.steps += 1


def main(summary_path: str) -> None:
    torch.manual_seed(0)
    backbone = extrema_backbone_config(
        "tiny", image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    config = ExtremaConfig(
        backbone_config=backbone, mask_ratio=0.75, num_masks=4, loss="infonce",
        projector_hidden_size=64, predictor_hidden_size=64, projection_size=16,
    )  # fmt: skip
    model = ExtremaForPreTraining(config)
    initial_teacher = teacher_tensors(model)
    seen_masks = []
    forward = model.forward

    def recording_forward(**batch):
        seen_masks.append(batch["bool_masked_pos"].clone())
        return forward(**batch)

    model.forward = recording_forward
    momentum = MomentumTeacherCallback(config.base_momentum, config.final_momentum)
    before = BeforeUpdate()
    after = AfterUpdate(before, momentum)
    args = PretrainingArguments(
        output_dir=summary_path + ".run", per_device_train_batch_size=BATCH, gradient_accumulation_steps=ACCUMULATION,
        learning_rate=1e-3, max_steps=STEPS, logging_steps=1, save_strategy="no", use_cpu=True, warmup_steps=0,
        dataloader_num_workers=0, ddp_backend="gloo", ddp_find_unused_parameters=False, seed=0,
    )  # fmt: skip
    trainer = MaskVisionTrainer(
        model=model, args=args, train_dataset=RandomViews(config, 64), callbacks=[before, momentum, after]
    )
    trainer.train()

    local_masks = torch.cat(seen_masks)
    gathered_masks = all_gather_no_grad(local_masks)
    half = local_masks.shape[0]
    summary = {
        "world_size": dist.get_world_size(),
        "steps_checked": after.steps,
        "micro_batches": len(seen_masks),
        "ema_exact": after.exact,
        "teachers_identical": after.identical,
        "students_identical": identical_across_ranks(student_tensors(model)),
        "teacher_moved": not all(torch.equal(a, b) for a, b in zip(teacher_tensors(model), initial_teacher)),
        "ranks_saw_different_masks": not torch.equal(gathered_masks[:half], gathered_masks[half:]),
        "final_momentum": momentum.momentum,
        "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
    }
    if dist.get_rank() == 0:
        with open(summary_path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle)


if __name__ == "__main__":
    main(sys.argv[1])
