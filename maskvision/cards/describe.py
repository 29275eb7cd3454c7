"""Describing a checkpoint in words and rows from its gathered sources: the backbone, the method's settings, the
training rows, the data, the model-index results and the results table (rows shared with ``maskvision eval``'s
table: `maskvision.evaluation.results.side_by_side`)."""

import os

from huggingface_hub import EvalResult

from ..configuration.backbones import SWIN_SIZES, VIT_SIZES
from ..evaluation.results import side_by_side
from ..run_files import DATA_ARGS, TRAINER_STATE, TRAINING_ARGS
from .sources import CardSources

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


def hub_dataset(source: str | None) -> str | None:
    return None if not source or source == "demo" or _is_local(source) else source


def _size_name(config, presets: dict, names: dict, keys: tuple) -> str | None:
    for size, preset in presets.items():
        if all(getattr(config, key, None) == preset[key] for key in keys):
            return names[size]
    return None


def describe_backbone(config) -> str:
    """``ViT-B/16 at 224 px``, ``Swin-T (patch 4, window 7) at 224 px``, or the sizes of a custom one."""
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
    """The card's results table: one row per protocol, data and setting, top-1 and top-5 side by side (in %)."""

    def row_of(record: dict) -> dict:
        return {
            "protocol": PROTOCOL_NAMES[record["protocol"]],
            "data": f"{display_source(record['train_dataset'])} ({record['train_split']}) → "
            f"{display_source(record['dataset'])} ({record['split']})",
            "settings": ", ".join(f"{name} {_format(value)}" for name, value in record.get("settings", {}).items()),
            "command": record.get("command", ""),
        }

    rows = side_by_side(records, row_of)
    for row in rows:
        row.update({key: _percent(value) for key, value in row.items() if key.endswith("_accuracy")})
    order = list(PROTOCOL_NAMES.values())
    return sorted(rows, key=lambda row: order.index(row["protocol"]))
