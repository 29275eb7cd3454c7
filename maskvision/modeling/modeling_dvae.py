"""The discrete VAE of DALL-E (Ramesh et al. 2021, "Zero-Shot Text-to-Image Generation"): BEiT's visual tokenizer.

Architecture exactly as OpenAI's released dVAE (``dall_e/encoder.py``, ``dall_e/decoder.py``), module names
included, so its weights map one to one (`maskvision.dalle_weights`):

    encoder: 7x7 conv → groups of residual blocks (widths h, 2h, 4h, 8h; 2x2 max-pool after every group but the
             last) → ReLU → 1x1 conv to the vocabulary: logits (B, V, H / 8, W / 8)
    decoder: 1x1 conv from the (relaxed) one-hot codes to the code embedding → groups of residual blocks (widths
             8h, 4h, 2h, h; nearest 2x upsampling after every group but the last) → ReLU → 1x1 conv to the
             logit-Laplace parameters (B, 2C, H, W): location and log-scale of each pixel value

Each residual block adds ``post_gain * res_path(x)`` to its identity path, with ``post_gain = 1 / L**2`` for the
``L`` blocks of the network: one of the changes DALL-E reports as essential for stable training.

Training (DALL-E, appendix A.2) maximises the ELBO with a Gumbel-softmax relaxation of the codes: the temperature
is annealed from 1 to 1/16 and the weight of the KL term (to a uniform prior) ramped from 0 to 6.6, both set each
optimizer step by `maskvision.training.runs.tokenizer_callbacks.RelaxationScheduleCallback`. The loss is divided by
the number of pixel values, so the KL term (summed over the grid) weighs ``kl_weight / (C * f**2)`` per position.
"""

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..configuration.configuration_dvae import DVAEConfig
from .tokenizer_utils import CodebookRecorder, VisualTokenizerModel, code_counts, perplexity


@dataclass
class DVAETokenizerOutput(ModelOutput):
    """
    loss: reconstruction_loss + kl_weight * kl_divergence / (C * f**2), per pixel value.
    reconstruction_loss: negative log-likelihood of the (mapped) pixel values under the decoder's logit-Laplace
        distribution, per pixel value (or their mean squared error in [0, 1] with ``reconstruction_loss="mse"``).
    kl_divergence: KL(q(z | x) || uniform) in nats, per grid position.
    perplexity: perplexity of the codes the encoder picks (argmax) in this batch.
    logits: (B, V, h, w) the encoder's logits. codebook_indices: (B, h, w) their argmax.
    reconstruction: (B, C, H, W) the decoder's image in [0, 1].
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    kl_divergence: torch.FloatTensor | None = None
    perplexity: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    codebook_indices: torch.LongTensor | None = None
    reconstruction: torch.FloatTensor | None = None


class DVAEResidualBlock(nn.Module):
    """``id_path(x) + post_gain * res_path(x)``; res_path is four (ReLU, conv) pairs through a bottleneck of a
    quarter of the output width. Kernel sizes: (3, 3, 3, 1) in the encoder, (1, 3, 3, 3) in the decoder."""

    def __init__(self, in_channels: int, out_channels: int, post_gain: float, kernel_sizes: tuple[int, ...]):
        super().__init__()
        hidden = out_channels // 4
        self.post_gain = post_gain
        self.id_path = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        widths = [in_channels, hidden, hidden, hidden, out_channels]
        layers = OrderedDict()
        for index, kernel in enumerate(kernel_sizes, start=1):
            layers[f"relu_{index}"] = nn.ReLU()
            layers[f"conv_{index}"] = nn.Conv2d(widths[index - 1], widths[index], kernel, padding=(kernel - 1) // 2)
        self.res_path = nn.Sequential(layers)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.id_path(hidden_states) + self.post_gain * self.res_path(hidden_states)


def _group(
    in_channels: int,
    out_channels: int,
    config: DVAEConfig,
    kernel_sizes: tuple[int, ...],
    resample: tuple[str, nn.Module] | None,
) -> nn.Sequential:
    post_gain = 1.0 / config.num_layers**2
    layers = OrderedDict()
    for index in range(config.blocks_per_group):
        block_in = in_channels if index == 0 else out_channels
        layers[f"block_{index + 1}"] = DVAEResidualBlock(block_in, out_channels, post_gain, kernel_sizes)
    if resample is not None:
        name, module = resample
        layers[name] = module
    return nn.Sequential(layers)


class DVAEEncoder(nn.Module):
    """Mapped pixels (B, C, H, W) → code logits (B, V, H / f, W / f)."""

    def __init__(self, config: DVAEConfig):
        super().__init__()
        widths = [config.hidden_size * 2**index for index in range(config.num_groups)]
        blocks = OrderedDict(input=nn.Conv2d(config.num_channels, widths[0], 7, padding=3))
        for index, width in enumerate(widths):
            last = index == config.num_groups - 1
            blocks[f"group_{index + 1}"] = _group(
                widths[max(index - 1, 0)], width, config, (3, 3, 3, 1), None if last else ("pool", nn.MaxPool2d(2))
            )
        blocks["output"] = nn.Sequential(OrderedDict(relu=nn.ReLU(), conv=nn.Conv2d(widths[-1], config.vocab_size, 1)))
        self.blocks = nn.Sequential(blocks)

    def forward_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) → (B, 2**(G-1) * hidden, H / f, W / f): everything but the output layer
        return self.blocks[:-1](pixel_values)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        # (B, D, h, w) → logits (B, V, h, w), in float32 as DALL-E does (its last conv never runs in fp16)
        conv = self.blocks.output.conv
        with torch.autocast(features.device.type, enabled=False):
            return F.conv2d(F.relu(features.float()), conv.weight.float(), conv.bias.float())

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(pixel_values))


class DVAEDecoder(nn.Module):
    """Codes, one-hot or relaxed (B, V, h, w) → logit-Laplace parameters (B, 2C, h * f, w * f) (C with MSE)."""

    def __init__(self, config: DVAEConfig):
        super().__init__()
        widths = [config.hidden_size * 2**index for index in reversed(range(config.num_groups))]
        out_channels = config.num_channels * (2 if config.reconstruction_loss == "logit_laplace" else 1)
        blocks = OrderedDict(input=nn.Conv2d(config.vocab_size, config.code_embedding_size, 1))
        for index, width in enumerate(widths):
            last = index == config.num_groups - 1
            blocks[f"group_{index + 1}"] = _group(
                config.code_embedding_size if index == 0 else widths[index - 1],
                width,
                config,
                (1, 3, 3, 3),
                None if last else ("upsample", nn.Upsample(scale_factor=2, mode="nearest")),
            )
        blocks["output"] = nn.Sequential(OrderedDict(relu=nn.ReLU(), conv=nn.Conv2d(widths[-1], out_channels, 1)))
        self.blocks = nn.Sequential(blocks)

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        # (B, V, h, w) relaxed one-hot → (B, E, h, w), in float32: a soft mix over 8192 codes
        conv = self.blocks.input
        with torch.autocast(codes.device.type, enabled=False):
            return F.conv2d(codes.float(), conv.weight.float(), conv.bias.float())

    def embed_indices(self, indices: torch.Tensor) -> torch.Tensor:
        # (B, h, w) codes → (B, E, h, w): the 1x1 convolution of a one-hot input is a lookup
        conv = self.blocks.input
        embedding = F.embedding(indices, conv.weight[:, :, 0, 0].T) + conv.bias
        return embedding.permute(0, 3, 1, 2)

    def forward_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        # (B, E, h, w) → (B, 2C, H, W)
        return self.blocks[1:](embedding)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.forward_embedding(self.embed(codes).to(self.blocks.output.conv.weight.dtype))


class DVAEPreTrainedModel(VisualTokenizerModel):
    config_class = DVAEConfig
    base_model_prefix = "dvae"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # DALL-E's initialisation: N(0, 1 / fan_in) weights, zero biases.
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            init.normal_(module.weight, mean=0.0, std=1.0 / math.sqrt(fan_in))
            init.zeros_(module.bias)


class DVAETokenizer(DVAEPreTrainedModel):
    """DALL-E's discrete VAE with a training objective, codebook statistics and BEiT's tokenizer interface.

    ``temperature`` (Gumbel-softmax) and ``kl_weight`` are set each optimizer step by the relaxation schedule
    callback; they start at 1 and 0 (the schedule's first step). In eval mode the codes are the encoder's argmax.
    """

    def __init__(self, config: DVAEConfig):
        super().__init__(config)
        self.encoder = DVAEEncoder(config)
        self.decoder = DVAEDecoder(config)
        self.temperature = 1.0
        self.kl_weight = 0.0
        # Encoder features (before the output layer) of a few positions per step, to re-seed dead codes from.
        self.codebook_recorder = CodebookRecorder(config.vocab_size, num_samples=1024)
        self.post_init()

    # ------------------------------------------------------------------------------------------ pixel mapping
    def map_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[0, 1] → [eps, 1 - eps] (DALL-E's ``map_pixels``)."""
        eps = self.config.logit_laplace_eps
        return (1 - 2 * eps) * pixel_values + eps

    def unmap_pixels(self, mapped: torch.Tensor) -> torch.Tensor:
        """[eps, 1 - eps] → [0, 1], clamped (DALL-E's ``unmap_pixels``)."""
        eps = self.config.logit_laplace_eps
        return ((mapped - eps) / (1 - 2 * eps)).clamp(0, 1)

    # ------------------------------------------------------------------------------------------------- stages
    def forward_encoder(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, C, H, W) in [0, 1] → features (B, D, h, w), logits (B, V, h, w) float32
        features = self.encoder.forward_features(self.map_pixels(pixel_values).to(self.dtype))
        return features, self.encoder.forward_head(features)

    def sample_codes(self, logits: torch.Tensor) -> torch.Tensor:
        # (B, V, h, w) → relaxed one-hot codes (B, V, h, w): Gumbel-softmax when training (hard one-hot samples with
        # relaxed gradients if straight_through), the argmax's one-hot otherwise
        if self.training:
            return F.gumbel_softmax(logits, tau=self.temperature, hard=self.config.straight_through, dim=1)
        return F.one_hot(logits.argmax(dim=1), self.config.vocab_size).permute(0, 3, 1, 2).float()

    def forward_loss(
        self, pixel_values: torch.Tensor, stats: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # pixel_values (B, C, H, W) in [0, 1], stats (B, 2C or C, H, W), logits (B, V, h, w)
        # → loss, reconstruction term (per pixel value), KL term (per position)
        stats = stats.float()
        target = self.map_pixels(pixel_values.float())
        location = stats[:, : self.config.num_channels]
        if self.config.reconstruction_loss == "logit_laplace":
            log_scale = stats[:, self.config.num_channels :]
            # -log of the logit-Laplace density 1 / (2b x (1 - x)) * exp(-|logit(x) - mu| / b)
            nll = (
                math.log(2.0)
                + log_scale
                + torch.log(target)
                + torch.log1p(-target)
                + (torch.logit(target) - location).abs() * torch.exp(-log_scale)
            )
            reconstruction_loss = nll.mean()
        else:
            eps = self.config.logit_laplace_eps
            reconstruction_loss = F.mse_loss((torch.sigmoid(location) - eps) / (1 - 2 * eps), pixel_values.float())
        log_q = F.log_softmax(logits, dim=1)
        kl_divergence = (log_q.exp() * (log_q + math.log(self.config.vocab_size))).sum(dim=1).mean()
        values_per_position = self.config.num_channels * self.downsample_factor**2
        loss = reconstruction_loss + self.kl_weight * kl_divergence / values_per_position
        return loss, reconstruction_loss, kl_divergence

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True) -> DVAETokenizerOutput:
        """pixel_values: (B, C, H, W) RGB in [0, 1]; H and W multiples of ``downsample_factor``."""
        self.check_pixel_values(pixel_values)
        features, logits = self.forward_encoder(pixel_values)  # (B, D, h, w), (B, V, h, w)
        indices = logits.argmax(dim=1)  # (B, h, w)
        if self.training:
            self.codebook_recorder.record(indices, features.detach().permute(0, 2, 3, 1))
        stats = self.decoder(self.sample_codes(logits))  # (B, 2C, H, W)
        reconstruction = self.unmap_pixels(torch.sigmoid(stats[:, : self.config.num_channels].float()))
        loss = reconstruction_loss = kl_divergence = None
        if return_loss:
            loss, reconstruction_loss, kl_divergence = self.forward_loss(pixel_values, stats, logits)
            reconstruction_loss, kl_divergence = reconstruction_loss.detach(), kl_divergence.detach()
        return DVAETokenizerOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            kl_divergence=kl_divergence,
            perplexity=perplexity(code_counts(indices, self.config.vocab_size)),
            logits=logits,
            codebook_indices=indices,
            reconstruction=reconstruction,
        )

    # ----------------------------------------------------------------------------------------- tokenizer API
    def encode_indices(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.forward_encoder(pixel_values)[1].argmax(dim=1)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) → images (B, C, h * f, w * f) in [0, 1] (the decoder's location, unmapped)."""
        if indices.ndim != 3 or indices.is_floating_point():
            raise ValueError(f"indices must be an integer tensor (batch, height, width), got {tuple(indices.shape)}.")
        if indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < self.config.vocab_size:
            raise ValueError(f"indices must lie in [0, vocab_size = {self.config.vocab_size}).")
        stats = self.decoder.forward_embedding(self.decoder.embed_indices(indices).to(self.dtype))
        return self.unmap_pixels(torch.sigmoid(stats[:, : self.config.num_channels].float()))

    # ------------------------------------------------------------------------------------------ codebook hooks
    @torch.no_grad()
    def reseed_codes(self, codes: torch.Tensor, samples: torch.Tensor, generator: torch.Generator) -> list[tuple]:
        """Each dead code splits the code the encoder picks at a randomly drawn encoder output ``h`` (samples:
        (n, D) features before the output layer): it copies that code's decoder embedding and output row, plus
        ``delta = (h - mean) / |h - mean|**2`` with a bias of ``-delta . mean``: the two codes now split the
        parent's region along the hyperplane through the samples' mean, the new one winning by one nat at h."""
        if codes.numel() == 0:
            return []
        head, embedding = self.encoder.blocks.output.conv, self.decoder.blocks.input
        activations = F.relu(samples.to(head.weight.device, torch.float32))  # what the output layer sees
        picks = torch.randint(activations.shape[0], (codes.numel(),), generator=generator).to(activations.device)
        chosen, mean = activations[picks], activations.mean(dim=0)  # (k, D), (D,)
        parents = F.linear(chosen, head.weight[:, :, 0, 0].float(), head.bias.float()).argmax(dim=1)  # (k,)
        direction = chosen - mean
        delta = direction / direction.pow(2).sum(dim=1, keepdim=True).clamp_min(1e-12)
        codes = codes.to(head.weight.device)
        head.weight[codes, :, 0, 0] = (head.weight[parents, :, 0, 0].float() + delta).to(head.weight.dtype)
        head.bias[codes] = (head.bias[parents].float() - delta @ mean).to(head.bias.dtype)
        embedding.weight[:, codes] = embedding.weight[:, parents]
        return [(head.weight, 0, codes, parents), (head.bias, 0, codes, parents), (embedding.weight, 1, codes, parents)]


# The method as its model card states it (`maskvision.cards.methods`): the name, a one-line summary, the paper, the
# BibTeX keys to cite (each model"s BIBTEX, gathered by the cards) and the Hub tags.
METHOD_CARD = dict(
    name="dVAE (DALL-E) visual tokenizer",
    summary=(
        "a discrete VAE of DALL-E's design trained with a Gumbel-softmax relaxation: it maps an image to a grid of "
        "visual tokens, the targets of BEiT's masked image modeling"
    ),
    paper="https://arxiv.org/abs/2102.12092",
    citations=("dalle", "beit"),
    tags=("dvae", "visual-tokenizer"),
)
BIBTEX = {
    "dalle": """@inproceedings{ramesh2021zero,
  title={Zero-Shot Text-to-Image Generation},
  author={Ramesh, Aditya and Pavlov, Mikhail and Goh, Gabriel and Gray, Scott and Voss, Chelsea and Radford, Alec
    and Chen, Mark and Sutskever, Ilya},
  booktitle={Proceedings of the 38th International Conference on Machine Learning},
  series={Proceedings of Machine Learning Research},
  volume={139},
  pages={8821--8831},
  year={2021},
  publisher={PMLR}
}""",
}


__all__ = ["DVAEConfig", "DVAEPreTrainedModel", "DVAETokenizer", "DVAETokenizerOutput"]
