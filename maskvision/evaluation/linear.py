"""Linear probe: a linear classifier trained on frozen (cached) features.

The recipe of BEiT's linear evaluation (Bao et al. 2021, after DINO's eval_linear): AdamW, weight decay 1e-4, a
cosine schedule over 100 epochs, heads initialised with N(0, 0.01); features standardised with the training
set's statistics first, which is MAE's BatchNorm-without-affine before the head (He et al. 2022) and makes one
learning-rate grid fit every encoder. The learning rate is chosen on a held-out part of the training set: one
head per learning rate, all trained together on the same batches, then the best one is retrained on the whole
training set and scored on the test set once. Working on cached features, it takes seconds, not hours.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..progress import progress_bar
from .arguments import DEFAULT_LEARNING_RATES
from .metrics import accuracy_from_scores


@dataclass
class LinearProbeResult:
    top1_accuracy: float
    top5_accuracy: float | None
    learning_rate: float
    validation_top1: dict[float, float] = field(default_factory=dict)  # learning rate → held-out top-1
    classifier: nn.Linear | None = None  # applies to the raw features (the standardisation is folded in)


def _train_heads(features, labels, num_classes, learning_rates, epochs, batch_size, weight_decay, generator, bar: dict):
    """One linear head per learning rate, trained on the same shuffled mini-batches; ``bar``: the keyword arguments
    of the `progress_bar` over the epochs."""
    heads = nn.ModuleList(nn.Linear(features.shape[1], num_classes) for _ in learning_rates).to(features.device)
    for head in heads:
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
    optimizer = torch.optim.AdamW(
        [{"params": head.parameters(), "lr": lr} for head, lr in zip(heads, learning_rates)], weight_decay=weight_decay
    )
    steps_per_epoch = math.ceil(features.shape[0] / batch_size)
    total = max(epochs * steps_per_epoch, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    for _ in progress_bar(range(epochs), unit="epoch", **bar):
        order = torch.randperm(features.shape[0], generator=generator).to(features.device)
        for start in range(0, features.shape[0], batch_size):
            index = order[start : start + batch_size]
            inputs, targets = features[index], labels[index]
            logits = torch.stack([head(inputs) for head in heads])  # (heads, B, C)
            # Sum over heads of each head's mean loss: the heads' gradients stay independent.
            loss = F.cross_entropy(logits.flatten(0, 1), targets.repeat(len(heads))) * len(heads)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return heads


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None = None,
    learning_rates=DEFAULT_LEARNING_RATES,
    epochs: int = 100,
    batch_size: int = 1024,
    weight_decay: float = 1e-4,
    validation_fraction: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> LinearProbeResult:
    """Train a linear classifier on ``train_features`` and report its accuracy on the test features (progress bars
    over the epochs of the sweep and of the final head on a terminal, unless ``progress`` is False)."""
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"Need 2-D features of one width; got train {tuple(train_features.shape)}, "
            f"test {tuple(test_features.shape)}."
        )
    if train_labels.shape != (train_features.shape[0],) or test_labels.shape != (test_features.shape[0],):
        raise ValueError("Need one label per feature, for the training and the test features.")
    if not learning_rates or any(lr <= 0 for lr in learning_rates):
        raise ValueError(f"learning_rates must be positive, got {list(learning_rates)}.")
    if epochs <= 0 or batch_size <= 0:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be positive.")
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}.")
    num_classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    generator = torch.Generator().manual_seed(seed)

    mean = train_features.float().mean(dim=0)
    std = train_features.float().std(dim=0).clamp_min(1e-6)
    train = ((train_features.float() - mean) / std).to(device)
    labels = train_labels.long().to(device)
    learning_rates = [float(lr) for lr in learning_rates]

    validation_top1: dict[float, float] = {}
    best_lr = learning_rates[0]
    num_held_out = int(round(validation_fraction * train.shape[0]))
    if len(learning_rates) > 1 and num_held_out > 0:
        order = torch.randperm(train.shape[0], generator=generator).to(device)
        held_out, kept = order[:num_held_out], order[num_held_out:]
        sweep = {"enabled": progress, "desc": f"linear probe: sweep of {len(learning_rates)} learning rates"}
        heads = _train_heads(
            train[kept], labels[kept], num_classes, learning_rates, epochs, batch_size, weight_decay, generator, sweep
        )
        with torch.no_grad():
            for lr, head in zip(learning_rates, heads):
                predictions = head(train[held_out]).argmax(dim=1)
                validation_top1[lr] = (predictions == labels[held_out]).float().mean().item()
        best_lr = max(learning_rates, key=lambda lr: validation_top1[lr])  # first of equals: the smallest

    final = {"enabled": progress, "desc": f"linear probe: lr {best_lr:g} on every training feature"}
    (head,) = _train_heads(train, labels, num_classes, [best_lr], epochs, batch_size, weight_decay, generator, final)
    classifier = nn.Linear(train.shape[1], num_classes)
    with torch.no_grad():  # fold the standardisation in: classifier(x) == head((x - mean) / std)
        classifier.weight.copy_(head.weight.cpu() / std)
        classifier.bias.copy_(head.bias.cpu() - classifier.weight @ mean)
        scores = head(((test_features.float() - mean) / std).to(device)).cpu()
    metrics = accuracy_from_scores(scores, test_labels)
    return LinearProbeResult(
        top1_accuracy=metrics["top1_accuracy"],
        top5_accuracy=metrics.get("top5_accuracy"),
        learning_rate=best_lr,
        validation_top1=validation_top1,
        classifier=classifier,
    )
