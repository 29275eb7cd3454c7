"""`maskvision eval knn|linear --model PATH_OR_REPO --dataset SOURCE`: frozen-feature evaluation of an encoder.

    maskvision eval knn --model runs/beit/encoder --dataset cifar10/train.parquet --eval_dataset cifar10/test.parquet
    maskvision eval linear --model runs/beit/encoder --dataset demo --pooling cls mean --layers all

The evaluation itself is `maskvision.evaluation.run.evaluate_encoder` (features of the frozen encoder, cached on disk;
``knn`` the weighted k-NN of InstDisc / DINO, ``linear`` a linear probe with a learning-rate sweep). Prints a table
and merges the results into ``eval_results.json`` (beside a local model, or ``--output_file``), from which model
cards are built. The evaluation images are never training images: when both
would be the same rows (one parquet file and no ``--eval_dataset``), a seeded 15% is held out for evaluation
(``--holdout_fraction``; 0 refuses), and the records name each side's rows.
"""

import os
from functools import partial

from ..evaluation.arguments import PROTOCOLS, FeatureArguments, KnnArguments, LinearArguments
from ..evaluation.results import RESULTS_FILE, command_line, print_table, results_table, write_results
from .args import dispatch, parse_arguments


def default_output_file(model: str) -> str:
    return os.path.join(model, RESULTS_FILE) if os.path.isdir(model) else RESULTS_FILE


DEMO_METHODS = ("beit", "extrema", "moby")


def save_random_init(reference: str | None, path: str, seed: int = 0) -> str:
    """Save to ``path`` a randomly initialised encoder (seed ``seed``) of the reference encoder's architecture and
    preprocessing, or, with no reference, of the demo's ViT-Tiny/4 at 32 px: the floor every method must beat."""
    import torch
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    from ..configuration.backbones import vit_backbone_config
    from ..evaluation.processors import build_image_processor

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
    from ..evaluation.run import evaluate_encoder

    encoders = {method: context.path(method, "encoder") for method in DEMO_METHODS}
    encoders = {method: path for method, path in encoders.items() if os.path.isdir(path)}
    reference = encoders.get("beit") or next(iter(encoders.values()), None)
    encoders = {
        "random_init": save_random_init(reference, context.path("random_init", "encoder"), context.seed),
        **encoders,
    }
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
    from ..evaluation.run import evaluate_encoder  # torch and the models: after --help

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
