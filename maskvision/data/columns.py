"""Finding a dataset's image and label columns by feature type, and renaming them to ``image`` and ``label``.

Datasets name their columns ``img``, ``jpg``, ``picture``, ``fine_label``, ``category``...: the type says what a
column holds. Image columns are datasets `Image` features, or (parquet written without datasets' metadata) binary
or ``{bytes, path}`` columns whose first values PIL recognises. Label columns are `ClassLabel` features, or an
integer or string column with a usual label name (strings become a `ClassLabel`). A stream (`datasets.IterableDataset`)
is read the same way, from its declared features and its first rows, except that string labels are not numbered
(that would take a pass over the data): its label column must hold integers or ClassLabels.
"""

import io
import logging

from datasets import ClassLabel, Dataset, IterableDataset, Value
from datasets import Image as ImageFeature
from PIL import Image

logger = logging.getLogger(__name__)

# Tie-breakers when several columns qualify, most preferred first.
IMAGE_COLUMN_NAMES = ("image", "img", "images", "picture", "photo", "jpg", "jpeg", "png", "webp")
LABEL_COLUMN_NAMES = ("label", "labels", "fine_label", "class", "class_id", "target", "category", "cls")
BINARY_DTYPES = ("binary", "large_binary")
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
STRING_DTYPES = ("string", "large_string")
# Values sniffed to tell an undeclared image column from other binary data.
SNIFFED_VALUES = 16


def standardize_columns(
    dataset: Dataset | IterableDataset,
    image_column: str | None = None,
    label_column: str | None = None,
    source: str = "the dataset",
) -> Dataset | IterableDataset:
    """``dataset`` reduced to an ``image`` column (a datasets `Image` feature) and a ``label`` column when it has
    one (`ClassLabel`, or integers). ``image_column`` / ``label_column`` choose the columns instead of the search.
    A stream's images stay undecoded (``{bytes, path}``): `ImageStream` checks each one before decoding it."""
    if dataset.features is None:
        raise ValueError(f"{source} does not declare its columns' types; load it as a map-style dataset instead.")
    for argument, column in (("image_column", image_column), ("label_column", label_column)):
        if column is not None and column not in dataset.column_names:
            raise ValueError(f"{argument}={column!r} is not a column of {source}; its columns: {_describe(dataset)}.")
    image_column = image_column or find_image_column(dataset, source)
    streaming = isinstance(dataset, IterableDataset)
    if label_column is None:
        label_column = find_label_column(dataset, exclude=image_column)
    elif not _is_label_feature(dataset.features[label_column], streaming):
        kinds = "a ClassLabel or integer column (a stream's string labels cannot be numbered without a pass over it)"
        raise ValueError(
            f"label_column={label_column!r} of {source} holds {dataset.features[label_column]}; a label column must "
            f"be {kinds if streaming else 'a ClassLabel, integer or string column'}."
        )

    dataset = dataset.select_columns([column for column in (image_column, label_column) if column is not None])
    feature = dataset.features[image_column]
    if streaming:  # before the renaming, which a stream does by a map that would decode every image
        dataset = dataset.cast_column(image_column, ImageFeature(decode=False))
    elif not isinstance(feature, ImageFeature) or not feature.decode:  # PIL images on access
        dataset = dataset.cast_column(image_column, ImageFeature())
    if label_column is not None and _dtype(dataset.features[label_column]) in STRING_DTYPES:
        dataset = dataset.class_encode_column(label_column)
    renames = {image_column: "image", label_column: "label"}
    renames = {old: new for old, new in renames.items() if old not in (None, new)}
    return dataset.rename_columns(renames) if renames else dataset


def find_image_column(dataset: Dataset | IterableDataset, source: str = "the dataset") -> str:
    features = dataset.features
    candidates = [name for name, feature in features.items() if isinstance(feature, ImageFeature)]
    if not candidates:
        candidates = [name for name, feature in features.items() if _may_hold_images(feature)]
        candidates = [name for name in candidates if _holds_images(dataset, name)]
    if not candidates:
        raise ValueError(
            f"No image column in {source}: its columns are {_describe(dataset)}. An image column is a datasets Image "
            "feature, or encoded image bytes; pass image_column= to name it (a column of file paths works too)."
        )
    if len(candidates) == 1:
        return candidates[0]
    for name in IMAGE_COLUMN_NAMES:
        if name in candidates:
            return name
    raise ValueError(f"{source} has several image columns ({', '.join(candidates)}): pass image_column= to choose one.")


def find_label_column(dataset: Dataset | IterableDataset, exclude: str | None = None) -> str | None:
    features = {name: feature for name, feature in dataset.features.items() if name != exclude}
    class_labels = [name for name, feature in features.items() if isinstance(feature, ClassLabel)]
    if class_labels:
        preferred = [name for name in LABEL_COLUMN_NAMES if name in class_labels]
        choice = (preferred or class_labels)[0]
        if len(class_labels) > 1 and not preferred:
            logger.warning("Several label columns (%s): using %r; pass label_column= to choose.", class_labels, choice)
        return choice
    streaming = isinstance(dataset, IterableDataset)
    for name in LABEL_COLUMN_NAMES:
        if name in features and _is_label_feature(features[name], streaming):
            return name
    return None


def _is_label_feature(feature, streaming: bool = False) -> bool:
    return isinstance(feature, ClassLabel) or _dtype(feature) in INTEGER_DTYPES + (() if streaming else STRING_DTYPES)


def _dtype(feature) -> str | None:
    return feature.dtype if isinstance(feature, Value) else None


def _may_hold_images(feature) -> bool:
    """Raw bytes, or the {bytes, path} struct an Image feature is stored as."""
    if isinstance(feature, dict):
        return _dtype(feature.get("bytes")) in BINARY_DTYPES
    return _dtype(feature) in BINARY_DTYPES


def _holds_images(dataset: Dataset | IterableDataset, name: str) -> bool:
    """Whether PIL recognises one of the first values of column ``name`` (reading file headers only)."""
    if isinstance(dataset, IterableDataset):
        values = [row[name] for row in dataset.select_columns([name]).take(SNIFFED_VALUES)]
    else:
        values = dataset.select_columns([name]).with_format("arrow")[:SNIFFED_VALUES][name].to_pylist()
    return any(_is_image_file(value["bytes"] if isinstance(value, dict) else value) for value in values)


def _is_image_file(data: bytes | None) -> bool:
    if data is None:
        return False
    try:
        with Image.open(io.BytesIO(data)):
            return True
    except Exception:  # PIL raises several types on data that is not an image
        return False


def _describe(dataset: Dataset | IterableDataset) -> str:
    return ", ".join(f"{name} ({feature})" for name, feature in dataset.features.items()) or "none"
