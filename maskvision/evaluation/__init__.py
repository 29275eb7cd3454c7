"""Evaluation of frozen encoders: the encoder and its preprocessing (encoder.py, processors.py), feature extraction
(features.py) with a disk cache (cache.py), the labels (labels.py), weighted k-NN, linear probes, the results records
(results.py), the whole flow (run.py: `evaluate_encoder`, what ``maskvision eval`` calls), and the `evaluate` metric
modules (top-1, top-5) shipped with the package."""

from .cache import FeatureCache
from .encoder import POOLINGS, Encoder, load_encoder
from .features import FeatureSet, extract_features
from .knn import knn_evaluate, knn_scores
from .linear import LinearProbeResult, linear_probe
from .metrics import accuracy_from_scores, load_metric, metric_path
from .results import EvalResult, read_results, write_results
from .run import evaluate_encoder

__all__ = [
    "POOLINGS",
    "Encoder",
    "EvalResult",
    "FeatureCache",
    "FeatureSet",
    "LinearProbeResult",
    "accuracy_from_scores",
    "evaluate_encoder",
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
