"""What every maskvision pretraining model shares: the export of its encoder to a stock transformers checkpoint, and
the way to the Hub (`MaskVisionHubMixin`, which the visual tokenizers share too).

A pretraining config holds ``backbone_config`` (a stock `BeitConfig` or `SwinConfig`), ``image_mean`` and
``image_std``; a pretraining model implements `encoder_for_export`, returning a stock transformers model
(`BeitModel`, `SwinModel`) that carries the pretrained weights. `export_encoder` saves it with an image
processor beside it, so `AutoModelForImageClassification.from_pretrained(path, num_labels=K)` and
``pipeline("image-feature-extraction", model=path)`` work with no maskvision code.
"""

import os

from transformers import PreTrainedModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil


class MaskVisionHubMixin:
    """`push_to_hub` through maskvision's staging (`maskvision.hub.push_model`): one commit holding config.json,
    model.safetensors, preprocessor_config.json, a model card and the self-contained remote code.

    Also keeps a model loaded as remote code re-savable: transformers' `custom_object_save` takes any class whose
    name contains "Tokenizer" (`DVAETokenizer`, `VQKDTokenizer`) for a text tokenizer and writes its ``auto_map``
    entry as a (slow, fast) pair, which transformers' own loader then fails to read back.
    """

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

    def encoder_for_export(self) -> PreTrainedModel:
        """A stock transformers model holding the pretrained encoder (no maskvision class in its config)."""
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Parameter names (as in ``named_parameters``) kept out of weight decay besides norms and biases."""
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
