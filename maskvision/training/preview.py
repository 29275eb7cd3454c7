"""The demo's ``preview`` stage: what each method trains on, as one picture.

Sample images of the demo data through the three collators at the methods' official settings (224 px, 16 px
patches): BEiT's encoder view with its blockwise mask (75 of 196) and its tokenizer view; ExtreMA's student view with
its first random mask (80%), the visible patches of all 5 masks in colours (disjoint), and the teacher's view;
MoBY's two views. Written to ``preview.png`` in the demo's output folder.
"""

import torch
from PIL import Image, ImageDraw, ImageFont

from ..data import load_image_dataset, to_rgb
from .collators import MaskedImageModelingCollator, MultiMaskCollator, TwoViewCollator
from .masking import BlockwiseMaskGenerator, RandomMaskGenerator
from .transforms import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

IMAGE_SIZE, PATCH_SIZE, TOKENIZER_IMAGE_SIZE = 224, 16, 112
TILE, HEADER = 112, 18
MASK_COLORS = torch.tensor([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                            [145, 30, 180], [70, 240, 240], [240, 50, 230]], dtype=torch.float32) / 255


def demo_stage(context) -> dict:
    """Write ``context.path("preview.png")``; return the number of images and the masked shares."""
    dataset = load_image_dataset(context.dataset)
    count = 4 if context.quick else 8
    rows = [dataset[index] for index in range(0, len(dataset), max(1, len(dataset) // count))][:count]
    grid = IMAGE_SIZE // PATCH_SIZE
    common = {"image_size": IMAGE_SIZE, "image_mean": IMAGENET_DEFAULT_MEAN, "image_std": IMAGENET_DEFAULT_STD}
    beit = MaskedImageModelingCollator(
        **common, patch_size=PATCH_SIZE, mask_generator=BlockwiseMaskGenerator(grid, 75),
        tokenizer_image_size=TOKENIZER_IMAGE_SIZE, seed=context.seed,
    )(rows)
    extrema = MultiMaskCollator(
        **common, patch_size=PATCH_SIZE, mask_generator=RandomMaskGenerator(grid, 0.8, 5), seed=context.seed
    )(rows)
    moby = TwoViewCollator(**common, seed=context.seed)(rows)

    columns = {
        "image": torch.stack([_to_tensor(to_rgb(row["image"]).resize((TILE, TILE), Image.Resampling.BICUBIC))
                              for row in rows]),
        "BEiT + mask": _shade(_unnormalize(beit["pixel_values"]), beit["bool_masked_pos"]),
        "BEiT tokenizer": beit["tokenizer_pixel_values"],
        "ExtreMA mask 1": _shade(_unnormalize(extrema["pixel_values"]), extrema["bool_masked_pos"][:, 0]),
        "ExtreMA 5 masks": _colour_visible(_unnormalize(extrema["pixel_values"]), extrema["bool_masked_pos"]),
        "ExtreMA teacher": _unnormalize(extrema["teacher_pixel_values"]),
        "MoBY view 1": _unnormalize(moby["pixel_values"]),
        "MoBY view 2": _unnormalize(moby["pixel_values_2"]),
    }
    path = context.path("preview.png")
    _grid_image(columns).save(path)
    print(f"preview: {path}")
    return {
        "images": len(rows),
        "beit_masked": round(beit["bool_masked_pos"].float().mean().item(), 3),
        "extrema_masked": round(extrema["bool_masked_pos"].float().mean().item(), 3),
    }


def _to_tensor(image: Image.Image) -> torch.Tensor:
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width, 3)
    return pixels.permute(2, 0, 1).float() / 255


def _unnormalize(pixel_values: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    return (pixel_values * std + mean).clamp(0, 1)


def _patch_map(flags: torch.Tensor, size: int) -> torch.Tensor:
    """(B, N) per-patch values → (B, 1, size, size), each patch's value over its pixels."""
    grid = int(flags.shape[-1] ** 0.5)
    return flags.float().view(-1, 1, grid, grid).repeat_interleave(size // grid, 2).repeat_interleave(size // grid, 3)


def _shade(images: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Masked patches blended towards grey."""
    shade = _patch_map(masked, images.shape[-1])
    return images * (1 - 0.75 * shade) + 0.5 * 0.75 * shade


def _colour_visible(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Each patch tinted with the colour of the mask that shows it; patches no mask shows, dimmed."""
    visible = ~masks  # (B, M, N), disjoint over M
    owner = visible.float().argmax(1)  # (B, N): the mask showing each patch
    colours = MASK_COLORS[owner % len(MASK_COLORS)]  # (B, N, 3)
    size = images.shape[-1]
    tint = torch.stack([_patch_map(colours[..., channel], size)[:, 0] for channel in range(3)], 1)
    shown = _patch_map(visible.any(1), size)
    return shown * (0.45 * images + 0.55 * tint) + (1 - shown) * 0.25 * images


def _grid_image(columns: dict[str, torch.Tensor]) -> Image.Image:
    """One row per image, one titled column per view, tiles of TILE pixels."""
    rows = len(next(iter(columns.values())))
    canvas = Image.new("RGB", (TILE * len(columns), HEADER + TILE * rows), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for column, (title, images) in enumerate(columns.items()):
        draw.text((column * TILE + 4, 3), title, fill="black", font=font)
        tiles = torch.nn.functional.interpolate(images, size=(TILE, TILE), mode="bilinear", antialias=True)
        tiles = (tiles.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        for row, tile in enumerate(tiles):
            canvas.paste(Image.fromarray(tile.numpy()), (column * TILE, HEADER + row * TILE))
    return canvas
