"""What every maskvision pretraining model shares: the export of its encoder to a stock transformers checkpoint.

A pretraining config holds ``backbone_config`` (a stock `BeitConfig` or `SwinConfig`), ``image_mean`` and
``image_std``; a pretraining model implements `encoder_for_export`, returning a stock transformers model
(`BeitModel`, `SwinModel`) that carries the pretrained weights. `export_encoder` saves it with an image
processor beside it, so `AutoModelForImageClassification.from_pretrained(path, num_labels=K)` and
``pipeline("image-feature-extraction", model=path)`` work with no maskvision code.
"""

import os

from transformers import PreTrainedModel
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil


class MaskVisionPreTrainedModel(PreTrainedModel):
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
