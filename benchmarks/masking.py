"""Masking and collator throughput: vectorised block masking against BEiT's per-image algorithm, side by side.

- ``mask_*``: 256 blockwise masks on BEiT's setting (14x14 patches, 75 masked) by `BlockwiseMaskGenerator.gen`
  and by 256 calls of the per-image reference algorithm (`BlockwiseMaskGenerator.reference`, BEiT v1's code);
  ``mask_speedup`` is their ratio of wall-clock medians (goal: >= 20), ``mask_speedup_cpu_time`` that of the same
  calls' CPU time, which stays put when other processes load a shared machine.
- ``random_mask_ms``: 256 x 5 ExtreMA masks (80%) by `RandomMaskGenerator.gen`.
- ``data_images_per_s``: images per second through `MaskedImageModelingCollator` (BEiT, 224 px + 112 px views,
  masks) in one process, on CIFAR-10 (``MASKVISION_BENCH_PARQUET``, default the shared CIFAR-10 train parquet, else
  the demo set); ``extrema_images_per_s`` / ``moby_images_per_s`` likewise for the other two collators;
  ``data_crops_only_images_per_s`` / ``moby_crops_only_images_per_s``: the BEiT and MoBY collators with
  ``augment_on_device`` (crops and masks only; the batched augmentation runs on the accelerator).

    python benchmarks/masking.py [--quick]
"""

import argparse
import os
import random
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import time_side_by_side, write_results  # noqa: E402
from maskvision.data import load_image_dataset  # noqa: E402
from maskvision.training.inputs.collators import (  # noqa: E402
    MaskedImageModelingCollator,
    MultiMaskCollator,
    TwoViewCollator,
)
from maskvision.training.inputs.masking import BlockwiseMaskGenerator, RandomMaskGenerator  # noqa: E402
from maskvision.training.inputs.transforms import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # noqa: E402

CIFAR_TRAIN = "/work/shared/data/cifar10/train.parquet"
BATCH = 256


def side_by_side_with_cpu_time(candidates: dict, repeats: int) -> tuple[dict, dict]:
    """`time_side_by_side`'s median wall-clock seconds, and the median CPU seconds of the same calls (which other
    processes on a shared machine do not inflate)."""
    cpu = {name: [] for name in candidates}

    def with_cpu_time(name, function):
        def call():
            start = time.process_time()
            function()
            cpu[name].append(time.process_time() - start)

        return call

    wall = time_side_by_side({name: with_cpu_time(name, function) for name, function in candidates.items()}, repeats)
    return wall, {name: statistics.median(values[-repeats:]) for name, values in cpu.items()}  # no warm-up


def masking(repeats: int) -> dict:
    generator = BlockwiseMaskGenerator(14, 75)
    torch_generator, rng = torch.Generator().manual_seed(0), random.Random(0)
    wall, cpu = side_by_side_with_cpu_time(
        {
            "vectorised": lambda: generator.gen(BATCH, torch_generator),
            "per_image": lambda: [generator.reference(rng) for _ in range(BATCH)],
        },
        repeats=repeats,
    )
    random_masks = RandomMaskGenerator(14, 0.8, num_masks=5)
    random_time = time_side_by_side({"random": lambda: random_masks.gen(BATCH, torch_generator)}, repeats=repeats)
    return {
        "mask_vectorised_ms": round(1e3 * wall["vectorised"], 3),
        "mask_per_image_ms": round(1e3 * wall["per_image"], 3),
        "mask_speedup": round(wall["per_image"] / wall["vectorised"], 1),
        "mask_speedup_cpu_time": round(cpu["per_image"] / cpu["vectorised"], 1),
        "random_mask_ms": round(1e3 * random_time["random"], 3),
    }


def collators(batches: int, batch_size: int = 64) -> dict:
    source = os.environ.get("MASKVISION_BENCH_PARQUET", CIFAR_TRAIN if os.path.exists(CIFAR_TRAIN) else "demo")
    dataset = load_image_dataset(source)
    stats = {"image_size": 224, "image_mean": IMAGENET_DEFAULT_MEAN, "image_std": IMAGENET_DEFAULT_STD}

    def beit(augment_on_device=False):
        return MaskedImageModelingCollator(
            **stats,
            patch_size=16,
            tokenizer_image_size=112,
            mask_generator=BlockwiseMaskGenerator(14, 75),
            augment_on_device=augment_on_device,
        )

    def moby(augment_on_device=False):
        return TwoViewCollator(**stats, augment_on_device=augment_on_device)

    candidates = {
        "data": beit(),
        "extrema": MultiMaskCollator(**stats, patch_size=16, mask_generator=RandomMaskGenerator(14, 0.8, 5)),
        "moby": moby(),
        # --augment_on_device: crops (uint8) and masks only, the batched augmentation runs on the accelerator
        "data_crops_only": beit(augment_on_device=True),
        "moby_crops_only": moby(augment_on_device=True),
    }
    results = {"data_source": os.path.basename(source), "data_batch_size": batch_size}
    for name, collator in candidates.items():
        collator([dataset[index] for index in range(batch_size)])  # warm-up
        start = time.perf_counter()
        for batch in range(batches):
            rows = dataset[batch * batch_size : (batch + 1) * batch_size]
            collator([{"image": image} for image in rows["image"]])
        results[f"{name}_images_per_s"] = round(batches * batch_size / (time.perf_counter() - start), 1)
    return results


def run(quick: bool = False) -> dict:
    results = {"torch_threads": torch.get_num_threads()}
    results.update(masking(repeats=5 if quick else 20))
    results.update(collators(batches=2 if quick else 8))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and batches")
    args = parser.parse_args(argv)
    write_results("masking", run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
