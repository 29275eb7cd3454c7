"""Configuration of the discrete VAE visual tokenizer of DALL-E (Ramesh et al. 2021, "Zero-Shot Text-to-Image
Generation"), BEiT's stage 1 (Bao et al. 2021).

The defaults are DALL-E's released dVAE: 4 groups of 2 residual blocks, 256 hidden channels, a vocabulary of
8192 codes, 8x downsampling, a 128-channel code embedding at the decoder's input and a logit-Laplace
reconstruction (encoder 53.8M, decoder 43.8M parameters). The network is fully convolutional: ``image_size`` only
sets the resolution it is trained at and that its image processor resizes to (112 px gives BEiT's 14 x 14 grid).
"""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

RECONSTRUCTION_LOSSES = ("logit_laplace", "mse")


@strict
class DVAEConfig(PreTrainedConfig):
    r"""
    vocab_size (`int`, defaults to 8192): number of codes.
    hidden_size (`int`, defaults to 256): channels of the first encoder group and the last decoder group; group
        ``i`` of the encoder (0-based) has ``hidden_size * 2**i`` channels, the decoder mirrors it.
    num_groups (`int`, defaults to 4): groups of residual blocks; every group but the last halves (encoder) or
        doubles (decoder) the resolution, so a token covers ``2**(num_groups - 1)`` pixels per side.
    blocks_per_group (`int`, defaults to 2): residual blocks per group; each block's residual branch is scaled by
        ``1 / (num_groups * blocks_per_group) ** 2`` (DALL-E's post-gain).
    code_embedding_size (`int`, defaults to 128): channels of the decoder's 1x1 input convolution, i.e. the width
        of a code's embedding.
    num_channels (`int`, defaults to 3): image channels.
    image_size (`int`, defaults to 112): training resolution and the image processor's size.
    reconstruction_loss (`str`, defaults to "logit_laplace"): "logit_laplace" (DALL-E: the decoder predicts a
        location and a log-scale per pixel value) or "mse" (the decoder predicts the pixel only).
    logit_laplace_eps (`float`, defaults to 0.1): pixels are mapped from [0, 1] to [eps, 1 - eps] before encoding,
        keeping them away from the logit's singularities.
    straight_through (`bool`, defaults to False): feed the decoder hard one-hot Gumbel samples during training and
        back-propagate through their relaxation (straight-through Gumbel-softmax, Jang et al. 2017). DALL-E uses the
        relaxed samples themselves (False); on short runs hard samples with a final temperature around 0.5 leave
        the argmax codes far less collapsed (the relaxation lets early training pass information through mixtures
        of codes that the argmax discards).
    """

    model_type = "maskvision_dvae"

    vocab_size: int = 8192
    hidden_size: int = 256
    num_groups: int = 4
    blocks_per_group: int = 2
    code_embedding_size: int = 128
    num_channels: int = 3
    image_size: int = 112
    reconstruction_loss: str = "logit_laplace"
    logit_laplace_eps: float = 0.1
    straight_through: bool = False

    def __post_init__(self, **kwargs):
        for name in (
            "vocab_size",
            "hidden_size",
            "num_groups",
            "blocks_per_group",
            "code_embedding_size",
            "num_channels",
            "image_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DVAEConfig.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.vocab_size < 2:
            raise ValueError(f"DVAEConfig.vocab_size must be at least 2, got {self.vocab_size}.")
        if self.hidden_size % 4:
            raise ValueError(
                f"DVAEConfig.hidden_size must be a multiple of 4 (the blocks' bottleneck is a quarter of their "
                f"width), got {self.hidden_size}."
            )
        if self.reconstruction_loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(
                f"DVAEConfig.reconstruction_loss must be one of {RECONSTRUCTION_LOSSES}, "
                f"got {self.reconstruction_loss!r}."
            )
        if not 0.0 < self.logit_laplace_eps < 0.5:
            raise ValueError(f"DVAEConfig.logit_laplace_eps must be in (0, 0.5), got {self.logit_laplace_eps}.")
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"DVAEConfig.image_size ({self.image_size}) must be a multiple of the downsample factor "
                f"2**(num_groups - 1) = {self.downsample_factor}."
            )
        super().__post_init__(**kwargs)

    @property
    def downsample_factor(self) -> int:
        """Pixels per token side."""
        return 2 ** (self.num_groups - 1)

    @property
    def num_layers(self) -> int:
        """Residual blocks in the encoder (and in the decoder); sets the post-gain ``1 / num_layers**2``."""
        return self.num_groups * self.blocks_per_group


__all__ = ["DVAEConfig"]
