"""`evaluate` metric modules shipped inside the package and loaded by local path, so they work offline.

Each metric is a folder ``<name>/<name>.py`` holding an `evaluate.Metric` (the layout `evaluate.load` expects for
a local module). ``load_metric("top1_accuracy")`` is ``evaluate.load(metric_path("top1_accuracy"))``.
"""

import functools
import os

METRICS_DIR = os.path.dirname(os.path.abspath(__file__))
METRICS = ("top1_accuracy", "top5_accuracy")


def metric_path(name: str) -> str:
    """Local path of a shipped metric module, for ``evaluate.load(path)``."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}: choose one of {list(METRICS)}.")
    return os.path.join(METRICS_DIR, name)


@functools.lru_cache(maxsize=None)
def load_metric(name: str):
    """The shipped metric as an `evaluate.EvaluationModule`, loaded by path (no network)."""
    import evaluate

    return evaluate.load(metric_path(name))


def accuracy_from_scores(scores, labels) -> dict[str, float]:
    """Top-1, and top-5 when there are at least 5 classes, of class scores (N, C) against labels (N,)."""
    import torch

    scores, labels = torch.as_tensor(scores), torch.as_tensor(labels)
    if scores.ndim != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"Need scores (N, num_classes) and labels (N,); got {tuple(scores.shape)} and {tuple(labels.shape)}."
        )
    references = labels.tolist()
    results = load_metric("top1_accuracy").compute(predictions=scores.argmax(dim=1).tolist(), references=references)
    if scores.shape[1] >= 5:
        ranked = scores.topk(5, dim=1).indices.tolist()
        results |= load_metric("top5_accuracy").compute(predictions=ranked, references=references)
    return results
