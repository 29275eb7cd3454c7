"""How a BEiT training step grows with the image size: 112, 224 and 448 px at a fixed patch size (16), so the token
count goes 49 → 196 → 784.

One step = forward + backward + AdamW step of `BeitMimForPreTraining` (ViT-Tiny/16 on CPU, ViT-B/16 on a GPU with bf16
autocast), ~40% of the patches masked, token ids given (the tokenizer's cost is `benchmarks/tokenizer.py`'s). Sizes
are timed side by side (interleaved repeats). ``step_seconds_by_image_size`` holds the seconds per step,
``step_time_growth`` each size's time over 112 px's next to ``token_growth`` (4x per doubling): attention's quadratic
term shows where the time grows faster than the tokens.

    python benchmarks/scaling.py [--quick]
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.beit import make_batch, training_step  # noqa: E402
from benchmarks.common import time_side_by_side, write_results  # noqa: E402
from maskvision import BeitMimConfig, BeitMimForPreTraining  # noqa: E402

IMAGE_SIZES = (112, 224, 448)


def beit_step(size: str, image_size: int, batch: int, device: torch.device):
    model = BeitMimForPreTraining(BeitMimConfig.from_size(size, image_size=image_size, patch_size=16))
    model.set_attn_implementation("sdpa")
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    inputs = make_batch(model.config, batch, device)
    return lambda: training_step(model, optimizer, inputs, stock=False)


def run(quick: bool = False) -> dict:
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size, batch = ("base", 32) if cuda else ("tiny", 4)
    if quick:
        batch = min(batch, 2)
    steps = {str(image_size): beit_step(size, image_size, batch, device) for image_size in IMAGE_SIZES}
    seconds = time_side_by_side(steps, repeats=2 if quick else 5, warmup=1)
    base = seconds[str(IMAGE_SIZES[0])]
    return {
        "config": {
            "method": "beit",
            "size": size,
            "patch_size": 16,
            "batch_size": batch,
            "dtype": "bf16 autocast" if cuda else "fp32",
            "attention": "sdpa",
        },
        "step_seconds_by_image_size": {name: round(value, 4) for name, value in seconds.items()},
        "images_per_second_by_image_size": {name: round(batch / value, 2) for name, value in seconds.items()},
        "step_time_growth": {name: round(value / base, 2) for name, value in seconds.items()},
        "token_growth": {str(s): (s // 16) ** 2 / (IMAGE_SIZES[0] // 16) ** 2 for s in IMAGE_SIZES},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    write_results("scaling", run(quick=parser.parse_args().quick))
