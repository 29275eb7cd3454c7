"""Momentum (EMA) teachers: the one update rule used by ExtreMA and MoBY.

A teacher is an exponential moving average of a student (MoCo, He et al. 2020; BYOL, Grill et al. 2020):
``teacher = m * teacher + (1 - m) * student``, applied once per optimizer step, with ``m`` following BYOL's
cosine schedule from a base value to 1. Models with a teacher subclass `MomentumTeacherMixin` and list their
(student, teacher) module pairs; `maskvision.training.loop.callbacks.MomentumTeacherCallback` calls
`update_teacher` after each optimizer step, so gradient accumulation never updates the teacher on a micro-step.

The update walks the two modules' parameters in the same order, so it also holds shard by shard when both are
wrapped alike (FSDP2, or FSDP1 with ``use_orig_params``; DeepSpeed ZeRO-3 partitions): each rank updates the shard it
owns.
"""

import math

import torch
from torch import nn


def cosine_schedule(step: int, total_steps: int, start: float, end: float) -> float:
    """BYOL's schedule: ``end - (end - start) * (cos(pi * step / total_steps) + 1) / 2``; `start` at step 0."""
    if total_steps <= 0:
        return end
    progress = min(max(step / total_steps, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1) / 2


def _local(parameter: nn.Parameter) -> torch.Tensor:
    # DeepSpeed ZeRO-3 keeps each rank's partition in `ds_tensor` (`data` is an empty placeholder outside forward);
    # a teacher and a student of the same shapes are partitioned alike, so the update holds partition by partition.
    return getattr(parameter, "ds_tensor", parameter.data)


def _floating_tensors(module: nn.Module) -> list[torch.Tensor]:
    tensors = [_local(p) for p in module.parameters()]
    tensors += [b for b in module.buffers() if b.is_floating_point()]
    return tensors


def _paired_tensors(teacher: nn.Module, student: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    teacher_tensors, student_tensors = _floating_tensors(teacher), _floating_tensors(student)
    if len(teacher_tensors) != len(student_tensors):
        raise ValueError(
            f"Teacher has {len(teacher_tensors)} tensors but student has {len(student_tensors)}: "
            "a momentum teacher must have the student's structure."
        )
    return teacher_tensors, student_tensors


@torch.no_grad()
def update_momentum_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place: ``teacher = momentum * teacher + (1 - momentum) * student`` over parameters and float buffers.

    Computed as ``teacher + (1 - momentum) * (student - teacher)`` (a lerp): a teacher equal to its student stays
    bit for bit equal (``0.996 * w + 0.004 * w`` rounds away from ``w``), so a run started from a checkpoint at
    learning rate 0 exports exactly the weights it started from."""
    teacher_tensors, student_tensors = _paired_tensors(teacher, student)
    torch._foreach_lerp_(teacher_tensors, student_tensors, 1.0 - momentum)


@torch.no_grad()
def copy_student_to_teacher_(teacher: nn.Module, student: nn.Module) -> None:
    """Start the teacher equal to the student and freeze it (no gradient ever reaches a teacher).

    A plain copy, so that a teacher built without initialisation (uninitialised memory, NaN included) is fine.
    """
    torch._foreach_copy_(*_paired_tensors(teacher, student))
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)


class MomentumTeacherMixin:
    """For models holding EMA teachers: implement `momentum_pairs` as ``[(student_module, teacher_module), ...]``."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        raise NotImplementedError

    def init_teachers(self) -> None:
        for student, teacher in self.momentum_pairs():
            copy_student_to_teacher_(teacher, student)
            teacher.train(False)

    def update_teacher(self, momentum: float) -> None:
        for student, teacher in self.momentum_pairs():
            update_momentum_(teacher, student, momentum)

    def discard_step(self) -> None:
        """Called instead of `update_teacher` after a skipped optimizer step (a non-finite loss): drop what the
        step's forward passes left for the update. Nothing to drop by default."""

    def train(self, mode: bool = True):
        # Teachers stay in eval mode (no drop path, no dropout) and frozen whatever mode the student is in. Loading
        # hands back fresh parameters that require grad; `from_pretrained` ends with `eval()`, which re-freezes them.
        super().train(mode)
        for _, teacher in self.momentum_pairs():
            teacher.train(False)
            teacher.requires_grad_(False)
        return self
