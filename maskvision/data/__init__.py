"""Image data: `load_image_dataset` (demo set, folders, parquet, the Hub), `random_subset` (a seeded random part of
one), `to_rgb` (any PIL image to 8-bit RGB) and the check that keeps undecodable images out of training
(`BadImageError`)."""

from .bad_images import BadImageError
from .images import to_rgb
from .loading import load_image_dataset, random_subset

__all__ = ["BadImageError", "load_image_dataset", "random_subset", "to_rgb"]
