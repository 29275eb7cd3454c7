"""A trained visual tokenizer measured on images: its codebook health (used codes, perplexity), and for tokenizers
that decode to pixels the reconstruction error and a PNG of originals beside their reconstructions
(``codebook_health.json`` and ``reconstructions.png`` after `maskvision tokenizer train`, ``maskvision tokenizer
inspect``)."""

import json
import math

import torch

from ...data import to_rgb
from ...modeling.tokenizer_utils import VisualTokenizerModel, code_counts, codebook_health
from ...progress import progress_bar
from ...visualization.images import image_grid, save_png


@torch.no_grad()
def evaluate_tokenizer(
    model: VisualTokenizerModel,
    dataset,
    max_images: int = 2048,
    batch_size: int = 256,
    num_grid_images: int = 8,
    progress: bool = True,
) -> tuple[dict, torch.Tensor | None]:
    """Codebook health of the codes of up to ``max_images`` images (a fixed random subset of larger datasets, which
    are often sorted by class), resized by the tokenizer's image processor; for tokenizers that decode to pixels,
    also the reconstruction error (MSE, PSNR in dB) and a grid of ``num_grid_images`` originals evenly spaced
    through the images, above their reconstructions (None otherwise). A progress bar over the images on a terminal,
    unless ``progress`` is False."""
    processor = model.image_processor()
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counts = torch.zeros(model.config.vocab_size, device=device)
    squared_error, values, originals, reconstructions = 0.0, 0, [], []
    total = min(max_images, len(dataset))
    grid_indices = set(torch.linspace(0, total - 1, min(num_grid_images, total)).round().long().tolist())
    if total < len(dataset):
        subset = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:total]
        dataset = dataset.select(sorted(subset.tolist()))
    for start in progress_bar(range(0, total, batch_size), enabled=progress, desc="codebook health", unit="batch"):
        rows = dataset[start : min(start + batch_size, total)]["image"]
        pixel_values = processor([to_rgb(image) for image in rows], return_tensors="pt")["pixel_values"]
        pixel_values = pixel_values.to(device)
        indices = model.get_codebook_indices(pixel_values)
        counts += code_counts(indices, model.config.vocab_size)
        if hasattr(model, "decode"):
            reconstruction = model.decode(indices)
            squared_error += float((reconstruction - pixel_values).pow(2).sum())
            values += pixel_values.numel()
            picked = [index - start for index in range(start, start + len(rows)) if index in grid_indices]
            originals.append(pixel_values[picked].cpu())
            reconstructions.append(reconstruction[picked].cpu())
    model.train(was_training)
    grid = torch.cat(originals + reconstructions) if values else None
    report = {"images": total, "vocab_size": model.config.vocab_size, **codebook_health(counts.cpu())}
    if values:
        mse = squared_error / values
        psnr = -10 * math.log10(max(mse, 1e-12))
        report.update(reconstruction_mse=round(mse, 6), reconstruction_psnr=round(psnr, 3))
    return report, grid


def write_report(
    model, dataset, json_path: str, png_path: str, max_images: int, batch_size: int = 256, progress: bool = True
) -> dict:
    """`evaluate_tokenizer` → a JSON report, and a PNG of originals beside reconstructions when the tokenizer
    decodes to pixels (one row per image; the report's ``reconstructions`` entry then gives its path)."""
    report, grid = evaluate_tokenizer(model, dataset, max_images=max_images, batch_size=batch_size, progress=progress)
    if grid is not None:
        half = grid.shape[0] // 2
        picture = image_grid(
            {"original": grid[:half], "reconstruction": grid[half:]},
            caption=f"PSNR {report['reconstruction_psnr']:.1f} dB",
        )
        report["reconstructions"] = save_png(picture, png_path)
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    return report
