"""Launched by test_extrema_fsdp.py under `torchrun --nproc_per_node 2` (gloo, CPU): ExtreMA sharded with FSDP2 the
way accelerate's FSDP plugin wraps it (``fsdp_version: 2``, ``TRANSFORMER_BASED_WRAP`` on ``BeitLayer``: every
layer of the student *and* of the teacher, then the whole model; examples/accelerate/fsdp.yaml), so that the teacher
is sharded like the student and each rank applies the EMA update to the shard it owns.

Accelerate enables FSDP on GPUs only, so the steps are written out here (forward, backward, SGD, teacher update
with `MomentumTeacherCallback`'s schedule) on `fully_shard` directly. `train` runs them sharded on every rank or, in
one process (the test), unsharded with the global batch; the test compares the losses and the full weights (student
and teacher, gathered from the shards). Rank 0 writes a summary (JSON) and the weights (safetensors).
"""

import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.fsdp import fully_shard
from workers import write_summary

from maskvision import ExtremaConfig, ExtremaForPreTraining
from maskvision.configuration.configuration_extrema import extrema_backbone_config
from maskvision.modeling.momentum import cosine_schedule
from maskvision.training.inputs.masking import RandomMaskGenerator

GLOBAL_BATCH, STEPS = 8, 3


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
    return ExtremaForPreTraining(
        ExtremaConfig(
            backbone_config=backbone,
            mask_ratio=0.75,
            num_masks=2,
            projector_hidden_size=64,
            predictor_hidden_size=64,
            projection_size=16,
        )
    )


def shard(model: ExtremaForPreTraining) -> ExtremaForPreTraining:
    """FSDP2 as accelerate applies it with TRANSFORMER_BASED_WRAP on BeitLayer: the layers, then the root."""
    for layer in (*model.backbone.layers, *model.teacher_backbone.layers):
        fully_shard(layer)
    return fully_shard(model)


def full_state_dict(model) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, gathered from the shards (a collective call when sharded)."""
    return {
        name: (value.full_tensor() if hasattr(value, "full_tensor") else value).detach().contiguous()
        for name, value in model.state_dict().items()
    }


def train(sharded: bool) -> tuple[ExtremaForPreTraining, list[float]]:
    model = build_model()
    generator = torch.Generator().manual_seed(1)
    views = torch.randn(STEPS, GLOBAL_BATCH, 2, 3, 32, 32, generator=generator)
    masks = RandomMaskGenerator(4, 0.75, 2).gen(STEPS * GLOBAL_BATCH, generator).view(STEPS, GLOBAL_BATCH, 2, 16)
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    if sharded:
        model = shard(model)
    model.train()
    # SGD, not AdamW: the class-attention key biases have no true gradient, and Adam would turn the float noise of
    # their gradients into full-size steps that differ between the runs.
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    share = slice(rank * GLOBAL_BATCH // world_size, (rank + 1) * GLOBAL_BATCH // world_size)
    losses = []
    for step in range(STEPS):
        loss = model(
            pixel_values=views[step, share, 0],
            teacher_pixel_values=views[step, share, 1],
            bool_masked_pos=masks[step, share],
        ).loss
        loss.backward()  # FSDP2 averages the gradients over the ranks, as DDP does
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_teacher(cosine_schedule(step, STEPS, model.config.base_momentum, model.config.final_momentum))
        loss = loss.detach()
        if sharded:
            dist.all_reduce(loss)
        losses.append(loss.item() / world_size)
    return model, losses


def main(summary_path: str) -> None:
    torch.set_num_threads(1)
    model, losses = train(sharded=True)
    parameters = dict(model.named_parameters())
    sharded = {name for name, p in parameters.items() if type(p).__name__ == "DTensor"}
    local = {name: parameters[name].to_local().numel() for name in sharded}
    state = full_state_dict(model)
    summary = {
        "world_size": dist.get_world_size(),
        "losses": losses,
        "teacher_layers_sharded": all(n in sharded for n in parameters if n.startswith("teacher_backbone.layers")),
        "student_layers_sharded": all(n in sharded for n in parameters if n.startswith("backbone.layers")),
        "local_share": sum(local.values()) / sum(state[name].numel() for name in sharded),
    }
    if dist.get_rank() == 0:
        save_file(state, summary_path + ".safetensors")
    write_summary(summary_path, summary)


if __name__ == "__main__":
    dist.init_process_group("gloo")
    main(sys.argv[1])  # write_summary ends the process
