"""Training step of `ExtremaForPreTraining` (80% x 5 and 90% x 8 masks) against `BeitMimForPreTraining`.

All get the same encoder size, image size and batch, SDPA attention, AdamW, and bf16 autocast on CUDA (fp32 on CPU).
One step = forward + backward + optimizer step; ExtreMA's includes its teacher's forward on the full view and the
EMA update of the teacher. BEiT is timed twice: its real training step, which tokenizes the 112 px view with the
DALL-E-sized dVAE (`beit`, random weights: the cost does not depend on them), and its model step alone with token
ids given in advance (`beit_model`, a lower bound of any BEiT step). Steps are timed side by side (interleaved
repeats, `benchmarks/common.py`).

    python benchmarks/extrema.py                                 # CPU: ViT-Tiny/16 at 224 px, batch 8
    python benchmarks/extrema.py --size base --batch-size 64     # ViT-B/16 at 224 px (a GPU)

Key results: ``extrema_80x5_vs_beit_step`` = BEiT seconds per training step / ExtreMA 80% x 5 seconds per step (>= 1:
ExtreMA is no slower), ``extrema_80x5_vs_beit_model_step`` the same against BEiT without its tokenizer, and
``step_seconds_by_mask_ratio``: how ExtreMA's step changes with the mask ratio (4 masks, 75-90%).
"""

import argparse
import contextlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import maskvision  # noqa: E402
from benchmarks.common import peak_memory_mb, time_side_by_side, write_results  # noqa: E402
from maskvision import ExtremaConfig, ExtremaForPreTraining  # noqa: E402
from maskvision.configuration.configuration_extrema import extrema_backbone_config  # noqa: E402

DEFAULT_BATCH = {"cpu": 8, "cuda": 64}
MASK_RATIOS = (0.75, 0.8, 0.85, 0.9)
RATIO_SCAN_MASKS = 4  # the most masks that every ratio of the scan allows (75%: 4 x 49 visible of 196)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def compiled(model: torch.nn.Module, backend: str | None) -> torch.nn.Module:
    """``model`` with its forward compiled by ``torch.compile`` (``backend``: "inductor", ...), or as it is (None)."""
    if backend is not None:
        model.compile(backend=backend)
    return model


def extrema_step(
    size: str,
    image_size: int,
    batch: int,
    mask_ratio: float,
    num_masks: int,
    device: torch.device,
    compile_backend: str | None = None,
    head_size: int = 4096,
):
    config = ExtremaConfig(
        backbone_config=extrema_backbone_config(size, image_size=image_size, patch_size=16),
        mask_ratio=mask_ratio,
        num_masks=num_masks,
        projector_hidden_size=head_size,
        predictor_hidden_size=head_size,
    )
    model = ExtremaForPreTraining(config).to(device).train()
    model.set_attn_implementation("sdpa")
    compiled(model, compile_backend)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, betas=(0.9, 0.95))
    visible, patches = config.num_visible_patches, config.num_patches
    order = torch.rand(batch, patches, device=device).argsort(dim=1)[:, : num_masks * visible]
    masks = torch.ones(batch, num_masks, patches, dtype=torch.bool, device=device)
    inputs = {
        "pixel_values": torch.randn(batch, 3, image_size, image_size, device=device),
        "teacher_pixel_values": torch.randn(batch, 3, image_size, image_size, device=device),
        "bool_masked_pos": masks.scatter_(2, order.view(batch, num_masks, visible), False),
    }

    def step():
        with autocast(device):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        model.update_teacher(0.996)

    return step


def beit_step(
    size: str, image_size: int, batch: int, device: torch.device, tokenizer: bool, compile_backend: str | None = None
):
    """BEiT's step on the same backbone, with its dVAE tokenizer or with token ids given in advance; None while
    `BeitMimForPreTraining` (or, with ``tokenizer``, the dVAE) is not in maskvision."""
    if not hasattr(maskvision, "BeitMimForPreTraining") or (tokenizer and not hasattr(maskvision, "DVAETokenizer")):
        return None
    config = maskvision.BeitMimConfig.from_size(size, image_size=image_size, patch_size=16)
    model = maskvision.BeitMimForPreTraining(config).to(device).train()
    model.set_attn_implementation("sdpa")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    patches, grid = config.num_patches, config.grid_size
    mask = torch.rand(batch, patches, device=device).argsort(dim=1).argsort(dim=1) < config.num_masking_patches
    inputs = {"pixel_values": torch.randn(batch, 3, image_size, image_size, device=device), "bool_masked_pos": mask}
    if tokenizer:
        dvae = maskvision.DVAETokenizer(maskvision.DVAEConfig(vocab_size=config.vocab_size, image_size=8 * grid))
        model.set_tokenizer(dvae)
        inputs["tokenizer_pixel_values"] = torch.rand(batch, 3, 8 * grid, 8 * grid, device=device)
    else:
        inputs["labels"] = torch.randint(0, config.vocab_size, (batch, patches), device=device)
    compiled(model, compile_backend)

    def step():
        with autocast(device):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run(
    quick: bool = False, size: str = "tiny", image_size: int = 224, batch_size: int | None = None, repeats: int = 10
) -> dict:
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batch = batch_size or DEFAULT_BATCH[device.type]
    if quick:
        batch, repeats = min(batch, 2), 2
    steps = {
        "extrema_80x5": extrema_step(size, image_size, batch, 0.8, 5, device),
        "extrema_90x8": extrema_step(size, image_size, batch, 0.9, 8, device),
    }
    for name, tokenizer in (("beit", True), ("beit_model", False)):
        if (step := beit_step(size, image_size, batch, device, tokenizer)) is not None:
            steps[name] = step
    seconds = time_side_by_side(steps, repeats=repeats, warmup=1 if quick else 2)
    memory = {name: peak_memory_mb(step) for name, step in steps.items()}
    del steps
    by_ratio = {
        f"{ratio:.2f}": extrema_step(size, image_size, batch, ratio, RATIO_SCAN_MASKS, device) for ratio in MASK_RATIOS
    }
    ratio_seconds = time_side_by_side(by_ratio, repeats=repeats, warmup=1 if quick else 2)
    results = {
        "config": {
            "size": size,
            "image_size": image_size,
            "patch_size": 16,
            "batch_size": batch,
            "dtype": "bf16 autocast" if device.type == "cuda" else "fp32",
            "attention": "sdpa",
            "beit": "training step with the DALL-E-sized dVAE tokenizer at 112 px",
            "beit_model": "model step with token ids given (no tokenizer)",
        },
        "step_seconds": {name: round(value, 4) for name, value in seconds.items()},
        "images_per_second": {name: round(batch / value, 2) for name, value in seconds.items()},
        "peak_memory_mb": {name: round(value, 1) for name, value in memory.items()},
        "step_seconds_by_mask_ratio": {name: round(value, 4) for name, value in ratio_seconds.items()},
        "extrema_90x8_vs_80x5_step": round(seconds["extrema_80x5"] / seconds["extrema_90x8"], 3),
    }
    for beit in ("beit", "beit_model"):  # None while BEiT (or its tokenizer) is not in maskvision
        for extrema in ("80x5", "90x8"):
            ratio = seconds[beit] / seconds[f"extrema_{extrema}"] if beit in seconds else None
            results[f"extrema_{extrema}_vs_{beit}_step"] = None if ratio is None else round(ratio, 3)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "small", "base", "large"], default="tiny")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.quick, args.size, args.image_size, args.batch_size, args.repeats)
    write_results("extrema" if args.size == "tiny" else f"extrema-{args.size}", results)


if __name__ == "__main__":
    main()
