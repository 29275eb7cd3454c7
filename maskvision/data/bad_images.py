"""Corrupt, truncated and undecodable images, found once before training instead of in a data-loader worker.

`drop_bad_images` decodes every image once, the way a worker will (PIL, EXIF orientation, `to_rgb`), in a batched
``Dataset.map`` that datasets caches under the dataset's fingerprint: loading the same data again reads the cached
result instead of decoding everything again. JPEGs are decoded at 1/8 of their size (``draft()``), which still reads
every byte of the file, so a truncated one is still caught.
"""

import io
import logging
import os
import warnings

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, Features, Value
from datasets import Image as ImageFeature
from datasets.utils.file_utils import xopen
from PIL import Image

from .arguments import ON_BAD_IMAGE
from .images import to_rgb

logger = logging.getLogger(__name__)

# Images per batch of the check: small enough for a steady progress bar, large enough to amortise the overhead.
CHECK_BATCH_SIZE = 128
# The check uses one process per CPU core (at most MAX_CHECK_PROCESSES) from this many images on.
PARALLEL_CHECK_MIN_IMAGES = 10_000
MAX_CHECK_PROCESSES = 8


class BadImageError(ValueError):
    """An image that cannot be decoded. ``index`` is its row in the split as loaded, ``path`` its file if known."""

    def __init__(self, message: str, index: int | None = None, path: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.index, self.path, self.reason = index, path, reason


def check_on_bad_image(on_bad_image: str) -> None:
    if on_bad_image not in ON_BAD_IMAGE:
        allowed = ", ".join(repr(value) for value in ON_BAD_IMAGE)
        raise ValueError(f"on_bad_image must be one of {allowed}, got {on_bad_image!r}.")


def image_error(value: dict, max_image_pixels: int | None) -> str | None:
    """Why the image stored as ``value`` ({"bytes", "path"}) cannot be decoded, or None when it can (a JPEG is decoded
    at 1/8 scale, which still reads every byte). ``max_image_pixels`` is PIL's decompression-bomb setting, passed so
    that the cached result depends on it."""
    return _decode(value, max_image_pixels, check_only=True)[1]


def decode_image(value: dict) -> tuple[Image.Image | None, str | None]:
    """(the image stored as ``value``, decoded whole as RGB by `to_rgb`, None), or (None, why it cannot be decoded):
    the check and the decode of a streamed image in one."""
    return _decode(value, Image.MAX_IMAGE_PIXELS, check_only=False)


def _decode(value: dict, max_image_pixels: int | None, check_only: bool) -> tuple[Image.Image | None, str | None]:
    data, path = value.get("bytes"), value.get("path")
    if data is None and path is None:
        return None, "the row holds neither image bytes nor a path"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's warnings (EXIF, ICC, large images) do not stop a decode
            with xopen(path, "rb") if data is None else io.BytesIO(data) as file:
                image = Image.open(file)
                if check_only:
                    image.draft(None, (1, 1))  # JPEG: decode at 1/8 scale (every byte is still read)
                image.load()  # the pixels are in memory: the file may close
                image = to_rgb(image)
    except Image.DecompressionBombError as error:
        return None, f"{error} Raise PIL.Image.MAX_IMAGE_PIXELS (now {max_image_pixels}) to keep such images"
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, struct.error, ... on broken files
        return None, f"{type(error).__name__}: {error}".rstrip(".")
    return (None if check_only else image), None


def _image_errors(values: list[dict], max_image_pixels: int | None) -> dict[str, list]:
    return {"error": [image_error(value, max_image_pixels) for value in values]}


def drop_bad_images(
    dataset: Dataset,
    on_bad_image: str = "skip",
    source: str = "the dataset",
    num_proc: int | None = None,
    split: str | None = None,
) -> Dataset:
    """``dataset`` without the rows whose ``image`` cannot be decoded (one warning with their count), or
    `BadImageError` naming the first of them when ``on_bad_image="raise"``. Raises `BadImageError` too when no
    image decodes. ``num_proc`` processes run the check (default: one per core, at most 8, from 10 000 images).
    Logs the images found, kept and skipped (of ``split``, when given)."""
    check_on_bad_image(on_bad_image)
    if num_proc is None and len(dataset) >= PARALLEL_CHECK_MIN_IMAGES:
        num_proc = min(MAX_CHECK_PROCESSES, os.cpu_count() or 1)
    stored = dataset.select_columns(["image"]).cast_column("image", ImageFeature(decode=False))
    checked = stored.map(
        _image_errors,
        input_columns=["image"],
        batched=True,
        batch_size=CHECK_BATCH_SIZE,
        remove_columns=["image"],
        features=Features({"error": Value("string")}),
        fn_kwargs={"max_image_pixels": Image.MAX_IMAGE_PIXELS},
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        desc="Checking images",
    )
    errors = checked.with_format("arrow")["error"]
    bad = np.flatnonzero(pc.is_valid(errors).to_numpy(zero_copy_only=False))
    checked_part = source if split is None else f"{source}, split {split!r}"
    logger.info(
        "%s: %d images found, %d kept, %d skipped (cannot be decoded).",
        checked_part,
        len(dataset),
        len(dataset) - len(bad),
        len(bad),
    )
    if len(bad) == 0:
        return dataset

    first = int(bad[0])
    path, reason = stored[first]["image"]["path"], errors[first].as_py()
    where = f"row {first}" + (f" ({path})" if path else "")
    if on_bad_image == "raise":
        others = f" ({len(bad) - 1} more rows cannot be decoded either)" if len(bad) > 1 else ""
        message = (
            f"Cannot decode the image in {where} of {source}: {reason}{others}. "
            "Fix or remove it, or pass on_bad_image='skip' to drop such images."
        )
        raise BadImageError(message, index=first, path=path, reason=reason)
    if len(bad) == len(dataset):
        message = f"None of the {len(dataset)} images of {source} can be decoded (first: {where}: {reason})."
        raise BadImageError(message, index=first, path=path, reason=reason)
    logger.warning(
        "Skipped %d of %d images of %s that cannot be decoded (first: %s: %s). Pass on_bad_image='raise' to stop on "
        "them instead.",
        len(bad),
        len(dataset),
        source,
        where,
        reason,
    )
    keep = np.setdiff1d(np.arange(len(dataset)), bad, assume_unique=True)
    return dataset.select(keep)
