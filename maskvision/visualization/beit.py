"""What a BEiT checkpoint thinks is behind its masks, as a picture.

A few images go through the recipe's own collator (`BeitRecipe.build_collator`, at crop scale 1: the whole image,
flipped or not) for the encoder's view, the tokenizer's view and a blockwise mask; the model encodes the masked view
and its head predicts every patch. One row per image:

- token target: the view, the view with its mask greyed out, the tokenizer's decoding of the true tokens of every
  patch (what the tokenizer itself can show), the same with the masked patches' tokens replaced by the model's
  predictions (what the model thinks is behind the mask), and the masked patches marked right (green) or wrong
  (red). A tokenizer without a pixel decoder (VQ-KD reconstructs a teacher's features) leaves out the two decodings.
- pixel target: the view, the masked view, and the view with the masked patches replaced by the predicted pixels.
  With ``norm_pix_loss`` the model predicts each patch's pixels normalised by their own mean and variance; the
  picture puts the true patch's mean and variance back (as MAE's visualisation does), so the prediction shows
  structure, not brightness.
"""

import torch

from ..modeling.modeling_beit_mim import BeitMimForPreTraining
from ..training.recipes.beit import RECIPE, BeitModelArguments
from .images import image_grid, patch_map, save_png, shade, unnormalize


def load_beit_run(path: str, tokenizer: str | None = None) -> BeitMimForPreTraining:
    """The BEiT pretraining checkpoint of a run directory (``maskvision pretrain beit`` output_dir), in eval mode;
    ``tokenizer`` replaces the tokenizer path recorded in its config (a moved or renamed folder)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(path)
    if not isinstance(model, BeitMimForPreTraining):
        raise ValueError(
            f"{path} holds a {type(model).__name__}; `maskvision visualize beit` needs a BEiT pretraining checkpoint "
            "(the output_dir of `maskvision pretrain beit`)."
        )
    if tokenizer is not None:
        model.set_tokenizer(tokenizer)
    return model.eval()


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """(B, N, P²·C) → (B, C, H, W): the inverse of `BeitMimForPreTraining.patchify` for a square grid."""
    batch, count, _ = patches.shape
    grid = int(round(count**0.5))
    pixels = patches.reshape(batch, grid, grid, patch_size, patch_size, channels)
    return pixels.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, grid * patch_size, grid * patch_size)


def _marked(images: torch.Tensor, masked: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Masked patches tinted green where the predicted token is right, red where wrong; visible patches dimmed."""
    size = images.shape[-1]
    green, red, shown = (patch_map(flags, size) for flags in (masked & right, masked & ~right, masked))
    tint = torch.cat([red, green, torch.zeros_like(red)], 1)
    return shown * (0.4 * images + 0.6 * tint) + (1 - shown) * 0.35 * images


@torch.no_grad()
def predict(model: BeitMimForPreTraining, batch: dict) -> torch.Tensor:
    """The head's prediction at every patch of the masked views: (B, N, vocab) logits or (B, N, P²·C) pixels."""
    hidden_states = model.forward_encoder(batch["pixel_values"], batch["bool_masked_pos"])  # (B, 1 + N, D)
    return model.forward_head(hidden_states[:, 1:])


@torch.no_grad()
def beit_prediction_columns(model: BeitMimForPreTraining, batch: dict) -> tuple[dict[str, torch.Tensor], str]:
    """The picture's titled columns for one collated batch, and a caption with the masked patches' score."""
    config = model.config
    masked = batch["bool_masked_pos"]  # (B, N)
    view = unnormalize(batch["pixel_values"], config.image_mean, config.image_std)
    columns = {"view": view, "masked": shade(view, masked)}
    predictions = predict(model, batch)
    if config.target == "pixels":
        target = model.patchify(batch["pixel_values"])  # (B, N, P²C), the normalised view
        if config.norm_pix_loss:  # back from per-patch normalisation, with the true patch's statistics
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            error = (predictions - (target - mean) / (var + 1e-6).sqrt())[masked].pow(2).mean().item()
            predictions = predictions * (var + 1e-6).sqrt() + mean
        else:
            error = (predictions - target)[masked].pow(2).mean().item()
        filled = torch.where(masked[..., None], predictions, target)
        patch = config.backbone_config.patch_size
        columns["prediction"] = unnormalize(unpatchify(filled, patch), config.image_mean, config.image_std)
        return columns, f"BEiT, pixel target: the masked patches predicted (loss {error:.3f})"
    true_ids = model.tokenize(batch["tokenizer_pixel_values"]).clone()  # (B, N)
    predicted_ids = torch.where(masked, predictions.argmax(-1), true_ids)
    right = predicted_ids == true_ids
    tokenizer = model.tokenizer
    grid = config.grid_size
    if callable(getattr(tokenizer, "decode", None)):
        columns["tokenizer"] = tokenizer.decode(true_ids.view(-1, grid, grid)).clamp(0, 1)
        columns["prediction"] = tokenizer.decode(predicted_ids.view(-1, grid, grid)).clamp(0, 1)
    columns["right/wrong"] = _marked(view, masked, right)
    accuracy = right[masked].float().mean().item()
    return columns, f"BEiT: {accuracy:.0%} of the masked patches' tokens predicted right"


def write_beit_predictions(
    model: BeitMimForPreTraining, dataset, path: str, num_images: int = 4, seed: int = 0, tile: int = 96
) -> dict:
    """Write the picture of ``model``'s predictions on ``num_images`` images spread through ``dataset``; returns
    the columns drawn, the images and the path."""
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    collator = RECIPE.build_collator(model, BeitModelArguments(min_crop_scale=1.0), seed=seed)
    count = min(num_images, len(dataset))
    rows = [dataset[index] for index in torch.linspace(0, len(dataset) - 1, count).round().long().tolist()]
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in collator(rows).items()}
    columns, caption = beit_prediction_columns(model, batch)
    save_png(image_grid({title: images.cpu() for title, images in columns.items()}, tile, caption), path)
    return {"images": count, "columns": list(columns), "caption": caption, "path": path}


__all__ = ["beit_prediction_columns", "load_beit_run", "unpatchify", "write_beit_predictions"]
