"""A frozen encoder and the preprocessing its features are computed with (`Encoder`, `load_encoder`).

It works on

- stock transformers checkpoints: `BeitModel`, `ViTModel`, `SwinModel` and the like, and their
  ``...ForImageClassification`` variants (the backbone is used, the head ignored);
- maskvision encoder exports (``<run>/encoder``: stock `BeitModel` / `SwinModel` with an image processor);
- maskvision pretraining checkpoints (``<run>``): their exported encoder, or, for models exposing
  ``get_image_features(pixel_values, pooling=...)`` (ExtreMA), that method, which is what makes
  ``pooling="class_attention"`` possible.

Pooling: ``cls`` is the [CLS] token; ``mean`` is the average of the patch tokens (at the last layer, the model's
own mean pooler where it has one: Beit with ``use_mean_pooling``, Swin); ``class_attention`` is ExtreMA's
class-attention pooler. ``layer`` numbers the blocks from 1 (Swin: the stages); the last layer is the model's
final representation (after its final norm), earlier layers are the raw hidden states of that block, which is
how BEiT's paper probes every block.
"""

import hashlib
import json
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AutoModel

from ..modeling.modeling_utils import MaskVisionPreTrainedModel
from .processors import load_image_processor, processor_json, resolve_image_processor

POOLINGS = ("cls", "mean", "class_attention")
_VOLATILE_CONFIG_KEYS = {"transformers_version", "architectures", "output_hidden_states", "return_dict", "dtype"}


@dataclass
class Encoder:
    """A frozen encoder and the preprocessing its features are computed with."""

    model: nn.Module
    image_processor: object
    name: str = "model"
    _fingerprint: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.model.eval()
        self.model.requires_grad_(False)

    @property
    def config(self):
        config = self.model.config
        return getattr(config, "backbone_config", None) or config

    @property
    def has_pooling_api(self) -> bool:
        """True for maskvision pretraining models with ``get_image_features(pixel_values, pooling=...)``."""
        return isinstance(self.model, MaskVisionPreTrainedModel) and hasattr(self.model, "get_image_features")

    @property
    def is_hierarchical(self) -> bool:
        """Swin-style encoders: stages of patch tokens, no [CLS] token."""
        return hasattr(self.config, "depths")

    @property
    def num_layers(self) -> int:
        """Blocks (ViT, Beit) or stages (Swin) whose outputs ``layer`` can select."""
        return len(self.config.depths) if self.is_hierarchical else int(self.config.num_hidden_layers)

    @property
    def default_pooling(self) -> str:
        """The model's own pooling: class-attention for ExtreMA, mean for mean-pooled models, else [CLS]."""
        if self.has_pooling_api:
            return "class_attention"
        return "mean" if self.is_hierarchical or self._has_mean_pooler() else "cls"

    def fingerprint(self) -> str:
        """Hash of the weights, the config and the preprocessing: the model's part of the feature-cache key."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            config = {
                key: value
                for key, value in self.model.config.to_dict().items()
                if not key.startswith("_") and key not in _VOLATILE_CONFIG_KEYS
            }
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
            digest.update(processor_json(self.image_processor).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                tensor = tensor.detach().cpu().contiguous().reshape(-1)
                digest.update(f"{name}:{tensor.dtype}:{tensor.numel()}".encode())
                digest.update(tensor.view(torch.uint8).numpy().data)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def resolve_layer(self, layer: int) -> int:
        """1-based block number; negative values count from the end (-1 is the last block)."""
        depth = self.num_layers
        if not (1 <= layer <= depth or -depth <= layer <= -1):
            raise ValueError(
                f"layer must be in 1..{depth} (or -{depth}..-1 from the end) for this {depth}-layer encoder, "
                f"got {layer}."
            )
        return layer if layer > 0 else depth + 1 + layer

    def check_request(self, poolings, layers) -> list[tuple[str, int]]:
        """Validate (pooling, layer) pairs before any compute; returns them with layers made 1-based."""
        keys = []
        for pooling in poolings:
            if pooling not in POOLINGS:
                raise ValueError(f"Unknown pooling {pooling!r}: choose one of {list(POOLINGS)}.")
            if pooling == "class_attention" and not self.has_pooling_api:
                raise ValueError(
                    "pooling='class_attention' needs an ExtreMA pretraining checkpoint (the run directory, whose "
                    f"model has get_image_features(pixel_values, pooling=...)); {self.name} is a "
                    f"{type(self.model).__name__}. Use 'cls' or 'mean'."
                )
            if pooling == "cls" and (self.is_hierarchical or self.has_pooling_api):
                raise ValueError(
                    f"pooling='cls' needs an encoder with a [CLS] token; {type(self.model).__name__} has none. "
                    f"Use {'mean or class_attention' if self.has_pooling_api else 'mean'}."
                )
            for layer in layers:
                layer = self.resolve_layer(layer)
                if self.has_pooling_api and layer != self.num_layers:
                    raise ValueError(
                        f"{type(self.model).__name__} gives features of its last layer only (layer {self.num_layers}); "
                        f"for block-wise features evaluate its exported encoder (<run>/encoder)."
                    )
                keys.append((pooling, layer))
        return list(dict.fromkeys(keys))

    @torch.inference_mode()
    def features(self, pixel_values: torch.Tensor, keys: list[tuple[str, int]]) -> dict[tuple[str, int], torch.Tensor]:
        """Pooled features (B, D) of one batch for each requested (pooling, layer)."""
        if self.has_pooling_api:
            return {key: self.model.get_image_features(pixel_values, pooling=key[0]) for key in keys}
        last = self.num_layers
        need_hidden = any(layer != last for _, layer in keys)
        outputs = self.model(pixel_values=pixel_values, output_hidden_states=need_hidden)
        result = {}
        for pooling, layer in keys:
            if layer == last:
                result[(pooling, layer)] = self._pool_last(outputs, pooling, pixel_values)
            else:
                tokens = outputs.hidden_states[layer]
                result[(pooling, layer)] = self._pool_tokens(tokens, pooling, pixel_values)
        return result

    # The model's own final representation: its last hidden state (after the final norm) or its mean pooler.
    def _pool_last(self, outputs, pooling: str, pixel_values: torch.Tensor) -> torch.Tensor:
        if pooling == "mean" and self._has_mean_pooler():
            return outputs.pooler_output.flatten(1)
        return self._pool_tokens(outputs.last_hidden_state, pooling, pixel_values)

    def _pool_tokens(self, tokens: torch.Tensor, pooling: str, pixel_values: torch.Tensor) -> torch.Tensor:
        prefix = 0 if self.is_hierarchical else tokens.shape[1] - self._num_patches(pixel_values)
        if pooling == "cls":
            return tokens[:, 0]
        return tokens[:, prefix:].mean(dim=1)

    def _num_patches(self, pixel_values: torch.Tensor) -> int:
        patch = self.config.patch_size
        patch_height, patch_width = (patch, patch) if isinstance(patch, int) else patch
        return (pixel_values.shape[-2] // patch_height) * (pixel_values.shape[-1] // patch_width)

    def _has_mean_pooler(self) -> bool:
        pooler = getattr(self.model, "pooler", None)
        if isinstance(pooler, nn.AdaptiveAvgPool1d):  # Swin
            return True
        return pooler is not None and bool(getattr(self.config, "use_mean_pooling", False))  # Beit, Data2VecVision

    def preprocess(self, images: list) -> torch.Tensor:
        return self.image_processor(images=images, return_tensors="pt")["pixel_values"]


def load_encoder(
    model,
    image_processor=None,
    image_size: int | None = None,
    image_mean=None,
    image_std=None,
    device: str | torch.device | None = None,
) -> Encoder:
    """An `Encoder` from a path or Hub id (or a model object), with the checkpoint's image processor.

    ``image_size`` / ``image_mean`` / ``image_std`` override the checkpoint's preprocessing; a checkpoint without an
    image processor needs ``image_mean`` and ``image_std`` (the size defaults to the config's ``image_size``).
    """
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        if image_processor is None:
            image_processor = load_image_processor(model)
        model = AutoModel.from_pretrained(model)
    if isinstance(model, MaskVisionPreTrainedModel):
        image_processor = image_processor or model.image_processor()
        if not hasattr(model, "get_image_features"):
            model = model.encoder_for_export()

    image_processor = resolve_image_processor(image_processor, model.config, name, image_size, image_mean, image_std)

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return Encoder(model=model.to(device), image_processor=image_processor, name=name)
