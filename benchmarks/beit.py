"""Training step of `BeitMimForPreTraining` against transformers' stock `BeitForMaskedImageModeling`.

Both models get the same encoder config, the same weights, batch, masks and token ids, SDPA attention, AdamW, and
bf16 autocast on CUDA (fp32 on CPU). One step = forward + backward + optimizer step. Steps are timed side by side
(interleaved repeats, `benchmarks/common.py`); peak memory is the CUDA allocator's peak (GPU) or the resident-set
high-water mark (CPU) of one step.

    python benchmarks/beit.py                                   # CPU: the small config
    python benchmarks/beit.py --config base --image-size 224    # ViT-B/16 at 224 px (a GPU)

Key result: ``beit_step_vs_stock`` = stock seconds per step / ours (> 1: ours is faster).
"""

import argparse
import contextlib
import os
import sys

import torch
from transformers import BeitConfig, BeitForMaskedImageModeling

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_memory_mb, time_side_by_side, write_results  # noqa: E402
from maskvision import BeitMimConfig, BeitMimForPreTraining  # noqa: E402

# Backbone presets: `small` is a ViT-Tiny-width encoder small enough for a CPU; `base` is the official ViT-B/16.
CONFIGS = {
    "small": {"size": "tiny", "image_size": 112, "patch_size": 16, "batch_size": 16},
    "base": {"size": "base", "image_size": 224, "patch_size": 16, "batch_size": 64},
}


def build_models(config: str, image_size: int | None, batch_size: int | None, vocab_size: int, device: torch.device):
    preset = dict(CONFIGS[config])
    size, batch = preset.pop("size"), batch_size or preset.pop("batch_size")
    preset.pop("batch_size", None)
    if image_size:
        preset["image_size"] = image_size
    ours = BeitMimForPreTraining(BeitMimConfig.from_size(size, vocab_size=vocab_size, **preset))
    ours.set_attn_implementation("sdpa")
    stock_config = BeitConfig.from_dict(ours.config.backbone_config.to_dict())
    stock_config.vocab_size = vocab_size
    stock = BeitForMaskedImageModeling(stock_config)
    stock.set_attn_implementation("sdpa")
    stock.load_state_dict(ours.state_dict())  # same parameter names: identical weights
    return ours.to(device).train(), stock.to(device).train(), batch


def make_batch(config: BeitMimConfig, batch: int, device: torch.device) -> dict:
    num_patches = config.num_patches
    size = config.backbone_config.image_size
    # Exactly `num_masking_patches` per image (what BEiT v2's generator does, and v1's on average).
    scores = torch.rand(batch, num_patches)
    mask = scores.argsort(dim=1).argsort(dim=1) < config.num_masking_patches
    return {
        "pixel_values": torch.randn(batch, 3, size, size, device=device),
        "bool_masked_pos": mask.to(device),
        "labels": torch.randint(0, config.vocab_size, (batch, num_patches), device=device),
    }


def training_step(model, optimizer, inputs: dict, stock: bool):
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if inputs["pixel_values"].is_cuda else contextlib.nullcontext()
    )
    with autocast:
        if stock:  # the stock model takes the ids of the masked patches only
            labels = inputs["labels"][inputs["bool_masked_pos"]]
            loss = model(pixel_values=inputs["pixel_values"], bool_masked_pos=inputs["bool_masked_pos"], labels=labels).loss
        else:
            loss = model(**inputs).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def run(
    quick: bool = False,
    config: str = "small",
    image_size: int | None = None,
    batch_size: int | None = None,
    vocab_size: int = 8192,
    repeats: int = 10,
) -> dict:
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ours, stock, batch = build_models(config, image_size, batch_size, vocab_size, device)
    if quick:
        batch, repeats = min(batch, 4), 2
    inputs = make_batch(ours.config, batch, device)
    optimizers = {
        name: torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
        for name, model in (("ours", ours), ("stock", stock))
    }
    steps = {
        "ours": lambda: training_step(ours, optimizers["ours"], inputs, stock=False),
        "stock": lambda: training_step(stock, optimizers["stock"], inputs, stock=True),
    }
    seconds = time_side_by_side(steps, repeats=repeats, warmup=1 if quick else 2)
    memory = {name: peak_memory_mb(step) for name, step in steps.items()}  # warmed up: optimizer states exist
    backbone = ours.config.backbone_config
    return {
        "config": {
            "preset": config,
            "hidden_size": backbone.hidden_size,
            "num_hidden_layers": backbone.num_hidden_layers,
            "image_size": backbone.image_size,
            "patch_size": backbone.patch_size,
            "vocab_size": vocab_size,
            "batch_size": batch,
            "masked_per_image": ours.config.num_masking_patches,
            "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
            "attention": "sdpa",
        },
        "images_per_second": {name: round(batch / value, 2) for name, value in seconds.items()},
        "peak_memory_mb": {name: round(value, 1) for name, value in memory.items()},
        "beit_step_vs_stock": round(seconds["stock"] / seconds["ours"], 3),
        "memory_vs_stock": round(memory["ours"] / max(memory["stock"], 1e-9), 3),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.quick, args.config, args.image_size, args.batch_size, args.vocab_size, args.repeats)
    write_results("beit" if args.config == "small" else f"beit-{args.config}", results)


if __name__ == "__main__":
    main()
