"""What a pretraining method trains on: sample images through its recipe's own collator, at the user's sizes.

The collator is the one ``maskvision pretrain <method>`` builds (`PretrainingRecipe.build_collator`) from the same
model arguments (image and patch size, masking, crop scale...), so the picture shows exactly the views and masks of
a run with those flags. Only the model's config is needed for that: the model's parameters are made on the meta device
(no memory, no initialisation). One row per image, the whole image first, then per method:

- BEiT: the encoder's view, the same view with its blockwise mask greyed out, and the tokenizer's view (given a
  ``--tokenizer``; without one the tokenizer's view is left out and the masks are those of ``--target pixels``,
  which are the same).
- ExtreMA: the student's view with its first mask, the visible patches of all masks in colours (disjoint), the
  teacher's view.
- MoBY: the two views.
"""

import dataclasses
import logging

import torch
from accelerate import init_empty_weights

from ..data import load_image_dataset, to_rgb
from ..training.runs.pretrain import PretrainingRecipe
from .images import colour_visible, image_grid, save_png, shade, thumbnails, unnormalize

logger = logging.getLogger(__name__)


def preview_collator(recipe: PretrainingRecipe, model_args, seed: int = 0):
    """(the recipe's collator, the model's config) for ``model_args``, the model's parameters on the meta device
    (accelerate's `init_empty_weights`, under which a tokenizer still loads from its path: a meta default device
    would make `from_pretrained` refuse)."""
    with init_empty_weights():
        model = recipe.build_model(model_args)
    return recipe.build_collator(model, model_args, seed=seed), model.config


def _view_columns(method: str, batch: dict, mean, std) -> tuple[dict[str, torch.Tensor], str]:
    """The method's views as titled columns of pixels in [0, 1], and a caption of their sizes and masks."""
    view = unnormalize(batch["pixel_values"], mean, std)
    size = view.shape[-1]
    if method == "moby":
        return {"view 1": view, "view 2": unnormalize(batch["pixel_values_2"], mean, std)}, f"MoBY: two {size} px views"
    masks = batch["bool_masked_pos"]
    patches = masks.shape[-1]
    patch = size // int(round(patches**0.5))
    if method == "beit":
        columns = {"view": view, "masked": shade(view, masks)}
        if "tokenizer_pixel_values" in batch:
            columns["tokenizer"] = batch["tokenizer_pixel_values"]
        masked = masks.float().sum(1).mean().item()
        return columns, f"BEiT: {size} px, patch {patch}, {masked:.0f} of {patches} patches masked (mean)"
    count = masks.shape[1]
    columns = {
        "mask 1": shade(view, masks[:, 0]),
        f"{count} masks": colour_visible(view, masks),
        "teacher": unnormalize(batch["teacher_pixel_values"], mean, std),
    }
    share = masks.float().mean().item()
    return columns, f"ExtreMA: {size} px, patch {patch}, {count} masks of {share:.0%} each"


def write_preview(
    recipe: PretrainingRecipe, dataset, model_args, path: str, num_images: int = 8, seed: int = 0, tile: int = 96
) -> dict:
    """Write the preview PNG of ``recipe`` with ``model_args`` on ``num_images`` images spread evenly through
    ``dataset`` (rows with a PIL ``image``); returns what it shows (method, image count, masked share, path)."""
    if num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    if recipe.name == "beit" and model_args.target == "tokens" and not model_args.tokenizer:
        logger.warning("No --tokenizer: the preview leaves out BEiT's tokenizer view (the masks are the same).")
        model_args = dataclasses.replace(model_args, target="pixels")
    collator, config = preview_collator(recipe, model_args, seed)
    count = min(num_images, len(dataset))
    rows = [dataset[index] for index in torch.linspace(0, len(dataset) - 1, count).round().long().tolist()]
    batch = collator(rows)
    views, caption = _view_columns(recipe.name, batch, config.image_mean, config.image_std)
    columns = {"image": thumbnails([to_rgb(row["image"]) for row in rows], tile), **views}
    save_png(image_grid(columns, tile, caption), path)
    report = {"method": recipe.name, "images": count, "columns": list(columns), "path": path}
    if "bool_masked_pos" in batch:
        report["masked"] = round(batch["bool_masked_pos"].float().mean().item(), 3)
    return report


def demo_stage(context) -> dict:
    """The demo's ``preview`` stage: each method's views and masks at its official settings (224 px; BEiT without
    a tokenizer, which the demo trains next), ``preview_<method>.png`` in the demo's folder."""
    from ..training.recipes import beit, extrema, moby

    dataset, count = load_image_dataset(context.dataset), 4 if context.quick else 8
    results = {}
    for module in (beit, extrema, moby):
        recipe = module.RECIPE
        path = context.path(f"preview_{recipe.name}.png")
        model_args = recipe.model_arguments(**({"target": "pixels"} if recipe.name == "beit" else {}))  # same masks
        report = write_preview(recipe, dataset, model_args, path, count, context.seed)
        print(f"preview: {path}")
        if "masked" in report:
            results[f"{recipe.name}_masked"] = report["masked"]
    results["images"] = count
    return results


__all__ = ["demo_stage", "preview_collator", "write_preview"]
