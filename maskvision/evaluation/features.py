"""Features of a frozen encoder for the k-NN and linear protocols: batched, in inference mode, cached on disk.

The pieces: the encoder and its pooling (`maskvision.evaluation.encoder`), its preprocessing
(`maskvision.evaluation.processors`), the cache (`maskvision.evaluation.cache`: safetensors per model fingerprint,
dataset fingerprint, pooling and layer) and the labels (`maskvision.evaluation.labels`); this module extracts.
"""

import logging
from dataclasses import dataclass

import torch

from ..data import to_rgb
from ..data.streaming import ImageStream
from ..progress import progress_bar
from .cache import DEFAULT_CACHE_DIR, FeatureCache
from .encoder import POOLINGS, Encoder, load_encoder
from .labels import class_names, missing_labels
from .processors import build_image_processor, processor_settings, resolve_image_processor

logger = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    """Features of one dataset: ``features[(pooling, layer)]`` is (N, D) float32; ``labels`` is (N,) or None."""

    features: dict[tuple[str, int], torch.Tensor]
    labels: torch.Tensor | None

    def require_labels(self, protocol: str) -> torch.Tensor:
        if self.labels is None:
            raise missing_labels(protocol)
        return self.labels


def _columns(dataset) -> tuple[str, str | None]:
    """The image column and the label column (None when unlabelled), named as `load_image_dataset` names them."""
    if "image" not in getattr(dataset, "column_names", ()):
        raise ValueError(
            "Feature extraction needs a datasets.Dataset with an 'image' column, as maskvision.data.load_image_dataset "
            f"returns; got columns {getattr(dataset, 'column_names', None)}."
        )
    return "image", ("label" if "label" in dataset.column_names else None)


def extract_features(
    encoder: Encoder,
    dataset,
    poolings=("cls",),
    layers=(-1,),
    batch_size: int = 128,
    num_workers: int = 0,
    cache_dir: str | None = DEFAULT_CACHE_DIR,
    progress: bool = True,
    description: str = "features",
) -> FeatureSet:
    """Features of every image of ``dataset`` (a `datasets.Dataset` with ``image`` and optionally ``label``, as
    `load_image_dataset` returns) for each requested (pooling, layer); read from the cache when all of them are
    there, else computed in one pass over the images and cached."""
    keys = encoder.check_request(poolings, layers)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    _columns(dataset)  # a dataset without images fails before the cache is looked at
    dataset_fingerprint = getattr(dataset, "_fingerprint", None)  # set by `datasets` for every Dataset
    if isinstance(dataset, ImageStream):  # read once, as it streams: nothing identifies its content
        cache_dir = None
    elif dataset_fingerprint is None and cache_dir is not None:
        logger.warning("The dataset has no fingerprint (not a datasets.Dataset): its features are not cached.")
        cache_dir = None
    cache = FeatureCache(cache_dir)
    cache_keys = {}
    if cache_dir is not None:
        dataset_fingerprint = f"{dataset_fingerprint}:{len(dataset)}"
        model_fingerprint = encoder.fingerprint()
        cache_keys = {key: FeatureCache.key(model_fingerprint, dataset_fingerprint, *key) for key in keys}

    cached = {key: cache.load(cache_keys[key]) for key in cache_keys}
    if cached and all(value is not None for value in cached.values()):
        labels = next(iter(cached.values())).get("labels")
        logger.info("Features of %s for %s read from %s.", encoder.name, description, cache.directory)
        return FeatureSet(features={key: value["features"] for key, value in cached.items()}, labels=labels)

    computed = compute_features(
        encoder,
        dataset,
        keys,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        description=description,
    )
    labels = {} if computed.labels is None else {"labels": computed.labels}
    for key in cache_keys:
        metadata = {"model": encoder.name, "pooling": key[0], "layer": str(key[1]), "dataset": dataset_fingerprint}
        cache.save(cache_keys[key], {"features": computed.features[key]} | labels, metadata)
    return computed


def compute_features(
    encoder: Encoder,
    dataset,
    keys: list[tuple[str, int]],
    *,
    batch_size: int = 128,
    num_workers: int = 0,
    progress: bool = True,
    description: str = "features",
) -> FeatureSet:
    """One pass of ``encoder`` over the images of ``dataset`` (a `datasets.Dataset` or an `ImageStream`), in batches
    decoded by ``num_workers`` data-loader workers: the features of every (pooling, layer) in ``keys``, checked by
    `Encoder.check_request`."""
    images_name, labels_name = _columns(dataset)
    columns = [images_name] + ([labels_name] if labels_name else [])
    rows = dataset if isinstance(dataset, ImageStream) else dataset.select_columns(columns)

    def collate(batch):
        pixel_values = encoder.preprocess([to_rgb(row[images_name]) for row in batch])
        labels = torch.tensor([row[labels_name] for row in batch], dtype=torch.long) if labels_name else None
        return pixel_values, labels

    loader = torch.utils.data.DataLoader(rows, batch_size=batch_size, num_workers=num_workers, collate_fn=collate)
    device = next(encoder.model.parameters()).device
    parts: dict[tuple[str, int], list[torch.Tensor]] = {key: [] for key in keys}
    label_parts = []
    for pixel_values, labels in progress_bar(loader, enabled=progress, desc=f"{description} ({encoder.name})"):
        batch = encoder.features(pixel_values.to(device), keys)
        for key in keys:
            parts[key].append(batch[key].float().cpu())
        if labels is not None:
            label_parts.append(labels)
    features = {key: torch.cat(values) for key, values in parts.items()}
    return FeatureSet(features=features, labels=torch.cat(label_parts) if label_parts else None)


__all__ = [  # with the names of the modules it was split into, imported from here
    "DEFAULT_CACHE_DIR",
    "POOLINGS",
    "Encoder",
    "FeatureCache",
    "FeatureSet",
    "build_image_processor",
    "class_names",
    "compute_features",
    "extract_features",
    "load_encoder",
    "processor_settings",
    "resolve_image_processor",
]
