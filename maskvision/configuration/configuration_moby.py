"""MoBY configuration (Xie et al. 2021, "Self-Supervised Learning with Swin Transformers", arXiv:2105.04553).

MoBY = MoCo v2's momentum encoder, key queues and contrastive loss + BYOL's asymmetric predictor and momentum
schedule. `MobyConfig()` is the paper's Swin-T model; the DeiT-S option is
``MobyConfig(backbone_config=moby_vit_backbone_config("small"))``.
"""

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, BeitConfig, PreTrainedConfig, SwinConfig
from transformers.configuration_utils import SubConfigSpec

from .backbones import vit_backbone_config
from .choices import HEAD_NORMS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DROP_PATH_RATE = 0.2  # the online encoder's (the paper's asymmetric drop path: the target has none)


def moby_vit_backbone_config(size: str = "small", **overrides) -> BeitConfig:
    """A DeiT-style ViT as MoBY's DeiT-S: learned absolute position embeddings, a [CLS] token, no layer scale,
    LayerNorm eps 1e-6, online drop path 0.2; the pooled feature is the mean of the patch tokens (LayerNorm'd), the
    feature `BeitForImageClassification` reads. Keyword arguments override any `BeitConfig` field."""
    defaults = {
        "use_absolute_position_embeddings": True,
        "use_relative_position_bias": False,
        "use_shared_relative_position_bias": False,
        "use_mask_token": False,
        "layer_scale_init_value": 0.0,
        "layer_norm_eps": 1e-6,
        "use_mean_pooling": True,
        "drop_path_rate": DROP_PATH_RATE,
    }
    return vit_backbone_config(size, **{**defaults, **overrides})


@strict
class MobyConfig(PreTrainedConfig):
    r"""
    backbone_config (`SwinConfig` or `BeitConfig`, *optional*):
        The encoder: a stock `SwinConfig` (default: Swin-T, 224 px, patch 4, window 7, drop path 0.2) or a ViT as a
        `BeitConfig` (`moby_vit_backbone_config("small")` is the paper's DeiT-S). Its `drop_path_rate` is the
        online encoder's (the paper's 0.2); its pooled output (Swin's average pool, the ViT's mean of patch tokens)
        is the feature MoBY trains.
    projection_dim (`int`, *optional*, defaults to 256):
        Output width of the projector and predictor; the width of the keys in the queues.
    projector_hidden_size (`int`, *optional*, defaults to 4096):
        Hidden width of the projector (encoder width → 4096 → 256).
    projector_num_layers (`int`, *optional*, defaults to 2):
        Linear layers in the projector.
    predictor_hidden_size (`int`, *optional*, defaults to 4096):
        Hidden width of the predictor (256 → 4096 → 256).
    predictor_num_layers (`int`, *optional*, defaults to 2):
        Linear layers in the predictor.
    head_norm (`str`, *optional*, defaults to `"batch"`):
        Normalisation after each hidden layer of the heads: `"batch"` (the paper, BatchNorm + ReLU) or `"layer"`
        (LayerNorm + ReLU, independent of the batch: for small per-device batches without synchronised BatchNorm).
    queue_size (`int`, *optional*, defaults to 4096):
        Number of target keys in each of the two queues (the negatives). Any size works: the queues are written
        modulo their size, so the global batch need not divide it; each queue always holds the `queue_size` newest
        keys (only the newest `queue_size` keys of a step are kept when a step has more).
    temperature (`float`, *optional*, defaults to 0.2):
        Temperature of the InfoNCE loss.
    momentum (`float`, *optional*, defaults to 0.99):
        Momentum of the target encoder and projector at the first optimizer step; it follows a cosine schedule to
        `final_momentum` at the last step (`MomentumTeacherCallback`).
    final_momentum (`float`, *optional*, defaults to 1.0):
        Momentum at the last optimizer step.
    target_drop_path_rate (`float`, *optional*, defaults to 0.0):
        Drop path of the target encoder (the paper's asymmetric drop path: online 0.2, target 0).
    image_mean (`list[float]`, *optional*, defaults to the ImageNet mean):
        Mean the views are normalised with.
    image_std (`list[float]`, *optional*, defaults to the ImageNet standard deviation):
        Standard deviation the views are normalised with.
    """

    model_type = "maskvision_moby"
    sub_configs_defaults = {
        "backbone_config": SubConfigSpec(
            config_class=AutoConfig, model_type="swin", init_kwargs={"drop_path_rate": DROP_PATH_RATE}
        ),
    }

    backbone_config: dict | PreTrainedConfig | None = None
    projection_dim: int = 256
    projector_hidden_size: int = 4096
    projector_num_layers: int = 2
    predictor_hidden_size: int = 4096
    predictor_num_layers: int = 2
    head_norm: str = "batch"
    queue_size: int = 4096
    temperature: float = 0.2
    momentum: float = 0.99
    final_momentum: float = 1.0
    target_drop_path_rate: float = 0.0
    image_mean: list[float] | tuple[float, ...] = IMAGENET_MEAN
    image_std: list[float] | tuple[float, ...] = IMAGENET_STD

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.image_mean, self.image_std = list(self.image_mean), list(self.image_std)
        self._check_values()

    def _check_values(self) -> None:
        # Not a `validate_*` method: @strict would run it again and wrap the ValueError in its own error type.
        backbone = self.backbone_config
        if not isinstance(backbone, (SwinConfig, BeitConfig)):
            raise ValueError(
                f"backbone_config must be a SwinConfig or a BeitConfig (the ViT option), got {type(backbone).__name__}."
            )
        if isinstance(backbone, BeitConfig) and not (
            backbone.use_absolute_position_embeddings
            or backbone.use_relative_position_bias
            or backbone.use_shared_relative_position_bias
        ):
            raise ValueError(
                "The ViT backbone_config has no position information: set use_absolute_position_embeddings=True "
                "(DeiT, `moby_vit_backbone_config`) or use_relative_position_bias=True."
            )
        for name in ("projection_dim", "projector_hidden_size", "predictor_hidden_size", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        for name in ("projector_num_layers", "predictor_num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.head_norm not in HEAD_NORMS:
            raise ValueError(f"head_norm must be one of {list(HEAD_NORMS)}, got {self.head_norm!r}.")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}.")
        if not 0.0 <= self.momentum <= self.final_momentum <= 1.0:
            raise ValueError(
                f"momentum must satisfy 0 <= momentum ({self.momentum}) <= final_momentum ({self.final_momentum}) <= 1."
            )
        if not 0.0 <= self.target_drop_path_rate < 1.0:
            raise ValueError(f"target_drop_path_rate must be in [0, 1), got {self.target_drop_path_rate}.")
        channels = backbone.num_channels
        for name in ("image_mean", "image_std"):
            if len(getattr(self, name)) != channels:
                raise ValueError(
                    f"{name} must have one value per input channel ({channels}), got {getattr(self, name)}."
                )
        if any(value <= 0 for value in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std}.")

    @property
    def encoder_hidden_size(self) -> int:
        """Width of the pooled encoder feature the projector reads."""
        return self.backbone_config.hidden_size


__all__ = ["DROP_PATH_RATE", "MobyConfig", "moby_vit_backbone_config"]
