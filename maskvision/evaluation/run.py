"""The frozen-feature evaluation of an encoder (`evaluate_encoder`): load the encoder, check the request, load the
labelled data (an evaluation never scores its training rows: `maskvision.data.labelled`), extract the features of
both sides (cached), run the protocol on each (pooling, layer) and return one `EvalResult` record per metric and
setting. ``maskvision eval knn|linear`` parses these arguments, calls it and prints the records.

``knn`` is the weighted k-NN of InstDisc / DINO (cosine, k 20 and 200, T 0.07), ``linear`` a linear probe with a
learning-rate sweep.
"""

import torch

from .arguments import PROTOCOLS, FeatureArguments, KnnArguments, LinearArguments
from .cache import DEFAULT_CACHE_DIR
from .encoder import load_encoder
from .features import extract_features
from .knn import knn_evaluate
from .labels import class_names
from .linear import linear_probe
from .results import EvalResult, result_records


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
                train_features,
                train_labels,
                test_features,
                test_labels,
                num_classes,
                ks=protocol_args.k,
                temperature=protocol_args.temperature,
                progress=args.progress,
            )
            for k, metrics in per_k.items():
                settings = base | {"k": k, "temperature": protocol_args.temperature}
                results += result_records(metrics=metrics, settings=settings, **measured)
        else:
            probe = linear_probe(
                train_features,
                train_labels,
                test_features,
                test_labels,
                num_classes,
                learning_rates=protocol_args.learning_rates,
                epochs=protocol_args.epochs,
                batch_size=protocol_args.probe_batch_size,
                weight_decay=protocol_args.weight_decay,
                validation_fraction=protocol_args.validation_fraction,
                seed=args.seed,
                device=args.device,
                progress=args.progress,
            )
            settings = base | {"learning_rate": probe.learning_rate, "epochs": protocol_args.epochs}
            metrics = {"top1_accuracy": probe.top1_accuracy, "top5_accuracy": probe.top5_accuracy}
            results += result_records(metrics=metrics, settings=settings, **measured)
    return results
