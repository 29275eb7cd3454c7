"""What the visual tokenizers (the DALL-E dVAE and BEiT v2's VQ-KD) share: the base class behind BEiT's tokenizer
contract, codebook-health metrics and the per-step code statistics their codebook callback consumes.

The contract (CONTRIBUTING.md): input is RGB in [0, 1] at ``grid * downsample_factor`` pixels per side, the
tokenizer maps or normalises it internally; ``get_codebook_indices(pixel_values)`` returns a LongTensor (B, h, w)
computed under inference mode; ``config.vocab_size`` is the number of codes.

Codebook health (the usual failure of tokenizers trained on small data is collapse onto a few codes):
- perplexity ``exp(H(p))`` of the code-usage distribution ``p``: the number of equally used codes it is worth;
- used fraction: codes used at least once / vocabulary; dead codes: codes never used.
"""

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
from transformers import PreTrainedModel
from transformers.image_utils import PILImageResampling
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from .distributed import all_gather_no_grad, rank_and_world_size
from .modeling_utils import MaskVisionHubMixin


def code_counts(indices: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """How often each code occurs in ``indices`` (any shape) → float tensor (vocab_size,)."""
    return torch.bincount(indices.reshape(-1), minlength=vocab_size).float()


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp`` of the entropy (nats) of the distribution proportional to ``counts`` (V,) → 0-d tensor in [1, V]."""
    probabilities = counts.float() / counts.sum().clamp_min(1)
    entropy = -torch.special.xlogy(probabilities, probabilities).sum()
    return entropy.exp()


def codebook_health(counts: torch.Tensor) -> dict[str, float]:
    """Perplexity, used fraction and dead codes of a code histogram (V,).

    A collapsed codebook (one code for everything) has perplexity 1 and used fraction 1 / V; a uniformly used one
    has perplexity V and used fraction 1.
    """
    vocab_size = counts.numel()
    used = int((counts > 0).sum())
    return {
        "perplexity": round(float(perplexity(counts)), 4),
        "used_fraction": round(used / vocab_size, 6),
        "dead_codes": vocab_size - used,
    }


@dataclass
class CodebookStep:
    """The codes chosen during one optimizer step, summed over processes, and a sample of encoder outputs.

    counts: (V,) occurrences of each code. sums: (V, D) sums of the encoder outputs assigned to each code (only
    when the recorder tracks them, for EMA codebooks). samples: (n, D) encoder outputs of this process, drawn
    uniformly with replacement; `all_samples` gathers them from every process (a collective call).
    """

    counts: torch.Tensor
    samples: torch.Tensor
    sums: torch.Tensor | None = None

    def all_samples(self) -> torch.Tensor:
        return all_gather_no_grad(self.samples)


class CodebookRecorder:
    """Statistics of the codes a tokenizer chose in training mode since the last optimizer step.

    A tokenizer's ``forward`` calls `record` (training mode only, no gradient); the codebook callback calls `pop`
    once per optimizer step on every process, so gradient-accumulation micro-steps add up and processes agree.
    Plain attributes rather than buffers: they are never saved, and DDP does not broadcast them.
    """

    def __init__(self, vocab_size: int, num_samples: int, track_sums: bool = False):
        self.vocab_size = vocab_size
        self.num_samples = num_samples
        self.track_sums = track_sums
        self._reset()

    def _reset(self) -> None:
        self.counts: torch.Tensor | None = None
        self.sums: torch.Tensor | None = None
        self.samples: torch.Tensor | None = None

    @torch.no_grad()
    def record(self, indices: torch.Tensor, vectors: torch.Tensor) -> None:
        """indices (...) and the encoder outputs they were chosen from, vectors (..., D) (any strides)."""
        flat = indices.reshape(-1)
        counts = code_counts(flat, self.vocab_size)
        self.counts = counts if self.counts is None else self.counts + counts
        if self.track_sums:
            sums = vectors.new_zeros(self.vocab_size, vectors.shape[-1], dtype=torch.float32)
            sums.index_add_(0, flat, vectors.reshape(-1, vectors.shape[-1]).float())
            self.sums = sums if self.sums is None else self.sums + sums
        # A fixed number of rows per process (drawn with replacement) keeps `all_gather` shapes equal everywhere.
        picks = torch.randint(flat.numel(), (self.num_samples,), device=flat.device)
        samples = vectors[torch.unravel_index(picks, indices.shape)].float()
        if self.samples is not None:  # a later micro-batch: keep a uniform mix of both
            pool = torch.cat([self.samples, samples])
            samples = pool[torch.randperm(pool.shape[0], device=pool.device)[: self.num_samples]]
        self.samples = samples

    def pop(self) -> CodebookStep | None:
        """This step's statistics summed over processes (a collective call), then reset; None if nothing recorded."""
        if self.counts is None:
            return None
        counts, sums, samples = self.counts, self.sums, self.samples
        self._reset()
        if rank_and_world_size()[1] > 1:
            dist.all_reduce(counts)
            if sums is not None:
                dist.all_reduce(sums)
        return CodebookStep(counts=counts, samples=samples, sums=sums)


class VisualTokenizerModel(MaskVisionHubMixin, PreTrainedModel):
    """Base of maskvision's visual tokenizers: the tokenizer contract, the image processor and the codebook hooks.

    Subclasses implement `encode_indices` (pixels in [0, 1] → codes (B, h, w)) and `reseed_codes`, and create
    ``self.codebook_recorder``; EMA codebooks also override `update_codebook`.
    """

    main_input_name = "pixel_values"
    input_modalities = ("image",)

    @property
    def downsample_factor(self) -> int:
        """Pixels per token side: an image of ``S`` pixels gives an ``S / downsample_factor`` grid of codes."""
        return self.config.downsample_factor

    def image_processor(self) -> ViTImageProcessorPil:
        """What the tokenizer expects: resize to ``config.image_size`` (Lanczos, as BEiT's tokenizer view), rescale
        to [0, 1], no normalisation (the tokenizer maps its input itself)."""
        size = self.config.image_size
        return ViTImageProcessorPil(
            size={"height": size, "width": size}, resample=PILImageResampling.LANCZOS, do_normalize=False
        )

    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        """Raise a ValueError naming the problem unless pixel_values is (B, C, H, W) with H, W multiples of the
        downsample factor."""
        if not torch.is_tensor(pixel_values) or pixel_values.ndim != 4:
            shape = tuple(pixel_values.shape) if torch.is_tensor(pixel_values) else type(pixel_values).__name__
            raise ValueError(f"pixel_values must be a (batch, channels, height, width) tensor, got {shape}.")
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be floating point in [0, 1], got dtype {pixel_values.dtype}.")
        channels, height, width = pixel_values.shape[1:]
        if channels != self.config.num_channels:
            raise ValueError(f"pixel_values has {channels} channels, the tokenizer expects {self.config.num_channels}.")
        factor = self.downsample_factor
        if height % factor or width % factor:
            raise ValueError(
                f"pixel_values of {height}x{width} pixels: height and width must be multiples of the tokenizer's "
                f"downsample_factor ({factor}), e.g. {math.ceil(height / factor) * factor}."
            )

    def encode_indices(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Codes of images in [0, 1]: (B, C, H, W) → LongTensor (B, H / f, W / f). Gradient-free by nature."""
        raise NotImplementedError

    def get_codebook_indices(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """BEiT's targets: codes (B, h, w) of images in [0, 1], computed under inference mode.

        The result is a normal tensor (not an inference tensor), so it can serve as a cross-entropy target.
        """
        self.check_pixel_values(pixel_values)
        with torch.inference_mode():
            indices = self.encode_indices(pixel_values)
        return indices.clone()

    # ------------------------------------------------------------------------------ codebook hooks (callbacks)
    def update_codebook(self, step: CodebookStep) -> None:
        """Apply one optimizer step's statistics to the codebook (EMA codebooks); nothing for learned ones."""

    def reseed_codes(self, codes: torch.Tensor, samples: torch.Tensor, generator: torch.Generator) -> list[tuple]:
        """Give the (dead) ``codes`` new values drawn from encoder outputs ``samples`` (n, D).

        Returns the parameter slices copied from other codes, ``(parameter, dim, targets, sources)``, so that the
        caller copies their optimizer state along (a re-seeded row must not keep the stale Adam moments of a dead
        code: tiny second moments would turn its first gradients into huge steps)."""
        raise NotImplementedError


__all__ = [
    "CodebookRecorder",
    "CodebookStep",
    "VisualTokenizerModel",
    "code_counts",
    "codebook_health",
    "perplexity",
]
