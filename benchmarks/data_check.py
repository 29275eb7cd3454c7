"""The bad-image check of `load_image_dataset`: its per-image decode against a full decode, and a cached reload.

``check_*`` time, per image, `maskvision.data.bad_images.image_error` (JPEG decoded at 1/8 scale by ``draft()``,
then `to_rgb`) side by side with a full decode the way a data-loader worker does it (datasets' ``Image`` feature,
then `to_rgb`), on the demo set's 32 px CIFAR-10 JPEGs, 640x480 photos and 12-megapixel camera photos (synthetic,
smooth content). ``demo_load_*`` time `load_image_dataset("demo")` in a fresh cache (loading + the check) and again
(the check read back from datasets' cache).

    python benchmarks/data_check.py [--quick]
"""

import argparse
import io
import os
import sys
import tempfile
import time

import numpy as np
from datasets import Image as ImageFeature
from PIL import Image, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import time_side_by_side, write_results  # noqa: E402
from maskvision.data import load_image_dataset, to_rgb  # noqa: E402
from maskvision.data.bad_images import image_error  # noqa: E402
from maskvision.data.loading import DEMO_FILES  # noqa: E402


def photo_jpegs(count: int, size: tuple[int, int], seed: int = 0) -> list[dict]:
    """JPEGs (quality 90) of smooth random colour fields: photo-like sizes on disk."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        small = Image.fromarray(rng.integers(0, 256, (size[1] // 32, size[0] // 32, 3), dtype=np.uint8))
        image = small.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(2))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        images.append({"bytes": buffer.getvalue(), "path": None})
    return images


def demo_jpegs(count: int) -> list[dict]:
    import pyarrow.parquet as pq

    column = pq.read_table(DEMO_FILES["train"], columns=["image"]).column("image").to_pylist()
    return column[:count]


def seconds_per_image(values: list[dict], repeats: int) -> dict:
    feature = ImageFeature()

    def ours():
        for value in values:
            assert image_error(value, Image.MAX_IMAGE_PIXELS) is None

    def full_decode():
        for value in values:
            to_rgb(feature.decode_example(value))

    timings = time_side_by_side({"ours": ours, "full_decode": full_decode}, repeats=repeats, warmup=1)
    return {
        "ours_ms_per_image": round(1e3 * timings["ours"] / len(values), 3),
        "full_decode_ms_per_image": round(1e3 * timings["full_decode"] / len(values), 3),
        "speedup": round(timings["full_decode"] / timings["ours"], 2),
    }


def demo_load_seconds() -> dict:
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        load_image_dataset("demo", cache_dir=cache_dir)
        first = time.perf_counter() - start
        start = time.perf_counter()
        load_image_dataset("demo", cache_dir=cache_dir)
        cached = time.perf_counter() - start
    return {"demo_load_first_s": round(first, 3), "demo_load_cached_s": round(cached, 3)}


def run(quick: bool = False) -> dict:
    repeats = 3 if quick else 7
    results = {
        "check_cifar_32px": seconds_per_image(demo_jpegs(200 if quick else 1000), repeats),
        "check_photo_640x480": seconds_per_image(photo_jpegs(10 if quick else 50, (640, 480)), repeats),
        "check_photo_4000x3000": seconds_per_image(photo_jpegs(1 if quick else 4, (4000, 3000)), repeats),
    }
    results.update(demo_load_seconds())
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and repeats")
    args = parser.parse_args(argv)
    write_results("data_check", run(quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
