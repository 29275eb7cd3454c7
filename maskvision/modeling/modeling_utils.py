"""What every maskvision pretraining model shares: the export of its encoder to a stock transformers checkpoint, and
the way to the Hub (`MaskVisionHubMixin`, which the visual tokenizers share too).

A pretraining config holds ``backbone_config`` (a stock `BeitConfig` or `SwinConfig`), ``image_mean`` and
``image_std``; a pretraining model implements `encoder_for_export`, returning a stock transformers model
(`BeitModel`, `SwinModel`) that carries the pretrained weights. `export_encoder` saves it with an image
processor beside it, so `AutoModelForImageClassification.from_pretrained(path, num_labels=K)` and
``pipeline("image-feature-extraction", model=path)`` work with no maskvision code.
"""

import copy
import os

from transformers import PreTrainedConfig, PreTrainedModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

from .pretrained_backbone import EncoderPlan, SourceEncoder, initialise_from

_HUB_OPTIONS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


def check_checkpoint_model_type(path, config_class, **hub_options) -> None:
    """Raise unless the checkpoint at ``path`` (a folder or a Hub repo) was saved by ``config_class``'s model type:
    transformers only warns and loads whatever weights happen to match (none, from another method's checkpoint)."""
    saved, _ = config_class.get_config_dict(path, **hub_options)
    found, expected = saved.get("model_type"), config_class.model_type
    if found is not None and found != expected:
        raise ValueError(
            f"{os.fspath(path)!r} holds a {found!r} checkpoint, but {expected!r} was expected (model_type in its "
            "config.json): load it with the class of its own method, or with AutoModel.from_pretrained."
        )


class MaskVisionHubMixin:
    """`push_to_hub` through maskvision's staging (`maskvision.hub.push_model`): one commit holding config.json,
    model.safetensors, preprocessor_config.json, a model card and the self-contained remote code.

    Also keeps a model loaded as remote code re-savable: transformers' `custom_object_save` takes any class whose
    name contains "Tokenizer" (`DVAETokenizer`, `VQKDTokenizer`) for a text tokenizer and writes its ``auto_map``
    entry as a (slow, fast) pair, which transformers' own loader then fails to read back.
    """

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing a checkpoint of another model type (`check_checkpoint_model_type`)
        unless an explicit ``config`` object is given."""
        if not isinstance(kwargs.get("config"), PreTrainedConfig):
            options = {key: kwargs[key] for key in _HUB_OPTIONS if kwargs.get(key) is not None}
            check_checkpoint_model_type(pretrained_model_name_or_path, cls.config_class, **options)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        auto_map = getattr(self.config, "auto_map", None) or {}
        pairs = {name: ref for name, ref in auto_map.items() if isinstance(ref, (list, tuple))}
        pairs = {name: ref for name, ref in pairs.items() if name.startswith("AutoModel")}
        if pairs and kwargs.get("is_main_process", args[0] if args else True):
            self.config.auto_map = {**auto_map, **{name: ref[0] for name, ref in pairs.items()}}
            self.config.save_pretrained(save_directory)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: bool | str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
    ) -> str:
        options = dict(
            commit_message=commit_message,
            commit_description=commit_description,
            private=private,
            token=token,
            revision=revision,
            create_pr=create_pr,
            max_shard_size=max_shard_size,
            tags=tags,
        )
        try:
            from maskvision.hub import push_model
        except ImportError:  # loaded as remote code where maskvision is not installed: transformers' own upload
            return super().push_to_hub(repo_id, **options)
        return push_model(self, repo_id, **options)


class MaskVisionPreTrainedModel(MaskVisionHubMixin, PreTrainedModel):
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True

    @classmethod
    def from_backbone(cls, name_or_path, config: PreTrainedConfig | None = None, **hub_options):
        """A model of this method started from existing weights (a local directory or a Hub id): a checkpoint of this
        method (continue pretraining; its config wins, ``config`` may only change the image size) or a stock
        transformers encoder (`BeitForMaskedImageModeling`, `BeitModel`, `ViTModel`, `DeiTModel`, `Dinov2Model`,
        `SwinModel` for MoBY, or their classifiers). The encoder's shape comes from the checkpoint; ``config`` gives
        the method's other settings and must describe an encoder of that shape (an error names each difference).
        The model's ``init_report`` lists what was initialised, what is new and what was left out
        (`maskvision.modeling.pretrained_backbone`)."""
        return initialise_from(cls, name_or_path, config, **hub_options)

    @classmethod
    def plan_from_encoder(cls, source: SourceEncoder, config: PreTrainedConfig | None) -> EncoderPlan:
        """How this method starts from a stock encoder (`from_backbone`): its config and tensors."""
        raise NotImplementedError(f"{cls.__name__} cannot start from a stock encoder.")

    @classmethod
    def config_at_image_size(cls, config: PreTrainedConfig, image_size: int) -> PreTrainedConfig:
        """A copy of ``config`` for ``image_size`` pixels per side (a checkpoint continued at another resolution)."""
        config = copy.deepcopy(config)
        config.backbone_config.image_size = image_size
        return config

    def encoder_for_export(self) -> PreTrainedModel:
        """A stock transformers model holding the pretrained encoder (no maskvision class in its config)."""
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Names (as in ``named_parameters``) of parameters kept out of weight decay besides the 1-D ones, as timm's
        and the official codes' ``no_weight_decay()``: `MaskVisionTrainer` never decays a 1-D parameter (norms,
        biases, layer scale) and adds these names; a model lists each of its method's official names here, once."""
        return set()

    def image_processor(self) -> ViTImageProcessorPil:
        """The preprocessing the encoder was trained with: resize to the image size, rescale, normalise."""
        size = self.config.backbone_config.image_size
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        return ViTImageProcessorPil(
            size={"height": height, "width": width},
            image_mean=list(self.config.image_mean),
            image_std=list(self.config.image_std),
        )

    def export_encoder(self, save_directory: str | os.PathLike) -> str:
        """Write the encoder as a stock transformers checkpoint (safetensors) with its image processor."""
        save_directory = os.fspath(save_directory)
        encoder = self.encoder_for_export()
        encoder.save_pretrained(save_directory)
        self.image_processor().save_pretrained(save_directory)
        return save_directory
