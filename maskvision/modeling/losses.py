"""Joint-embedding losses. Features are normalised in fp32 with an eps: fp16/bf16 normalisation is a known
source of NaNs in users' reports.

- `byol_loss`: BYOL (Grill et al. 2020), ``2 - 2 cos(p, z)`` with the target detached.
- `info_nce_loss`: InfoNCE (van den Oord et al. 2018) as used by MoCo (He et al. 2020; negatives from a
  queue) and MoCo v3 (Chen et al. 2021; negatives from the batch, keys gathered over all ranks).
"""

import torch
import torch.nn.functional as F

from .distributed import all_gather_no_grad, rank_and_world_size

NORMALIZE_EPS = 1e-6  # the floor of the norm: a zero vector stays zero instead of becoming NaN


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last dimension, in float32 with `NORMALIZE_EPS`: the one normalisation of features,
    keys and codebooks (fp16 / bf16 normalisation gives NaNs)."""
    return F.normalize(vectors.float(), dim=-1, eps=NORMALIZE_EPS)


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``2 - 2 * cos(prediction, target)``; (B, D), (B, D) → scalar in [0, 4]."""
    cosine = (l2_normalize(prediction) * l2_normalize(target.detach())).sum(dim=-1)
    return (2 - 2 * cosine).mean()


def info_nce_loss(
    query: torch.Tensor,
    key: torch.Tensor,
    temperature: float = 0.2,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of picking each query's own key; query and key (B, D), the key detached.

    With ``negatives`` (K, D) — a MoCo queue — the logits are ``[q·k⁺, q·negatives]`` (B, 1 + K) and the
    positive is column 0. Without, the other keys of the global batch are the negatives (MoCo v3): keys are
    gathered from every rank and the positive of query i on rank r is key ``r * B + i``. The loss is not
    multiplied by ``2 * temperature`` as in MoCo v3's code: scale it where a recipe asks for it.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")
    query, key = l2_normalize(query), l2_normalize(key.detach())
    if negatives is not None:
        positive = (query * key).sum(dim=-1, keepdim=True)  # (B, 1)
        negative = query @ l2_normalize(negatives.detach()).T  # (B, K)
        logits = torch.cat([positive, negative], dim=1) / temperature
        labels = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    else:
        keys = all_gather_no_grad(key)  # (world * B, D)
        rank, _ = rank_and_world_size()
        logits = query @ keys.T / temperature  # (B, world * B)
        labels = torch.arange(query.shape[0], device=query.device) + rank * query.shape[0]
    return F.cross_entropy(logits, labels)
