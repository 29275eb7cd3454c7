"""Optimizer parameter groups: weight decay only where it belongs, and layer-wise learning-rate decay.

Layer-wise decay (BEiT, Bao et al. 2021; ELECTRA, Clark et al. 2020) scales the learning rate of layer ``i``
by ``decay ** (L + 1 - i)``: embeddings are layer 0, transformer block ``k`` is layer ``k + 1``, and the head,
pooler and final norm are layer ``L + 1`` (scale 1). Works on stock transformers names (Beit, ViT, Swin, with
or without a task head) and on maskvision's pretraining models.
"""

import math
import re
from collections.abc import Iterable

from torch import nn
from torch.optim.lr_scheduler import LambdaLR

_BLOCK = re.compile(r"(?:^|\.)(?:layers|layer)\.(\d+)\.")  # Beit `layers.3.`, ViT `encoder.layer.3.`
_SWIN_BLOCK = re.compile(r"(?:^|\.)layers\.(\d+)\.blocks\.(\d+)\.")
_SWIN_DOWNSAMPLE = re.compile(r"(?:^|\.)layers\.(\d+)\.downsample\.")
_EMBEDDING = re.compile(r"(?:^|\.)(?:embeddings|patch_embed|cls_token|mask_token|pos_embed)")


# Stock transformers vision models have no `no_weight_decay()`: BEiT fine-tuning's {'pos_embed', 'cls_token'} (unilm
# beit/modeling_finetune.py; run_class_finetuning.py decays the relative position bias tables by default).
_STOCK_NO_WEIGHT_DECAY = re.compile(r"(position_embeddings|cls_token)$")


def decay_parameter_names(model: nn.Module, listed_by: nn.Module | None = None) -> list[str]:
    """The parameters weight decay applies to, by the official codes' rule (BEiT's ``get_parameter_groups``, timm's
    ``add_weight_decay``, Swin's ``set_weight_decay``): all but the 1-D ones (norms, biases, layer scale), the other
    ``.bias`` parameters and the names that ``listed_by`` (the model itself by default; the unwrapped model when
    ``model`` is a wrapper with the same parameter names) lists in ``no_weight_decay()``, or, for a stock model, its
    position and [CLS] embeddings. transformers' own rule would also spare every name containing "bias", relative
    position bias tables included."""
    listed_by = model if listed_by is None else listed_by
    if hasattr(listed_by, "no_weight_decay"):
        excluded = listed_by.no_weight_decay().__contains__
    else:
        excluded = _STOCK_NO_WEIGHT_DECAY.search
    return [
        name
        for name, parameter in model.named_parameters()
        if parameter.ndim > 1 and not name.endswith(".bias") and not excluded(name)
    ]


def layer_id(name: str, num_layers: int, swin_depths: Iterable[int] | None = None) -> int:
    """Depth index of a parameter: 0 for embeddings, k + 1 for block k, ``num_layers + 1`` for the rest."""
    if swin_depths is not None:
        depths = list(swin_depths)
        if match := _SWIN_BLOCK.search(name):
            stage, block = int(match[1]), int(match[2])
            return sum(depths[:stage]) + block + 1
        if match := _SWIN_DOWNSAMPLE.search(name):
            return sum(depths[: int(match[1]) + 1])
    elif match := _BLOCK.search(name):
        return int(match[1]) + 1
    if _EMBEDDING.search(name):
        return 0
    return num_layers + 1


def param_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    decay_parameter_names: Iterable[str],
    layer_decay: float | None = None,
    num_layers: int | None = None,
    swin_depths: Iterable[int] | None = None,
) -> list[dict]:
    """Groups keyed by (decay or not, layer), each with its explicit ``lr`` and ``weight_decay``.

    The Trainer's schedulers multiply every group's initial ``lr``, so the per-layer scales hold throughout.
    """
    if layer_decay is not None and not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}.")
    if layer_decay is not None and num_layers is None:
        raise ValueError("layer_decay needs num_layers (the number of transformer blocks).")
    decay_names = set(decay_parameter_names)
    groups: dict[tuple[bool, int], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decays = name in decay_names
        layer = layer_id(name, num_layers, swin_depths) if layer_decay is not None else 0
        scale = layer_decay ** (num_layers + 1 - layer) if layer_decay is not None else 1.0
        group = groups.setdefault(
            (decays, layer),
            {"params": [], "lr": learning_rate * scale, "weight_decay": weight_decay if decays else 0.0},
        )
        group["params"].append(parameter)
    return list(groups.values())


def cosine_schedule_with_bounds(
    optimizer, num_warmup_steps: int, num_training_steps: int, start_ratio: float = 0.0, floor_ratio: float = 0.0
) -> LambdaLR:
    """A linear warm-up from ``start_ratio`` x the peak over ``num_warmup_steps``, then a half cosine to ``floor_ratio``
    x the peak at ``num_training_steps``: BEiT's ``utils.cosine_scheduler`` (floor ``min_lr``) and MoBY's warm-up from
    ``WARMUP_LR`` to a ``MIN_LR`` floor. Each parameter group's own learning rate (layer decay) is scaled alike."""

    def factor(step: int) -> float:
        if step < num_warmup_steps:
            return start_ratio + (1 - start_ratio) * step / num_warmup_steps
        progress = min(1.0, (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps))
        return floor_ratio + (1 - floor_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
