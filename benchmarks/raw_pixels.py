"""Raw pixels on CIFAR-10 as features: the k-NN and linear-probe floors every pretrained encoder must beat, and
the speed of both protocols.

Features are the 32x32x3 pixels flattened (3072 values), through `maskvision.evaluation` exactly as encoder
features go: weighted k-NN (cosine, k 20 and 200, T 0.07) with the 50 000 training images as memory bank, and the
linear probe (learning-rate sweep on a held-out 10%, 100 epochs); the 10 000 test images are evaluated. ``quick``
uses 5 000 / 1 000 images and 10 probe epochs. Cosine similarity depends on where pixel space is centred, so the
k-NN is measured for three preprocessings (`VARIANTS`); the probe standardises its inputs, so one is enough.

    python benchmarks/raw_pixels.py [--quick] [--data-dir /work/shared/data/cifar10]
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_results  # noqa: E402
from maskvision.data import random_subset  # noqa: E402
from maskvision.evaluation import knn_evaluate, linear_probe  # noqa: E402

DEFAULT_DATA_DIR = os.environ.get("CIFAR10_DIR", "/work/shared/data/cifar10")


def _pixels(path: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    import datasets

    dataset = random_subset(datasets.Dataset.from_parquet(path), limit)  # the files are sorted by class
    images = np.stack([np.asarray(image.convert("RGB"), dtype=np.uint8) for image in dataset["image"]])
    features = torch.from_numpy(images).reshape(len(images), -1).float() / 255.0
    return features, torch.tensor(dataset["label"], dtype=torch.long)


# Pixel preprocessings: as stored ([0, 1]); normalised like an encoder input with mean = std = 0.5 ([-1, 1]);
# centred by the training set's mean image.
VARIANTS = ("unit_range", "normalized", "centered")


def _variant(name: str, train: torch.Tensor, test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "unit_range":
        return train, test
    if name == "normalized":
        return (train - 0.5) / 0.5, (test - 0.5) / 0.5
    mean = train.mean(dim=0, keepdim=True)
    return train - mean, test - mean


def run(quick: bool = False, data_dir: str = DEFAULT_DATA_DIR) -> dict:
    train_limit, test_limit = (5000, 1000) if quick else (None, None)
    train_pixels, train_labels = _pixels(os.path.join(data_dir, "train.parquet"), train_limit)
    test_pixels, test_labels = _pixels(os.path.join(data_dir, "test.parquet"), test_limit)
    results = {"train_images": len(train_labels), "test_images": len(test_labels), "feature_dim": train_pixels.shape[1]}
    knn_evaluate(train_pixels[:100], train_labels[:100], test_pixels[:10], test_labels[:10], num_classes=10)  # warm-up
    for name in VARIANTS:
        train_features, test_features = _variant(name, train_pixels, test_pixels)
        start = time.perf_counter()
        accuracies = knn_evaluate(train_features, train_labels, test_features, test_labels, num_classes=10)
        seconds = time.perf_counter() - start
        for k, metrics in accuracies.items():
            results |= {f"{name}_k{k}_{metric}": round(value, 4) for metric, value in metrics.items()}
        results[f"{name}_knn_test_images_per_second"] = round(len(test_labels) / seconds, 1)

    epochs = 10 if quick else 100
    start = time.perf_counter()
    probe = linear_probe(train_pixels, train_labels, test_pixels, test_labels, num_classes=10, epochs=epochs)
    results |= {
        "linear_epochs": epochs,
        "linear_top1_accuracy": round(probe.top1_accuracy, 4),
        "linear_top5_accuracy": round(probe.top5_accuracy, 4),
        "linear_learning_rate": probe.learning_rate,
        "linear_validation_top1": {str(lr): round(value, 4) for lr, value in probe.validation_top1.items()},
        "linear_seconds": round(time.perf_counter() - start, 1),
    }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    arguments = parser.parse_args()
    write_results("raw_pixels", run(quick=arguments.quick, data_dir=arguments.data_dir))
