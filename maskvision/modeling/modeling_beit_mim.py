"""BEiT masked image modeling (Bao et al. 2021, "BEiT: BERT Pre-Training of Image Transformers") on transformers' own
`BeitModel`.

About 40% of the patches (blockwise) are replaced by a learnable [MASK] embedding; the encoder sees the whole
sequence and a head (LayerNorm + Linear) predicts, at the masked positions only, the visual token a frozen tokenizer
assigns to each patch (cross-entropy) — or, for the paper's ablation, the patch's normalised pixels (mean squared
error). The forward pass reads top to bottom:

    targets           tokenizer ids (or pixels) of the masked patches        (M,) or (M, P²·C)
    forward_encoder   BeitModel with [MASK] at the masked patches            (B, 1 + N, D)
    select_masked     gather the masked patch tokens first                   (M, D)
    forward_head      LayerNorm + Linear                                     (M, vocab) or (M, P²·C)
    forward_loss      cross-entropy and token accuracy (or MSE)              scalars

``B`` images, ``N`` patches each, ``M`` masked patches in the batch, ``D`` the width. The parameter names match
transformers' `BeitForMaskedImageModeling` (``beit.*``, ``layernorm.*``, ``lm_head.*``), so state dicts move between
the two; unlike it, the head runs only where the loss is taken and the weights follow the official initialisation.
"""

import copy
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, BeitConfig, BeitModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..configuration.configuration_beit_mim import BEIT_PRETRAINING_BACKBONE, BeitMimConfig
from .modeling_utils import MaskVisionPreTrainedModel
from .pretrained_backbone import EncoderPlan, SourceEncoder, method_config


def _trunc_normal_(tensor: torch.Tensor, std: float) -> None:
    """Normal(0, std) truncated to [-std, std], unilm/beit's initialisation, by inverse-CDF sampling (torch's
    rejection sampler is ~10x slower at these bounds). Leaves weights loaded from a checkpoint alone, like
    transformers' `initialization` functions."""
    if getattr(tensor, "_is_hf_initialized", False):
        return
    bound = math.erf(1 / math.sqrt(2))  # the uniform's range for [-1, +1] standard deviations
    tensor.uniform_(-bound, bound).erfinv_().mul_(std * math.sqrt(2)).clamp_(-std, std)


@dataclass
class BeitMimForPreTrainingOutput(ModelOutput):
    """
    loss (`torch.FloatTensor` of shape `()`):
        Cross-entropy of the visual tokens at the masked patches (mean squared error for the pixel target).
    accuracy (`torch.FloatTensor` of shape `()`):
        Fraction of masked patches whose token is predicted exactly (token target only).
    logits (`torch.FloatTensor` of shape `(num_masked, vocab_size)` or `(num_masked, patch_size² · channels)`):
        Predictions at the masked patches, in the order of `bool_masked_pos.nonzero()` (image, then patch).
    """

    loss: torch.FloatTensor | None = None
    accuracy: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


class BeitMimForPreTraining(MaskVisionPreTrainedModel):
    """BEiT pretraining: transformers' `BeitModel` (no pooler) + a prediction head at the masked patches.

    The visual tokenizer is attached with `set_tokenizer` (a path or a model) or loaded from
    ``config.tokenizer_name_or_path`` when targets are first needed. It stays frozen and in eval mode, runs under
    inference mode in its own dtype with autocast off, follows the model's device, and is not a submodule: it is not in
    the state dict, the checkpoints or the optimizer, and building, saving, loading or exporting the model never
    needs it.
    """

    config_class = BeitMimConfig
    base_model_prefix = "beit"
    _no_split_modules = ["BeitLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True

    def __init__(self, config: BeitMimConfig):
        super().__init__(config)
        backbone = config.backbone_config
        self.beit = BeitModel(backbone, add_pooling_layer=False)
        head_size = config.vocab_size if config.target == "tokens" else config.patch_dim
        self.layernorm = nn.LayerNorm(backbone.hidden_size, eps=backbone.layer_norm_eps)
        self.lm_head = nn.Linear(backbone.hidden_size, head_size)
        object.__setattr__(self, "_tokenizer", None)  # kept out of the module tree on purpose
        self.post_init()

    # ---------------------------------------------------------------------------------------------- initialisation
    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            _trunc_normal_(module.weight, std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)

    @torch.no_grad()
    def initialize_weights(self):
        """transformers initialises the encoder with BeitModel's own scheme (its `_init_weights`); the official BEiT
        initialisation follows on top: truncated normal (±1 std, as unilm/beit) for the weights and the [CLS] /
        [MASK] embeddings, then the output projections of the attention and of the MLP of layer l (1-based) divided
        by sqrt(2 l) (the paper's section 2.5). Weights loaded from a checkpoint are left alone: transformers'
        `initialization` functions skip them."""
        super().initialize_weights()
        std = self.config.initializer_range
        for module in self.beit.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                _trunc_normal_(module.weight, std)
        embeddings = self.beit.embeddings
        for token in (embeddings.cls_token, embeddings.mask_token, embeddings.position_embeddings):
            if token is not None:
                _trunc_normal_(token, std)
        for depth, layer in enumerate(self.beit.layers, start=1):
            for weight in (layer.attention.o_proj.weight, layer.mlp.fc2.weight):
                init.copy_(weight, weight / math.sqrt(2.0 * depth))

    def no_weight_decay(self) -> set[str]:
        """The [CLS] and absolute position embeddings, as the official ``no_weight_decay`` ({'pos_embed', 'cls_token'},
        unilm beit/modeling_pretrain.py): the [MASK] embedding and the relative position bias table are decayed there
        and here."""
        return {name for name, _ in self.named_parameters() if name.endswith(("cls_token", "position_embeddings"))}

    # ------------------------------------------------------------------------------------- from existing weights
    @classmethod
    def plan_from_encoder(cls, source: SourceEncoder, config: BeitMimConfig | None) -> EncoderPlan:
        """BEiT from a stock ViT-family encoder (`from_backbone`): its layers as they are, a [MASK] embedding, and
        the head's LayerNorm and ``lm_head`` from a `BeitForMaskedImageModeling` (the ``lm_head`` when its
        vocabulary is the model's), or the head's LayerNorm from the encoder's final one (as `encoder_for_export`
        does the other way round)."""
        if source.is_swin:
            raise ValueError(f"{source.name!r} is a Swin encoder (architecture): BEiT pretrains a ViT.")
        backbone, notes, unused = copy.deepcopy(source.config), [], []
        head = dict(source.head)
        if "layernorm.weight" not in head:
            head.update({f"layernorm.{name}": t for name, t in source.pop(source.final_norm_prefix).items()})
            backbone.use_mean_pooling = True  # the final LayerNorm is the head's, before lm_head
        backbone.use_mask_token = True
        if not (backbone.use_relative_position_bias or backbone.use_shared_relative_position_bias):
            backbone.use_shared_relative_position_bias = True
            notes.append("a shared relative position bias is added; it starts at zero (attention unchanged)")
        if not backbone.layer_scale_init_value:
            backbone.layer_scale_init_value = 1.0
            notes.append("layer scale added; it starts at 1 (the residual branches unchanged)")
        lm_head = head.get("lm_head.weight")
        vocabulary = {} if lm_head is None else {"vocab_size": lm_head.shape[0]}
        drop_path_rate = BEIT_PRETRAINING_BACKBONE["drop_path_rate"]
        config = method_config(BeitMimConfig, config, backbone, drop_path_rate, **vocabulary)
        if lm_head is not None and (config.target != "tokens" or lm_head.shape[0] != config.vocab_size):
            unused += ["lm_head.weight", "lm_head.bias"]
            notes.append(
                f"the checkpoint's lm_head predicts {lm_head.shape[0]} tokens, the model "
                + (f"{config.vocab_size}" if config.target == "tokens" else "pixels")
                + ": its lm_head is new"
            )
            head = {name: tensor for name, tensor in head.items() if not name.startswith("lm_head.")}
        tensors = {f"beit.{name}": tensor for name, tensor in source.tensors.items()}
        return EncoderPlan(config=config, tensors={**tensors, **head}, unused=unused, notes=notes)

    @classmethod
    def config_at_image_size(cls, config: BeitMimConfig, image_size: int) -> BeitMimConfig:
        """The masking counts follow the new grid (the official proportion of it, see `BeitMimConfig`)."""
        values = config.to_dict()
        values["backbone_config"]["image_size"] = image_size
        values.update(num_masking_patches=None, min_num_patches=None)
        return BeitMimConfig.from_dict(values)

    # -------------------------------------------------------------------------------------------------- tokenizer
    @property
    def tokenizer(self) -> PreTrainedModel:
        """The frozen visual tokenizer, loaded from ``config.tokenizer_name_or_path`` on first use."""
        if self._tokenizer is None:
            if not self.config.tokenizer_name_or_path:
                raise ValueError(
                    "No visual tokenizer: call model.set_tokenizer(path_or_model), set "
                    "config.tokenizer_name_or_path, or pass `labels` (the token ids of every patch)."
                )
            self.set_tokenizer(self.config.tokenizer_name_or_path)
        return self._tokenizer

    def set_tokenizer(self, tokenizer: str | os.PathLike | PreTrainedModel) -> PreTrainedModel:
        """Attach a visual tokenizer (a path / Hub id loaded with `AutoModel.from_pretrained`, or a model).

        Its ``config.vocab_size`` must equal ``config.vocab_size``. A path (or the loaded model's own path) is
        recorded in ``config.tokenizer_name_or_path`` so that a saved checkpoint can re-attach it.
        """
        if self.config.target != "tokens":
            raise ValueError(
                f"A visual tokenizer is used with target='tokens' only; this model has target={self.config.target!r}."
            )
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoModel.from_pretrained(os.fspath(tokenizer))
        if not callable(getattr(tokenizer, "get_codebook_indices", None)):
            raise TypeError(f"{type(tokenizer).__name__} is not a visual tokenizer: it has no get_codebook_indices().")
        vocab_size = tokenizer.config.vocab_size
        if vocab_size != self.config.vocab_size:
            raise ValueError(
                f"The tokenizer has vocab_size={vocab_size} but the model predicts config.vocab_size="
                f"{self.config.vocab_size}: build the model with vocab_size={vocab_size}."
            )
        tokenizer.requires_grad_(False).eval()
        # Channels-last: the convolutions of a dVAE run faster (CPU, and tensor cores on GPUs), the ids are the same.
        tokenizer.to(self.beit.embeddings.cls_token.device, memory_format=torch.channels_last)
        object.__setattr__(self, "_tokenizer", tokenizer)
        if tokenizer.name_or_path:
            self.config.tokenizer_name_or_path = tokenizer.name_or_path
        return tokenizer

    def _apply(self, fn, recurse=True):
        # `.to()`, `.cuda()`, `.cpu()` move the tokenizer to the model's device; it keeps its own dtype.
        super()._apply(fn, recurse)
        tokenizer = self.__dict__.get("_tokenizer")
        device = self.beit.embeddings.cls_token.device
        if tokenizer is not None and device.type != "meta":
            tokenizer.to(device)
        return self

    # ------------------------------------------------------------------------------------------------------ stages
    def masked_positions(self, bool_masked_pos: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """(B, N) or (B, h, w) mask → (B, N) bool, checked against the encoder's patch grid."""
        if bool_masked_pos is None:
            raise ValueError("bool_masked_pos (B, num_patches), True at masked patches, is required for pretraining.")
        mask = bool_masked_pos.flatten(1) if bool_masked_pos.dim() == 3 else bool_masked_pos
        expected = (batch_size, self.config.num_patches)
        if tuple(mask.shape) != expected:
            raise ValueError(
                f"bool_masked_pos has shape {tuple(bool_masked_pos.shape)}; expected {expected} "
                f"(a {self.config.grid_size}x{self.config.grid_size} patch grid per image)."
            )
        return mask.bool()

    def tokenize(self, tokenizer_pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, T) images in [0, 1] → (B, N) token ids from the frozen tokenizer."""
        tokenizer = self.tokenizer
        dtype = next(tokenizer.parameters()).dtype
        with torch.inference_mode(), torch.autocast(tokenizer_pixel_values.device.type, enabled=False):
            pixel_values = tokenizer_pixel_values.to(dtype, memory_format=torch.channels_last)
            ids = tokenizer.get_codebook_indices(pixel_values)  # (B, h, w)
        grid = self.config.grid_size
        if tuple(ids.shape[1:]) != (grid, grid):
            raise ValueError(
                f"The tokenizer gave a {tuple(ids.shape[1:])} grid of tokens for tokenizer_pixel_values of shape "
                f"{tuple(tokenizer_pixel_values.shape)}; the encoder has a {grid}x{grid} patch grid. Give the "
                f"tokenizer images of {grid} x its downsample factor pixels per side."
            )
        return ids.flatten(1)

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, N, P²·C), patches row-major like the encoder's, each flattened as (P, P, C)."""
        batch, channels, height, width = pixel_values.shape
        size = self.config.backbone_config.patch_size
        rows, columns = height // size, width // size
        patches = pixel_values.reshape(batch, channels, rows, size, columns, size)
        return patches.permute(0, 2, 4, 3, 5, 1).reshape(batch, rows * columns, size * size * channels)

    def targets(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor,
        tokenizer_pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """What the masked patches must predict: token ids (M,) or per-patch normalised pixels (M, P²·C)."""
        if self.config.target == "pixels":
            target = self.patchify(pixel_values)[bool_masked_pos]  # (M, P²·C)
            if self.config.norm_pix_loss:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)
                target = (target - mean) / (var + 1e-6).sqrt()
            return target
        if labels is None:
            if tokenizer_pixel_values is None:
                raise ValueError(
                    "target='tokens' needs tokenizer_pixel_values (B, 3, T, T) in [0, 1] for the tokenizer, or "
                    "labels (B, num_patches) with the token id of every patch."
                )
            labels = self.tokenize(tokenizer_pixel_values)  # (B, N)
        labels = labels.flatten(1) if labels.dim() == 3 else labels
        if labels.shape != bool_masked_pos.shape:
            raise ValueError(
                f"labels has shape {tuple(labels.shape)}; expected {tuple(bool_masked_pos.shape)} (one id per patch)."
            )
        return labels[bool_masked_pos]  # (M,): also turns inference-mode ids into ordinary tensors

    def forward_encoder(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None) -> torch.Tensor:
        """(B, C, H, W), (B, N) → (B, 1 + N, D): [CLS] + patch tokens, [MASK] embedded at the masked patches."""
        return self.beit(pixel_values, bool_masked_pos=bool_masked_pos).last_hidden_state

    def select_masked(self, hidden_states: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """(B, 1 + N, D) → (M, D): the masked patch tokens only, so the head never runs on the others."""
        masked = hidden_states[:, 1:][bool_masked_pos]
        if masked.shape[0] == 0:
            raise ValueError("bool_masked_pos masks no patch in this batch: there is nothing to predict.")
        return masked

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., D) → (..., vocab_size) logits, or (..., P²·C) pixels."""
        return self.lm_head(self.layernorm(tokens))

    def forward_loss(
        self, predictions: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(M, vocab) logits and (M,) ids → cross-entropy and accuracy; (M, P²·C) pixels → MSE and None."""
        if self.config.target == "pixels":
            return F.mse_loss(predictions.float(), targets.float()), None
        loss = F.cross_entropy(predictions, targets)
        with torch.no_grad():
            accuracy = (predictions.argmax(dim=-1) == targets).float().mean()
        return loss, accuracy

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        tokenizer_pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> BeitMimForPreTrainingOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, channels, image_size, image_size)`):
            The encoder's view, normalised with `config.image_mean` / `config.image_std`.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, num_patches)` or `(batch_size, h, w)`):
            True at the masked patches (row-major).
        tokenizer_pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, T, T)`, *optional*):
            The tokenizer's view in [0, 1], `T = grid * tokenizer.downsample_factor`; token target only.
        labels (`torch.LongTensor` of shape `(batch_size, num_patches)`, *optional*):
            Token ids of every patch, when known in advance; replaces the tokenizer.
        """
        bool_masked_pos = self.masked_positions(bool_masked_pos, pixel_values.shape[0])  # (B, N)
        targets = self.targets(pixel_values, bool_masked_pos, tokenizer_pixel_values, labels)  # (M,) | (M, P²C)
        hidden_states = self.forward_encoder(pixel_values, bool_masked_pos)  # (B, 1 + N, D)
        masked = self.select_masked(hidden_states, bool_masked_pos)  # (M, D)
        predictions = self.forward_head(masked)  # (M, vocab) | (M, P²C)
        loss, accuracy = self.forward_loss(predictions, targets)
        return BeitMimForPreTrainingOutput(loss=loss, accuracy=accuracy, logits=predictions)

    # ------------------------------------------------------------------------------------------------------ export
    def encoder_for_export(self) -> BeitModel:
        """A stock `BeitModel` with mean pooling for fine-tuning, holding copies of the pretrained weights.

        As in BEiT's fine-tuning: the shared relative position bias is copied into every layer, the [MASK] embedding
        is dropped, and the pooler's LayerNorm (fc_norm) starts from the pretrained final LayerNorm (the head's).
        """
        config = BeitConfig.from_dict(self.config.backbone_config.to_dict())
        config.use_mask_token = False
        config.use_mean_pooling = True
        if config.use_shared_relative_position_bias:
            config.use_shared_relative_position_bias = False
            config.use_relative_position_bias = True
        state = {name: tensor.detach().clone() for name, tensor in self.beit.state_dict().items()}
        state.pop("embeddings.mask_token")
        shared = state.pop("shared_position_bias.relative_position_bias_table", None)
        if shared is not None:
            for index in range(config.num_hidden_layers):
                state[f"layers.{index}.relative_position_bias.relative_position_bias_table"] = shared.clone()
        state["pooler.layernorm.weight"] = self.layernorm.weight.detach().clone()
        state["pooler.layernorm.bias"] = self.layernorm.bias.detach().clone()
        with torch.device("meta"):
            encoder = BeitModel(config, add_pooling_layer=True)
        encoder.load_state_dict(state, strict=True, assign=True)
        return encoder.eval()


# The method as its model card states it (`maskvision.cards.methods`): the name, a one-line summary, the paper, the
# BibTeX keys to cite (each model"s BIBTEX, gathered by the cards) and the Hub tags.
METHOD_CARD = dict(
    name="BEiT",
    summary=(
        "masked image modeling: about 40% of the patches (blockwise) are replaced by a [MASK] embedding and the "
        "encoder predicts, at the masked positions, the visual tokens a frozen tokenizer assigns to them (or, in the "
        "paper's ablation, their normalised pixels)"
    ),
    paper="https://arxiv.org/abs/2106.08254",
    citations=("beit",),
    tags=("beit", "masked-image-modeling"),
)
BIBTEX = {
    "beit": """@inproceedings{bao2022beit,
  title={{BEiT}: {BERT} Pre-Training of Image Transformers},
  author={Hangbo Bao and Li Dong and Songhao Piao and Furu Wei},
  booktitle={International Conference on Learning Representations},
  year={2022},
  url={https://openreview.net/forum?id=p-BhZSz59o4}
}""",
}


__all__ = ["BeitMimForPreTraining", "BeitMimForPreTrainingOutput"]
