"""Fixed 2-D sine-cosine position embeddings (MAE, He et al. 2022; MoCo v3, Chen et al. 2021)."""

import torch


def sincos_2d_position_embedding(
    grid_height: int, grid_width: int, dim: int, temperature: float = 10000.0
) -> torch.Tensor:
    """(grid_height * grid_width, dim) embeddings, row-major like the patch order of a ViT.

    A quarter of the channels each holds sin(y), cos(y), sin(x), cos(x) at geometrically spaced frequencies.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos position embeddings need dim divisible by 4, got {dim}.")
    ys, xs = torch.meshgrid(
        torch.arange(grid_height, dtype=torch.float64), torch.arange(grid_width, dtype=torch.float64), indexing="ij"
    )
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    y = ys.reshape(-1, 1) * omega  # (N, dim / 4)
    x = xs.reshape(-1, 1) * omega
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1).float()
