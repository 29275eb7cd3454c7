"""Configuration of BEiT masked image modeling (Bao et al. 2021, "BEiT: BERT Pre-Training of Image Transformers").

The encoder is a stock transformers `BeitConfig` (``backbone_config``) with the official pretraining switches: a
learnable [MASK] embedding, one relative position bias shared by all layers, no absolute position embeddings, layer
scale 0.1 (1e-5 for Large, as in the official Large recipe), stochastic depth 0.1 and LayerNorm eps 1e-6.

Blockwise masking defaults to the official 75 of 196 patches (14 x 14 grid) with blocks of at least 16 patches. On
another grid both numbers keep the same proportion of the grid, rounded: ``num_masking_patches = round(75 / 196 * N)``
and ``min_num_patches = max(1, round(16 / 196 * N))`` for ``N`` patches, e.g. 24 and 5 on an 8 x 8 grid. Give them
explicitly to override.
"""

from huggingface_hub.dataclasses import strict
from transformers import BeitConfig, PreTrainedConfig

from .backbones import check_patch_grid, vit_backbone_config
from .choices import TARGETS

# The official pretraining encoder (unilm/beit run_beit_pretraining.py with the README's command line).
BEIT_PRETRAINING_BACKBONE = {
    "use_mask_token": True,
    "use_absolute_position_embeddings": False,
    "use_relative_position_bias": False,
    "use_shared_relative_position_bias": True,
    "use_mean_pooling": True,  # no final LayerNorm inside the encoder: the head's LayerNorm plays that part
    "layer_scale_init_value": 0.1,
    "drop_path_rate": 0.1,
    "layer_norm_eps": 1e-6,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}
# Per-size departures from the above: the official Large recipe initialises layer scale at 1e-5.
BEIT_SIZE_OVERRIDES = {"large": {"layer_scale_init_value": 1e-5}}

# Official masking on the 14 x 14 grid of ViT-*/16 at 224 px, scaled with the grid elsewhere (see the module doc).
OFFICIAL_NUM_PATCHES = 196
OFFICIAL_NUM_MASKING_PATCHES = 75
OFFICIAL_MIN_NUM_PATCHES = 16


def beit_backbone_config(size: str = "base", **overrides) -> BeitConfig:
    """A stock `BeitConfig` of a named ViT size with BEiT's pretraining settings; keywords override any field."""
    size_defaults = BEIT_SIZE_OVERRIDES.get(size.lower(), {})
    return vit_backbone_config(size, **{**BEIT_PRETRAINING_BACKBONE, **size_defaults, **overrides})


@strict
class BeitMimConfig(PreTrainedConfig):
    r"""
    backbone_config (`BeitConfig` or `dict`, *optional*):
        The encoder, a stock transformers `BeitConfig`. Defaults to ViT-B/16 at 224 px with BEiT's pretraining
        settings (`beit_backbone_config("base")`). It must use the [MASK] token (`use_mask_token=True`).
    target (`str`, *optional*, defaults to `"tokens"`):
        What the masked patches are trained to predict: `"tokens"`, the ids of a frozen visual tokenizer (BEiT), or
        `"pixels"`, the patch's pixels normalised per patch (the paper's pixel-regression ablation).
    vocab_size (`int`, *optional*, defaults to 8192):
        Number of visual tokens (the tokenizer's `config.vocab_size`); only used with `target="tokens"`.
    tokenizer_name_or_path (`str`, *optional*):
        Path or Hub id of the visual tokenizer (`DVAETokenizer` or VQ-KD), loaded with `AutoModel.from_pretrained`
        when targets are first needed. Only the reference is stored: the tokenizer's weights never enter this
        model's checkpoints.
    norm_pix_loss (`bool`, *optional*, defaults to `True`):
        With `target="pixels"`, normalise each target patch by its own mean and variance (as MAE does).
    num_masking_patches (`int`, *optional*):
        Patches masked per image by blockwise masking. Default: 75 of 196, scaled with the grid.
    min_num_patches (`int`, *optional*):
        Smallest block (in patches) blockwise masking draws. Default: 16 of 196, scaled with the grid.
    max_num_patches (`int`, *optional*):
        Largest block; `None` lets one block cover the whole masking budget (official).
    min_aspect (`float`, *optional*, defaults to 0.3):
        Smallest aspect ratio of a block; the largest is `1 / min_aspect`.
    exact_masking (`bool`, *optional*, defaults to `False`):
        Mask exactly `num_masking_patches` per image, as BEiT v2 does (v1's blocks sometimes stop a few short).
    image_mean, image_std (`list[float]`, *optional*, defaults to 0.5):
        Normalisation of the encoder's input view (the official BEiT pretraining uses 0.5 / 0.5).
    initializer_range (`float`, *optional*, defaults to 0.02):
        Standard deviation of the truncated-normal initialisation.
    """

    model_type = "maskvision_beit_mim"
    sub_configs_defaults = {"backbone_config": BeitConfig}

    backbone_config: dict | PreTrainedConfig | None = None
    target: str = "tokens"
    vocab_size: int = 8192
    tokenizer_name_or_path: str | None = None
    norm_pix_loss: bool = True
    num_masking_patches: int | None = None
    min_num_patches: int | None = None
    max_num_patches: int | None = None
    min_aspect: float = 0.3
    exact_masking: bool = False
    image_mean: list[float] | tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: list[float] | tuple[float, ...] = (0.5, 0.5, 0.5)
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.backbone_config is None:
            self.backbone_config = beit_backbone_config("base")
        super().__post_init__(**kwargs)
        if not isinstance(self.backbone_config, BeitConfig):
            raise ValueError(
                f"backbone_config must be a BeitConfig (model_type 'beit'), got {type(self.backbone_config).__name__}."
            )
        num_patches = self.num_patches
        if self.num_masking_patches is None:
            self.num_masking_patches = round(OFFICIAL_NUM_MASKING_PATCHES / OFFICIAL_NUM_PATCHES * num_patches)
        if self.min_num_patches is None:
            self.min_num_patches = max(1, round(OFFICIAL_MIN_NUM_PATCHES / OFFICIAL_NUM_PATCHES * num_patches))
        self._check()

    @classmethod
    def from_size(cls, size: str = "base", **kwargs) -> "BeitMimConfig":
        """A config for a named ViT size (tiny/small/base/large) or any custom size.

        Keywords that are fields of `BeitMimConfig` set them; every other keyword overrides the backbone
        (`image_size`, `patch_size`, `hidden_size`, `num_hidden_layers`, `drop_path_rate`, ...)::

            BeitMimConfig.from_size("tiny", image_size=32, patch_size=4, vocab_size=512)
        """
        own = set(cls.__dataclass_fields__)
        backbone = {key: kwargs.pop(key) for key in list(kwargs) if key not in own}
        return cls(backbone_config=beit_backbone_config(size, **backbone), **kwargs)

    @property
    def grid_size(self) -> int:
        """Patches per side of the encoder's input."""
        return self.backbone_config.image_size // self.backbone_config.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def patch_dim(self) -> int:
        """Values per patch (patch_size² x channels): the output size of the pixel-regression head."""
        return self.backbone_config.patch_size**2 * self.backbone_config.num_channels

    def _check(self) -> None:
        backbone = self.backbone_config
        if not isinstance(backbone.image_size, int) or not isinstance(backbone.patch_size, int):
            raise ValueError(
                f"backbone_config.image_size ({backbone.image_size!r}) and patch_size ({backbone.patch_size!r}) "
                "must be integers (square images and patches)."
            )
        check_patch_grid(backbone.image_size, backbone.patch_size, field="backbone_config.image_size")
        if not backbone.use_mask_token:
            raise ValueError("backbone_config.use_mask_token must be True: masked patches are replaced by [MASK].")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {list(TARGETS)}, got {self.target!r}.")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {self.vocab_size}.")
        num_patches = self.num_patches
        if not 1 <= self.num_masking_patches < num_patches:
            raise ValueError(
                f"num_masking_patches must be in [1, {num_patches - 1}] (fewer than the patches of a "
                f"{self.grid_size}x{self.grid_size} grid), got {self.num_masking_patches}."
            )
        if not 1 <= self.min_num_patches <= self.num_masking_patches:
            raise ValueError(
                f"min_num_patches must be in [1, num_masking_patches={self.num_masking_patches}], "
                f"got {self.min_num_patches}."
            )
        if self.max_num_patches is not None and self.max_num_patches < self.min_num_patches:
            raise ValueError(
                f"max_num_patches ({self.max_num_patches}) must be None or at least min_num_patches "
                f"({self.min_num_patches})."
            )
        if not 0 < self.min_aspect <= 1:
            raise ValueError(
                f"min_aspect must be in (0, 1] (the largest aspect is 1 / min_aspect), got {self.min_aspect}."
            )
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            if len(values) != backbone.num_channels:
                raise ValueError(f"{name} needs {backbone.num_channels} values (one per channel), got {list(values)}.")
        if any(value <= 0 for value in self.image_std):
            raise ValueError(f"image_std values must be positive, got {list(self.image_std)}.")
        if self.initializer_range <= 0:
            raise ValueError(f"initializer_range must be positive, got {self.initializer_range}.")


__all__ = ["BeitMimConfig", "beit_backbone_config"]
