"""ExtreMA configuration (Wu et al. 2022, "Extreme Masking for Learning Instance and Distributed Visual
Representations", https://arxiv.org/abs/2206.04667).

The defaults are the paper's ViT-B/16 at 224 px: 80% of the patches masked, five disjoint masks per image, two
class-attention blocks (layer scale 0.1) pooling the tokens, a 3-layer projector and a 2-layer predictor (hidden
4096, out 256) with LayerNorm + GELU, the BYOL loss and a momentum teacher going from 0.996 to 1.
"""

from huggingface_hub.dataclasses import strict
from transformers import BeitConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

from .backbones import check_patch_grid, vit_backbone_config
from .choices import LOSSES

# The switches ExtreMA needs on a stock `BeitConfig`: the fixed 2-D sin-cos table lives in the absolute position
# embedding slot, no relative position bias, no [MASK] token (masked patches are dropped), mean pooling for the
# exported encoder. Plus the official backbone hyperparameters: no layer scale in the ViT blocks, LayerNorm eps
# 1e-6, stochastic depth 0.1 for the student (the teacher never drops paths).
EXTREMA_BACKBONE_DEFAULTS = {
    "use_absolute_position_embeddings": True,
    "use_relative_position_bias": False,
    "use_shared_relative_position_bias": False,
    "use_mask_token": False,
    "use_mean_pooling": True,
    "layer_scale_init_value": 0.0,
    "layer_norm_eps": 1e-6,
    "drop_path_rate": 0.1,
}
_REQUIRED_BACKBONE_SWITCHES = (
    "use_absolute_position_embeddings",
    "use_relative_position_bias",
    "use_shared_relative_position_bias",
    "use_mask_token",
    "use_mean_pooling",
)
# The class-attention blocks' layer scale by size: the official --layer_scale_init_value is "0.1 for base, 1e-5 for
# large" (microsoft/ExtreMA main.py); the ViT blocks themselves have none.
POOLING_LAYER_SCALE = {"large": 1e-5}
DEFAULT_POOLING_LAYER_SCALE = 0.1


def extrema_backbone_config(size: str = "base", **overrides) -> BeitConfig:
    """A stock `BeitConfig` of a named ViT size (tiny/small/base/large) with ExtreMA's switches and defaults.

    ``extrema_backbone_config("tiny", image_size=32, patch_size=4)``; keyword arguments override any field.
    """
    return vit_backbone_config(size, **{**EXTREMA_BACKBONE_DEFAULTS, **overrides})


def num_visible_patches(num_patches: int, mask_ratio: float) -> int:
    """Patches each mask leaves visible: ``int(N * (1 - mask_ratio))`` as the official ``generate_mask``
    (microsoft/ExtreMA ``lib/builder.py``): 39 of 196 at 80%, 19 at 90%, 9 at 95%."""
    return int(num_patches * (1 - mask_ratio))


@strict
class ExtremaConfig(PreTrainedConfig):
    r"""
    Configuration of [`ExtremaForPreTraining`]: a student ViT that encodes only the visible patches of several
    disjoint masks, a momentum teacher that encodes the full view, class-attention pooling, projector, predictor.

    backbone_config (`BeitConfig` or `dict`, *optional*):
        The encoder, a stock transformers `BeitConfig` (ViT-B/16 at 224 px with `EXTREMA_BACKBONE_DEFAULTS` when
        omitted). Build other sizes with `extrema_backbone_config("small", image_size=..., patch_size=...)`.
    mask_ratio (`float`, *optional*, defaults to 0.8):
        Fraction of the patches each mask hides, in (0, 1); the paper works best at 0.75–0.9.
    num_masks (`int`, *optional*, defaults to 5):
        Masks per image; their visible sets are disjoint, so `num_masks * visible patches <= patches`.
    pooling_depth (`int`, *optional*, defaults to 2):
        Class-attention blocks (CaiT) pooling the patch tokens into the instance representation.
    pooling_layer_scale (`float`, *optional*, defaults to 0.1):
        Initial layer scale of the class-attention blocks (the official 1e-5 for ViT-L: `POOLING_LAYER_SCALE`).
    projector_num_layers / projector_hidden_size (`int`, *optional*, defaults to 3 / 4096):
        Projector MLP (LayerNorm + GELU between layers).
    projection_size (`int`, *optional*, defaults to 256):
        Output width of the projector and of the predictor.
    predictor_num_layers / predictor_hidden_size (`int`, *optional*, defaults to 2 / 4096):
        Predictor MLP on top of the student's projection.
    loss (`str`, *optional*, defaults to `"byol"`):
        `"byol"`: 2 - 2 cos(prediction, target), averaged over masks. `"infonce"`: MoCo v3's contrastive loss
        against the other images' targets of the global batch, at `temperature`, scaled by 2 * temperature.
    temperature (`float`, *optional*, defaults to 0.2):
        Softmax temperature of the `"infonce"` loss.
    base_momentum / final_momentum (`float`, *optional*, defaults to 0.996 / 1.0):
        Teacher EMA momentum at the first and the last optimizer step (cosine schedule in between).
    image_mean / image_std (`list[float]`, *optional*, ImageNet's by default):
        Normalisation of both views.
    """

    model_type = "maskvision_extrema"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(config_class=BeitConfig, init_kwargs=dict(EXTREMA_BACKBONE_DEFAULTS))
    }

    backbone_config: dict | PreTrainedConfig | None = None
    mask_ratio: float = 0.8
    num_masks: int = 5
    pooling_depth: int = 2
    pooling_layer_scale: float = DEFAULT_POOLING_LAYER_SCALE
    projector_num_layers: int = 3
    projector_hidden_size: int = 4096
    projection_size: int = 256
    predictor_num_layers: int = 2
    predictor_hidden_size: int = 4096
    loss: str = "byol"
    temperature: float = 0.2
    base_momentum: float = 0.996
    final_momentum: float = 1.0
    image_mean: list[float] | tuple[float, ...] = (0.485, 0.456, 0.406)
    image_std: list[float] | tuple[float, ...] = (0.229, 0.224, 0.225)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.image_mean, self.image_std = list(self.image_mean), list(self.image_std)
        self._validate_backbone()
        self._validate_masking()
        self._validate_heads()

    @property
    def num_patches(self) -> int:
        grid = check_patch_grid(self.backbone_config.image_size, self.backbone_config.patch_size)
        return grid * grid

    @property
    def num_visible_patches(self) -> int:
        return num_visible_patches(self.num_patches, self.mask_ratio)

    def _validate_backbone(self) -> None:
        backbone = self.backbone_config
        if not isinstance(backbone, BeitConfig):
            raise ValueError(
                f"backbone_config must be a BeitConfig (model_type 'beit'), got {type(backbone).__name__}."
            )
        for switch in _REQUIRED_BACKBONE_SWITCHES:
            if getattr(backbone, switch) != EXTREMA_BACKBONE_DEFAULTS[switch]:
                raise ValueError(
                    f"backbone_config.{switch} must be {EXTREMA_BACKBONE_DEFAULTS[switch]} for ExtreMA (fixed sin-cos "
                    "positions in the absolute slot, dropped masked patches, mean pooling for export); build the "
                    "backbone with configuration_extrema.extrema_backbone_config(size, ...)."
                )
        if not isinstance(backbone.image_size, int) or not isinstance(backbone.patch_size, int):
            raise ValueError(
                f"backbone_config.image_size ({backbone.image_size}) and patch_size ({backbone.patch_size}) must be "
                "integers: ExtreMA works on square images and patches."
            )
        check_patch_grid(backbone.image_size, backbone.patch_size, field="backbone_config.image_size")
        if backbone.hidden_size % 4:
            raise ValueError(
                f"backbone_config.hidden_size ({backbone.hidden_size}) must be divisible by 4 for 2-D sin-cos "
                "position embeddings."
            )
        if len(self.image_mean) != backbone.num_channels or len(self.image_std) != backbone.num_channels:
            raise ValueError(
                f"image_mean and image_std need {backbone.num_channels} values (one per channel), got "
                f"{len(self.image_mean)} and {len(self.image_std)}."
            )
        if any(value <= 0 for value in self.image_std):
            raise ValueError(f"image_std values must be positive, got {self.image_std}.")

    def _validate_masking(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}.")
        if self.num_masks < 1:
            raise ValueError(f"num_masks must be at least 1, got {self.num_masks}.")
        visible, patches = self.num_visible_patches, self.num_patches
        if visible < 1:
            raise ValueError(f"mask_ratio {self.mask_ratio} leaves no visible patch of {patches}: lower mask_ratio.")
        if self.num_masks * visible > patches:
            raise ValueError(
                f"num_masks ({self.num_masks}) x visible patches ({visible}) must be <= {patches} patches: the masks' "
                f"visible sets are disjoint. Use num_masks <= {patches // visible} or a higher mask_ratio."
            )

    def _validate_heads(self) -> None:
        positive = {
            "pooling_depth": self.pooling_depth,
            "projector_num_layers": self.projector_num_layers,
            "projector_hidden_size": self.projector_hidden_size,
            "projection_size": self.projection_size,
            "predictor_num_layers": self.predictor_num_layers,
            "predictor_hidden_size": self.predictor_hidden_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}.")
        if self.pooling_layer_scale <= 0:
            raise ValueError(f"pooling_layer_scale must be positive, got {self.pooling_layer_scale}.")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if not 0.0 <= self.base_momentum <= self.final_momentum <= 1.0:
            raise ValueError(
                f"Momentum must satisfy 0 <= base_momentum ({self.base_momentum}) <= final_momentum "
                f"({self.final_momentum}) <= 1."
            )


__all__ = ["EXTREMA_BACKBONE_DEFAULTS", "POOLING_LAYER_SCALE", "ExtremaConfig", "extrema_backbone_config"]
