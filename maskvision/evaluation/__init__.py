"""Evaluation of frozen encoders: feature extraction with a disk cache, weighted k-NN, linear probes, and the
`evaluate` metric modules (top-1, top-5) shipped with the package."""

from .features import POOLINGS, Encoder, FeatureCache, FeatureSet, extract_features, load_encoder
from .knn import knn_evaluate, knn_scores
from .linear import LinearProbeResult, linear_probe
from .metrics import accuracy_from_scores, load_metric, metric_path
from .results import EvalResult, read_results, write_results

__all__ = [
    "POOLINGS",
    "Encoder",
    "EvalResult",
    "FeatureCache",
    "FeatureSet",
    "LinearProbeResult",
    "accuracy_from_scores",
    "extract_features",
    "knn_evaluate",
    "knn_scores",
    "linear_probe",
    "load_encoder",
    "load_metric",
    "metric_path",
    "read_results",
    "write_results",
]
