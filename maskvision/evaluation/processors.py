"""The image processor an encoder's inputs go through: the checkpoint's own (``preprocessor_config.json``), or a
resize + normalise one where explicit settings override it. Evaluation and fine-tuning resolve it the same way."""

import json
import logging

from transformers import AutoImageProcessor
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil
from transformers.utils import cached_file

logger = logging.getLogger(__name__)

PROCESSOR_FILE = "preprocessor_config.json"


def load_image_processor(name_or_path: str):
    """The image processor saved with a checkpoint (a local directory or a Hub id), or None when it has none (no
    ``preprocessor_config.json``: `resolve_image_processor` then needs explicit settings). Other failures (a
    processor file that does not load, the Hub unreachable) raise."""
    if cached_file(name_or_path, PROCESSOR_FILE, _raise_exceptions_for_missing_entries=False) is None:
        logger.info("%s has no %s: its preprocessing comes from the explicit settings.", name_or_path, PROCESSOR_FILE)
        return None
    return AutoImageProcessor.from_pretrained(name_or_path)


def processor_json(image_processor) -> str:
    """The settings of an image processor as canonical JSON (part of the feature-cache key)."""
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
