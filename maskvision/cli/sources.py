"""The data and model sources a command names, checked before any heavy work: a local path that does not exist, or a
Hub id that cannot be reached (offline and not cached), is a `UsageError` naming the flag and the value."""

import dataclasses
import glob
import os
import re

from ..data.arguments import DEMO_SOURCE, GLOB_CHARACTERS
from .args import UsageError

# Fields naming images (a folder, a file, a glob, a Hub dataset or "demo") and fields naming a model (a folder or a
# Hub model id), in every command's argument dataclasses.
DATASET_FIELDS = ("dataset", "eval_dataset")
MODEL_FIELDS = ("model", "model_name_or_path", "tokenizer", "teacher")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_FILE_SUFFIXES = (".parquet", ".tar", ".json", ".yaml", ".yml", ".pth", ".pkl", ".safetensors", ".png", ".jpg")


def check_sources(parsed) -> None:
    """Check every dataset and model field of the parsed argument dataclasses."""
    for arguments in parsed:
        if not dataclasses.is_dataclass(arguments):
            continue
        for name in (*DATASET_FIELDS, *MODEL_FIELDS):
            value = getattr(arguments, name, None)
            if isinstance(value, str) and value:
                check_source(f"--{name}", value, "dataset" if name in DATASET_FIELDS else "model")


def check_source(flag: str, value: str, kind: str) -> None:
    """``value`` (of ``flag``) must be an existing local path, a glob matching files, "demo" (a dataset) or a Hub id;
    with the Hub offline, a Hub id must be in the local cache. ``kind``: "dataset", "model" or "file" (local only)."""
    if kind == "dataset" and value == DEMO_SOURCE:
        return
    path = os.path.expanduser(value)
    if any(character in value for character in GLOB_CHARACTERS):
        if not glob.glob(path):
            raise UsageError(f"{flag} {value}: the pattern matches no file")
        return
    if os.path.exists(path):
        return
    if kind == "file" or not looks_like_hub_id(value):
        raise UsageError(f"{flag} {value}: no such file or folder")
    if hub_offline(kind) and not in_hub_cache(value, kind):
        variable = "HF_HUB_OFFLINE" if kind == "model" or _offline("HF_HUB_OFFLINE") else "HF_DATASETS_OFFLINE"
        raise UsageError(f"{flag} {value}: no such local path, and not a cached Hub {kind} ({variable}=1: no download)")


def looks_like_hub_id(value: str) -> bool:
    """``name`` or ``owner/name`` and no file suffix: what the Hub may hold; anything else can only be a local path."""
    return bool(_HUB_ID.match(value)) and not value.startswith(".") and not value.lower().endswith(_FILE_SUFFIXES)


def _offline(variable: str) -> bool:
    return os.environ.get(variable, "").upper() in ("1", "ON", "YES", "TRUE")


def hub_offline(kind: str) -> bool:
    return _offline("HF_HUB_OFFLINE") or (kind == "dataset" and _offline("HF_DATASETS_OFFLINE"))


def in_hub_cache(repo_id: str, kind: str) -> bool:
    """Whether the Hub cache (or, for a dataset, datasets' own cache) holds anything of ``repo_id``."""
    from huggingface_hub import constants

    folder = f"{kind}s--{repo_id.replace('/', '--')}"
    if os.path.isdir(os.path.join(constants.HF_HUB_CACHE, folder)):
        return True
    if kind == "dataset":
        datasets_cache = os.environ.get("HF_DATASETS_CACHE", os.path.join(constants.HF_HOME, "datasets"))
        return os.path.isdir(os.path.join(datasets_cache, repo_id.replace("/", "___")))
    return False
