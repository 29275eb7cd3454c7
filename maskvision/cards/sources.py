"""Gathering a card's facts: what the files around a checkpoint say about it (`collect_sources`): its config, the
run's files (`maskvision.run_files.CARD_FILES`) beside it or beside the run it was exported or fine-tuned from, the
training curves and the evaluation records."""

import json
import os
from dataclasses import dataclass, field

from ..evaluation.results import EvalResult as ResultRecord
from ..evaluation.results import read_results
from ..run_files import CARD_FILES, ENCODER_DIR, EVAL_RESULTS, TRAINING_CURVES

KINDS = ("tokenizer", "pretraining", "encoder", "classifier")


def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def maskvision_type(directory: str) -> str | None:
    config = _read_json(os.path.join(directory, "config.json")) or {}
    model_type = config.get("model_type", "")
    return model_type if model_type.startswith("maskvision_") else None


@dataclass
class CardSources:
    """What the files around a checkpoint say about it."""

    kind: str
    config: object  # the checkpoint's PreTrainedConfig
    num_parameters: int
    downsample_factor: int | None = None  # tokenizers: pixels per token side
    method_type: str | None = None  # model_type of the maskvision config that trained it
    method_config: dict | None = None  # that config, as a dict
    run: dict = field(default_factory=dict)  # the pretraining run's files, by name (CARD_FILES)
    finetune: dict = field(default_factory=dict)  # a classifier's own training files
    results: list[dict] = field(default_factory=list)  # eval records
    curves: str | None = None  # the training curves picture of the run that made the checkpoint, on disk


def _curves(directory: str) -> str | None:
    path = os.path.join(directory, TRAINING_CURVES)
    return path if os.path.isfile(path) else None


def _run_files(directory: str) -> dict:
    files = {name: _read_json(os.path.join(directory, name)) for name in CARD_FILES}
    return {name: value for name, value in files.items() if value is not None}


def _pretraining_run(directory: str) -> str | None:
    """The pretraining (or tokenizer) run a checkpoint directory comes from: itself, or the run it was exported
    from (``<run>/encoder``)."""
    for candidate in (directory, os.path.dirname(os.path.abspath(directory))):
        if maskvision_type(candidate):
            return candidate
    return None


def collect_sources(model, kind: str, directory: str | None = None, results: list[dict] | None = None) -> CardSources:
    """Gather the card's facts for ``model`` (of ``kind``), from ``directory`` (default: where the model was loaded
    from, when that is a local directory) and its surroundings; ``results`` are extra eval records."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}.")
    if directory is None and os.path.isdir(str(getattr(model, "name_or_path", "") or "")):
        directory = model.name_or_path
    sources = CardSources(
        kind=kind,
        config=model.config,
        num_parameters=sum(parameter.numel() for parameter in model.parameters()),
        downsample_factor=getattr(model, "downsample_factor", None) if kind == "tokenizer" else None,
    )
    if model.config.model_type.startswith("maskvision_"):
        sources.method_type, sources.method_config = model.config.model_type, model.config.to_dict()
    records = []
    if directory is not None:
        records += read_results(os.path.join(directory, EVAL_RESULTS))
        if kind == "pretraining" and os.path.isdir(os.path.join(directory, ENCODER_DIR)):
            records += read_results(os.path.join(directory, ENCODER_DIR, EVAL_RESULTS))
        if kind == "classifier":  # described by the checkpoint it was fine-tuned from, when that is on disk
            sources.finetune = _run_files(directory)
            sources.curves = _curves(directory)  # the fine-tuning run's own
            origins = sorted({record["model"] for record in records if record["protocol"] == "finetune"})
            run = next((_pretraining_run(origin) for origin in origins if os.path.isdir(origin)), None)
        else:
            run = _pretraining_run(directory)
            sources.curves = _curves(run) if run is not None else None
        if run is not None:
            sources.run = _run_files(run)
            if sources.method_type is None:
                sources.method_type = maskvision_type(run)
                sources.method_config = _read_json(os.path.join(run, "config.json"))
    sources.results = _unique_records(records + list(results or []))
    return sources


def read_result_files(paths: list[str]) -> list[dict]:
    """The records of `maskvision eval` / `maskvision finetune` JSON files (or directories holding one)."""
    records = []
    for path in paths:
        file = os.path.join(path, EVAL_RESULTS) if os.path.isdir(path) else path
        if not os.path.isfile(file):
            raise FileNotFoundError(
                f"No results file at {file!r} (written by `maskvision eval` / `maskvision finetune`)."
            )
        content = _read_json(file)
        if not isinstance(content, dict) or not isinstance(content.get("results"), list):
            raise ValueError(f'{file!r} is not a maskvision results file: expected {{"results": [records...]}}.')
        records += content["results"]
    return records


def _unique_records(records: list[dict]) -> list[dict]:
    unique = {}
    for record in records:
        unique[ResultRecord(**record).identity()] = record  # validates the record; the last one wins
    return list(unique.values())
