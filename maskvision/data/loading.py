"""`load_image_dataset`: images from the embedded demo set, a local folder, parquet files or the Hugging Face Hub,
as a `datasets.Dataset` with an ``image`` column (and ``label`` when the data has labels); `random_subset`: a
seeded random part of one."""

import glob
import os
from pathlib import Path

import datasets
from datasets import Dataset
from huggingface_hub import constants as hub_constants

from .bad_images import check_on_bad_image, drop_bad_images
from .columns import standardize_columns

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_SOURCE = "demo"
DEMO_FILES = {"train": str(DEMO_DIR / "train.parquet"), "test": str(DEMO_DIR / "test.parquet")}
PARQUET_SUFFIX = ".parquet"
GLOB_CHARACTERS = ("*", "?", "[")


def load_image_dataset(
    source: str | os.PathLike,
    split: str = "train",
    on_bad_image: str = "skip",
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | None = None,
    num_proc: int | None = None,
    **builder_kwargs,
) -> Dataset:
    """Load images for pretraining or evaluation.

    Args:
        source: where the images are:
            - ``"demo"``: the embedded demo set (2 000 train / 500 test CIFAR-10 images, 10 balanced classes);
            - a local folder: image files, flat (no labels) or in one sub-folder per class (labels), optionally
              under split folders (``train/``, ``val/``, ``test/``); or a folder of parquet files
              (``train.parquet``, ``test-00000-of-00002.parquet``, ...), one split per file name;
            - a parquet file or a glob of them (``"data/*.parquet"``): one split, returned whatever ``split`` names;
            - a dataset on the Hugging Face Hub (``"uoft-cs/cifar10"``) when online, or from the local cache.
        split: the split to load; datasets' slices work (``"train[:10%]"``, ``"train+test"``).
        on_bad_image: what to do with images that cannot be decoded (corrupt, truncated, over PIL's
            decompression-bomb limit): ``"skip"`` drops them with one warning counting them, so every row of the
            result decodes; ``"raise"`` raises `BadImageError` naming the first one's row (and file). Every image
            is decoded once for this check; the result is cached with the dataset, so loading again is fast.
        image_column, label_column: use these columns instead of searching by feature type (an image column can
            hold encoded images or file paths; a label column ClassLabels, integers or strings).
        cache_dir: datasets' cache folder (default: ``HF_DATASETS_CACHE``).
        num_proc: processes for the image check (default: one per core, at most 8, from 10 000 images on; one
            below) and, when given, for preparing the data files.
        builder_kwargs: passed to `datasets.load_dataset_builder` (e.g. ``name=``, ``revision=``, ``token=`` for
            the Hub, ``drop_labels=True`` for a folder of class sub-folders).

    Returns:
        A `datasets.Dataset` with an ``image`` column (datasets `Image` feature: PIL images on access; pass them
        through `maskvision.data.to_rgb`) and, when the data has labels, a ``label`` column (`ClassLabel` or
        integers). Other columns are dropped.
    """
    check_on_bad_image(on_bad_image)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a string or a path, got {type(source).__name__}.")
    source = os.fspath(source)
    split_names = _split_names(split)
    builder = _make_builder(source, split_names, cache_dir, builder_kwargs)

    available = [str(name) for name in builder.config.data_files or builder.info.splits or {}]
    unknown = [name for name in split_names if available and name not in available]
    if unknown:
        raise ValueError(
            f"Split {unknown[0]!r} not found in {source}; its splits: {', '.join(map(repr, available))}."
        )
    builder.download_and_prepare(num_proc=num_proc)
    for name in split_names:
        if name in builder.info.splits and builder.info.splits[name].num_examples == 0:
            raise ValueError(f"Split {name!r} of {source} is empty.")
    dataset = builder.as_dataset(split=split)
    if len(dataset) == 0:
        raise ValueError(f"Split {split!r} of {source} is empty.")

    dataset = standardize_columns(dataset, image_column, label_column, source=source)
    return drop_bad_images(dataset, on_bad_image, source=source, num_proc=num_proc)


def _split_names(split: str) -> list[str]:
    """The split names in a datasets split string: "train[:10%]+test" -> ["train", "test"]."""
    if not isinstance(split, str) or not split.strip():
        raise ValueError(f"split must be a split name such as 'train', got {split!r}.")
    return [part.split("[")[0].strip() for part in split.split("+")]


def _make_builder(source: str, split_names: list[str], cache_dir: str | None, builder_kwargs: dict):
    if source == DEMO_SOURCE:
        return datasets.load_dataset_builder("parquet", data_files=DEMO_FILES, cache_dir=cache_dir, **builder_kwargs)

    path = os.path.expanduser(source)
    if os.path.isdir(path):
        try:
            return datasets.load_dataset_builder(path, cache_dir=cache_dir, **builder_kwargs)
        except datasets.data_files.EmptyDatasetError as error:
            raise ValueError(f"The folder {source} holds no images or parquet files.") from error

    if os.path.isfile(path) or any(character in path for character in GLOB_CHARACTERS):
        files = [path] if os.path.isfile(path) else sorted(glob.glob(path, recursive=True))
        if not files:
            raise FileNotFoundError(f"No file matches {source!r}.")
        not_parquet = [file for file in files if not file.endswith(PARQUET_SUFFIX)]
        if not_parquet:
            raise ValueError(
                f"{not_parquet[0]} is not a parquet file: a file source must be parquet ({PARQUET_SUFFIX}); "
                "put image files in a folder and pass the folder."
            )
        if len(split_names) != 1:
            raise ValueError(f"A parquet file or glob is one split; got split={'+'.join(split_names)!r}.")
        data_files = {split_names[0]: files}
        return datasets.load_dataset_builder("parquet", data_files=data_files, cache_dir=cache_dir, **builder_kwargs)

    if _looks_like_a_path(source):
        raise FileNotFoundError(f"No such file or folder: {source!r}.")
    return _hub_builder(source, cache_dir, builder_kwargs)


def _looks_like_a_path(source: str) -> bool:
    """A Hub name is "name" or "owner/name"; anything else that does not exist locally is a missing path."""
    return (
        source.startswith((".", "/", "~", "\\"))
        or source.endswith(PARQUET_SUFFIX)
        or source.count("/") > 1
        or os.sep != "/" and os.sep in source
    )


def _hub_builder(source: str, cache_dir: str | None, builder_kwargs: dict):
    try:
        return datasets.load_dataset_builder(source, cache_dir=cache_dir, **builder_kwargs)
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
        if hub_constants.is_offline_mode():
            raise ValueError(
                f"{source!r} is not 'demo', a local folder or a parquet file, and it cannot be looked up on the "
                "Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1) and it is not in the local cache."
            ) from error
        raise ValueError(
            f"Unknown source {source!r}: not 'demo', a local folder, a parquet file or glob, nor a dataset on the "
            f"Hugging Face Hub ({error})."
        ) from error


def random_subset(dataset, num_rows: int | None, seed: int = 0):
    """``num_rows`` rows drawn at random (fixed by ``seed``), or the whole dataset when None. Not the first rows:
    datasets stored sorted by class (CIFAR-10's parquet files) would give a single class."""
    if num_rows is None or num_rows >= len(dataset):
        return dataset
    if num_rows <= 0:
        raise ValueError(f"The number of samples to use must be positive, got {num_rows}.")
    return dataset.shuffle(seed=seed).select(range(num_rows))
