"""Image data: `load_image_dataset` (demo set, folders, parquet, the Hub), `random_subset` (a seeded random part of
one), `to_rgb` (any PIL image to 8-bit RGB), the check that keeps undecodable images out of training
(`BadImageError`) and `TensorImages` (images of one size decoded once into a uint8 tensor on the device).

The names are imported at their first use (`maskvision.lazy_names`): `maskvision.data.arguments` (what a command's
``--help`` needs) then loads without torch or datasets."""

from ..lazy_names import lazy_names

# public name → the module defining it
_PUBLIC = {
    "BadImageError": "bad_images",
    "TensorImages": "tensors",
    "load_image_dataset": "loading",
    "random_subset": "loading",
    "to_rgb": "images",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
