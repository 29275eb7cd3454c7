"""``--model_name_or_path`` of `maskvision pretrain <method>`: start from a checkpoint instead of random weights.

The encoder's shape comes from the checkpoint (`MaskVisionPreTrainedModel.from_backbone`), so the recipes' shape
flags follow it: a flag left at its default takes the checkpoint's value, a flag set to another value than the
checkpoint's is an error naming both (a flag given with its default value counts as left out). ``--image_size`` is
the exception: a size other than the checkpoint's resamples its position tables. A run of the same method is
continued with its own settings: its config wins, and a flag contradicting it is an error as well.
"""

import dataclasses
import os

from ...configuration.backbones import VIT_SIZES
from ...modeling.pretrained_backbone import as_list, checkpoint_encoder_config, image_size_of


def size_name(encoder, presets: dict[str, dict]) -> str | None:
    """The named size (``VIT_SIZES`` / ``SWIN_SIZES``) whose fields all equal the encoder config's, if any."""
    for name, fields in presets.items():
        if all(as_list(getattr(encoder, key, None)) == as_list(value) for key, value in fields.items()):
            return name
    return None


def fit_to_checkpoint(model_args, shape_flags, method_type: str):
    """A copy of a recipe's ``model_args`` (with ``model_name_or_path`` set) that describes the checkpoint's encoder.

    ``shape_flags(encoder_config) -> (values, checks)``: the recipe's flags for the checkpoint's encoder, as
    ``flag → value`` to set (``values``) and to check only (``checks``, e.g. ``model_size``: the named size matching
    the checkpoint, None when none does). When the checkpoint is a run of ``method_type``, every flag that is also a
    field of its config (masking, heads, loss...) and ``drop_path_rate`` take the run's values."""
    path = model_args.model_name_or_path
    encoder, saved = checkpoint_encoder_config(path)
    values, checks = shape_flags(encoder)
    defaults = {field.name: field.default for field in dataclasses.fields(model_args)}
    if saved is not None and saved.model_type == method_type:
        settings = set(type(saved).__dataclass_fields__) & set(defaults)
        values = {**{name: getattr(saved, name) for name in settings}, **values}
        if "drop_path_rate" in defaults:
            values["drop_path_rate"] = encoder.drop_path_rate
    given = {flag: getattr(model_args, flag) for flag in {**checks, **values}}
    given = {flag: value for flag, value in given.items() if value not in (None, defaults[flag])}
    conflicts = [
        f"--{flag} {given[flag]} (the checkpoint's: {'another' if wanted is None else wanted})"
        for flag, wanted in {**checks, **values}.items()
        if flag in given and as_list(given[flag]) != as_list(wanted)
    ]
    if conflicts:
        raise ValueError(
            f"{', '.join(conflicts)} contradict --model_name_or_path {path}: the encoder's shape (and a continued "
            "run's settings) come from the checkpoint. Leave these flags out; --image_size may differ (position "
            "tables are resampled)."
        )
    if model_args.image_size == defaults["image_size"]:
        values["image_size"] = image_size_of(encoder)
    return dataclasses.replace(model_args, **values)


def vit_flags(encoder) -> tuple[dict, dict]:
    """The ViT shape flags shared by the BEiT, ExtreMA and MoBY recipes for an encoder config in the Beit layout:
    (width, depth, heads, MLP width, patch size to set; the named size to check), as `fit_to_checkpoint` takes them."""
    names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size")
    return {name: getattr(encoder, name) for name in names}, {"model_size": size_name(encoder, VIT_SIZES)}


def announce(model) -> None:
    """Print what the model was initialised from (its `InitReport`) on the main process."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(model.init_report.summary(), flush=True)


__all__ = ["announce", "fit_to_checkpoint", "size_name", "vit_flags"]
