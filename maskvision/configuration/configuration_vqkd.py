"""Configuration of the VQ-KD visual tokenizer of BEiT v2 (Peng et al. 2022, "BEiT v2: Masked Image Modeling with
Vector-Quantized Visual Tokenizers").

A ViT encoder maps the image to one vector per patch, a codebook of ``vocab_size`` l2-normalised codes (8192 x 32,
EMA-updated) quantises them, and a small ViT decoder reconstructs the patch features of a frozen teacher (any
transformers image encoder) from the codes. Defaults are the official ``vqkd_encoder_base_decoder_3x768x12``:
ViT-B/16 encoder at 224 px, 3-layer decoder of width 768.

``encoder_config`` and ``decoder_config`` are stock `BeitConfig`s giving the two ViTs' width, depth and heads;
their geometry is derived here: the encoder sees ``image_size`` pixels in ``patch_size`` patches, the decoder the
``(image_size / patch_size)**2`` grid of codes as 1x1 patches of ``codebook_dim`` channels.
"""

from huggingface_hub.dataclasses import strict
from transformers import BeitConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# The official VisionTransformer of BEiT v2's tokenizer: absolute position embeddings, no layer scale, no drop
# path, LayerNorm eps 1e-6, a final LayerNorm on the patch tokens (use_mean_pooling=False in BeitModel's terms).
VQKD_VIT_DEFAULTS = dict(
    use_absolute_position_embeddings=True,
    layer_scale_init_value=0.0,
    drop_path_rate=0.0,
    layer_norm_eps=1e-6,
    use_mean_pooling=False,
)


@strict
class VQKDConfig(PreTrainedConfig):
    r"""
    vocab_size (`int`, defaults to 8192): number of codes.
    codebook_dim (`int`, defaults to 32): dimension of the l2-normalised codes.
    codebook_decay (`float`, defaults to 0.99): EMA decay of the codebook updates.
    kmeans_init (`bool`, defaults to True): initialise the codebook by spherical k-means on the encoder outputs of
        the first optimizer step (the official ``--quantize_kmeans_init``).
    image_size (`int`, defaults to 224), patch_size (`int`, defaults to 16), num_channels (`int`, defaults to 3):
        the encoder's input; a code covers ``patch_size`` pixels per side.
    image_mean, image_std: normalisation of the encoder's input (default 0.5, 0.5: pixels to [-1, 1], official).
    encoder_config, decoder_config (`BeitConfig` or a dict): width, depth and heads of the encoder and decoder ViTs;
        a dict is merged onto the VQ-KD defaults (`VQKD_VIT_DEFAULTS`, 3 decoder layers).
    teacher_name_or_path (`str`, optional): the transformers image encoder distilled (Hub name or local path);
        referenced here, never stored in the tokenizer's weights.
    teacher_hidden_size (`int`, defaults to 768): width of the teacher's patch features (the decoder's output).
    teacher_image_size (`int`, defaults to 224), teacher_image_mean, teacher_image_std: the teacher's input.
    """

    model_type = "maskvision_vqkd"
    sub_configs_defaults = {
        "encoder_config": SubConfigSpec(BeitConfig, init_kwargs=VQKD_VIT_DEFAULTS),
        "decoder_config": SubConfigSpec(BeitConfig, init_kwargs={**VQKD_VIT_DEFAULTS, "num_hidden_layers": 3}),
    }

    vocab_size: int = 8192
    codebook_dim: int = 32
    codebook_decay: float = 0.99
    kmeans_init: bool = True
    image_size: int = 224
    patch_size: int = 16
    num_channels: int = 3
    image_mean: list[float] | tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: list[float] | tuple[float, ...] = (0.5, 0.5, 0.5)
    encoder_config: dict | PreTrainedConfig | None = None
    decoder_config: dict | PreTrainedConfig | None = None
    teacher_name_or_path: str | None = None
    teacher_hidden_size: int = 768
    teacher_image_size: int = 224
    teacher_image_mean: list[float] | tuple[float, ...] = (0.485, 0.456, 0.406)
    teacher_image_std: list[float] | tuple[float, ...] = (0.229, 0.224, 0.225)

    def __post_init__(self, **kwargs):
        for name in (
            "vocab_size",
            "codebook_dim",
            "image_size",
            "patch_size",
            "num_channels",
            "teacher_hidden_size",
            "teacher_image_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"VQKDConfig.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.vocab_size < 2:
            raise ValueError(f"VQKDConfig.vocab_size must be at least 2, got {self.vocab_size}.")
        if not 0.0 <= self.codebook_decay < 1.0:
            raise ValueError(f"VQKDConfig.codebook_decay must be in [0, 1), got {self.codebook_decay}.")
        if self.image_size % self.patch_size:
            raise ValueError(f"VQKDConfig.patch_size ({self.patch_size}) must divide image_size ({self.image_size}).")
        for name in ("image_mean", "image_std", "teacher_image_mean", "teacher_image_std"):
            if len(getattr(self, name)) != self.num_channels:
                raise ValueError(f"VQKDConfig.{name} needs num_channels ({self.num_channels}) values.")
        for name, spec in self.sub_configs_defaults.items():
            if isinstance(getattr(self, name), dict):  # a partial dict keeps the VQ-KD defaults it does not name
                setattr(self, name, {**spec.init_kwargs, **getattr(self, name)})
        super().__post_init__(**kwargs)
        for name in ("encoder_config", "decoder_config"):
            config = getattr(self, name)
            if not isinstance(config, BeitConfig):
                raise ValueError(f"VQKDConfig.{name} must be a BeitConfig (or its dict), got {type(config).__name__}.")
            if config.hidden_size % config.num_attention_heads:
                raise ValueError(
                    f"VQKDConfig.{name}: hidden_size ({config.hidden_size}) must be a multiple of "
                    f"num_attention_heads ({config.num_attention_heads})."
                )
        encoder, decoder = self.encoder_config, self.decoder_config
        encoder.image_size, encoder.patch_size = self.image_size, self.patch_size
        encoder.num_channels = self.num_channels
        decoder.image_size, decoder.patch_size, decoder.num_channels = self.grid_size, 1, self.codebook_dim

    @property
    def grid_size(self) -> int:
        """Codes per side."""
        return self.image_size // self.patch_size

    @property
    def downsample_factor(self) -> int:
        """Pixels per token side."""
        return self.patch_size


__all__ = ["VQKDConfig"]
