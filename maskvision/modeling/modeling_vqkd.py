"""VQ-KD, the visual tokenizer of BEiT v2 (Peng et al. 2022): vector-quantised knowledge distillation.

    pixels [0, 1] → normalise → ViT encoder → patch tokens (B, N, D) → Linear-Tanh-Linear → l2-normalise
    → nearest of V l2-normalised codes (cosine) → straight-through → ViT decoder over the h x w grid of codes
    → Linear-Tanh-Linear → (B, N, T): the frozen teacher's patch features, regressed with a cosine loss

Loss: ``(1 - cos(reconstruction, teacher)) + ||z - sg(code)||²`` (reconstruction + commitment, beta = 1). The
codebook receives no gradient: it is an exponential moving average (decay 0.99) of the l2-normalised mean of the
encoder outputs assigned to each code, initialised by spherical k-means on the first step's outputs. Unlike the
official code, which updates the codebook inside ``forward``, the update is applied once per optimizer step by
`maskvision.training.runs.tokenizer_callbacks.CodebookCallback` from statistics summed over micro-batches and processes,
which also restarts dead codes from encoder outputs (Dhariwal et al. 2020) when asked.

The teacher (`load_teacher`: any transformers image encoder by name or path) is attached with `set_teacher` and
kept out of the module tree: it is never saved with the tokenizer, never wrapped by DDP, never optimised.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModel, BeitModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from ..configuration.configuration_vqkd import VQKDConfig
from .losses import l2_normalize
from .tokenizer_utils import CodebookRecorder, CodebookStep, VisualTokenizerModel, code_counts, perplexity


def spherical_kmeans(
    samples: torch.Tensor, num_clusters: int, generator: torch.Generator, iterations: int = 10, chunk_size: int = 4096
) -> torch.Tensor:
    """k-means under cosine similarity of unit vectors (n, d) → (num_clusters, d) unit centroids; clusters left
    empty keep their previous centroid. Initial centroids are samples drawn with ``generator``."""
    picks = torch.randint(samples.shape[0], (num_clusters,), generator=generator).to(samples.device)
    centroids = samples[picks]
    for _ in range(iterations):
        assignment = torch.cat([(chunk @ centroids.T).argmax(dim=1) for chunk in samples.split(chunk_size)])
        sums = torch.zeros_like(centroids).index_add_(0, assignment, samples)
        counts = torch.bincount(assignment, minlength=num_clusters)
        centroids = torch.where((counts > 0)[:, None], l2_normalize(sums), centroids)
    return centroids


class ProjectedImageTower(nn.Module):
    """A CLIP image tower as BEiT v2 distils it: every token through the final LayerNorm and the image projection,
    ``ln_post(x) @ visual.proj`` (unilm beit2/modeling_vqkd.py ``get_regress_target``: 512-d for ViT-B/16), not
    the unprojected states before that LayerNorm which transformers' ``last_hidden_state`` holds."""

    def __init__(self, vision_model: nn.Module, visual_projection: nn.Module):
        super().__init__()
        self.vision_model, self.visual_projection = vision_model, visual_projection
        self.config = vision_model.config

    def forward(self, pixel_values: torch.Tensor) -> BaseModelOutput:
        hidden = self.vision_model(pixel_values=pixel_values).last_hidden_state  # (B, 1 + N, width)
        return BaseModelOutput(last_hidden_state=self.visual_projection(self.vision_model.post_layernorm(hidden)))


def image_tower(model: nn.Module) -> nn.Module:
    """The image encoder of a loaded model: CLIP-like models' projected image tower, other models as they are."""
    vision_model = getattr(model, "vision_model", None)
    if vision_model is None:
        return model
    projection = getattr(model, "visual_projection", None)
    return ProjectedImageTower(vision_model, projection) if projection is not None else vision_model


def load_teacher(name_or_path: str) -> tuple[nn.Module, dict]:
    """A frozen transformers image encoder and the `VQKDConfig` fields describing it: its name, input size and
    normalisation (from its image processor when it has one, ImageNet's otherwise) and the width of its patch
    features (measured by one forward pass, which also checks that it outputs patch tokens). A CLIP model (or its
    image tower with projection) gives its projected tokens, as BEiT v2 (`ProjectedImageTower`)."""
    architectures = getattr(AutoConfig.from_pretrained(name_or_path), "architectures", None) or []
    with_projection = [name for name in architectures if name.endswith("VisionModelWithProjection")]
    model_class = getattr(transformers, with_projection[0]) if with_projection else AutoModel  # AutoModel drops it
    model = image_tower(model_class.from_pretrained(name_or_path))
    config = model.config
    size = getattr(config, "image_size", 224)
    size = size if isinstance(size, int) else size[0]
    fields = {"teacher_name_or_path": str(name_or_path), "teacher_image_size": size}
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path)
        fields.update(teacher_image_mean=list(processor.image_mean), teacher_image_std=list(processor.image_std))
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # no image processor saved: ImageNet's normalisation (the config default)
    model.eval().requires_grad_(False)
    with torch.no_grad():
        probe = torch.zeros(1, getattr(config, "num_channels", 3), size, size)
        hidden = model(pixel_values=probe).last_hidden_state
    fields["teacher_hidden_size"] = teacher_patch_tokens(hidden, size, getattr(config, "patch_size", None)).shape[1]
    return model, fields


def teacher_patch_tokens(hidden_states: torch.Tensor, image_size: int, patch_size) -> torch.Tensor:
    """The patch tokens of a teacher's last hidden state as a grid (B, T, g, g): drops leading [CLS] / distillation
    / register tokens of ViT-like outputs (B, L, T), accepts convolutional maps (B, T, g, g) as they are."""
    if hidden_states.ndim == 4:
        return hidden_states
    length = hidden_states.shape[1]
    patch = patch_size[0] if isinstance(patch_size, (list, tuple)) else patch_size
    grid = image_size // patch if patch else 0
    if not grid or grid * grid > length:
        grid = int(length**0.5)  # hierarchical models (Swin): every token is a patch of the last stage
    if grid * grid > length or grid == 0:
        raise ValueError(f"Cannot find a square grid of patch tokens in the teacher's output of length {length}.")
    tokens = hidden_states[:, length - grid * grid :]
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid, grid)


@dataclass
class VQKDTokenizerOutput(ModelOutput):
    """
    loss: reconstruction_loss + commitment_loss.
    reconstruction_loss: mean cosine distance between the decoder's output and the teacher's patch features.
    commitment_loss: mean squared distance between the encoder outputs and their (detached) codes.
    perplexity: perplexity of the codes chosen in this batch.
    codebook_indices: (B, h, w) codes. reconstruction: (B, h * w, T) the decoder's output.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    commitment_loss: torch.FloatTensor | None = None
    perplexity: torch.FloatTensor | None = None
    codebook_indices: torch.LongTensor | None = None
    reconstruction: torch.FloatTensor | None = None


class VQKDPreTrainedModel(VisualTokenizerModel):
    config_class = VQKDConfig
    base_model_prefix = "vqkd"
    _no_split_modules = ["BeitLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The encoder and decoder are BeitModels and initialise themselves; here the task layers and codebook.
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=0.02)
            init.zeros_(module.bias)
        elif isinstance(module, VQKDTokenizer):
            init.copy_(module.codebook, l2_normalize(torch.randn_like(module.codebook)))
            init.copy_(module.codebook_initialized, torch.tensor(not self.config.kmeans_init))


class VQKDTokenizer(VQKDPreTrainedModel):
    """BEiT v2's tokenizer; ``set_teacher(load_teacher(path)[0])`` before computing its training loss."""

    def __init__(self, config: VQKDConfig):
        super().__init__(config)
        self.encoder = BeitModel(config.encoder_config, add_pooling_layer=False)
        encoder_width, decoder_width = config.encoder_config.hidden_size, config.decoder_config.hidden_size
        self.encode_task_layer = nn.Sequential(
            nn.Linear(encoder_width, encoder_width), nn.Tanh(), nn.Linear(encoder_width, config.codebook_dim)
        )
        self.register_buffer("codebook", torch.zeros(config.vocab_size, config.codebook_dim))
        self.register_buffer("codebook_initialized", torch.tensor(False))
        self.decoder = BeitModel(config.decoder_config, add_pooling_layer=False)
        self.decode_task_layer = nn.Sequential(
            nn.Linear(decoder_width, decoder_width), nn.Tanh(), nn.Linear(decoder_width, config.teacher_hidden_size)
        )
        # Codes and encoder outputs of each step, for the EMA update, k-means initialisation and restarts.
        self.codebook_recorder = CodebookRecorder(config.vocab_size, num_samples=2 * config.vocab_size, track_sums=True)
        self.teacher = None
        self.post_init()

    def no_weight_decay(self) -> set[str]:
        return {
            f"{part}.embeddings.{name}"
            for part in ("encoder", "decoder")
            for name in ("cls_token", "position_embeddings")
        }

    def set_teacher(self, teacher: nn.Module | None) -> None:
        """Attach the frozen teacher whose patch features the decoder regresses (None detaches it)."""
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        object.__setattr__(self, "teacher", teacher)  # not a submodule: never saved, wrapped or optimised

    # ------------------------------------------------------------------------------------------------- stages
    def forward_encoder(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) in [0, 1] → unit vectors (B, h, w, d), float32
        batch, _, height, width = pixel_values.shape
        mean = pixel_values.new_tensor(self.config.image_mean).view(1, -1, 1, 1)
        std = pixel_values.new_tensor(self.config.image_std).view(1, -1, 1, 1)
        pixel_values = ((pixel_values - mean) / std).to(self.dtype)
        interpolate = (height, width) != (self.config.image_size, self.config.image_size)
        tokens = self.encoder(pixel_values=pixel_values, interpolate_pos_encoding=interpolate).last_hidden_state
        tokens = tokens[:, 1:]  # (B, N, D): [CLS] dropped
        with torch.autocast(tokens.device.type, enabled=False):  # quantiser input in full precision, as official
            vectors = self.encode_task_layer(tokens.to(self.encode_task_layer[-1].weight.dtype))
        grid = (height // self.config.patch_size, width // self.config.patch_size)
        return l2_normalize(vectors).reshape(batch, *grid, -1)

    def quantize(self, vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # unit vectors (..., d) → indices (...) of the nearest codes (largest cosine), the codes (..., d), float32
        codebook = self.codebook.float()
        indices = (vectors.float() @ codebook.T).argmax(dim=-1)
        return indices, F.embedding(indices, codebook)

    def forward_decoder(self, codes: torch.Tensor) -> torch.Tensor:
        # (B, h, w, d) codes → (B, h * w, T) predicted teacher features
        grid = codes.permute(0, 3, 1, 2).to(self.dtype)  # the decoder's "image": one 1x1 patch per code
        interpolate = tuple(grid.shape[-2:]) != (self.config.grid_size, self.config.grid_size)
        tokens = self.decoder(pixel_values=grid, interpolate_pos_encoding=interpolate).last_hidden_state[:, 1:]
        return self.decode_task_layer(tokens)

    @torch.no_grad()
    def teacher_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The teacher's patch features on the tokenizer's grid: (B, C, H, W) in [0, 1] → (B, h * w, T)."""
        if self.teacher is None:
            raise ValueError(
                "VQKDTokenizer has no teacher: attach one with model.set_teacher(load_teacher(path)[0]) before "
                f"computing the distillation loss (this checkpoint distilled {self.config.teacher_name_or_path!r})."
            )
        teacher = self.teacher
        if next(teacher.parameters()).device != pixel_values.device:
            teacher.to(pixel_values.device)
        grid = (pixel_values.shape[2] // self.config.patch_size, pixel_values.shape[3] // self.config.patch_size)
        size = self.config.teacher_image_size
        if tuple(pixel_values.shape[-2:]) != (size, size):
            pixel_values = F.interpolate(pixel_values.float(), size=(size, size), mode="bicubic", antialias=True)
        mean = pixel_values.new_tensor(self.config.teacher_image_mean).view(1, -1, 1, 1)
        std = pixel_values.new_tensor(self.config.teacher_image_std).view(1, -1, 1, 1)
        inputs = ((pixel_values.clamp(0, 1) - mean) / std).to(next(teacher.parameters()).dtype)
        hidden = teacher(pixel_values=inputs).last_hidden_state
        features = teacher_patch_tokens(hidden, size, getattr(teacher.config, "patch_size", None))  # (B, T, g, g)
        if tuple(features.shape[-2:]) != grid:
            features = F.interpolate(features.float(), size=grid, mode="bilinear", align_corners=False)
        return features.flatten(2).transpose(1, 2)

    def forward(self, pixel_values: torch.Tensor, return_loss: bool = True) -> VQKDTokenizerOutput:
        """pixel_values: (B, C, H, W) RGB in [0, 1]; H and W multiples of ``patch_size``."""
        self.check_pixel_values(pixel_values)
        vectors = self.forward_encoder(pixel_values)  # (B, h, w, d)
        indices, codes = self.quantize(vectors)  # (B, h, w), (B, h, w, d)
        if self.training:
            self.codebook_recorder.record(indices, vectors.detach())
        commitment_loss = F.mse_loss(vectors, codes.detach())
        codes = vectors + (codes - vectors).detach()  # straight-through estimator
        reconstruction = self.forward_decoder(codes)  # (B, N, T)
        loss = reconstruction_loss = None
        if return_loss:
            target = self.teacher_features(pixel_values)
            cosine = (l2_normalize(reconstruction) * l2_normalize(target)).sum(dim=-1)
            reconstruction_loss = (1 - cosine).mean()
            loss = reconstruction_loss + commitment_loss
            reconstruction_loss = reconstruction_loss.detach()
        return VQKDTokenizerOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            commitment_loss=commitment_loss.detach(),
            perplexity=perplexity(code_counts(indices, self.config.vocab_size)),
            codebook_indices=indices,
            reconstruction=reconstruction,
        )

    # ----------------------------------------------------------------------------------------- tokenizer API
    def encode_indices(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.quantize(self.forward_encoder(pixel_values))[0]

    # ------------------------------------------------------------------------------------------ codebook hooks
    @torch.no_grad()
    def update_codebook(self, step: CodebookStep) -> None:
        """k-means initialisation on the first step (with ``kmeans_init``), then the EMA of the normalised mean
        encoder output of each code used in the step: ``c = normalize(decay * c + (1 - decay) * mean)``."""
        if not bool(self.codebook_initialized):
            generator = torch.Generator().manual_seed(0)  # every process computes the same centroids
            samples = step.all_samples().to(self.codebook.device)
            self.codebook.copy_(spherical_kmeans(samples, self.config.vocab_size, generator))
            self.codebook_initialized.fill_(True)
            return
        used = step.counts > 0
        means = l2_normalize(step.sums[used] / step.counts[used, None])
        decay = self.config.codebook_decay
        self.codebook[used] = l2_normalize(decay * self.codebook[used] + (1 - decay) * means)

    @torch.no_grad()
    def reseed_codes(self, codes: torch.Tensor, samples: torch.Tensor, generator: torch.Generator) -> list[tuple]:
        """Dead codes restart as randomly drawn encoder outputs (unit vectors, samples (n, d)); the codebook is a
        buffer, so there is no optimizer state to carry along."""
        if codes.numel() == 0:
            return []
        picks = torch.randint(samples.shape[0], (codes.numel(),), generator=generator)
        self.codebook[codes.to(self.codebook.device)] = l2_normalize(samples[picks.to(samples.device)]).to(
            self.codebook.device
        )
        return []


# The method as its model card states it (`maskvision.cards.methods`): the name, a one-line summary, the paper, the
# BibTeX keys to cite (each model"s BIBTEX, gathered by the cards) and the Hub tags.
METHOD_CARD = dict(
    name="VQ-KD (BEiT v2) visual tokenizer",
    summary=(
        "vector-quantised knowledge distillation: a ViT encoder and an l2-normalised, EMA-updated codebook whose codes "
        "a decoder turns back into a teacher's patch features; its tokens are BEiT v2's targets"
    ),
    paper="https://arxiv.org/abs/2208.06366",
    citations=("beitv2",),
    tags=("vq-kd", "visual-tokenizer"),
)
BIBTEX = {
    "beitv2": """@article{peng2022beitv2,
  title={{BEiT v2}: Masked Image Modeling with Vector-Quantized Visual Tokenizers},
  author={Zhiliang Peng and Li Dong and Hangbo Bao and Qixiang Ye and Furu Wei},
  year={2022},
  eprint={2208.06366},
  archivePrefix={arXiv},
  primaryClass={cs.CV}
}""",
}


__all__ = [
    "ProjectedImageTower",
    "VQKDConfig",
    "VQKDPreTrainedModel",
    "VQKDTokenizer",
    "VQKDTokenizerOutput",
    "image_tower",
    "load_teacher",
]
