"""`maskvision eval knn|linear --model PATH_OR_REPO --dataset SOURCE`: frozen-feature evaluation of an encoder.

    maskvision eval knn --model runs/beit/encoder --dataset cifar10/train.parquet --eval_dataset cifar10/test.parquet
    maskvision eval linear --model runs/beit/encoder --dataset demo --pooling cls mean --layers all

Features come from the frozen encoder (cached on disk, see `maskvision.evaluation.features`); ``knn`` is the
weighted k-NN of InstDisc / DINO (cosine, k 20 and 200, T 0.07), ``linear`` a linear probe with a learning-rate
sweep. Prints a table and merges the results into ``eval_results.json`` (beside a local model, or
``--output_file``), from which model cards are built. The evaluation images are never training images: when both
would be the same rows (one parquet file and no ``--eval_dataset``), a seeded 15% is held out for evaluation
(``--holdout_fraction``; 0 refuses), and the records name each side's rows.
"""

import os
from dataclasses import dataclass, field
from functools import partial

import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel

from ..configuration.backbones import vit_backbone_config
from ..evaluation import (
    EvalResult,
    extract_features,
    knn_evaluate,
    linear_probe,
    load_encoder,
)
from ..evaluation.features import DEFAULT_CACHE_DIR, build_image_processor, class_names
from ..evaluation.knn import DEFAULT_KS, DEFAULT_TEMPERATURE
from ..evaluation.linear import DEFAULT_LEARNING_RATES
from ..evaluation.results import RESULTS_FILE, command_line, print_table, write_results
from ..training.labelled_data import LabelledDataArguments
from .args import dispatch, parse_arguments

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


def evaluate_encoder(protocol: str, args: FeatureArguments, protocol_args, command: str = ""):
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

    record = dict(
        protocol=protocol,
        dataset=args.eval_source,
        split=data.eval_split,
        train_dataset=args.dataset,
        train_split=data.train_split,
        model=args.model,
        command=command,
    )
    results = []
    for pooling, layer in keys:
        train_features, test_features = train_set.features[(pooling, layer)], test_set.features[(pooling, layer)]
        base = {"pooling": pooling, "layer": layer, "train_samples": len(train_labels), "eval_samples": len(test_labels)}
        if protocol == "knn":
            per_k = knn_evaluate(
                train_features, train_labels, test_features, test_labels, num_classes,
                ks=protocol_args.k, temperature=protocol_args.temperature, progress=args.progress,
            )
            for k, metrics in per_k.items():
                settings = base | {"k": k, "temperature": protocol_args.temperature}
                results += [EvalResult(metric=m, value=v, settings=settings, **record) for m, v in metrics.items()]
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
            results += [
                EvalResult(metric=m, value=v, settings=settings, **record) for m, v in metrics.items() if v is not None
            ]
    return results


def results_table(results) -> tuple[list[dict], list[str]]:
    """One row per setting, with top-1 and top-5 side by side."""
    rows: dict[str, dict] = {}
    for result in results:
        settings = {key: value for key, value in result.settings.items() if not key.endswith("_samples")}
        row = rows.setdefault(str(sorted(settings.items())), {"protocol": result.protocol, **settings})
        row[result.metric] = result.value
    columns = list(dict.fromkeys(key for row in rows.values() for key in row if not key.endswith("_accuracy")))
    return list(rows.values()), columns + ["top1_accuracy", "top5_accuracy"]


def default_output_file(model: str) -> str:
    return os.path.join(model, RESULTS_FILE) if os.path.isdir(model) else RESULTS_FILE


DEMO_METHODS = ("beit", "extrema", "moby")


def save_random_init(reference: str | None, path: str, seed: int = 0) -> str:
    """Save to ``path`` a randomly initialised encoder (seed ``seed``) of the reference encoder's architecture and
    preprocessing, or, with no reference, of the demo's ViT-Tiny/4 at 32 px: the floor every method must beat."""
    if reference is not None:
        config, processor = AutoConfig.from_pretrained(reference), AutoImageProcessor.from_pretrained(reference)
    else:
        config = vit_backbone_config("tiny", image_size=32, patch_size=4, use_mean_pooling=True)
        processor = build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def demo_stage(context) -> dict:
    """The demo's last stage: k-NN top-1 (k = 20) on the demo test split, the train split as memory bank, for
    each method's exported encoder and a random-init encoder of BEiT's architecture for reference."""
    encoders = {method: context.path(method, "encoder") for method in DEMO_METHODS}
    encoders = {method: path for method, path in encoders.items() if os.path.isdir(path)}
    reference = encoders.get("beit") or next(iter(encoders.values()), None)
    encoders = {"random_init": save_random_init(reference, context.path("random_init", "encoder"), context.seed),
                **encoders}
    limits = {"max_train_samples": 200, "max_eval_samples": 100} if context.quick else {}
    results = {}
    for name, path in encoders.items():
        args = FeatureArguments(
            model=path, dataset=context.dataset, cache_dir=context.path("feature_cache"), seed=context.seed, **limits
        )
        argv = ["knn", "--model", path, "--dataset", context.dataset]
        for flag, value in limits.items():
            argv += [f"--{flag}", str(value)]
        records = evaluate_encoder("knn", args, KnnArguments(), command=command_line("maskvision eval", argv))
        write_results(default_output_file(path), records)
        top1 = {r.settings["k"]: r.value for r in records if r.metric == "top1_accuracy"}
        results[f"knn_top1_{name}"] = round(top1[min(top1)], 4)
    return results


def evaluate(protocol: str, argv: list[str]) -> int:
    protocol_type = KnnArguments if protocol == "knn" else LinearArguments
    args, protocol_args = parse_arguments(
        (FeatureArguments, protocol_type), argv, f"maskvision eval {protocol}", __doc__.split("\n\n")[0]
    )
    command = command_line("maskvision eval", [protocol, *argv])
    results = evaluate_encoder(protocol, args, protocol_args, command=command)
    print_table(*results_table(results))
    path = write_results(args.output_file or default_output_file(args.model), results)
    print(f"\nresults: {path}")
    return 0


def main(argv: list[str]) -> int:
    usage = f"usage: maskvision eval {{{','.join(PROTOCOLS)}}} --model PATH_OR_REPO --dataset SOURCE [flags]"
    usage += f"\n\n{__doc__}"
    return dispatch("maskvision eval", {protocol: partial(evaluate, protocol) for protocol in PROTOCOLS}, argv, usage)
