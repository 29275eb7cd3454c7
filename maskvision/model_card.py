"""Model cards for maskvision checkpoints, rendered with huggingface_hub's `ModelCard` / `ModelCardData` from the
package's template (``templates/model_card.md``).

Everything a card states is read from files, never typed in: the model's config (architecture, method settings);
the run's ``training_args.json``, ``trainer_state.json`` and ``data_args.json`` (optimisation, steps, data); the
tokenizer's ``codebook_health.json``; and the JSON results ``maskvision eval`` and ``maskvision finetune`` write
(``eval_results.json``), which become the card's model-index: one `EvalResult` per protocol (k-NN, linear probe,
fine-tuning) and evaluated split, its best top-1 with the setting that gave it, and every record in a table with
the command that reproduces it.

An exported encoder (``<run>/encoder``) is described by the pretraining run it was exported from, a fine-tuned
classifier by the local checkpoint it was fine-tuned from (as its results record it), when those are on disk.
"""

import json
import os
from dataclasses import dataclass, field

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from . import __version__
from .evaluation.results import EvalResult as ResultRecord
from .evaluation.results import read_results
from .run_files import CARD_FILES, CODEBOOK_HEALTH, DATA_ARGS, ENCODER_DIR, EVAL_RESULTS, TRAINER_STATE, TRAINING_ARGS
from .run_files import TRAINING_CURVES

TEMPLATE = os.path.join(os.path.dirname(__file__), "templates", "model_card.md")
KINDS = ("tokenizer", "pretraining", "encoder", "classifier")
PIPELINE_TAGS = {"encoder": "image-feature-extraction", "classifier": "image-classification"}
REPO_ID_PLACEHOLDER = "your-username/your-model"

CITATIONS = {
    "beit": """@inproceedings{bao2022beit,
  title={{BEiT}: {BERT} Pre-Training of Image Transformers},
  author={Hangbo Bao and Li Dong and Songhao Piao and Furu Wei},
  booktitle={International Conference on Learning Representations},
  year={2022},
  url={https://openreview.net/forum?id=p-BhZSz59o4}
}""",
    "beitv2": """@article{peng2022beitv2,
  title={{BEiT v2}: Masked Image Modeling with Vector-Quantized Visual Tokenizers},
  author={Zhiliang Peng and Li Dong and Hangbo Bao and Qixiang Ye and Furu Wei},
  year={2022},
  eprint={2208.06366},
  archivePrefix={arXiv},
  primaryClass={cs.CV}
}""",
    "extrema": """@article{wu2022extreme,
  title={Extreme Masking for Learning Instance and Distributed Visual Representations},
  author={Wu, Zhirong and Lai, Zihang and Sun, Xiao and Lin, Stephen},
  journal={arXiv preprint arXiv:2206.04667},
  year={2022}
}""",
    "moby": """@article{xie2021moby,
  title={Self-Supervised Learning with Swin Transformers},
  author={Xie, Zhenda and Lin, Yutong and Yao, Zhuliang and Zhang, Zheng and Dai, Qi and Cao, Yue and Hu, Han},
  journal={arXiv preprint arXiv:2105.04553},
  year={2021}
}""",
    "dalle": """@inproceedings{ramesh2021zero,
  title={Zero-Shot Text-to-Image Generation},
  author={Ramesh, Aditya and Pavlov, Mikhail and Goh, Gabriel and Gray, Scott and Voss, Chelsea and Radford, Alec
    and Chen, Mark and Sutskever, Ilya},
  booktitle={Proceedings of the 38th International Conference on Machine Learning},
  series={Proceedings of Machine Learning Research},
  volume={139},
  pages={8821--8831},
  year={2021},
  publisher={PMLR}
}""",
}


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    paper: str
    citations: tuple[str, ...]
    tags: tuple[str, ...]


# model_type of the maskvision config → the method it trains.
METHODS = {
    "maskvision_beit_mim": Method(
        "BEiT",
        "masked image modeling: about 40% of the patches (blockwise) are replaced by a [MASK] embedding and the "
        "encoder predicts, at the masked positions, the visual tokens a frozen tokenizer assigns to them (or, in the "
        "paper's ablation, their normalised pixels)",
        "https://arxiv.org/abs/2106.08254",
        ("beit",),
        ("beit", "masked-image-modeling"),
    ),
    "maskvision_extrema": Method(
        "ExtreMA",
        "extreme masking as augmentation for siamese learning: the student encodes only the visible patches of "
        "several disjoint random masks (75-90% masked) and predicts a momentum teacher's embedding of the whole image "
        "(BYOL loss)",
        "https://arxiv.org/abs/2206.04667",
        ("extrema",),
        ("extrema", "masked-image-modeling", "byol"),
    ),
    "maskvision_moby": Method(
        "MoBY",
        "MoCo v2 with BYOL: an online encoder with projector and predictor, a momentum target encoder and two key "
        "queues; each view's prediction must pick the other view's target key among the queue's (symmetric InfoNCE)",
        "https://arxiv.org/abs/2105.04553",
        ("moby",),
        ("moby", "contrastive-learning"),
    ),
    "maskvision_dvae": Method(
        "dVAE (DALL-E) visual tokenizer",
        "a discrete VAE of DALL-E's design trained with a Gumbel-softmax relaxation: it maps an image to a grid of "
        "visual tokens, the targets of BEiT's masked image modeling",
        "https://arxiv.org/abs/2102.12092",
        ("dalle", "beit"),
        ("dvae", "visual-tokenizer"),
    ),
    "maskvision_vqkd": Method(
        "VQ-KD (BEiT v2) visual tokenizer",
        "vector-quantised knowledge distillation: a ViT encoder and an l2-normalised, EMA-updated codebook whose "
        "codes a decoder turns back into a teacher's patch features; its tokens are BEiT v2's targets",
        "https://arxiv.org/abs/2208.06366",
        ("beitv2",),
        ("vq-kd", "visual-tokenizer"),
    ),
}

PROTOCOL_NAMES = {"knn": "k-NN", "linear": "linear probe", "finetune": "fine-tuning"}
# Settings named in a headline result, per protocol (the card's table lists them all).
HEADLINE_SETTINGS = {
    "knn": ("k", "pooling", "layer"),
    "linear": ("pooling", "layer"),
    "finetune": ("epochs", "image_size"),
}
TRAINING_ROWS = (  # (training_args.json key, label)
    ("learning_rate", "peak learning rate"),
    ("lr_scheduler_type", "schedule"),
    ("warmup_steps", "warm-up steps (fraction of training if < 1)"),
    ("weight_decay", "weight decay"),
    ("optim", "optimizer"),
    ("adam_beta1", "β1"),
    ("adam_beta2", "β2"),
    ("max_grad_norm", "gradient clipping (max norm)"),
    ("per_device_train_batch_size", "batch size per device"),
    ("gradient_accumulation_steps", "gradient accumulation steps"),
    ("bf16", "bf16"),
    ("fp16", "fp16"),
    ("seed", "seed"),
)
VIT_NAMES = {"tiny": "ViT-Ti", "small": "ViT-S", "base": "ViT-B", "large": "ViT-L"}
SWIN_NAMES = {"tiny": "Swin-T", "small": "Swin-S", "base": "Swin-B"}


# ------------------------------------------------------------------------------------------------- sources
def _read_json(path: str) -> dict | None:
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _maskvision_type(directory: str) -> str | None:
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
        if _maskvision_type(candidate):
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
                sources.method_type = _maskvision_type(run)
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
            raise ValueError(f"{file!r} is not a maskvision results file: expected {{\"results\": [records...]}}.")
        records += content["results"]
    return records


def _unique_records(records: list[dict]) -> list[dict]:
    unique = {}
    for record in records:
        unique[ResultRecord(**record).identity()] = record  # validates the record; the last one wins
    return list(unique.values())


# ------------------------------------------------------------------------------------------------ describing
def _is_local(source: str) -> bool:
    return os.path.isabs(source) or os.path.exists(source)


def display_source(source: str) -> str:
    """A dataset source as the card shows it: a Hub id or ``demo`` as is, a local path by its last two parts."""
    return "/".join(os.path.normpath(source).split(os.sep)[-2:]) if _is_local(source) else source


def _dataset_type(source: str) -> str:
    # model-index wants a dataset identifier: the Hub id, or a local dataset's folder (or file) name.
    if source == "demo":
        return "maskvision-demo"
    if _is_local(source):
        parent, name = os.path.split(os.path.normpath(source))
        return os.path.basename(parent) if os.path.splitext(name)[1] else name
    return source


def _hub_dataset(source: str | None) -> str | None:
    return None if not source or source == "demo" or _is_local(source) else source


def _size_name(config, presets: dict, names: dict, keys: tuple) -> str | None:
    for size, preset in presets.items():
        if all(getattr(config, key, None) == preset[key] for key in keys):
            return names[size]
    return None


def describe_backbone(config) -> str:
    """``ViT-B/16 at 224 px``, ``Swin-T (patch 4, window 7) at 224 px``, or the sizes of a custom one."""
    from .configuration.backbones import SWIN_SIZES, VIT_SIZES

    if getattr(config, "depths", None) is not None:  # Swin
        name = _size_name(config, SWIN_SIZES, SWIN_NAMES, ("embed_dim", "depths", "num_heads"))
        sizes = [] if name else [f"width {config.embed_dim}", f"depths {'-'.join(map(str, config.depths))}"]
        details = ", ".join(sizes + [f"patch {config.patch_size}", f"window {config.window_size}"])
        return f"{name or 'Swin'} ({details}) at {config.image_size} px"
    name = _size_name(config, VIT_SIZES, VIT_NAMES, ("hidden_size", "num_hidden_layers", "num_attention_heads"))
    if name:
        return f"{name}/{config.patch_size} at {config.image_size} px"
    return (
        f"ViT (width {config.hidden_size}, {config.num_hidden_layers} blocks, {config.num_attention_heads} heads, "
        f"patch {config.patch_size}) at {config.image_size} px"
    )


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(item) for item in value)
    return str(value)


def _percent(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def method_rows(sources: CardSources) -> list[tuple[str, str]]:
    """The settings the maskvision config declares (its own fields; nested configs left out)."""
    if not sources.method_config:
        return []
    from transformers import CONFIG_MAPPING

    try:
        fields = list(vars(CONFIG_MAPPING[sources.method_type]).get("__annotations__", {}))
    except KeyError:  # a method this maskvision does not have: every non-nested value of its config
        fields = [key for key in sources.method_config if not key.startswith("_")]
    rows = []
    for key in fields:
        value = sources.method_config.get(key)
        if value is not None and not isinstance(value, dict):
            rows.append((key, _format(value)))
    return rows


def training_rows(files: dict) -> list[tuple[str, str]]:
    arguments, state = files.get(TRAINING_ARGS) or {}, files.get(TRAINER_STATE) or {}
    rows = []
    if state.get("global_step"):
        rows.append(("optimizer steps", str(state["global_step"])))
        if state.get("epoch") is not None:
            rows.append(("epochs", f"{state['epoch']:.3g}"))
    losses = [entry["loss"] for entry in state.get("log_history", []) if "loss" in entry]
    if losses:
        rows.append(("last logged training loss", f"{losses[-1]:.4g}"))
    rows += [(label, _format(arguments[key])) for key, label in TRAINING_ROWS if arguments.get(key) is not None]
    return rows


def _data_text(source: str, split: str, count: int | None) -> str:
    images = f"{count:,} images" if count is not None else "images"
    return f"{images} of `{display_source(source)}` (split `{split}`)"


def data_line(files: dict) -> str | None:
    """The data a run pretrained on, as its ``data_args.json`` states it."""
    data = files.get(DATA_ARGS)
    return _data_text(data["dataset"], data.get("split", "train"), data.get("num_images")) if data else None


def finetune_data_line(records: list[dict]) -> str | None:
    """The data a classifier was fine-tuned on, as its fine-tuning record states it."""
    record = next((record for record in records if record["protocol"] == "finetune"), None)
    if record is None:
        return None
    return _data_text(record["train_dataset"], record["train_split"], record["settings"].get("train_samples"))


def _setting_summary(record: dict) -> str:
    settings = record.get("settings", {})
    keys = HEADLINE_SETTINGS[record["protocol"]]
    return ", ".join(f"{key} {_format(settings[key])}" for key in keys if key in settings)


def eval_results(records: list[dict]) -> list[EvalResult]:
    """One `EvalResult` per protocol and evaluated split: its best top-1 accuracy, named with the setting that
    gave it (k-NN's k and pooling, the probed block, ...)."""
    best: dict[tuple, dict] = {}
    for record in records:
        if record["metric"] != "top1_accuracy":
            continue
        key = (record["protocol"], record["dataset"], record["split"])
        if key not in best or record["value"] > best[key]["value"]:
            best[key] = record
    results = []
    order = list(PROTOCOL_NAMES)
    for (protocol, dataset, split), record in sorted(best.items(), key=lambda item: order.index(item[0][0])):
        summary = _setting_summary(record)
        results.append(
            EvalResult(
                task_type="image-classification",
                task_name="Image Classification",
                dataset_type=_dataset_type(dataset),
                dataset_name=display_source(dataset),
                dataset_split=split,
                metric_type="accuracy",
                metric_value=round(float(record["value"]), 4),
                metric_name=f"{PROTOCOL_NAMES[protocol]} top-1" + (f" ({summary})" if summary else ""),
            )
        )
    return results


def result_rows(records: list[dict]) -> list[dict]:
    """The card's results table: one row per protocol, data and setting, top-1 and top-5 side by side."""
    rows: dict[str, dict] = {}
    for record in records:
        settings = record.get("settings", {})
        key = json.dumps([record["protocol"], record["dataset"], record["split"], settings], sort_keys=True)
        row = rows.setdefault(
            key,
            {
                "protocol": PROTOCOL_NAMES[record["protocol"]],
                "data": f"{display_source(record['train_dataset'])} ({record['train_split']}) → "
                f"{display_source(record['dataset'])} ({record['split']})",
                "settings": ", ".join(f"{name} {_format(value)}" for name, value in settings.items()),
                "command": record.get("command", ""),
            },
        )
        row[record["metric"]] = _percent(record["value"])
    order = list(PROTOCOL_NAMES.values())
    return sorted(rows.values(), key=lambda row: order.index(row["protocol"]))


# -------------------------------------------------------------------------------------------------- rendering
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
    if tokenizer and os.path.isdir(tokenizer) and _maskvision_type(tokenizer) in METHODS:
        keys += METHODS[_maskvision_type(tokenizer)].citations
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
    datasets = [_hub_dataset(run_data.get("dataset"))] + [_hub_dataset(r["train_dataset"]) for r in records]
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


__all__ = [
    "CITATIONS",
    "KINDS",
    "METHODS",
    "CardSources",
    "card_files",
    "collect_sources",
    "describe_backbone",
    "eval_results",
    "read_result_files",
    "render_card",
]
