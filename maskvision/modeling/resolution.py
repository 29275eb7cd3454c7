"""Moving a stock ViT / Beit / Swin checkpoint to another input resolution (e.g. fine-tuning 224 → 384).

Stock transformers interpolates at every forward pass instead: Beit always resamples its absolute position
embeddings and relative position bias tables to the input's grid, ViT only when called with
``interpolate_pos_encoding=True`` (which `pipeline` never passes), and the parameters stay at the old grid. As
BEiT's and DeiT's fine-tuning code do, `resize_state_dict` resamples the parameters once, so the model is native
at the new resolution (``config.image_size``), runs without interpolation and loads anywhere:

- absolute position embeddings (ViT, Beit, Swin with ``use_absolute_embeddings``): the patch grid is resampled
  bicubically, prefix tokens ([CLS]...) are kept;
- Beit relative position bias tables ((2g - 1)² + 3 rows per head): the (2g - 1) x (2g - 1) table of relative
  offsets is resampled bicubically, the 3 [CLS] entries are kept. Swin's tables are per window, independent of
  the image size, and stay as they are.
"""

import torch
import torch.nn.functional as F

_BEIT_TYPES = ("beit", "data2vec-vision")


def _grid(image_size, patch_size) -> int:
    size = image_size if isinstance(image_size, int) else image_size[0]
    patch = patch_size if isinstance(patch_size, int) else patch_size[0]
    if size % patch:
        raise ValueError(f"patch_size ({patch}) must divide image_size ({size}).")
    return size // patch


def _resample_grid(values: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """(old * old, C) values on a square grid, row-major, to (new * new, C)."""
    channels = values.shape[-1]
    grid = values.float().reshape(1, old, old, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(new * new, channels).to(values.dtype)


def resize_position_embeddings(embeddings: torch.Tensor, old_grid: int, new_grid: int) -> torch.Tensor:
    """(1, prefix + old_grid², D) → (1, prefix + new_grid², D): the patch grid resampled, prefix tokens kept."""
    prefix = embeddings.shape[1] - old_grid * old_grid
    if prefix < 0:
        raise ValueError(
            f"Position embeddings of {embeddings.shape[1]} tokens cannot hold a {old_grid}x{old_grid} grid."
        )
    patches = _resample_grid(embeddings[0, prefix:], old_grid, new_grid)
    return torch.cat([embeddings[0, :prefix], patches]).unsqueeze(0)


def resize_relative_position_bias_table(table: torch.Tensor, old_grid: int, new_grid: int) -> torch.Tensor:
    """Beit's ((2g - 1)² + 3, heads) table from grid ``old_grid`` to ``new_grid``; the 3 [CLS] rows are kept."""
    old_span, new_span = 2 * old_grid - 1, 2 * new_grid - 1
    if table.shape[0] != old_span * old_span + 3:
        raise ValueError(
            f"A relative position bias table for a {old_grid}x{old_grid} grid has {old_span**2 + 3} rows, "
            f"got {table.shape[0]}."
        )
    offsets = _resample_grid(table[: old_span * old_span], old_span, new_span)
    return torch.cat([offsets, table[old_span * old_span :]])


def resize_state_dict(state_dict: dict[str, torch.Tensor], config, image_size: int) -> dict[str, torch.Tensor]:
    """A copy of ``state_dict`` (of a model built from ``config``) with its resolution-dependent parameters
    resampled to ``image_size``; the model to load it into is built from the config with ``image_size`` set."""
    old_grid, new_grid = _grid(config.image_size, config.patch_size), _grid(image_size, config.patch_size)
    resized = dict(state_dict)
    if old_grid == new_grid:
        return resized
    for name, tensor in state_dict.items():
        if name.endswith("embeddings.position_embeddings") and tensor.ndim == 3:
            resized[name] = resize_position_embeddings(tensor, old_grid, new_grid)
        elif name.endswith("relative_position_bias_table") and config.model_type in _BEIT_TYPES:
            resized[name] = resize_relative_position_bias_table(tensor, old_grid, new_grid)
    return resized
