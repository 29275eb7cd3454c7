"""Starting pretraining from existing weights: `MaskVisionPreTrainedModel.from_backbone(name_or_path, config)`.

The checkpoint (a local directory or a Hub id) is either

- a maskvision checkpoint of the same method: loaded whole, to continue pretraining (its config wins; only the
  image size follows ``config``, position tables resampled);
- or a stock transformers encoder, brought to the layout of the method's encoder and loaded into it, the rest of
  the model (heads, [MASK] token, teachers = copies of the student) initialised as for a new run: `BeitModel`,
  `BeitForMaskedImageModeling` (its final LayerNorm and ``lm_head`` too), `ViTModel`, `DeiTModel`, `Dinov2Model`
  (and their classifiers, whose heads are left out) for the ViT methods, `SwinModel` for MoBY.

The encoder's shape always comes from the checkpoint. A ``config`` given alongside supplies the method's own
settings (heads, masking, loss, drop path, image size) and must describe an encoder of the checkpoint's shape: a
different width, depth, head count, MLP width or patch size is an error naming each difference, never a partial
load. Every conversion is listed in the report (`InitReport`, printed by the pretraining command): what was
initialised, what is new, what the checkpoint held that is not used, and how the weights were changed.

The conversion of a ViT-family encoder (`SourceEncoder`) to transformers' Beit layout keeps its function exactly:
a ViT / DeiT / DINOv2 key bias is dropped, since ``q·(k + b)`` adds the same ``q·b`` to every key of a query and the
softmax ignores it; query and value biases a source lacks are zero; a method that scales its residual branches
(BEiT's layer scale) starts them at 1 on a source without; a relative position bias added to a source without one
(BEiT) starts at zero. DeiT's distillation token is dropped, which changes what the other tokens attend to; the
report says so.
"""

import copy
import logging
import re
from dataclasses import dataclass, field

import torch
from transformers import AutoConfig, AutoModel, BeitConfig, BeitForMaskedImageModeling, PreTrainedConfig, SwinConfig
from transformers.image_processing_base import ImageProcessingMixin

from .resolution import resize_state_dict

logger = logging.getLogger(__name__)

# model_type → the encoders maskvision initialises from (Auto classes load them, and their classifiers' encoders).
VIT_FAMILY = ("beit", "vit", "deit", "dinov2")
STOCK_ENCODERS = (*VIT_FAMILY, "swin")
# The fields that make an encoder's shape: a config must agree with the checkpoint on every one.
_SHAPE_FIELDS = {
    BeitConfig: (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "patch_size",
        "num_channels",
    ),
    SwinConfig: ("embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "patch_size", "num_channels"),
}


@dataclass
class SourceEncoder:
    """A stock encoder in the layout of transformers' `BeitModel` (ViT family) or `SwinModel`.

    ``tensors`` are named as in ``BeitModel(config, add_pooling_layer=True).state_dict()`` (or `SwinModel`'s): the
    final LayerNorm is ``pooler.layernorm.*`` when ``config.use_mean_pooling``, ``layernorm.*`` otherwise.
    ``head`` holds `BeitForMaskedImageModeling`'s ``layernorm.*`` and ``lm_head.*``. ``unused`` names what the
    checkpoint held that the layout has no place for, ``notes`` say how the weights were changed."""

    name: str
    architecture: str
    config: PreTrainedConfig
    tensors: dict[str, torch.Tensor]
    head: dict[str, torch.Tensor] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def is_swin(self) -> bool:
        return isinstance(self.config, SwinConfig)

    @property
    def final_norm_prefix(self) -> str:
        return "pooler.layernorm." if self.config.use_mean_pooling else "layernorm."

    def pop(self, prefix: str) -> dict[str, torch.Tensor]:
        """Remove and return the tensors whose names start with ``prefix``, keyed by the rest of their names."""
        found = {name[len(prefix) :]: tensor for name, tensor in self.tensors.items() if name.startswith(prefix)}
        for name in found:
            del self.tensors[prefix + name]
        return found


@dataclass
class EncoderPlan:
    """How a method starts from a `SourceEncoder`: its config, the model's tensors by state-dict name, and what of
    the source it leaves out (``unused``) with the reasons (``notes``)."""

    config: PreTrainedConfig
    tensors: dict[str, torch.Tensor]
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class InitReport:
    """What `from_backbone` did: the model's tensors initialised from the checkpoint, those left new (the method's
    initialisation), the teachers copied from the student, the checkpoint's tensors not used, and notes."""

    source: str
    kind: str
    initialised: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    copied: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"Starting from {self.source} ({self.kind}):"]
        for title, names in (("initialised from the checkpoint", self.initialised), ("new", self.new),
                             ("copied from the student (teachers)", self.copied),
                             ("in the checkpoint, not used", self.unused)):  # fmt: skip
            if names:
                lines.append(f"  {title} ({len(names)} tensors):")
                patterns = sorted({f"{name.split('.')[0]}.*" for name in names}) if names is self.copied else None
                lines += [f"    {pattern}" for pattern in patterns or group_names(names)]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def group_names(names: list[str]) -> list[str]:
    """Tensor names with layer indices folded: ``beit.layers.*.mlp.fc1.weight (x12)``, in first-seen order."""
    counts: dict[str, int] = {}
    for name in names:
        pattern = re.sub(r"\.\d+(?=\.|$)", ".*", name)
        counts[pattern] = counts.get(pattern, 0) + 1
    return [pattern if count == 1 else f"{pattern} (x{count})" for pattern, count in counts.items()]


# ------------------------------------------------------------------------------------------- stock encoders
def _beit_config_from(config, use_mask_token: bool, **layout) -> BeitConfig:
    """A `BeitConfig` with the shape, activation and LayerNorm eps of a ViT-family config and the given switches."""
    return BeitConfig(
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=layout.pop("intermediate_size", getattr(config, "intermediate_size", None)),
        hidden_act=config.hidden_act,
        layer_norm_eps=config.layer_norm_eps,
        image_size=config.image_size if isinstance(config.image_size, int) else config.image_size[0],
        patch_size=config.patch_size if isinstance(config.patch_size, int) else config.patch_size[0],
        num_channels=config.num_channels,
        use_absolute_position_embeddings=True,
        use_relative_position_bias=False,
        use_shared_relative_position_bias=False,
        use_mean_pooling=False,  # the final LayerNorm on every token, as ViT's
        use_mask_token=use_mask_token,
        **layout,
    )


def _without_key_bias(source: SourceEncoder, qkv_bias: bool) -> None:
    """Beit's attention has no key bias: drop it (exact, see the module doc); zero query/value biases if absent."""
    for index in range(source.config.num_hidden_layers):
        prefix = f"layers.{index}.attention."
        if source.tensors.pop(f"{prefix}k_proj.bias", None) is not None:
            source.unused.append(f"{prefix}k_proj.bias")
        if not qkv_bias:
            for name in ("q_proj", "v_proj"):
                source.tensors[f"{prefix}{name}.bias"] = torch.zeros(source.config.hidden_size)
    source.notes.append(
        "key biases dropped: a key bias adds the same value to every attention logit of a query (softmax ignores it)"
        + ("" if qkv_bias else "; query and value biases zero (the checkpoint has none)")
    )


def _dinov2_to_beit_names(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for name, tensor in tensors.items():
        name = re.sub(r"^encoder\.layer\.(\d+)\.", r"layers.\1.", name)
        for old, new in ((".norm1.", ".layernorm_before."), (".norm2.", ".layernorm_after."),
                         (".layer_scale1.lambda1", ".lambda_1"), (".layer_scale2.lambda1", ".lambda_2")):  # fmt: skip
            name = name.replace(old, new)
        if name == "embeddings.mask_token":
            tensor = tensor.reshape(1, 1, -1)  # Dinov2's (1, D) as Beit's (1, 1, D)
        renamed[name] = tensor
    return renamed


def encoder_config(config: PreTrainedConfig) -> BeitConfig | SwinConfig:
    """The config of a stock encoder (see `STOCK_ENCODERS`) in the Beit / Swin layout: its shape, activation and
    LayerNorm eps, read from the config alone."""
    model_type = config.model_type
    if model_type not in STOCK_ENCODERS:
        raise ValueError(
            f"Architecture {model_type!r} cannot initialise a maskvision encoder: use a checkpoint of "
            f"{', '.join(STOCK_ENCODERS)} (their base models or classifiers), or a maskvision checkpoint."
        )
    if model_type in ("beit", "swin"):
        return copy.deepcopy(config)
    if model_type == "dinov2":
        if config.use_swiglu_ffn:
            raise ValueError(
                "Architecture: this DINOv2 uses a SwiGLU MLP, which Beit's layers (GELU MLP) cannot hold. Use a "
                "DINOv2 checkpoint with the standard MLP (ViT-S/B/L)."
            )
        return _beit_config_from(
            config,
            use_mask_token=True,
            layer_scale_init_value=config.layerscale_value,
            intermediate_size=int(config.hidden_size * config.mlp_ratio),
        )
    return _beit_config_from(config, use_mask_token=False, layer_scale_init_value=0.0)


def checkpoint_encoder_config(name_or_path: str, **hub_options) -> tuple[PreTrainedConfig, PreTrainedConfig | None]:
    """(the encoder config, the method config or None) of a checkpoint `from_backbone` accepts, read from its
    config.json only: a maskvision checkpoint's ``backbone_config``, or a stock encoder's `encoder_config`."""
    config = AutoConfig.from_pretrained(name_or_path, **hub_options)
    if config.model_type.startswith("maskvision_"):
        return config.backbone_config, config
    return encoder_config(config), None


def _to_beit_layout(source: SourceEncoder, model_type: str) -> None:
    """Rename and reshape a ViT / DeiT / DINOv2 encoder's tensors in place into the Beit layout."""
    config = source.config
    if model_type == "dinov2":
        source.tensors = _dinov2_to_beit_names(source.tensors)
    source.config = encoder_config(config)
    source.config.use_mask_token = "embeddings.mask_token" in source.tensors
    _without_key_bias(source, getattr(config, "qkv_bias", True))
    if model_type == "deit":
        source.unused.append("embeddings.distillation_token")
        del source.tensors["embeddings.distillation_token"]
        positions = source.tensors["embeddings.position_embeddings"]
        source.tensors["embeddings.position_embeddings"] = torch.cat([positions[:, :1], positions[:, 2:]], dim=1)
        source.notes.append(
            "DeiT's distillation token and its position embedding dropped: the other tokens no longer attend to it"
        )


def load_stock_encoder(name_or_path: str, **hub_options) -> SourceEncoder:
    """A stock transformers encoder checkpoint (see `STOCK_ENCODERS`) in the Beit / Swin layout."""
    config = AutoConfig.from_pretrained(name_or_path, **hub_options)
    model_type = config.model_type
    try:
        encoder_config(config)  # the architecture is one maskvision can use
    except ValueError as error:
        raise ValueError(f"{name_or_path!r}: {error}") from None
    architectures = list(config.architectures or [])
    head = {}
    if "BeitForMaskedImageModeling" in architectures:
        model, info = BeitForMaskedImageModeling.from_pretrained(name_or_path, output_loading_info=True, **hub_options)
        head = {
            f"{part}.{name}": tensor
            for part in ("layernorm", "lm_head")
            for name, tensor in getattr(model, part).state_dict().items()
        }
        encoder, prefix = model.beit, "beit."
    else:
        extra = {"add_pooling_layer": False} if model_type in ("vit", "deit") else {}  # ViT's tanh pooler: unused
        encoder, info = AutoModel.from_pretrained(name_or_path, output_loading_info=True, **extra, **hub_options)
        prefix = ""
    missing = {name.removeprefix(prefix) for name in info["missing_keys"]}  # left at random by transformers
    tensors = {name: tensor.detach() for name, tensor in encoder.state_dict().items() if name not in missing}
    source = SourceEncoder(
        name=str(name_or_path),
        architecture=architectures[0] if architectures else type(encoder).__name__,
        config=copy.deepcopy(encoder.config),
        tensors=tensors,
        head={name: tensor.detach() for name, tensor in head.items() if name not in info["missing_keys"]},
        unused=sorted(info["unexpected_keys"]),
    )
    if model_type in ("vit", "deit", "dinov2"):
        _to_beit_layout(source, model_type)
    if head and not source.config.use_mean_pooling:
        raise ValueError(
            f"{name_or_path!r}: architecture: this BeitForMaskedImageModeling normalises the tokens twice (its encoder "
            "has use_mean_pooling=False and a final LayerNorm before the head's); maskvision's BEiT has one."
        )
    return source


def method_config(config_class, config, backbone, drop_path_rate: float, **defaults):
    """The method's config around a converted ``backbone``: a copy of the given ``config`` holding it (with that
    config's drop path), or a new ``config_class(backbone_config=backbone, **defaults)`` with ``drop_path_rate``,
    the method's default."""
    backbone.drop_path_rate = config.backbone_config.drop_path_rate if config is not None else drop_path_rate
    if config is None:
        return config_class(backbone_config=backbone, **defaults)
    config = copy.deepcopy(config)
    config.backbone_config = backbone
    return config


# -------------------------------------------------------------------------------------------------- checks
def check_same_shape(checkpoint, requested, name: str) -> None:
    """Raise unless encoder configs ``checkpoint`` and ``requested`` have the same architecture and shape (the image
    size may differ: position tables are resampled)."""
    if isinstance(checkpoint, SwinConfig) != isinstance(requested, SwinConfig):
        raise ValueError(
            f"{name!r} holds a {checkpoint.model_type} encoder but the config asks for a {requested.model_type} one "
            "(architecture): build the config for the checkpoint's encoder, or leave the config out."
        )
    fields = _SHAPE_FIELDS[SwinConfig if isinstance(checkpoint, SwinConfig) else BeitConfig]
    differences = [
        f"{field_name.replace('_', ' ')}: {getattr(checkpoint, field_name)} in the checkpoint, "
        f"{getattr(requested, field_name)} in the config"
        for field_name in fields
        if as_list(getattr(checkpoint, field_name)) != as_list(getattr(requested, field_name))
    ]
    if differences:
        raise ValueError(
            f"{name!r} does not fit the requested encoder ({'; '.join(differences)}). The encoder's shape comes "
            "from the checkpoint: leave these settings out, or pick a checkpoint of this shape."
        )


def as_list(value):
    """Tuples as lists, so that config values read from JSON (lists) and from code (tuples) compare equal."""
    return list(value) if isinstance(value, (list, tuple)) else value


def image_size_of(config) -> int:
    size = config.image_size
    return size if isinstance(size, int) else size[0]


def resize_source(source: SourceEncoder, image_size: int) -> None:
    """Resample the source's position embeddings and relative position tables to ``image_size`` (in place)."""
    old = image_size_of(source.config)
    if image_size == old:
        return
    source.tensors = resize_state_dict(source.tensors, source.config, image_size)
    source.config.image_size = image_size
    source.notes.append(f"position tables resampled from {old} px to {image_size} px")


def checkpoint_normalisation(name_or_path: str, **hub_options) -> tuple[list, list] | None:
    """(image_mean, image_std) of the checkpoint's image processor, or None when it has none."""
    try:
        processor, _ = ImageProcessingMixin.get_image_processor_dict(name_or_path, **hub_options)
    except OSError:  # no preprocessor_config.json: the method's own normalisation stays (and the report says so)
        return None
    if processor.get("do_normalize", True) and processor.get("image_mean") and processor.get("image_std"):
        return list(processor["image_mean"]), list(processor["image_std"])
    return None


# ------------------------------------------------------------------------------------------------ the entry
def _teacher_prefixes(model) -> tuple[str, ...]:
    if not hasattr(model, "momentum_pairs"):
        return ()
    teachers = {id(teacher) for _, teacher in model.momentum_pairs()}
    return tuple(f"{name}." for name, module in model.named_modules() if id(module) in teachers)


def _continue(model_class, name_or_path: str, config, hub_options: dict):
    model = model_class.from_pretrained(name_or_path, **hub_options)
    notes = ["continued from a maskvision checkpoint of this method: its settings (config.json) are kept"]
    if config is not None:
        check_same_shape(model.config.backbone_config, config.backbone_config, name_or_path)
        image_size, old = image_size_of(config.backbone_config), image_size_of(model.config.backbone_config)
        if image_size != old:
            state = resize_state_dict(model.state_dict(), model.config.backbone_config, image_size)
            model = model_class(model_class.config_at_image_size(model.config, image_size))
            model.load_state_dict(state)
            notes.append(f"position tables resampled from {old} px to {image_size} px")
    model.init_report = InitReport(
        source=str(name_or_path),
        kind=model_class.config_class.model_type,
        initialised=list(model.state_dict()),
        notes=notes,
    )
    return model


def initialise_from(model_class, name_or_path, config=None, **hub_options):
    """`MaskVisionPreTrainedModel.from_backbone`: see the module doc. The returned model carries ``init_report``."""
    name_or_path = str(name_or_path)
    saved, _ = PreTrainedConfig.get_config_dict(name_or_path, **hub_options)
    model_type, own_type = saved.get("model_type"), model_class.config_class.model_type
    if model_type == own_type:
        return _continue(model_class, name_or_path, config, hub_options)
    if model_type is not None and model_type.startswith("maskvision_"):
        raise ValueError(
            f"{name_or_path!r} holds a {model_type!r} checkpoint, not a {own_type!r} one (architecture): continue it "
            "with its own method, or start this method from its exported encoder (<run>/encoder)."
        )
    source = load_stock_encoder(name_or_path, **hub_options)
    if config is not None:
        check_same_shape(source.config, config.backbone_config, name_or_path)
        resize_source(source, image_size_of(config.backbone_config))
    plan = model_class.plan_from_encoder(source, config)
    normalisation = checkpoint_normalisation(name_or_path, **hub_options)
    if normalisation is None:
        plan.notes.append(
            "the checkpoint has no image processor: the method's normalisation is used "
            f"(mean {list(plan.config.image_mean)}, std {list(plan.config.image_std)})"
        )
    elif normalisation != (list(plan.config.image_mean), list(plan.config.image_std)):
        plan.config.image_mean, plan.config.image_std = normalisation  # the inputs the encoder was trained on
        plan.notes.append(f"the checkpoint's normalisation (mean {normalisation[0]}, std {normalisation[1]})")
    model = model_class(plan.config)
    own = model.state_dict()
    plan.unused += [name for name in plan.tensors if name not in own]  # e.g. a pooler the method's encoder lacks
    plan.tensors = {name: tensor for name, tensor in plan.tensors.items() if name in own}
    for name, tensor in plan.tensors.items():
        if tuple(own[name].shape) != tuple(tensor.shape):
            raise ValueError(
                f"{name}: shape {tuple(tensor.shape)} from {name_or_path!r}, {tuple(own[name].shape)} "
                "expected: the checkpoint does not fit this model."
            )
    model.load_state_dict(plan.tensors, strict=False)
    teachers = _teacher_prefixes(model)
    if teachers:
        model.init_teachers()
    model.init_report = InitReport(
        source=name_or_path,
        kind=source.architecture,
        initialised=[name for name in own if name in plan.tensors],
        new=[name for name in own if name not in plan.tensors and not name.startswith(teachers or ("\0",))],
        copied=[name for name in own if teachers and name.startswith(teachers)],
        unused=sorted({*source.unused, *plan.unused}),
        notes=source.notes + plan.notes,
    )
    return model


__all__ = [
    "EncoderPlan", "InitReport", "STOCK_ENCODERS", "SourceEncoder", "as_list", "check_same_shape",
    "checkpoint_encoder_config", "checkpoint_normalisation", "encoder_config", "group_names", "image_size_of",
    "initialise_from", "method_config",
    "load_stock_encoder", "resize_source",
]  # fmt: skip
