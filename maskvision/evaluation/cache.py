"""Features cached on disk as safetensors, keyed by a hash of everything they depend on: the model fingerprint (its
weights, config and preprocessing), the dataset fingerprint, the pooling and the layer, so changed weights never hit
a stale cache."""

import hashlib
import json
import logging
import os

import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "maskvision", "features"
)


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
