"""Titled image grids for the pictures: one row per image, one titled column per view, drawn with PIL.

Tensors are (B, 3, H, W) RGB in [0, 1] (or (B, H, W) maps in [0, 1], drawn with `HEAT`); patch-level values are
(B, N) with N = grid² row-major, as `bool_masked_pos` (CONTRIBUTING.md).
"""

import math
import os

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont, ImageOps

HEADER = 18  # pixels of the column titles
# Tints of the masks of one image (ExtreMA's disjoint masks): Sasha Trubetskoy's distinct colours.
MASK_COLORS = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                            [145, 30, 180], [70, 240, 240], [240, 50, 230]], dtype=torch.float32) / 255  # fmt: skip
# A perceptually ordered dark-to-bright map for scalar maps (attention): eight evenly spaced samples of the
# "inferno" map (matplotlib's), interpolated linearly between them.
HEAT = torch.tensor([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                     [250, 193, 39], [252, 255, 164]], dtype=torch.float32) / 255  # fmt: skip


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image → (3, H, W) in [0, 1]."""
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width, 3)
    return pixels.permute(2, 0, 1).float() / 255


def unnormalize(pixel_values: torch.Tensor, mean, std) -> torch.Tensor:
    """A model's normalised view (B, 3, H, W) → pixels in [0, 1]."""
    mean = torch.as_tensor(mean, dtype=pixel_values.dtype)[:, None, None]
    std = torch.as_tensor(std, dtype=pixel_values.dtype)[:, None, None]
    return (pixel_values * std + mean).clamp(0, 1)


def patch_map(values: torch.Tensor, size: int) -> torch.Tensor:
    """(B, N) per-patch values → (B, 1, size, size), each patch's value over its pixels (size: a multiple of the
    grid)."""
    grid = int(round(values.shape[-1] ** 0.5))
    if grid * grid != values.shape[-1] or size % grid:
        raise ValueError(f"{values.shape[-1]} patches are no square grid dividing {size} pixels.")
    return values.float().view(-1, 1, grid, grid).repeat_interleave(size // grid, 2).repeat_interleave(size // grid, 3)


def shade(images: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Masked patches (B, N) blended towards grey, as a model sees them replaced by [MASK]."""
    mask = patch_map(masked, images.shape[-1])
    return images * (1 - 0.75 * mask) + 0.5 * 0.75 * mask


def colour_visible(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Several disjoint masks (B, M, N): each patch tinted with the colour of the mask that shows it; patches no mask
    shows, dimmed."""
    visible = ~masks
    owner = visible.float().argmax(1)  # (B, N): the mask showing each patch
    colours = MASK_COLORS[owner % len(MASK_COLORS)]  # (B, N, 3)
    size = images.shape[-1]
    tint = torch.cat([patch_map(colours[..., channel], size) for channel in range(3)], 1)
    shown = patch_map(visible.any(1), size)
    return shown * (0.45 * images + 0.55 * tint) + (1 - shown) * 0.25 * images


def heat(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) values in [0, 1] → (B, 3, H, W) colours of `HEAT`, interpolated between its anchors."""
    position = maps.clamp(0, 1) * (len(HEAT) - 1)
    low = position.floor().long().clamp(max=len(HEAT) - 2)
    weight = (position - low).unsqueeze(-1)
    colours = HEAT[low] * (1 - weight) + HEAT[low + 1] * weight  # (B, H, W, 3)
    return colours.permute(0, 3, 1, 2)


def rescale(maps: torch.Tensor) -> torch.Tensor:
    """Each map of (B, ...) stretched to [0, 1] on its own (min to max), so that its structure shows whatever its
    range; a constant map becomes 0."""
    flat = maps.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    scale = (high - low).clamp_min(1e-12)
    return ((flat - low[:, None]) / scale[:, None]).view_as(maps)


def _tiles(images: torch.Tensor, tile: int) -> torch.Tensor:
    """(B, 3, H, W) → (B, tile, tile, 3) uint8: enlarged pixel by pixel (patches and masks stay sharp), shrunk with
    antialiasing."""
    if images.shape[-1] < tile:
        images = F.interpolate(images.float(), size=(tile, tile), mode="nearest-exact")
    else:
        images = F.interpolate(images.float(), size=(tile, tile), mode="bilinear", antialias=True)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def image_grid(columns: dict[str, torch.Tensor], tile: int = 96, caption: str | None = None) -> Image.Image:
    """One row per image, one column per entry of ``columns`` (title → (B, 3, H, W) in [0, 1], B equal for all),
    tiles of ``tile`` pixels under the titles, and ``caption`` (one line) above them; the picture is widened when
    the caption is longer than the row of tiles."""
    if not columns:
        raise ValueError("image_grid needs at least one column.")
    counts = {title: len(images) for title, images in columns.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"Every column needs one image per row, got {counts}.")
    rows = next(iter(counts.values()))
    top = HEADER * (2 if caption else 1)
    font = ImageFont.load_default()
    width = max(tile * len(columns), math.ceil(font.getlength(caption or "")) + 6)  # the caption never clipped
    canvas = Image.new("RGB", (width, top + tile * rows), "white")
    draw = ImageDraw.Draw(canvas)
    if caption:
        draw.text((3, 3), caption, fill="black", font=font)
    for column, (title, images) in enumerate(columns.items()):
        draw.text((column * tile + 3, top - HEADER + 3), title, fill="black", font=font)
        for row, pixels in enumerate(_tiles(images, tile)):
            canvas.paste(Image.fromarray(pixels.numpy()), (column * tile, top + row * tile))
    return canvas


def thumbnails(images: list[Image.Image], tile: int) -> torch.Tensor:
    """RGB PIL images of any sizes → (B, 3, tile, tile): each whole image fitted into the square, padded white;
    enlarged pixel by pixel, as the other tiles (`image_grid`), shrunk with bicubic resampling."""

    def fitted(image: Image.Image) -> Image.Image:
        method = Image.Resampling.NEAREST if max(image.size) < tile else Image.Resampling.BICUBIC
        return ImageOps.pad(image, (tile, tile), method=method, color="white")

    return torch.stack([pil_to_tensor(fitted(image)) for image in images])


def save_png(picture: Image.Image, path: str) -> str:
    """Write ``picture`` to ``path`` (folders made), as a compact PNG; returns the path."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    picture.save(path, optimize=True)
    return path


__all__ = [
    "HEADER",
    "colour_visible",
    "heat",
    "image_grid",
    "patch_map",
    "pil_to_tensor",
    "rescale",
    "save_png",
    "shade",
    "thumbnails",
    "unnormalize",
]
