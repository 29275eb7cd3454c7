"""Training step of `BeitMimForPreTraining` against transformers' stock `BeitForMaskedImageModeling`.

Both models get the same encoder config, the same weights, batch, masks and token ids, SDPA attention, AdamW, and
bf16 autocast on CUDA (fp32 on CPU). One step = forward + backward + optimizer step. Steps are timed side by side
(interleaved repeats, `benchmarks/common.py`); peak memory is the CUDA allocator's peak (GPU) or the resident-set
high-water mark (CPU) of one step.

    python benchmarks/beit.py                                   # CPU: ViT-Tiny/16 at 112 px
    python benchmarks/beit.py --config demo                     # CPU: the demo's encoder
    python benchmarks/beit.py --config base --image-size 224    # ViT-B/16 at 224 px (a GPU)

Key result: ``beit_step_vs_stock`` = stock seconds per step / ours (> 1: ours is faster); on CPU also
``beit_step_vs_stock_cpu_time``, the same ratio in process CPU time. The encoders are the same code, so the gain is
the head's: the stock model runs LayerNorm + Linear to the vocabulary at all N patches and takes the loss at the
~40% masked ones, ours gathers the masked tokens first. It is large where the vocabulary is wide against the
encoder (vocab / (12 x layers x width) of the encoder's compute: ~0.3 for ViT-Tiny, ~0.07 for ViT-B).
"""

import argparse
import contextlib
import os
import sys
import time

import torch
from transformers import BeitConfig, BeitForMaskedImageModeling

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import peak_memory_mb, time_side_by_side, write_results  # noqa: E402
from maskvision import BeitMimConfig, BeitMimForPreTraining  # noqa: E402

# Encoder presets, all with BEiT's 8192-token vocabulary: `small` is ViT-Tiny/16 (12 layers, width 192) at 112 px,
# small enough for a CPU; `demo` is the demo's encoder (6 layers, width 128, 32 px, 4 px patches); `base` is the
# official ViT-B/16 at 224 px (a GPU).
CONFIGS = {
    "small": {"size": "tiny", "image_size": 112, "patch_size": 16, "batch_size": 16},
    "demo": {
        "size": "tiny",
        "image_size": 32,
        "patch_size": 4,
        "hidden_size": 128,
        "num_hidden_layers": 6,
        "num_attention_heads": 4,
        "intermediate_size": 512,
        "batch_size": 64,
    },
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
            pixel_values, mask = inputs["pixel_values"], inputs["bool_masked_pos"]
            loss = model(pixel_values=pixel_values, bool_masked_pos=mask, labels=labels).loss
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
    cpu_seconds = None
    if device.type != "cuda":
        cpu_seconds = time_side_by_side(steps, repeats, warmup=0, clock=time.process_time)
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
        # the same ratio in process CPU time (CPU only), which other processes on a shared machine do not inflate
        "beit_step_vs_stock_cpu_time": cpu_seconds and round(cpu_seconds["stock"] / cpu_seconds["ours"], 3),
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
