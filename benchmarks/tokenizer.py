"""Tokenizing is overhead on every BEiT step: images per second of the DALL-E-size dVAE's ``get_codebook_indices``
at 112 px (BEiT's 14 x 14 grid), under inference mode, contiguous vs channels-last memory side by side; bf16
autocast on a GPU.

    python benchmarks/tokenizer.py [--quick]
"""

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import time_side_by_side, write_results  # noqa: E402
from maskvision import DVAEConfig, DVAETokenizer  # noqa: E402


def run(quick: bool = False) -> dict:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    batch = 2 if quick else (128 if cuda else 4)
    model = DVAETokenizer(DVAEConfig()).eval().to(device)
    channels_last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    pixels = torch.rand(batch, 3, 112, 112, device=device)
    pixels_channels_last = pixels.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    cpu_seconds: dict[str, list[float]] = {"contiguous": [], "channels_last": []}

    def tokenize(tokenizer, images, name=None):
        def call():
            start = time.process_time()
            with autocast:
                indices = tokenizer.get_codebook_indices(images)
            if name is not None:
                cpu_seconds[name].append(time.process_time() - start)
            return indices

        return call

    reference = tokenize(model, pixels)()
    agreement = float((tokenize(channels_last, pixels_channels_last)() == reference).float().mean())
    seconds = time_side_by_side(
        {
            "contiguous": tokenize(model, pixels, "contiguous"),
            "channels_last": tokenize(channels_last, pixels_channels_last, "channels_last"),
        },
        repeats=3 if quick else (10 if cuda else 5),
        warmup=1 if quick else 2,
    )
    results = {
        "image_size": 112,
        "batch_size": batch,
        "dtype": "bfloat16 autocast" if cuda else "float32",
        "threads": torch.get_num_threads(),
        "ids_agreement": round(agreement, 4),  # fraction of identical codes between the two layouts
    }
    # On a shared CPU the process's CPU time (one thread) measures the work better than the wall clock.
    cpu = {name: statistics.median(values) for name, values in cpu_seconds.items()}
    for name, value in seconds.items():
        results[name] = {
            "seconds_per_batch": round(value, 4),
            "images_per_second": round(batch / value, 2),
            "images_per_cpu_second": round(batch / cpu[name], 2),
        }
    results["channels_last_speedup"] = round(seconds["contiguous"] / seconds["channels_last"], 3)
    results["channels_last_cpu_speedup"] = round(cpu["contiguous"] / cpu["channels_last"], 3)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    write_results("tokenizer", run(quick=parser.parse_args().quick))
