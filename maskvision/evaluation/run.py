"""The frozen-feature evaluation of an encoder (`evaluate_encoder`): load the encoder, check the request, load the
labelled data (an evaluation never scores its training rows: `maskvision.data.labelled`), extract the features of
both sides (cached), run the protocol on each (pooling, layer) and return one `EvalResult` record per metric and
setting. ``maskvision eval knn|linear`` parses these arguments, calls it and prints the records.

``knn`` is the weighted k-NN of InstDisc / DINO (cosine, k 20 and 200, T 0.07), ``linear`` a linear probe with a
learning-rate sweep.
"""

from dataclasses import dataclass, field

import torch

from ..data.labelled import LabelledDataArguments
from .cache import DEFAULT_CACHE_DIR
from .encoder import load_encoder
from .features import extract_features
from .knn import DEFAULT_KS, DEFAULT_TEMPERATURE, knn_evaluate
from .labels import class_names
from .linear import DEFAULT_LEARNING_RATES, linear_probe
from .results import EvalResult, result_records

PROTOCOLS = ("knn", "linear")


@dataclass
class FeatureArguments(LabelledDataArguments):
    """The encoder, its labelled data and how its features are taken."""

    model: str = field(
        kw_only=True, metadata={"help": "Encoder to evaluate: a local checkpoint directory or a Hub repo id."}
    )
    pooling: list[str] | None = field(
        default=None,
        metadata={"help": "One or more of cls, mean, class_attention (ExtreMA pretraining checkpoints). Default: the "
                  "model's own pooling (mean for Beit with mean pooling and Swin, class_attention for ExtreMA, "
                  "else cls)."},
    )
    layers: list[str] = field(
        default_factory=lambda: ["last"],
        metadata={"help": "Blocks whose features to evaluate: 'last', 'all' (every block, as BEiT's paper probes) or "
                  "block numbers from 1 (negative: from the end)."},
    )
    batch_size: int = field(default=128, metadata={"help": "Images per forward pass of the encoder."})
    num_workers: int = field(default=0, metadata={"help": "Data-loader worker processes for image decoding."})
    image_size: int | None = field(default=None, metadata={"help": "Override the checkpoint's input size."})
    image_mean: list[float] | None = field(
        default=None, metadata={"help": "Override the normalisation mean (3 values)."}
    )
    image_std: list[float] | None = field(default=None, metadata={"help": "Override the normalisation std (3 values)."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Feature cache directory (default ~/.cache/maskvision/features)."}
    )
    no_cache: bool = field(default=False, metadata={"help": "Neither read nor write cached features."})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ... (default: cuda when available)."})
    output_file: str | None = field(
        default=None,
        metadata={"help": "JSON file the results are merged into (default: <model>/eval_results.json for a local "
                  "model, else ./eval_results.json)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of the sample subsets and of the linear probe."})
    progress: bool = field(
        default=True, metadata={"help": "Progress bars on a terminal (never in logs or pipes); --no_progress: none."}
    )


@dataclass
class KnnArguments:
    k: list[int] = field(default_factory=lambda: list(DEFAULT_KS), metadata={"help": "Numbers of neighbours."})
    temperature: float = field(
        default=DEFAULT_TEMPERATURE, metadata={"help": "Temperature of the exp(similarity / T) vote weights."}
    )


@dataclass
class LinearArguments:
    learning_rates: list[float] = field(
        default_factory=lambda: list(DEFAULT_LEARNING_RATES),
        metadata={"help": "Learning rates swept (AdamW); the best on a held-out part of the training set is kept."},
    )
    epochs: int = field(default=100, metadata={"help": "Epochs over the cached training features."})
    probe_batch_size: int = field(default=1024, metadata={"help": "Mini-batch size of the probe."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay of the probe."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of training images held out for the sweep."}
    )


def parse_layers(values: list[str], num_layers: int) -> list[int]:
    layers = []
    for value in values:
        if value == "all":
            layers += list(range(1, num_layers + 1))
        elif value == "last":
            layers.append(num_layers)
        else:
            try:
                layers.append(int(value))
            except ValueError:
                raise ValueError(f"--layers takes 'last', 'all' or block numbers, got {value!r}.") from None
    return layers


def evaluate_encoder(
    protocol: str, args: FeatureArguments, protocol_args: KnnArguments | LinearArguments, command: str = ""
) -> list[EvalResult]:
    """Run one protocol on one encoder; returns the `EvalResult` records (one per metric and setting)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown evaluation protocol {protocol!r}: choose one of {list(PROTOCOLS)}.")
    encoder = load_encoder(
        args.model, image_size=args.image_size, image_mean=args.image_mean, image_std=args.image_std, device=args.device
    )
    poolings = args.pooling or [encoder.default_pooling]
    layers = parse_layers(args.layers, encoder.num_layers)
    keys = encoder.check_request(poolings, layers)  # fail before loading any data
    data = args.load(args.seed)
    train, test = data.train, data.evaluation
    names = class_names(train, test, protocol)

    cache_dir = None if args.no_cache else (args.cache_dir or DEFAULT_CACHE_DIR)
    options = dict(
        poolings=poolings,
        layers=layers,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        cache_dir=cache_dir,
        progress=args.progress,
    )
    train_set = extract_features(encoder, train, description=f"{data.train_split} features", **options)
    test_set = extract_features(encoder, test, description=f"{data.eval_split} features", **options)
    train_labels, test_labels = train_set.require_labels(protocol), test_set.require_labels(protocol)
    num_classes = len(names) if names is not None else int(torch.cat([train_labels, test_labels]).max()) + 1

    measured = dict(protocol=protocol, data_args=args, data=data, model=args.model, command=command)
    results = []
    for pooling, layer in keys:
        train_features, test_features = train_set.features[(pooling, layer)], test_set.features[(pooling, layer)]
        base = dict(pooling=pooling, layer=layer, train_samples=len(train_labels), eval_samples=len(test_labels))
        if protocol == "knn":
            per_k = knn_evaluate(
                train_features, train_labels, test_features, test_labels, num_classes,
                ks=protocol_args.k, temperature=protocol_args.temperature, progress=args.progress,
            )
            for k, metrics in per_k.items():
                settings = base | {"k": k, "temperature": protocol_args.temperature}
                results += result_records(metrics=metrics, settings=settings, **measured)
        else:
            probe = linear_probe(
                train_features, train_labels, test_features, test_labels, num_classes,
                learning_rates=protocol_args.learning_rates, epochs=protocol_args.epochs,
                batch_size=protocol_args.probe_batch_size, weight_decay=protocol_args.weight_decay,
                validation_fraction=protocol_args.validation_fraction, seed=args.seed, device=args.device,
                progress=args.progress,
            )
            settings = base | {"learning_rate": probe.learning_rate, "epochs": protocol_args.epochs}
            metrics = {"top1_accuracy": probe.top1_accuracy, "top5_accuracy": probe.top5_accuracy}
            results += result_records(metrics=metrics, settings=settings, **measured)
    return results
