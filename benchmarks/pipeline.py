"""The data pipeline's images per second, to set beside each training step's: the data path must keep ahead.

For each method's collator (`augment_on_device`, as the GPU runs use it):

- ``loader``: a `DataLoader` with the process's share of the cores as workers (`default_num_workers`) decoding JPEG
  photos (synthetic, 320 x 240, smooth content) and cropping them into the paper's views (224 px; BEiT's tokenizer
  view 112 px; the masks): images/s out of the loader;
- ``device_augment``: the batched augmentation (colour, blur, solarize, normalisation) those crops then get on the
  device, images/s;
- ``tensor``: the CIFAR-10 reference's path (``--images_on_device``): 32 px images held as one uint8 tensor on the
  device, cropped there, masks drawn, augmented; batch 1024, images/s of collator and augmentation together.

    python benchmarks/pipeline.py [--quick]
"""

import argparse
import io
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import synchronize, write_results  # noqa: E402
from maskvision.data import TensorImages  # noqa: E402
from maskvision.training.inputs.collators import (  # noqa: E402
    IndexedRows,
    MaskedImageModelingCollator,
    MultiMaskCollator,
    TwoViewCollator,
)
from maskvision.training.inputs.masking import BlockwiseMaskGenerator, RandomMaskGenerator  # noqa: E402
from maskvision.training.inputs.transforms import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # noqa: E402
from maskvision.training.runs.pretrain import default_num_workers  # noqa: E402


def collator(method: str, image_size: int, patch_size: int):
    """The method's collator as its recipe builds it (tokenizer view at half the size, as BEiT's 224 / 112)."""
    stats = {"image_size": image_size, "image_mean": IMAGENET_DEFAULT_MEAN, "image_std": IMAGENET_DEFAULT_STD,
             "augment_on_device": True}  # fmt: skip
    grid = image_size // patch_size
    if method == "beit":
        return MaskedImageModelingCollator(
            **stats,
            patch_size=patch_size,
            tokenizer_image_size=image_size // 2,
            mask_generator=BlockwiseMaskGenerator(grid, round(0.4 * grid * grid)),
        )
    if method == "extrema":
        return MultiMaskCollator(**stats, patch_size=patch_size, mask_generator=RandomMaskGenerator(grid, 0.8, 4))
    return TwoViewCollator(**stats)


def jpeg_photos(count: int, seed: int = 0):
    """A `datasets.Dataset` of smooth random 320 x 240 JPEG photos (decoding costs what a photo's does)."""
    import datasets

    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        coarse.resize((320, 240), Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=90)
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    features = datasets.Features({"image": datasets.Image()})
    return datasets.Dataset.from_dict({"image": encoded}, features=features)


def loader_images_per_s(make_collator, dataset, batch: int, workers: int, batches: int) -> float:
    """Images/s out of a `DataLoader` (timed from its first batch: the workers' start-up is not counted)."""
    loader = torch.utils.data.DataLoader(
        IndexedRows(dataset),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        collate_fn=make_collator(),
        drop_last=True,
    )
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def device_images_per_s(function, batch: int, repeats: int) -> float:
    """Images/s of ``function`` (one batch), on the device, after one warm-up call."""
    function()
    synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronize()
    return repeats * batch / (time.perf_counter() - start)


def run(quick: bool = False, smoke: bool = False) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = 0 if smoke else default_num_workers()
    batch, batches = (8, 2) if smoke else (64, 4 if quick else 16)
    photos = jpeg_photos(batch * (batches + 1) * (1 if smoke else 2))
    cifar = TensorImages(torch.randint(0, 256, (2048 if not smoke else 64, 3, 32, 32), dtype=torch.uint8).to(device))
    tensor_batch = 32 if smoke else 1024
    results = {"device": str(device), "workers": workers, "batch_size": batch, "tensor_batch_size": tensor_batch}
    for method in ("beit", "extrema", "moby"):
        results[f"{method}_loader_images_per_s"] = round(
            loader_images_per_s(lambda: collator(method, 224, 16), photos, batch, workers, batches), 1
        )
        crops = collator(method, 224, 16)([photos[index] for index in range(batch)])
        crops = {key: value.to(device) for key, value in crops.items()}
        augmenting = collator(method, 224, 16)
        results[f"{method}_device_augment_images_per_s"] = round(
            device_images_per_s(lambda: augmenting.augment(crops), batch, batches), 1
        )
        tensor_collator = collator(method, 32, 4)
        rows = IndexedRows(cifar)

        def tensor_step():
            indices = torch.randint(0, len(cifar), (tensor_batch,)).tolist()
            batch_on_device = {k: v.to(device) for k, v in tensor_collator(rows.__getitems__(indices)).items()}
            return tensor_collator.augment(batch_on_device)

        results[f"{method}_tensor_images_per_s"] = round(device_images_per_s(tensor_step, tensor_batch, batches), 1)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches")
    write_results("pipeline", run(quick=parser.parse_args(argv).quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
