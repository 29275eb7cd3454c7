"""Image data: `load_image_dataset` (demo set, folders, parquet, the Hub), `random_subset` (a seeded random part of
one), `to_rgb` (any PIL image to 8-bit RGB), the check that keeps undecodable images out of training
(`BadImageError`) and `TensorImages` (images of one size decoded once into a uint8 tensor on the device).

The names are imported at their first use, as the package root does: `maskvision.data.arguments` (what a command's
``--help`` needs) then loads without torch or datasets."""

import importlib

# public name → the module defining it
_PUBLIC = {
    "BadImageError": "bad_images",
    "TensorImages": "tensors",
    "load_image_dataset": "loading",
    "random_subset": "loading",
    "to_rgb": "images",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
