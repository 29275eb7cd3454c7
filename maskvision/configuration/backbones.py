"""Backbone size presets and builders shared by every pretraining config.

Sizes follow the ViT paper (Tiny/Small/Base/Large, DeiT's naming for Tiny/Small) and the Swin paper
(Tiny/Small/Base). Every preset can be overridden field by field, so any custom size is one call away.
"""

from transformers import BeitConfig, PreTrainedConfig, SwinConfig

VIT_SIZES = {
    "tiny": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768},
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
}

SWIN_SIZES = {
    "tiny": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24]},
    "small": {"embed_dim": 96, "depths": [2, 2, 18, 2], "num_heads": [3, 6, 12, 24]},
    "base": {"embed_dim": 128, "depths": [2, 2, 18, 2], "num_heads": [4, 8, 16, 32]},
}


def _preset(presets: dict, size: str, family: str) -> dict:
    key = size.lower()
    if key not in presets:
        raise ValueError(f"Unknown {family} size {size!r}: choose one of {sorted(presets)}.")
    return dict(presets[key])


def check_patch_grid(image_size: int, patch_size: int, field: str = "image_size") -> int:
    """Number of patches per side; raises when `patch_size` does not divide `image_size`."""
    if image_size <= 0 or patch_size <= 0:
        raise ValueError(f"{field} ({image_size}) and patch_size ({patch_size}) must be positive.")
    if image_size % patch_size:
        raise ValueError(
            f"patch_size ({patch_size}) must divide {field} ({image_size}): "
            f"e.g. {field}={image_size - image_size % patch_size or patch_size}."
        )
    return image_size // patch_size


def vit_backbone_config(size: str = "base", **overrides) -> BeitConfig:
    """A `BeitConfig` of a named ViT size (tiny/small/base/large); keyword arguments override any field.

    The result is a plain transformers `BeitConfig`: the methods set the BEiT- or ExtreMA-specific switches
    (mask token, relative position bias, layer scale, ...) on top of it.
    """
    kwargs = {**_preset(VIT_SIZES, size, "ViT"), **overrides}
    if kwargs["hidden_size"] % kwargs["num_attention_heads"]:
        raise ValueError(
            f"hidden_size ({kwargs['hidden_size']}) must be a multiple of num_attention_heads "
            f"({kwargs['num_attention_heads']})."
        )
    config = BeitConfig(**kwargs)
    check_patch_grid(config.image_size, config.patch_size)
    return config


def swin_backbone_config(size: str = "tiny", **overrides) -> SwinConfig:
    """A `SwinConfig` of a named Swin size (tiny/small/base); keyword arguments override any field."""
    kwargs = {**_preset(SWIN_SIZES, size, "Swin"), **overrides}
    config = SwinConfig(**kwargs)
    if len(config.depths) != len(config.num_heads):
        raise ValueError(f"Swin depths {config.depths} and num_heads {config.num_heads} must have the same length.")
    grid = check_patch_grid(config.image_size, config.patch_size)
    reduction = 2 ** (len(config.depths) - 1)
    if grid % reduction:
        raise ValueError(
            f"Swin with {len(config.depths)} stages needs image_size / patch_size ({grid}) divisible by {reduction}."
        )
    return config


def backbone_hidden_size(config: PreTrainedConfig) -> int:
    """Width of the features a backbone config produces (the last stage's width for Swin)."""
    if isinstance(config, SwinConfig):
        return int(config.embed_dim * 2 ** (len(config.depths) - 1))
    return int(config.hidden_size)
