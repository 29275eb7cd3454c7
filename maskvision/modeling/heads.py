"""Heads shared by the joint-embedding methods.

- `MLPHead`: projector / predictor MLPs of BYOL (Grill et al. 2020), MoCo v3 (Chen et al. 2021), MoBY
  (Xie et al. 2021, BatchNorm + ReLU) and ExtreMA (Wu et al. 2022, LayerNorm + GELU).
- `ClassAttentionPooling`: CaiT's class-attention blocks (Touvron et al. 2021, "Going deeper with Image
  Transformers"), used by ExtreMA to pool a set of tokens into one vector.
"""

import torch
import torch.nn.functional as F
from torch import nn

_NORMS = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


class MLPHead(nn.Module):
    """``num_layers`` linear layers; norm + activation after each hidden layer, optional norm after the last.

    Input (..., in_dim) → output (..., out_dim). With ``norm="batch"`` the input must be 2-D (batch, in_dim).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        norm: str = "batch",
        activation: str = "relu",
        last_norm: bool = False,
    ):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}.")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {sorted(_NORMS)}, got {norm!r}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}.")
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        for index, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            last = index == num_layers - 1
            # A bias before BatchNorm is redundant (its shift takes its place); before LayerNorm it is not.
            followed_by_norm = not last or last_norm
            layers.append(nn.Linear(d_in, d_out, bias=not followed_by_norm or norm == "layer"))
            if not last:
                layers += [_NORMS[norm](d_out), _ACTIVATIONS[activation]()]
            elif last_norm:  # MoCo v3's last BatchNorm has no affine part; the same for LayerNorm
                affine_off = {"elementwise_affine": False} if norm == "layer" else {"affine": False}
                layers.append(_NORMS[norm](d_out, **affine_off))
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class ClassAttention(nn.Module):
    """Multi-head attention in which only the class token queries: (B, 1 + N, D) → (B, 1, D)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a multiple of num_heads ({num_heads}).")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length, dim = tokens.shape
        head_dim = dim // self.num_heads
        query = self.q(tokens[:, :1]).reshape(batch, 1, self.num_heads, head_dim).transpose(1, 2)
        key, value = self.kv(tokens).reshape(batch, length, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        pooled = F.scaled_dot_product_attention(query, key, value)  # (B, heads, 1, head_dim)
        return self.proj(pooled.transpose(1, 2).reshape(batch, 1, dim))


class ClassAttentionBlock(nn.Module):
    """CaiT block: the class token attends to itself and the patch tokens; layer scale on both branches."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, layer_scale: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attention = ClassAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.gamma1 = nn.Parameter(torch.full((dim,), layer_scale))
        self.gamma2 = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, cls_token: torch.Tensor, patch_tokens: torch.Tensor) -> torch.Tensor:
        # cls_token: (B, 1, D), patch_tokens: (B, N, D) → updated cls_token (B, 1, D)
        tokens = torch.cat([cls_token, patch_tokens], dim=1)
        cls_token = cls_token + self.gamma1 * self.attention(self.norm1(tokens))
        return cls_token + self.gamma2 * self.mlp(self.norm2(cls_token))


class ClassAttentionPooling(nn.Module):
    """Pools (B, N, D) tokens into (B, D) with a learnable class token and ``depth`` class-attention blocks."""

    def __init__(self, dim: int, num_heads: int, depth: int = 2, layer_scale: float = 0.1, eps: float = 1e-6):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(
            ClassAttentionBlock(dim, num_heads, layer_scale=layer_scale, eps=eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        cls_token = self.cls_token.expand(patch_tokens.shape[0], -1, -1)
        for block in self.blocks:
            cls_token = block(cls_token, patch_tokens)
        return self.norm(cls_token[:, 0])
