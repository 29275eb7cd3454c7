"""Evaluation of frozen encoders: the encoder and its preprocessing (encoder.py, processors.py), feature extraction
(features.py) with a disk cache (cache.py), the labels (labels.py), weighted k-NN, linear probes, the results records
(results.py), the whole flow (run.py: `evaluate_encoder`, what ``maskvision eval`` calls), and the `evaluate` metric
modules (top-1, top-5) shipped with the package."""

from ..lazy_names import lazy_names

# public name → the module defining it (imported at first use: ``maskvision eval --help`` needs `arguments` alone)
_PUBLIC = {
    "FeatureCache": "cache",
    "POOLINGS": "encoder",
    "Encoder": "encoder",
    "load_encoder": "encoder",
    "FeatureSet": "features",
    "extract_features": "features",
    "knn_evaluate": "knn",
    "knn_scores": "knn",
    "LinearProbeResult": "linear",
    "linear_probe": "linear",
    "accuracy_from_scores": "metrics",
    "load_metric": "metrics",
    "metric_path": "metrics",
    "EvalResult": "results",
    "read_results": "results",
    "write_results": "results",
    "evaluate_encoder": "run",
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
