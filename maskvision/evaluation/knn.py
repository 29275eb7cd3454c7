"""Weighted k-nearest-neighbour classification of frozen features.

The protocol of InstDisc (Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018) as used by DINO (Caron et al., ICCV 2021): features are l2-normalised, the k
training features with the highest cosine similarity vote for their class with weight ``exp(similarity / T)``
(T = 0.07), and the classes are ranked by their summed votes. Reported for k = 20 and k = 200.
"""

import logging

import torch

from ..modeling.losses import l2_normalize
from ..progress import progress_bar
from .arguments import DEFAULT_KS, DEFAULT_TEMPERATURE
from .metrics import accuracy_from_scores

logger = logging.getLogger(__name__)


def _check(train_features, train_labels, test_features, temperature):
    if train_features.ndim != 2 or test_features.ndim != 2:
        raise ValueError(
            f"Features must be 2-D (num_examples, dim); got train {tuple(train_features.shape)}, "
            f"test {tuple(test_features.shape)}."
        )
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"Train and test features differ in width: {train_features.shape[1]} vs {test_features.shape[1]}."
        )
    if train_labels.shape != (train_features.shape[0],):
        raise ValueError(
            f"train_labels must hold one label per training feature: {tuple(train_labels.shape)} for "
            f"{train_features.shape[0]} features."
        )
    if train_features.shape[0] == 0:
        raise ValueError("k-NN needs at least one training feature.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}.")


def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    ks=DEFAULT_KS,
    temperature: float = DEFAULT_TEMPERATURE,
    chunk_size: int = 1024,
    progress: bool = True,
) -> dict[int, torch.Tensor]:
    """Class votes (num_test, num_classes) of each test feature for each k, from one similarity pass (a progress
    bar over the test features on a terminal, unless ``progress`` is False).

    A k larger than the number of training features is lowered to it (with a warning); the returned dict is
    keyed by the k actually used.
    """
    _check(train_features, train_labels, test_features, temperature)
    if not ks or any(k <= 0 for k in ks):
        raise ValueError(f"ks must be positive numbers of neighbours, got {list(ks)}.")
    if train_labels.min() < 0 or train_labels.max() >= num_classes:
        raise ValueError(
            f"train_labels must lie in [0, {num_classes}), got [{train_labels.min()}, {train_labels.max()}]."
        )
    num_train = train_features.shape[0]
    used = sorted({min(k, num_train) for k in ks})
    if used[-1] < max(ks):
        logger.warning("k=%d exceeds the %d training features: using k=%d.", max(ks), num_train, num_train)

    train = l2_normalize(train_features)
    labels = train_labels.to(train.device)
    votes = {k: [] for k in used}
    with progress_bar(total=test_features.shape[0], unit="image", desc="k-NN", enabled=progress) as bar:
        for start in range(0, test_features.shape[0], chunk_size):
            test = l2_normalize(test_features[start : start + chunk_size].to(train.device))
            similarity = test @ train.T  # (b, num_train)
            top_similarity, top_index = similarity.topk(used[-1], dim=1)  # sorted, best first
            weights = (top_similarity / temperature).exp()  # (b, k_max)
            neighbour_labels = labels[top_index]  # (b, k_max)
            for k in used:
                chunk = torch.zeros(test.shape[0], num_classes, device=train.device)
                votes[k].append(chunk.scatter_add_(1, neighbour_labels[:, :k], weights[:, :k]).cpu())
            bar.update(test.shape[0])
    return {k: torch.cat(parts) if parts else torch.zeros(0, num_classes) for k, parts in votes.items()}


def knn_evaluate(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int | None = None,
    ks=DEFAULT_KS,
    temperature: float = DEFAULT_TEMPERATURE,
    progress: bool = True,
) -> dict[int, dict[str, float]]:
    """``{k: {"top1_accuracy": ..., "top5_accuracy": ...}}`` of the weighted k-NN classifier on the test set."""
    if test_labels.shape != (test_features.shape[0],):
        raise ValueError(
            f"test_labels must hold one label per test feature: {tuple(test_labels.shape)} for "
            f"{test_features.shape[0]} features."
        )
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    scores = knn_scores(train_features, train_labels, test_features, num_classes, ks, temperature, progress=progress)
    return {k: accuracy_from_scores(votes, test_labels) for k, votes in scores.items()}
