"""`load_image_dataset`: images from the embedded demo set, a local folder, parquet or WebDataset files or the Hugging
Face Hub, as a `datasets.Dataset` with an ``image`` column (and ``label`` when the data has labels), or as an
`ImageStream` read as it is needed; `random_subset`: a seeded random part of a dataset.

A folder is all its images: its splits are its split folders (``train/``, ``val/``, ``test/``...) when it has some,
else everything under it is one split, ``train``; file names never choose a split (``test-card.png`` is an image like
any other) unless ``split_from_file_names=True`` asks for datasets' inference. A folder of parquet files keeps the
Hub's layout, one split per file name (``train-00000-of-00002.parquet``, ``test.parquet``).
"""

import glob
import logging
import os
import re
from pathlib import Path

import datasets
from datasets import Dataset, concatenate_datasets
from datasets.data_files import SPLIT_KEYWORDS
from huggingface_hub import constants as hub_constants

from .arguments import DEMO_SOURCE, GLOB_CHARACTERS
from .bad_images import check_on_bad_image, drop_bad_images
from .columns import standardize_columns
from .streaming import ImageStream

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_FILES = {"train": str(DEMO_DIR / "train.parquet"), "test": str(DEMO_DIR / "test.parquet")}
PARQUET_SUFFIX = ".parquet"
TAR_SUFFIX = ".tar"  # WebDataset shards
FILE_BUILDERS = {PARQUET_SUFFIX: "parquet", TAR_SUFFIX: "webdataset"}  # a file source's suffix → its datasets builder
# A split folder's name → its split ("val/" → "validation"), as datasets names them.
SPLIT_FOLDERS = {keyword: str(split) for split, keywords in SPLIT_KEYWORDS.items() for keyword in keywords}
# The Hub's parquet file names: "train.parquet", "test-00000-of-00002.parquet".
_HUB_PARQUET_NAME = re.compile(rf"^({'|'.join(SPLIT_FOLDERS)})([-_.][^/]*)?{re.escape(PARQUET_SUFFIX)}$")
# Rows per read of a streamed parquet file (the default is a whole row group, which may be the whole file).
STREAM_PARQUET_BATCH = 256


def load_image_dataset(
    source: str | os.PathLike,
    split: str = "train",
    on_bad_image: str = "skip",
    *,
    streaming: bool = False,
    split_from_file_names: bool = False,
    image_column: str | None = None,
    label_column: str | None = None,
    cache_dir: str | None = None,
    num_proc: int | None = None,
    **builder_kwargs,
) -> Dataset | ImageStream:
    """Load images for pretraining or evaluation.

    Args:
        source: where the images are:
            - ``"demo"``: the embedded demo set (2 000 train / 500 test CIFAR-10 images, 10 balanced classes);
            - a local folder: image files, flat (no labels) or in one sub-folder per class (labels), all of them one
              split (``train``) unless they are under split folders (``train/``, ``val/``, ``test/``); or a folder
              of parquet files (``train.parquet``, ``test-00000-of-00002.parquet``, ...), one split per file name;
            - a parquet file, a WebDataset ``.tar`` shard, or a glob of either (``"data/*.parquet"``,
              ``"shards/*.tar"``): one split, returned whatever ``split`` names;
            - a dataset on the Hugging Face Hub (``"uoft-cs/cifar10"``) when online, or from the local cache.
        split: the split to load; datasets' slices work (``"train[:10%]"``, ``"train+test"``), except when streaming.
        on_bad_image: what to do with images that cannot be decoded (corrupt, truncated, over PIL's
            decompression-bomb limit): ``"skip"`` drops them with one warning counting them, so every row of the
            result decodes; ``"raise"`` raises `BadImageError` naming the first one's row (and file). Every image
            is decoded once for this check, in parallel from 10 000 images on; the result is cached with the
            dataset, so loading again is fast. A stream checks each image as it reads it instead.
        streaming: read the images as they are needed (`ImageStream`): nothing is prepared, checked or counted
            before the first one; see `maskvision.data.streaming`.
        split_from_file_names: let datasets infer a folder's splits from its file names as well (``*_train.png``,
            ``test-*.jpg``); by default every image of a folder without split folders is used.
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
        integers). Other columns are dropped. The number of images found, kept and skipped is logged per split.
        With ``streaming``, an `ImageStream` of rows with the same columns.
    """
    check_on_bad_image(on_bad_image)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be a string or a path, got {type(source).__name__}.")
    source = os.fspath(source)
    split_names = _split_names(split)
    if streaming and (len(split_names) > 1 or "[" in split):
        raise ValueError(f"A stream reads one whole split; got split={split!r} (slices and '+' need streaming=False).")
    builder = _make_builder(source, split_names, cache_dir, split_from_file_names, builder_kwargs)

    available = [str(name) for name in builder.config.data_files or builder.info.splits or {}]
    unknown = [name for name in split_names if available and name not in available]
    if unknown:
        raise ValueError(f"Split {unknown[0]!r} not found in {source}; its splits: {', '.join(map(repr, available))}.")
    if streaming:
        if builder.name == "parquet" and builder.config.batch_size is None:
            builder.config.batch_size = STREAM_PARQUET_BATCH
        stream = builder.as_streaming_dataset(split=split)
        stream = standardize_columns(stream, image_column, label_column, source=source)
        return ImageStream(stream, source=source, on_bad_image=on_bad_image)

    builder.download_and_prepare(num_proc=num_proc)
    parts = []
    for part in split.split("+"):  # checked and reported split by split
        name = part.split("[")[0].strip()
        if name in builder.info.splits and builder.info.splits[name].num_examples == 0:
            raise ValueError(f"Split {name!r} of {source} is empty.")
        dataset = builder.as_dataset(split=part.strip())
        if len(dataset) == 0:
            raise ValueError(f"Split {part.strip()!r} of {source} is empty.")
        dataset = standardize_columns(dataset, image_column, label_column, source=source)
        parts.append(drop_bad_images(dataset, on_bad_image, source=source, split=part.strip(), num_proc=num_proc))
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def _split_names(split: str) -> list[str]:
    """The split names in a datasets split string: "train[:10%]+test" -> ["train", "test"]."""
    if not isinstance(split, str) or not split.strip():
        raise ValueError(f"split must be a split name such as 'train', got {split!r}.")
    return [part.split("[")[0].strip() for part in split.split("+")]


def _make_builder(
    source: str, split_names: list[str], cache_dir: str | None, split_from_file_names: bool, builder_kwargs: dict
):
    if source == DEMO_SOURCE:
        return datasets.load_dataset_builder("parquet", data_files=DEMO_FILES, cache_dir=cache_dir, **builder_kwargs)

    path = os.path.expanduser(source)
    if os.path.isdir(path):
        try:
            if split_from_file_names or "data_files" in builder_kwargs:
                return datasets.load_dataset_builder(path, cache_dir=cache_dir, **builder_kwargs)
            return _folder_builder(path, source, cache_dir, builder_kwargs)
        except (datasets.data_files.EmptyDatasetError, datasets.exceptions.DataFilesNotFoundError) as error:
            raise ValueError(f"The folder {source} holds no images or parquet files.") from error

    if os.path.isfile(path) or any(character in path for character in GLOB_CHARACTERS):
        files = [path] if os.path.isfile(path) else sorted(glob.glob(path, recursive=True))
        if not files:
            raise FileNotFoundError(f"No file matches {source!r}.")
        suffix = next((suffix for suffix in FILE_BUILDERS if files[0].endswith(suffix)), None)
        others = [file for file in files if suffix is None or not file.endswith(suffix)]
        if others:
            kind = {PARQUET_SUFFIX: "parquet file", TAR_SUFFIX: "WebDataset shard"}.get(suffix)
            raise ValueError(
                f"{others[0]} is not a {kind or 'parquet file or a WebDataset shard'}: a file source is parquet files "
                f"({PARQUET_SUFFIX}) or WebDataset shards ({TAR_SUFFIX}), all of one kind; put image files in a "
                "folder and pass the folder."
            )
        if len(split_names) != 1:
            raise ValueError(f"A file or glob is one split; got split={'+'.join(split_names)!r}.")
        data_files = {split_names[0]: files}
        return datasets.load_dataset_builder(
            FILE_BUILDERS[suffix], data_files=data_files, cache_dir=cache_dir, **builder_kwargs
        )

    if _looks_like_a_path(source):
        raise FileNotFoundError(f"No such file or folder: {source!r}.")
    return _hub_builder(source, cache_dir, builder_kwargs)


def _folder_builder(path: str, source: str, cache_dir: str | None, builder_kwargs: dict):
    """The builder of a local folder: its split folders, else all of it as one split (the Hub's parquet layout
    excepted)."""
    entries = sorted((entry for entry in os.scandir(path) if not entry.name.startswith(".")), key=lambda e: e.name)
    split_folders = [entry for entry in entries if entry.is_dir() and entry.name.lower() in SPLIT_FOLDERS]
    if split_folders:
        data_files = {}
        for entry in split_folders:
            data_files.setdefault(SPLIT_FOLDERS[entry.name.lower()], []).append(f"{glob.escape(entry.name)}/**")
        unused = [entry.name + ("/" if entry.is_dir() else "") for entry in entries if entry not in split_folders]
        if unused:
            logger.warning(
                "%s: using its split folders (%s); %d other entries at its top are in no split and not used: %s.",
                source,
                ", ".join(entry.name + "/" for entry in split_folders),
                len(unused),
                ", ".join(unused[:5]),
            )
        return datasets.load_dataset_builder(path, data_files=data_files, cache_dir=cache_dir, **builder_kwargs)

    builder = datasets.load_dataset_builder(path, data_files={"train": "**"}, cache_dir=cache_dir, **builder_kwargs)
    files = builder.config.data_files["train"]
    if builder.name == "parquet" and all(_HUB_PARQUET_NAME.match(os.path.basename(file)) for file in files):
        by_split = {}
        for file in files:
            keyword = _HUB_PARQUET_NAME.match(os.path.basename(file)).group(1)
            by_split.setdefault(SPLIT_FOLDERS[keyword], []).append(file)
        return datasets.load_dataset_builder("parquet", data_files=by_split, cache_dir=cache_dir, **builder_kwargs)
    return builder


def _looks_like_a_path(source: str) -> bool:
    """A Hub name is "name" or "owner/name"; anything else that does not exist locally is a missing path."""
    return (
        source.startswith((".", "/", "~", "\\"))
        or source.endswith(PARQUET_SUFFIX)
        or source.count("/") > 1
        or os.sep != "/"
        and os.sep in source
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
    if num_rows is None:
        return dataset
    if isinstance(dataset, ImageStream):
        raise ValueError(
            "A random subset of the images (max_train_samples, max_eval_samples) needs the map-style path: a stream "
            "cannot draw images at random without reading them all. Drop the limit or --streaming."
        )
    if num_rows >= len(dataset):
        return dataset
    if num_rows <= 0:
        raise ValueError(f"The number of samples to use must be positive, got {num_rows}.")
    return dataset.shuffle(seed=seed).select(range(num_rows))
