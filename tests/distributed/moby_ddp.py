"""Launched by test_moby_ddp.py under `torchrun --nproc_per_node 2` (gloo, CPU): a few MoBY steps with the Trainer.

Checks, on every optimizer step, that the queues received the keys of every rank's micro-batches in rank order,
and at the end that both ranks hold identical queues and target branches (no buffer broadcast). `train` is also what
the test runs in one process with twice the batch: the same global batches, so the same losses and final weights
(queues included). Rank 0 writes a summary to the JSON path given as the only argument, the weights beside it.
"""

import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from transformers import TrainerCallback
from workers import identical_across_ranks, logged_losses, write_summary

from maskvision import MobyConfig, MobyForPreTraining
from maskvision.configuration.backbones import swin_backbone_config
from maskvision.modeling.distributed import all_gather_no_grad
from maskvision.training.loop.callbacks import MomentumTeacherCallback, unwrap_model
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments

BATCH, ACCUMULATION, STEPS = 4, 2, 2  # per rank; the one-process reference runs 2 * BATCH


class PendingKeys(TrainerCallback):
    """Runs before `MomentumTeacherCallback`: keeps this rank's keys of the step and the queue pointer."""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = unwrap_model(model)
        self.keys = torch.cat(model._pending_keys, dim=1).clone()  # (2, accumulation * B, D)
        self.pointer = int(model.queue_ptr)


class CheckQueues(TrainerCallback):
    """Runs after `MomentumTeacherCallback`: the queues must hold every rank's keys of the step, in rank order."""

    def __init__(self, pending: PendingKeys):
        self.pending, self.steps, self.other_rank_keys_differ = pending, 0, True

    def on_step_end(self, args, state, control, model=None, **kwargs):
        model = unwrap_model(model)
        local = self.pending.keys
        gathered = all_gather_no_grad(local.transpose(0, 1).contiguous()).transpose(0, 1)  # (2, world * n, D)
        count = gathered.shape[1]
        assert count == dist.get_world_size() * ACCUMULATION * BATCH, count
        start = self.pending.pointer
        positions = (start + torch.arange(count)) % model.config.queue_size
        assert torch.equal(model.queue_1[positions], gathered[0]) and torch.equal(model.queue_2[positions], gathered[1])
        assert int(model.queue_ptr) == (start + count) % model.config.queue_size
        half = local.shape[1]
        self.other_rank_keys_differ &= not torch.allclose(gathered[:, :half], gathered[:, half:])
        self.steps += 1


def identical(tensor: torch.Tensor) -> bool:
    return identical_across_ranks([tensor])


def build_model() -> MobyForPreTraining:
    torch.manual_seed(0)
    backbone = swin_backbone_config(
        "tiny",
        image_size=32,
        patch_size=4,
        embed_dim=32,
        depths=[2, 2],
        num_heads=[2, 4],
        window_size=4,
        drop_path_rate=0.0,
    )
    # LayerNorm heads: BatchNorm statistics would be per process (SyncBatchNorm needs GPUs), and the run on one
    # process could not match.
    config = MobyConfig(
        backbone_config=backbone,
        projection_dim=32,
        projector_hidden_size=64,
        predictor_hidden_size=64,
        queue_size=40,
        head_norm="layer",
    )
    return MobyForPreTraining(config)


def train(output_dir: str, per_device_batch: int, model=None, callbacks=()) -> MaskVisionTrainer:
    """A few MoBY steps on precomputed views (the same global batches on any number of processes)."""
    model = build_model() if model is None else model
    if not any(isinstance(callback, MomentumTeacherCallback) for callback in callbacks):
        callbacks = [MomentumTeacherCallback(model.config.momentum)]
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 64, 3, 32, 32, generator=generator)
    dataset = [{"pixel_values": a, "pixel_values_2": b} for a, b in zip(images[0], images[1])]
    args = PretrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=per_device_batch,
        gradient_accumulation_steps=ACCUMULATION,
        max_steps=STEPS,
        learning_rate=1e-3,
        warmup_steps=0,
        use_cpu=True,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
        ddp_broadcast_buffers=False,
        dataloader_drop_last=True,
        dataloader_num_workers=0,
        save_strategy="no",
        logging_steps=1,
        seed=0,
    )
    trainer = MaskVisionTrainer(model=model, args=args, train_dataset=dataset, callbacks=list(callbacks))
    trainer.train()
    return trainer


def main(summary_path: str) -> None:
    torch.set_num_threads(1)
    model = build_model()
    pending = PendingKeys()
    check = CheckQueues(pending)
    trainer = train(
        summary_path + ".run", BATCH, model, callbacks=[pending, MomentumTeacherCallback(model.config.momentum), check]
    )

    target_parameters = (*model.target_encoder.parameters(), *model.target_projector.parameters())
    target = torch.cat([p.reshape(-1) for p in target_parameters])
    online = torch.cat([p.reshape(-1) for p in model.encoder.parameters()])
    summary = {
        "world_size": dist.get_world_size(),
        "steps_checked": check.steps,
        "keys_per_step": dist.get_world_size() * ACCUMULATION * BATCH,
        "other_rank_keys_differ": check.other_rank_keys_differ,
        "queue_pointer": int(model.queue_ptr),
        "queues_identical": identical(model.queue_1) and identical(model.queue_2),
        "pointers_identical": identical(model.queue_ptr.float()),
        "targets_identical": identical(target),
        "online_identical": identical(online),
        "target_moved": not torch.equal(target[: online.numel()], online),
        "losses": logged_losses(trainer),
    }
    if dist.get_rank() == 0:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, summary_path + ".safetensors")
    write_summary(summary_path, summary)


if __name__ == "__main__":
    main(sys.argv[1])
