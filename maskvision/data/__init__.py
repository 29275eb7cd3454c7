"""Image data: `load_image_dataset` (demo set, folders, parquet, the Hub), `random_subset` (a seeded random part of
one), `to_rgb` (any PIL image to 8-bit RGB), the check that keeps undecodable images out of training
(`BadImageError`) and `TensorImages` (images of one size decoded once into a uint8 tensor on the device)."""

from .bad_images import BadImageError
from .images import to_rgb
from .loading import load_image_dataset, random_subset
from .tensors import TensorImages

__all__ = ["BadImageError", "TensorImages", "load_image_dataset", "random_subset", "to_rgb"]
