"""Build the embedded demo set, maskvision/data/demo/{train,test}.parquet, from CIFAR-10.

A balanced, seeded subset: ``--per-class`` train and ``--test-per-class`` test images of each of the 10 classes,
rows shuffled (so that any prefix is roughly balanced too). The images keep their original encoded bytes (CIFAR-10
as stored in the source parquet: 32x32 JPEG, about 0.9 kB each): no re-encoding, no further loss, and the whole
set stays far under the 5 MB budget. Deterministic: the same source and seed give byte-identical files.

    python tools/make_demo_data.py --source /work/shared/data/cifar10
"""

import argparse
import os
import sys

import numpy as np
import pyarrow.parquet as pq
from datasets import ClassLabel, Dataset, Features, Image

DEFAULT_OUTPUT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "maskvision", "data", "demo"))
MAX_TOTAL_BYTES = 5 * 1024 * 1024


def balanced_subset(table, per_class: int, rng: np.random.Generator) -> Dataset:
    """``per_class`` rows of each class drawn without replacement, in a random order."""
    class_names = Features.from_arrow_schema(table.schema)["label"].names
    labels = np.asarray(table.column("label"))
    chosen = []
    for label, name in enumerate(class_names):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise ValueError(f"class {name} has {len(rows)} images, fewer than {per_class}.")
        chosen.append(rng.choice(rows, size=per_class, replace=False))
    order = rng.permutation(np.concatenate(chosen))
    images = table.column("image").take(order).to_pylist()
    features = Features({"image": Image(), "label": ClassLabel(names=class_names)})
    return Dataset.from_dict(
        {
            "image": [{"bytes": image["bytes"], "path": None} for image in images],
            "label": labels[order].tolist(),
        },
        features=features,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", default="/work/shared/data/cifar10", help="folder with CIFAR-10 {train,test}.parquet"
    )
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--per-class", type=int, default=200, help="train images per class")
    parser.add_argument("--test-per-class", type=int, default=50, help="test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    os.makedirs(args.output, exist_ok=True)
    total = 0
    for split, per_class in (("train", args.per_class), ("test", args.test_per_class)):
        table = pq.read_table(os.path.join(args.source, f"{split}.parquet"), columns=["image", "label"])
        subset = balanced_subset(table, per_class, rng)
        path = os.path.join(args.output, f"{split}.parquet")
        subset.to_parquet(path)
        size = os.path.getsize(path)
        total += size
        print(f"{path}: {len(subset)} images, {size / 1e6:.2f} MB")
    print(f"total: {total / 1e6:.2f} MB")
    if total > MAX_TOTAL_BYTES:
        print(f"error: the demo set exceeds {MAX_TOTAL_BYTES} bytes; lower --per-class.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
