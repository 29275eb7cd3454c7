"""Features of a frozen encoder for the k-NN and linear protocols: batched, in inference mode, cached on disk.

An `Encoder` is a model in eval mode plus the preprocessing it expects (the checkpoint's image processor, or an
explicit size / mean / std). It works on

- stock transformers checkpoints: `BeitModel`, `ViTModel`, `SwinModel` and the like, and their
  ``...ForImageClassification`` variants (the backbone is used, the head ignored);
- maskvision encoder exports (``<run>/encoder``: stock `BeitModel` / `SwinModel` with an image processor);
- maskvision pretraining checkpoints (``<run>``): their exported encoder, or, for models exposing
  ``get_image_features(pixel_values, pooling=...)`` (ExtreMA), that method, which is what makes
  ``pooling="class_attention"`` possible.

Pooling: ``cls`` is the [CLS] token; ``mean`` is the average of the patch tokens (at the last layer, the model's
own mean pooler where it has one: Beit with ``use_mean_pooling``, Swin); ``class_attention`` is ExtreMA's
class-attention pooler. ``layer`` numbers the blocks from 1 (Swin: the stages); the last layer is the model's
final representation (after its final norm), earlier layers are the raw hidden states of that block, which is
how BEiT's paper probes every block.

Features are cached as safetensors per (model fingerprint, dataset fingerprint, preprocessing, pooling, layer):
the model fingerprint hashes the weights and the config, so changed weights never hit a stale cache.
"""

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field

import datasets
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoImageProcessor, AutoModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from ..data import to_rgb
from ..data.streaming import ImageStream
from ..modeling.modeling_utils import MaskVisionPreTrainedModel
from ..progress import progress_bar

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean", "class_attention")
DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "maskvision", "features"
)
_VOLATILE_CONFIG_KEYS = {"transformers_version", "architectures", "output_hidden_states", "return_dict", "dtype"}


# --------------------------------------------------------------------------------------------------- the encoder
@dataclass
class Encoder:
    """A frozen encoder and the preprocessing its features are computed with."""

    model: nn.Module
    image_processor: object
    name: str = "model"
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.model.eval()
        self.model.requires_grad_(False)

    @property
    def config(self):
        config = self.model.config
        return getattr(config, "backbone_config", None) or config

    @property
    def has_pooling_api(self) -> bool:
        """True for maskvision pretraining models with ``get_image_features(pixel_values, pooling=...)``."""
        return isinstance(self.model, MaskVisionPreTrainedModel) and hasattr(self.model, "get_image_features")

    @property
    def is_hierarchical(self) -> bool:
        """Swin-style encoders: stages of patch tokens, no [CLS] token."""
        return hasattr(self.config, "depths")

    @property
    def num_layers(self) -> int:
        """Blocks (ViT, Beit) or stages (Swin) whose outputs ``layer`` can select."""
        return len(self.config.depths) if self.is_hierarchical else int(self.config.num_hidden_layers)

    @property
    def default_pooling(self) -> str:
        """The model's own pooling: class-attention for ExtreMA, mean for mean-pooled models, else [CLS]."""
        if self.has_pooling_api:
            return "class_attention"
        return "mean" if self.is_hierarchical or self._has_mean_pooler() else "cls"

    def fingerprint(self) -> str:
        """Hash of the weights, the config and the preprocessing: the model's part of the feature-cache key."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            config = {
                key: value
                for key, value in self.model.config.to_dict().items()
                if not key.startswith("_") and key not in _VOLATILE_CONFIG_KEYS
            }
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
            digest.update(_processor_json(self.image_processor).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                tensor = tensor.detach().cpu().contiguous().reshape(-1)
                digest.update(f"{name}:{tensor.dtype}:{tensor.numel()}".encode())
                digest.update(tensor.view(torch.uint8).numpy().data)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def resolve_layer(self, layer: int) -> int:
        """1-based block number; negative values count from the end (-1 is the last block)."""
        depth = self.num_layers
        if not (1 <= layer <= depth or -depth <= layer <= -1):
            raise ValueError(
                f"layer must be in 1..{depth} (or -{depth}..-1 from the end) for this {depth}-layer encoder, "
                f"got {layer}."
            )
        return layer if layer > 0 else depth + 1 + layer

    def check_request(self, poolings, layers) -> list[tuple[str, int]]:
        """Validate (pooling, layer) pairs before any compute; returns them with layers made 1-based."""
        keys = []
        for pooling in poolings:
            if pooling not in POOLINGS:
                raise ValueError(f"Unknown pooling {pooling!r}: choose one of {list(POOLINGS)}.")
            if pooling == "class_attention" and not self.has_pooling_api:
                raise ValueError(
                    "pooling='class_attention' needs an ExtreMA pretraining checkpoint (the run directory, whose "
                    f"model has get_image_features(pixel_values, pooling=...)); {self.name} is a "
                    f"{type(self.model).__name__}. Use 'cls' or 'mean'."
                )
            if pooling == "cls" and (self.is_hierarchical or self.has_pooling_api):
                raise ValueError(
                    f"pooling='cls' needs an encoder with a [CLS] token; {type(self.model).__name__} has none. "
                    f"Use {'mean or class_attention' if self.has_pooling_api else 'mean'}."
                )
            for layer in layers:
                layer = self.resolve_layer(layer)
                if self.has_pooling_api and layer != self.num_layers:
                    raise ValueError(
                        f"{type(self.model).__name__} gives features of its last layer only (layer {self.num_layers}); "
                        f"for block-wise features evaluate its exported encoder (<run>/encoder)."
                    )
                keys.append((pooling, layer))
        return list(dict.fromkeys(keys))

    @torch.inference_mode()
    def features(self, pixel_values: torch.Tensor, keys: list[tuple[str, int]]) -> dict[tuple[str, int], torch.Tensor]:
        """Pooled features (B, D) of one batch for each requested (pooling, layer)."""
        if self.has_pooling_api:
            return {key: self.model.get_image_features(pixel_values, pooling=key[0]) for key in keys}
        last = self.num_layers
        need_hidden = any(layer != last for _, layer in keys)
        outputs = self.model(pixel_values=pixel_values, output_hidden_states=need_hidden)
        result = {}
        for pooling, layer in keys:
            if layer == last:
                result[(pooling, layer)] = self._pool_last(outputs, pooling, pixel_values)
            else:
                tokens = outputs.hidden_states[layer]
                result[(pooling, layer)] = self._pool_tokens(tokens, pooling, pixel_values)
        return result

    # The model's own final representation: its last hidden state (after the final norm) or its mean pooler.
    def _pool_last(self, outputs, pooling: str, pixel_values: torch.Tensor) -> torch.Tensor:
        if pooling == "mean" and self._has_mean_pooler():
            return outputs.pooler_output.flatten(1)
        return self._pool_tokens(outputs.last_hidden_state, pooling, pixel_values)

    def _pool_tokens(self, tokens: torch.Tensor, pooling: str, pixel_values: torch.Tensor) -> torch.Tensor:
        prefix = 0 if self.is_hierarchical else tokens.shape[1] - self._num_patches(pixel_values)
        if pooling == "cls":
            return tokens[:, 0]
        return tokens[:, prefix:].mean(dim=1)

    def _num_patches(self, pixel_values: torch.Tensor) -> int:
        patch = self.config.patch_size
        patch_height, patch_width = (patch, patch) if isinstance(patch, int) else patch
        return (pixel_values.shape[-2] // patch_height) * (pixel_values.shape[-1] // patch_width)

    def _has_mean_pooler(self) -> bool:
        pooler = getattr(self.model, "pooler", None)
        if isinstance(pooler, nn.AdaptiveAvgPool1d):  # Swin
            return True
        return pooler is not None and bool(getattr(self.config, "use_mean_pooling", False))  # Beit, Data2VecVision

    def preprocess(self, images: list) -> torch.Tensor:
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]


def _processor_json(image_processor) -> str:
    values = {key: value for key, value in image_processor.to_dict().items() if not key.startswith("_")}
    return json.dumps(values, sort_keys=True, default=str)


def build_image_processor(image_size: int, image_mean, image_std):
    """Resize to ``image_size`` square, rescale to [0, 1], normalise with ``image_mean`` / ``image_std``."""
    for name, values in (("image_mean", image_mean), ("image_std", image_std)):
        if values is None or len(values) != 3:
            raise ValueError(f"{name} must hold 3 values (one per RGB channel), got {values!r}.")
    if any(value <= 0 for value in image_std):
        raise ValueError(f"image_std values must be positive, got {list(image_std)}.")
    if image_size is None or image_size <= 0:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size!r}.")
    return ViTImageProcessorPil(
        size={"height": int(image_size), "width": int(image_size)},
        image_mean=[float(value) for value in image_mean],
        image_std=[float(value) for value in image_std],
    )


def processor_settings(image_processor) -> tuple[int | None, list | None, list | None]:
    """(side in pixels of the model's input, mean, std) of an image processor, None where it has none."""
    if image_processor is None:
        return None, None, None
    size = getattr(image_processor, "size", None)
    if getattr(image_processor, "do_center_crop", False):
        size = getattr(image_processor, "crop_size", None) or size
    size = dict(size) if size is not None else {}
    side = size.get("height") or size.get("shortest_edge")
    return side, getattr(image_processor, "image_mean", None), getattr(image_processor, "image_std", None)


def resolve_image_processor(image_processor, config, name: str, image_size=None, image_mean=None, image_std=None):
    """The checkpoint's image processor, or a resize + normalise one where explicit settings override it.

    Without a checkpoint processor, ``image_mean`` and ``image_std`` are required; the size defaults to the
    config's ``image_size``.
    """
    if image_processor is not None and image_size is None and image_mean is None and image_std is None:
        return image_processor
    size, mean, std = processor_settings(image_processor)
    config = getattr(config, "backbone_config", None) or config
    config_size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
    mean, std = image_mean or mean, image_std or std
    missing = [flag for flag, value in (("image_mean", mean), ("image_std", std)) if value is None]
    if missing:
        raise ValueError(
            f"{name} has no image processor (preprocessor_config.json): give {' and '.join(missing)} "
            f"(and image_size, default {config_size}) explicitly."
        )
    return build_image_processor(image_size or size or config_size, mean, std)


def load_encoder(
    model,
    image_processor=None,
    image_size: int | None = None,
    image_mean=None,
    image_std=None,
    device: str | torch.device | None = None,
) -> Encoder:
    """An `Encoder` from a path or Hub id (or a model object), with the checkpoint's image processor.

    ``image_size`` / ``image_mean`` / ``image_std`` override the checkpoint's preprocessing; a checkpoint without an
    image processor needs ``image_mean`` and ``image_std`` (the size defaults to the config's ``image_size``).
    """
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        if image_processor is None:
            try:
                image_processor = AutoImageProcessor.from_pretrained(model)
            except (OSError, ValueError):
                image_processor = None
        model = AutoModel.from_pretrained(model)
    if isinstance(model, MaskVisionPreTrainedModel):
        image_processor = image_processor or model.image_processor()
        if not hasattr(model, "get_image_features"):
            model = model.encoder_for_export()

    image_processor = resolve_image_processor(image_processor, model.config, name, image_size, image_mean, image_std)

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Encoder(model=model.to(device), image_processor=image_processor, name=name)


# -------------------------------------------------------------------------------------------- extraction + cache
@dataclass
class FeatureSet:
    """Features of one dataset: ``features[(pooling, layer)]`` is (N, D) float32; ``labels`` is (N,) or None."""

    features: dict[tuple[str, int], torch.Tensor]
    labels: torch.Tensor | None

    def require_labels(self, protocol: str) -> torch.Tensor:
        if self.labels is None:
            raise ValueError(
                f"The {protocol} protocol needs labels, and this dataset has no label column. "
                "Use a labelled dataset (an image folder with one sub-folder per class, or a dataset with a "
                "ClassLabel column)."
            )
        return self.labels


def _columns(dataset) -> tuple[str, str | None]:
    """The image column and the label column (None when unlabelled), named as `load_image_dataset` names them."""
    if "image" not in getattr(dataset, "column_names", ()):
        raise ValueError(
            "Feature extraction needs a datasets.Dataset with an 'image' column, as maskvision.data.load_image_dataset "
            f"returns; got columns {getattr(dataset, 'column_names', None)}."
        )
    return "image", ("label" if "label" in dataset.column_names else None)


def class_names(train, evaluation, protocol: str) -> list[str] | None:
    """The class names shared by a training and an evaluation dataset (ClassLabel names, else the label ids);
    raises when either has no ``label`` column or when they name their classes differently. None for a stream with
    integer labels: its classes are known once it is read."""
    names = []
    for dataset, role in ((train, "training"), (evaluation, "evaluation")):
        if "label" not in dataset.column_names:
            raise ValueError(
                f"The {protocol} protocol needs labels, and the {role} dataset has no label column: use labelled "
                "images (an image folder with one sub-folder per class, or a dataset with a ClassLabel column)."
            )
        feature = dataset.features["label"]
        if isinstance(feature, datasets.ClassLabel):
            names.append(list(feature.names))
        elif isinstance(dataset, ImageStream):
            return None
        else:
            names.append([str(index) for index in range(max(dataset["label"]) + 1)])
    if names[0] != names[1]:
        if all(name.isdigit() for name in names[0] + names[1]):  # integer labels: the union of the ids
            return max(names, key=len)
        raise ValueError(
            f"The training and evaluation datasets name their classes differently: {names[0]} vs {names[1]}."
        )
    return names[0]


class FeatureCache:
    """Safetensors files of features (and labels) keyed by a hash of everything they depend on."""

    def __init__(self, directory: str | None = DEFAULT_CACHE_DIR):
        self.directory = directory

    @staticmethod
    def key(model_fingerprint: str, dataset_fingerprint: str, pooling: str, layer: int) -> str:
        material = json.dumps([model_fingerprint, dataset_fingerprint, pooling, layer])
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.safetensors")

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        if self.directory is None or not os.path.isfile(self.path(key)):
            return None
        try:
            return load_file(self.path(key))
        except (OSError, ValueError, RuntimeError) as error:  # a truncated file from a killed run: recompute
            logger.warning("Ignoring unreadable feature cache %s (%s).", self.path(key), error)
            return None

    def save(self, key: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        if self.directory is None:
            return
        os.makedirs(self.directory, exist_ok=True)
        partial = f"{self.path(key)}.{os.getpid()}.partial"
        save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, partial, metadata=metadata)
        os.replace(partial, self.path(key))  # atomic: readers never see half a file


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
    images_name, labels_name = _columns(dataset)
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

    features, labels = _compute(
        encoder, dataset, keys, images_name, labels_name, batch_size, num_workers, progress, description
    )
    for key in cache_keys:
        tensors = {"features": features[key]} | ({"labels": labels} if labels is not None else {})
        metadata = {"model": encoder.name, "pooling": key[0], "layer": str(key[1]), "dataset": dataset_fingerprint}
        cache.save(cache_keys[key], tensors, metadata)
    return FeatureSet(features=features, labels=labels)


def _compute(encoder, dataset, keys, images_name, labels_name, batch_size, num_workers, progress, description):
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
    return features, (torch.cat(label_parts) if label_parts else None)
