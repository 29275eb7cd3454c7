"""What an encoder attends to and how it groups patches, for any ViT-like encoder.

Works on what `maskvision.evaluation.load_encoder` loads: an exported maskvision encoder (``<run>/encoder``), a
pretraining run (its encoder is exported on the fly), or a stock transformers checkpoint (ViT, DeiT, BEiT, DINOv2,
Swin for the PCA), each with its own image processor. One row per image, the encoder's input view first:

- attention: the attention of the [CLS] token to every patch in the last layer, per head and averaged over the
  heads (DINO's picture, Caron et al. 2021, fig. 1), each map stretched to its own range.
- pca: the first three principal components of the last layer's patch features, taken over the patches of all the
  images together and mapped to red, green and blue (DINOv2's picture, Oquab et al. 2023, fig. 1): patches the
  encoder sees as alike get alike colours.
"""

import os

import torch

from ..data import to_rgb
from ..evaluation.encoder import Encoder, load_encoder
from ..evaluation.processors import processor_settings
from ..modeling.modeling_utils import MaskVisionPreTrainedModel
from .images import heat, image_grid, rescale, save_png, unnormalize

KINDS = ("attention", "pca")


def load_visual_encoder(path: str, device: str | None = None) -> Encoder:
    """An `Encoder` whose model is the stock transformers encoder (a maskvision pretraining model exports its own),
    with eager attention, which returns its attention weights."""
    encoder = load_encoder(path, device=device)
    if isinstance(encoder.model, MaskVisionPreTrainedModel):  # ExtreMA keeps its own model for class-attention
        encoder.model = encoder.model.encoder_for_export().to(next(encoder.model.parameters()).device).eval()
    encoder.model.set_attn_implementation("eager")
    return encoder


def _short_name(name: str) -> str:
    """A local path by its last two parts (``extrema/encoder``), a Hub id as it is."""
    return "/".join(os.path.normpath(name).split(os.sep)[-2:]) if os.path.exists(name) else name


def _inputs(encoder: Encoder, dataset, num_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixel_values for the model, the same views in [0, 1] for the picture) of images spread through the data."""
    count = min(num_images, len(dataset))
    indices = torch.linspace(0, len(dataset) - 1, count).round().long().tolist()
    pixel_values = encoder.preprocess([to_rgb(dataset[index]["image"]) for index in indices])
    _, mean, std = processor_settings(encoder.image_processor)
    if mean is None or std is None:
        return pixel_values, pixel_values.clamp(0, 1)
    return pixel_values, unnormalize(pixel_values, mean, std)


def _patch_grid(encoder: Encoder, pixel_values: torch.Tensor) -> tuple[int, int]:
    patch = encoder.config.patch_size
    patch_height, patch_width = (patch, patch) if isinstance(patch, int) else patch
    return pixel_values.shape[-2] // patch_height, pixel_values.shape[-1] // patch_width


@torch.no_grad()
def attention_maps(encoder: Encoder, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, heads, h, w): the last layer's attention of the [CLS] token to each patch, per head."""
    if encoder.is_hierarchical:
        raise ValueError(
            f"{encoder.name} is a {type(encoder.model).__name__}: windowed attention and no [CLS] token, so there is "
            "no [CLS] attention map to draw. `maskvision visualize pca` works on it."
        )
    device = next(encoder.model.parameters()).device
    outputs = encoder.model(pixel_values=pixel_values.to(device), output_attentions=True)
    if not outputs.attentions:
        raise ValueError(f"{type(encoder.model).__name__} returned no attention weights (output_attentions).")
    attention = outputs.attentions[-1].float().cpu()  # (B, heads, T, T)
    height, width = _patch_grid(encoder, pixel_values)
    prefix = attention.shape[-1] - height * width  # [CLS] (and register) tokens before the patches
    return attention[:, :, 0, prefix:].reshape(attention.shape[0], attention.shape[1], height, width)


@torch.no_grad()
def patch_feature_pca(encoder: Encoder, pixel_values: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) in [0, 1]: the last layer's patch features projected on their first three principal components
    (over every patch of the batch), each component stretched from its 1st to its 99th percentile."""
    device = next(encoder.model.parameters()).device
    tokens = encoder.model(pixel_values=pixel_values.to(device)).last_hidden_state.float().cpu()  # (B, T, D)
    if encoder.is_hierarchical:  # Swin: the last stage's patches, no [CLS]
        side = int(round(tokens.shape[1] ** 0.5))
        height = width = side
    else:
        height, width = _patch_grid(encoder, pixel_values)
    patches = tokens[:, tokens.shape[1] - height * width :]  # (B, N, D)
    flat = patches.reshape(-1, patches.shape[-1])
    centred = flat - flat.mean(0)
    _, _, components = torch.linalg.svd(centred, full_matrices=False)  # rows: principal directions
    projected = centred @ components[:3].T  # (B·N, 3); fewer than 3 when D < 3
    low, high = projected.quantile(0.01, dim=0), projected.quantile(0.99, dim=0)
    colours = ((projected - low) / (high - low).clamp_min(1e-12)).clamp(0, 1)
    if colours.shape[1] < 3:
        colours = torch.cat([colours, colours.new_zeros(colours.shape[0], 3 - colours.shape[1])], 1)
    return colours.reshape(patches.shape[0], height, width, 3).permute(0, 3, 1, 2)


def write_encoder_picture(kind: str, encoder: Encoder, dataset, path: str, num_images: int = 4, tile: int = 96) -> dict:
    """Write the ``kind`` picture (`KINDS`) of ``encoder`` on ``num_images`` images spread through ``dataset``;
    returns the columns drawn, the images and the path."""
    if kind not in KINDS:
        raise ValueError(f"Unknown picture {kind!r}: choose one of {list(KINDS)}.")
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    pixel_values, views = _inputs(encoder, dataset, num_images)
    columns = {"input": views}
    if kind == "attention":
        maps = attention_maps(encoder, pixel_values)  # (B, heads, h, w)
        columns["mean"] = heat(rescale(maps.mean(1)))
        for head in range(maps.shape[1]):
            columns[f"head {head + 1}"] = heat(rescale(maps[:, head]))
        caption = f"{_short_name(encoder.name)}: [CLS] attention, last layer"
    else:
        columns["PCA"] = patch_feature_pca(encoder, pixel_values)
        caption = f"{_short_name(encoder.name)}: patch features, PCA"
    save_png(image_grid(columns, tile, caption), path)
    return {"images": len(views), "columns": list(columns), "path": path}


__all__ = ["KINDS", "attention_maps", "load_visual_encoder", "patch_feature_pca", "write_encoder_picture"]
