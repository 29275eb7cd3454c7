"""MoBY training step: images per second and peak memory, tiny Swin (32 px) and Swin-T (224 px).

A step is what the Trainer runs per image batch: forward of both views through the online and target branches,
backward, AdamW step, momentum update and enqueue. Side by side, for each size:

- ``concatenated``: maskvision's forward, both views through each encoder as one batch of 2B;
- ``per_view``: the official code's order, each encoder called once per view.

Both give the same loss (the encoders hold LayerNorms only; the heads see one view at a time either way).

    python benchmarks/moby.py [--quick]
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_memory_mb, time_side_by_side, write_results  # noqa: E402
from maskvision import MobyConfig, MobyForPreTraining  # noqa: E402
from maskvision.configuration.backbones import swin_backbone_config  # noqa: E402


def _per_view_online(model: MobyForPreTraining, views: torch.Tensor) -> torch.Tensor:
    features = [model.encoder(pixel_values=view).pooler_output for view in views.chunk(2)]
    return torch.stack([model.predictor(model.projector(feature)) for feature in features])


@torch.no_grad()
def _per_view_target(model: MobyForPreTraining, views: torch.Tensor) -> torch.Tensor:
    features = [model.target_encoder(pixel_values=view).pooler_output for view in views.chunk(2)]
    keys = torch.stack([model.target_projector(feature) for feature in features])
    return torch.nn.functional.normalize(keys.float(), dim=-1, eps=1e-6)


def _step_function(model: MobyForPreTraining, batch: dict, per_view: bool):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    forward_online, forward_target = model.forward_online, model.forward_target

    def step():
        if per_view:
            model.forward_online = lambda views: _per_view_online(model, views)
            model.forward_target = lambda views: _per_view_target(model, views)
        try:
            model(**batch).loss.backward()
        finally:
            model.forward_online, model.forward_target = forward_online, forward_target
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_teacher(0.99)

    return step


def _activation_mb(step) -> float:
    """Megabytes autograd saves for backward during one step (device independent, unlike allocator peaks)."""
    total = 0

    def pack(tensor):
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return total / 2**20


def _measure(name: str, config: MobyConfig, batch_size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = MobyForPreTraining(config).to(device).train()
    size = config.backbone_config.image_size
    batch = {key: torch.randn(batch_size, 3, size, size, device=device) for key in ("pixel_values", "pixel_values_2")}
    candidates = {mode: _step_function(model, batch, mode == "per_view") for mode in ("concatenated", "per_view")}
    # First step of a fresh model: gradients, AdamW state and activations on top of the weights.
    first_step_mb = peak_memory_mb(candidates["concatenated"])
    seconds = time_side_by_side(candidates, repeats=repeats, warmup=1)
    results = {
        mode: {
            "seconds_per_step": round(seconds[mode], 4),
            "images_per_second": round(batch_size / seconds[mode], 2),
            "activation_memory_mb": round(_activation_mb(candidates[mode]), 1),
        }
        for mode in candidates
    }
    results["concatenated"]["first_step_peak_memory_mb"] = round(first_step_mb, 1)
    results["speedup_concatenated_over_per_view"] = round(seconds["per_view"] / seconds["concatenated"], 3)
    results["batch_size"] = batch_size
    results["image_size"] = size
    results["parameters_online_encoder_m"] = round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 2)
    results["parameters_total_m"] = round(sum(p.numel() for p in model.parameters()) / 1e6, 2)
    print(f"{name}: {results}", file=sys.stderr)
    return results


def run(quick: bool = False) -> dict:
    tiny = MobyConfig(
        backbone_config=swin_backbone_config(
            "tiny",
            image_size=32,
            patch_size=4,
            embed_dim=32,
            depths=[2, 2],
            num_heads=[2, 4],
            window_size=4,
            drop_path_rate=0.2,
        ),
        projector_hidden_size=512,
        predictor_hidden_size=512,
        queue_size=4096,
    )
    results = {"tiny_swin_32px": _measure("tiny", tiny, batch_size=32, repeats=3 if quick else 10)}
    if not quick:
        results["swin_t_224px"] = _measure(
            "swin_t", MobyConfig(), batch_size=8 if torch.cuda.is_available() else 4, repeats=5
        )
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    write_results("moby", run(quick=parser.parse_args().quick))
