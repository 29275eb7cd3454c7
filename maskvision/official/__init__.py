"""The official releases (``.pth`` files of the authors' code) as maskvision checkpoints and stock encoders.

`convert_release(kind, path, output_dir)` reads the file with `maskvision.safe_pickle.load_checkpoint` (nothing in
it is executed: a file naming any other global is refused), converts every key of its weights (`state.StateReader`:
a key is converted or dropped with a stated reason, and a key left over is an error, so nothing loads partially) and
writes safetensors:

========== ============================================ ===================================================
kind       release                                      written to ``output_dir`` (and ``output_dir/encoder``)
========== ============================================ ===================================================
beit       unilm BEiT v1 / v2 pretraining ``.pth``      `BeitMimForPreTraining` (+ stock `BeitModel`)
beit       unilm BEiT v1 / v2 fine-tuned ``.pth``       stock `BeitForImageClassification` (+ `BeitModel`)
vqkd       BEiT v2's VQ-KD tokenizer ``.pth``           `VQKDTokenizer` (a tokenizer for ``--tokenizer``)
extrema    microsoft/ExtreMA ``checkpoint.pth.tar``     `ExtremaForPreTraining` (+ stock `BeitModel`)
moby       Transformer-SSL MoBY Swin-T / DeiT-S ``.pth``  `MobyForPreTraining` (+ `SwinModel` / `BeitModel`)
========== ============================================ ===================================================

The optimizer state, epoch and training arguments in the files are not converted: a run started from the result
(``maskvision pretrain <method> --model_name_or_path output_dir``) begins its own.
"""

import os
from dataclasses import dataclass, field

from ..safe_pickle import load_checkpoint
from .beit import beit_image_processor, convert_beit_finetuned, convert_beit_pretraining, convert_vqkd
from .extrema import convert_extrema
from .moby import convert_moby
from .state import StateReader, strip_prefix

KINDS = ("beit", "vqkd", "extrema", "moby")
_WEIGHTS_KEYS = ("model", "state_dict", "module")  # where the official scripts put the weights


@dataclass
class Conversion:
    """What `convert_release` wrote: the model's class, the number of the file's tensors converted, the keys dropped
    (with the reasons) and the folders."""

    model_class: str
    converted: int
    dropped: list[str] = field(default_factory=list)
    output_dir: str = ""
    encoder_dir: str | None = None

    def summary(self) -> str:
        lines = [f"{self.model_class}: {self.converted} tensors converted, written to {self.output_dir}"]
        if self.encoder_dir:
            lines.append(f"stock encoder: {self.encoder_dir}")
        return "\n".join(lines + self.dropped)


def official_weights(checkpoint: dict, source: str) -> dict:
    """The state dict inside an official checkpoint (under ``model``, ``state_dict`` or ``module``), without DDP's
    ``module.`` prefixes."""
    for key in _WEIGHTS_KEYS:
        if isinstance(checkpoint.get(key), dict):
            return strip_prefix(checkpoint[key], "module.")
    if checkpoint and all(hasattr(value, "shape") for value in checkpoint.values()):
        return strip_prefix(checkpoint, "module.")  # a bare state dict
    raise ValueError(f"{source}: no weights under {', '.join(_WEIGHTS_KEYS)}; keys: {sorted(checkpoint)[:10]}.")


def overridden(config, overrides: str):
    """A copy of ``config`` with ``"key=value,..."`` set and validated again; only settings that change no tensor."""
    changed = type(config).from_dict(config.to_dict())
    changed.update_from_string(overrides)
    shapes = ("backbone_config", "vocab_size", "projection_size", "projection_dim", "queue_size")
    touched = [key.split("=")[0].strip() for key in overrides.split(",")]
    if any(key.endswith("_size") or key.endswith("_layers") or key in shapes for key in touched):
        raise ValueError(
            f"config overrides {touched} would change the converted tensors' shapes: only settings are "
            "overridden (masking, loss, temperature, momentum...)."
        )
    return type(config).from_dict(changed.to_dict())  # the config's own checks run again


def convert_release(
    kind: str,
    path: str | os.PathLike,
    output_dir: str | os.PathLike,
    tokenizer: str | None = None,
    image_size: int | None = None,
    num_attention_heads: int | None = None,
    config_overrides: str | None = None,
) -> Conversion:
    """Convert an official ``.pth`` of ``kind`` (see `KINDS`) and save it under ``output_dir``. ``tokenizer`` is
    recorded in a BEiT pretraining checkpoint's config; ``image_size`` and ``num_attention_heads`` are needed only
    when the weights do not tell them (no position table; a width that is not 64 per head). ``config_overrides``
    (``"mask_ratio=0.9,num_masks=8"``) sets what the weights do not hold: the run's masking, loss, momentum..."""
    if kind not in KINDS:
        raise ValueError(f"Unknown release kind {kind!r}: choose one of {', '.join(KINDS)}.")
    path, output_dir = os.fspath(path), os.fspath(output_dir)
    checkpoint = load_checkpoint(path)
    reader = StateReader(official_weights(checkpoint, path), path)
    encoder, processor = None, None
    if kind == "beit" and "lm_head.weight" in reader:
        model = convert_beit_pretraining(reader, num_attention_heads, image_size, tokenizer)
    elif kind == "beit":
        model = convert_beit_finetuned(reader, num_attention_heads, image_size)
        encoder, processor = model.beit, beit_image_processor(model.config)
    elif kind == "vqkd":
        model = convert_vqkd(reader, num_attention_heads)
        processor = model.image_processor()
    elif kind == "extrema":
        model = convert_extrema(reader, checkpoint.get("arch"), num_attention_heads)
    else:
        model = convert_moby(reader, checkpoint.get("config"), image_size, num_attention_heads)
    reader.finish()
    if config_overrides:
        model.config = overridden(model.config, config_overrides)
    converted = reader.total - len(reader.dropped)
    model.save_pretrained(output_dir)
    encoder_dir = os.path.join(output_dir, "encoder")
    if processor is not None:
        processor.save_pretrained(output_dir)
    if encoder is not None:
        encoder.save_pretrained(encoder_dir)
        processor.save_pretrained(encoder_dir)
    elif hasattr(model, "export_encoder"):
        model.export_encoder(encoder_dir)
    else:
        encoder_dir = None
    return Conversion(type(model).__name__, converted, reader.summary(), output_dir, encoder_dir)


__all__ = ["KINDS", "Conversion", "convert_release", "official_weights"]
