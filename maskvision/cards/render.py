"""Rendering a model card from its gathered `CardSources` with huggingface_hub's `ModelCard` / `ModelCardData` and
the package's template (``templates/model_card.md``)."""

import os

from huggingface_hub import ModelCard, ModelCardData

from .. import __version__
from ..run_files import CODEBOOK_HEALTH, DATA_ARGS, TRAINING_CURVES
from .describe import (
    data_line,
    describe_backbone,
    eval_results,
    finetune_data_line,
    hub_dataset,
    method_rows,
    result_rows,
    training_rows,
)
from .methods import CITATIONS, METHODS, Method
from .sources import CardSources, maskvision_type

TEMPLATE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates", "model_card.md")
PIPELINE_TAGS = {"encoder": "image-feature-extraction", "classifier": "image-classification"}
REPO_ID_PLACEHOLDER = "your-username/your-model"


def _link(path: str | None, repo_path: str, card_dir: str | None) -> str | None:
    if path is None:
        return None
    return repo_path if card_dir is None else os.path.relpath(path, card_dir).replace(os.sep, "/")


def _title(sources: CardSources, method: Method | None) -> str:
    config = sources.config
    if sources.kind == "tokenizer":
        return f"{method.name if method else 'Visual tokenizer'} · vocabulary {config.vocab_size}"
    backbone_config = getattr(config, "backbone_config", None) or config
    what = {"pretraining": "pretraining checkpoint", "encoder": "encoder", "classifier": "image classifier"}
    prefix = f"{method.name} " if method else ""
    return f"{prefix}{describe_backbone(backbone_config)} · {what[sources.kind]}"


def _tags(sources: CardSources, method: Method | None) -> list[str]:
    tags = ["maskvision", "self-supervised", "vision"]
    if method:
        tags += list(method.tags)
    if sources.kind in ("tokenizer", "pretraining"):
        tags.append("custom_code")
    backbone = getattr(sources.config, "backbone_config", None) or sources.config
    if sources.kind != "tokenizer":
        tags.append("swin" if getattr(backbone, "depths", None) is not None else "vit")
    return list(dict.fromkeys(tags))


def _citation_keys(sources: CardSources, method: Method | None) -> list[str]:
    """The method's papers, then those of the visual tokenizer it learned from (BEiT), when that is on disk."""
    keys = list(method.citations) if method else []
    tokenizer = (sources.method_config or {}).get("tokenizer_name_or_path")
    if tokenizer and os.path.isdir(tokenizer) and maskvision_type(tokenizer) in METHODS:
        keys += METHODS[maskvision_type(tokenizer)].citations
    return list(dict.fromkeys(keys))


def card_files(sources: CardSources) -> dict[str, str]:
    """The files a card shows besides its text, as {path in the repo: path on disk}: they go beside the card."""
    return {TRAINING_CURVES: sources.curves} if sources.curves else {}


def render_card(
    sources: CardSources, repo_id: str | None = None, tags: list[str] | None = None, card_dir: str | None = None
) -> ModelCard:
    """The model card of a checkpoint, from its gathered `CardSources`. Its pictures are linked as the Hub repo holds
    them (`card_files`: beside the card), or, for a card written into ``card_dir`` on disk, where they are."""
    method = METHODS.get(sources.method_type)
    records = sources.results
    evaluation = eval_results(records)
    run_data = sources.run.get(DATA_ARGS) or {}
    datasets = [hub_dataset(run_data.get("dataset"))] + [hub_dataset(r["train_dataset"]) for r in records]
    repo_id = repo_id or REPO_ID_PLACEHOLDER
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=PIPELINE_TAGS.get(sources.kind),
        tags=_tags(sources, method) + list(tags or []),
        datasets=sorted({dataset for dataset in datasets if dataset}) or None,
        model_name=repo_id.split("/")[-1] if evaluation else None,  # the model-index's name
        eval_results=evaluation or None,
    )
    backbone = getattr(sources.config, "backbone_config", None) or sources.config
    image_size = getattr(sources.config, "image_size", None) or getattr(backbone, "image_size", None)
    return ModelCard.from_template(
        card_data,
        template_path=TEMPLATE,
        repo_id=repo_id,
        kind=sources.kind,
        title=_title(sources, method),
        method=method,
        model_class=sources.config.architectures[0] if sources.config.architectures else None,
        backbone=None if sources.kind == "tokenizer" else describe_backbone(backbone),
        num_parameters=f"{sources.num_parameters / 1e6:.2f}M",
        image_size=image_size,
        grid=image_size // sources.downsample_factor if sources.downsample_factor and image_size else None,
        vocab_size=getattr(sources.config, "vocab_size", None),
        num_labels=sources.config.num_labels if sources.kind == "classifier" else None,
        method_rows=method_rows(sources),
        data=data_line(sources.run),
        demo_data=run_data.get("dataset") == "demo",
        training_rows=training_rows(sources.run),
        finetune_rows=training_rows(sources.finetune),
        finetune_data=finetune_data_line(sources.results) if sources.kind == "classifier" else None,
        codebook=sources.run.get(CODEBOOK_HEALTH),
        curves=_link(sources.curves, TRAINING_CURVES, card_dir),
        results=result_rows(records),
        citations=[CITATIONS[key] for key in _citation_keys(sources, method)],
        version=__version__,
    )
