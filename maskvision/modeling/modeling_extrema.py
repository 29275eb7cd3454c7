"""ExtreMA (Wu et al. 2022, "Extreme Masking for Learning Instance and Distributed Visual Representations",
https://arxiv.org/abs/2206.04667) on a stock transformers `BeitModel`.

A student ViT encodes only the visible patches of several disjoint random masks per image (80% masked × 5 masks by
default); two class-attention blocks pool each masked view into an instance vector, a projector and a predictor
map it to the space where it must predict the momentum teacher's projection of the full view (BYOL's loss, or
MoCo v3's InfoNCE). The teacher is an EMA copy of student backbone, pooling and projector, updated once per
optimizer step by `training.callbacks.MomentumTeacherCallback`, never inside `forward`.

    pixel_values (B, 3, S, S) ─embed─► (B, N, D) ─select_visible─► (B·M, V, D) ─forward_encoder─► (B·M, V, D)
        ─forward_head─► predictions (B, M, P)
    teacher_pixel_values (B, 3, S, S) ─forward_teacher─► targets (B, P)        (no gradient, no drop path)
    forward_loss(predictions, targets) ─► loss

There is no [CLS] token inside the encoder and positions are a fixed 2-D sin-cos table, kept in the stock absolute
position embedding slot (frozen). `export_encoder` writes the teacher's encoder as a stock `BeitModel` checkpoint.
"""

import copy
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BeitModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..configuration.configuration_extrema import EXTREMA_BACKBONE_DEFAULTS, ExtremaConfig
from .heads import ClassAttentionBlock, ClassAttentionPooling, MLPHead
from .losses import byol_loss, info_nce_loss, l2_normalize
from .modeling_utils import MaskVisionPreTrainedModel
from .momentum import MomentumTeacherMixin
from .pos_embed import sincos_2d_position_embedding
from .pretrained_backbone import EncoderPlan, SourceEncoder, method_config

logger = logging.getLogger(__name__)

POOLINGS = ("class_attention", "mean")


@dataclass
class ExtremaForPreTrainingOutput(ModelOutput):
    """
    loss: the BYOL (or InfoNCE) loss averaged over the masks.
    prediction_cosine: mean cosine similarity between the student's predictions and the teacher's targets.
    target_std: standard deviation over the batch of the l2-normalised targets, averaged over dimensions; about
        1/sqrt(projection_size) when healthy, 0 when the representation collapses.
    predictions: (batch, num_masks, projection_size) student predictions, one per mask.
    targets: (batch, projection_size) teacher projections of the full view.
    """

    loss: torch.FloatTensor | None = None
    prediction_cosine: torch.FloatTensor | None = None
    target_std: torch.FloatTensor | None = None
    predictions: torch.FloatTensor | None = None
    targets: torch.FloatTensor | None = None


def _mean_pool(hidden_states: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, L, D) → (B, D): the stock `BeitPooler` of a fresh export (mean of the tokens, LayerNorm without affine)."""
    return F.layer_norm(hidden_states.mean(dim=1), hidden_states.shape[-1:], eps=eps)


class ExtremaForPreTraining(MomentumTeacherMixin, MaskVisionPreTrainedModel):
    """ExtreMA pretraining: a student (``backbone`` → class-attention ``pooler`` → ``projector`` → ``predictor``) that
    sees the visible patches of each of ``num_masks`` disjoint masks, and a momentum teacher (``teacher_backbone``,
    ``teacher_pooler``, ``teacher_projector``: EMA copies, updated by `MomentumTeacherCallback`) that sees the full
    view. ``forward(pixel_values, bool_masked_pos, teacher_pixel_values=None)`` returns the BYOL (or InfoNCE) loss
    with its health figures (`ExtremaForPreTrainingOutput`); `get_image_features` gives the teacher's pooled
    features (``pooling``: class_attention or mean), `export_encoder` the teacher's encoder as a stock `BeitModel`."""

    config_class = ExtremaConfig
    base_model_prefix = "extrema"  # no such attribute: transformers scopes Beit's key renaming to the two encoders
    _no_split_modules = ["BeitLayer", "ClassAttentionBlock"]
    _supports_sdpa = True
    _supports_attention_backend = True

    def __init__(self, config: ExtremaConfig):
        super().__init__(config)
        backbone_config = config.backbone_config
        teacher_backbone_config = copy.deepcopy(backbone_config)
        teacher_backbone_config.drop_path_rate = 0.0

        # Student: encoder, class-attention pooling, projector and predictor.
        self.backbone = BeitModel(backbone_config, add_pooling_layer=False)
        self.pooler = self._build_pooler()
        self.projector = self._build_projector()
        self.predictor = MLPHead(
            config.projection_size,
            config.predictor_hidden_size,
            config.projection_size,
            num_layers=config.predictor_num_layers,
            norm="layer",
            activation="gelu",
        )
        # Teacher: EMA copy of encoder, pooling and projector; no drop path, no gradient, always in eval mode.
        with init.no_init_weights():
            self.teacher_backbone = BeitModel(teacher_backbone_config, add_pooling_layer=False)
            self.teacher_pooler = self._build_pooler()
            self.teacher_projector = self._build_projector()
        # The [CLS] slot of the exported stock encoder (see `calibrate_export`); all zeros until calibrated.
        self.register_buffer("export_cls_token", torch.zeros(1, 1, backbone_config.hidden_size))

        # `post_init` skips the teacher, which `init_teachers` then copies from the student. Unmarked afterwards, so
        # that loading a checkpoint without teacher weights initialises them instead of leaving them empty.
        self._mark_teachers_initialized(True)
        self.post_init()
        self.init_teachers()
        self._mark_teachers_initialized(False)
        self._freeze_fixed_embeddings()

    def _build_pooler(self) -> ClassAttentionPooling:
        backbone_config = self.config.backbone_config
        return ClassAttentionPooling(
            backbone_config.hidden_size,
            backbone_config.num_attention_heads,
            depth=self.config.pooling_depth,
            layer_scale=self.config.pooling_layer_scale,
            eps=backbone_config.layer_norm_eps,
        )

    def _build_projector(self) -> MLPHead:
        return MLPHead(
            self.config.backbone_config.hidden_size,
            self.config.projector_hidden_size,
            self.config.projection_size,
            num_layers=self.config.projector_num_layers,
            norm="layer",
            activation="gelu",
        )

    # ---------------------------------------------------------------------------------------------- set-up
    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The official code's scheme (MoCo v3 / MAE): xavier-uniform linear layers, the patch projection initialised
        # as a linear layer, the fixed 2-D sin-cos table. The backbone is a transformers sub-model initialised by its
        # own class, so it is re-initialised here, once, from the top-level call (``module is self``).
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
        elif isinstance(module, ClassAttentionBlock):
            init.constant_(module.gamma1, self.config.pooling_layer_scale)
            init.constant_(module.gamma2, self.config.pooling_layer_scale)
        elif isinstance(module, ClassAttentionPooling):
            init.trunc_normal_(module.cls_token, std=0.02)
        elif module is self:
            self._init_backbone_weights(self.backbone)
            init.zeros_(self.export_cls_token)

    def _init_backbone_weights(self, backbone: BeitModel) -> None:
        for module in backbone.modules():
            if isinstance(module, nn.Linear):
                init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    init.zeros_(module.bias)
        projection = backbone.embeddings.patch_embeddings.projection
        as_linear = torch.empty(projection.out_channels, projection.weight[0].numel())
        torch.nn.init.xavier_uniform_(as_linear)
        init.copy_(projection.weight, as_linear.view_as(projection.weight))
        init.zeros_(projection.bias)
        init.copy_(backbone.embeddings.position_embeddings, self._position_table())
        init.zeros_(backbone.embeddings.cls_token)

    def _position_table(self) -> torch.Tensor:
        """(1, 1 + N, D): a zero row for the stock [CLS] slot, then the 2-D sin-cos embedding of the patch grid."""
        backbone_config = self.config.backbone_config
        grid = backbone_config.image_size // backbone_config.patch_size
        table = sincos_2d_position_embedding(grid, grid, backbone_config.hidden_size)
        return torch.cat([table.new_zeros(1, table.shape[1]), table]).unsqueeze(0)

    def _mark_teachers_initialized(self, value: bool) -> None:
        for _, teacher in self.momentum_pairs():
            for module in teacher.modules():
                module._is_hf_initialized = value

    def _freeze_fixed_embeddings(self) -> None:
        # The fixed sin-cos table and the stock [CLS] token, which ExtreMA's encoder never uses, are not trained.
        self.backbone.embeddings.position_embeddings.requires_grad_(False)
        self.backbone.embeddings.cls_token.requires_grad_(False)

    def train(self, mode: bool = True):
        # Loading hands back fresh parameters that require grad; `from_pretrained` ends with `eval()`.
        super().train(mode)
        self._freeze_fixed_embeddings()
        return self

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [
            (self.backbone, self.teacher_backbone),
            (self.pooler, self.teacher_pooler),
            (self.projector, self.teacher_projector),
        ]

    @classmethod
    def plan_from_encoder(cls, source: SourceEncoder, config: ExtremaConfig | None) -> EncoderPlan:
        """ExtreMA from a stock ViT-family encoder (`from_backbone`): its patch embedding, position embeddings (kept
        fixed, as ExtreMA keeps its sin-cos table; the sin-cos table when it has none) and layers as they are; the
        pooling, heads and teacher are new. ExtreMA encodes the visible patches only, so an encoder with a relative
        position bias (a table over the full grid) cannot be used."""
        if source.is_swin:
            raise ValueError(f"{source.name!r} is a Swin encoder (architecture): ExtreMA pretrains a ViT.")
        backbone = copy.deepcopy(source.config)
        if backbone.use_relative_position_bias or backbone.use_shared_relative_position_bias:
            raise ValueError(
                f"{source.name!r} uses a relative position bias (architecture): ExtreMA encodes only the visible "
                "patches of each mask, which a bias table over the full patch grid cannot follow. Start ExtreMA from "
                "an encoder with absolute position embeddings (ViT, DeiT, DINOv2, a BeitModel without relative "
                "bias) or none."
            )
        unused = [
            f"embeddings.{name}"
            for name in ("cls_token", "mask_token")
            if source.tensors.pop(f"embeddings.{name}", None) is not None
        ]
        unused += [source.final_norm_prefix + name for name in source.pop(source.final_norm_prefix)]
        unused += list(source.head)
        notes = [
            "ExtreMA feeds no [CLS] to its encoder and pools with class attention: the checkpoint's [CLS] "
            "embedding and final LayerNorm are not used"
        ]
        if "embeddings.position_embeddings" in source.tensors:
            notes.append("the checkpoint's position embeddings are kept fixed, as ExtreMA keeps its sin-cos table")
        else:
            notes.append("the checkpoint has no position embeddings: ExtreMA's fixed 2-D sin-cos table is used")
        for switch in ("use_absolute_position_embeddings", "use_mask_token", "use_mean_pooling"):
            setattr(backbone, switch, EXTREMA_BACKBONE_DEFAULTS[switch])
        config = method_config(ExtremaConfig, config, backbone, EXTREMA_BACKBONE_DEFAULTS["drop_path_rate"])
        tensors = {f"backbone.{name}": tensor for name, tensor in source.tensors.items()}
        return EncoderPlan(config=config, tensors=tensors, unused=unused, notes=notes)

    def no_weight_decay(self) -> set[str]:
        # The class token of the pooling and the backbone's position / [CLS] embeddings (the Trainer leaves out the
        # 1-D parameters, norms, biases and layer scales, itself: timm's rule, as the official code).
        return {name for name, _ in self.named_parameters() if name.endswith(("cls_token", "position_embeddings"))}

    # ---------------------------------------------------------------------------------------------- stages
    def embed(self, backbone: BeitModel, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) → (B, N, D): patch embedding + fixed sin-cos position embedding, no [CLS]."""
        size = self.config.backbone_config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[-2:]) != (size, size):
            raise ValueError(
                f"pixel_values must have shape (batch, channels, {size}, {size}) (backbone_config.image_size), got "
                f"{tuple(pixel_values.shape)}."
            )
        embeddings = backbone.embeddings
        tokens = embeddings.patch_embeddings(pixel_values) + embeddings.position_embeddings[:, 1:]
        return embeddings.dropout(tokens)

    @staticmethod
    def select_visible(tokens: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """(B, N, D) tokens, (B, M, N) masks (True = masked) → (B·M, V, D) visible tokens in raster order.

        Every mask must leave the same number V of patches visible, so that the B·M views form one batch.
        """
        batch, num_patches, width = tokens.shape
        if bool_masked_pos.ndim == 2:
            bool_masked_pos = bool_masked_pos.unsqueeze(1)
        if bool_masked_pos.ndim != 3 or bool_masked_pos.shape[0] != batch or bool_masked_pos.shape[2] != num_patches:
            raise ValueError(
                f"bool_masked_pos must have shape (batch={batch}, num_masks, num_patches={num_patches}), got "
                f"{tuple(bool_masked_pos.shape)}."
            )
        visible = ~bool_masked_pos.bool()
        fewest, most = torch.stack(torch.aminmax(visible.sum(dim=-1))).tolist()  # the one host sync of a step
        if fewest != most or fewest == 0:
            raise ValueError(
                "Every mask in bool_masked_pos must leave the same, non-zero number of patches visible; got between "
                f"{fewest} and {most}. Use maskvision.training.inputs.masking.RandomMaskGenerator."
            )
        num_masks = visible.shape[1]
        # Visible patches first, in ascending patch order (stable sort), then keep V of them: (B, M, V).
        index = visible.to(torch.uint8).argsort(dim=-1, descending=True, stable=True)[..., :most]
        selected = torch.gather(
            tokens.unsqueeze(1).expand(batch, num_masks, num_patches, width),
            dim=2,
            index=index.unsqueeze(-1).expand(batch, num_masks, most, width),
        )  # (B, M, V, D)
        return selected.reshape(batch * num_masks, most, width)

    @staticmethod
    def forward_encoder(backbone: BeitModel, tokens: torch.Tensor) -> torch.Tensor:
        """(B', L, D) → (B', L, D): the stock Beit layers on whatever tokens are given (all, or the visible ones)."""
        hidden_states = tokens
        for layer in backbone.layers:
            hidden_states = layer(hidden_states)
        return backbone.layernorm(hidden_states)

    def forward_head(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B', V, D) → (B', P): class-attention pooling, projector, predictor."""
        return self.predictor(self.projector(self.pooler(hidden_states)))

    @torch.no_grad()
    def forward_teacher(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) full view → (B, P) teacher projection, without gradient."""
        hidden_states = self.forward_encoder(self.teacher_backbone, self.embed(self.teacher_backbone, pixel_values))
        return self.teacher_projector(self.teacher_pooler(hidden_states))

    def forward_loss(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, M, P) predictions, (B, P) targets → scalar, averaged over the masks."""
        if self.config.loss == "byol":
            return byol_loss(predictions.flatten(0, 1), targets.unsqueeze(1).expand_as(predictions).flatten(0, 1))
        # MoCo v3: the other images' targets of the global batch are the negatives; scaled by 2·T as MoCo v3 does.
        temperature = self.config.temperature
        losses = [info_nce_loss(predictions[:, mask], targets, temperature) for mask in range(predictions.shape[1])]
        return torch.stack(losses).mean() * (2 * temperature)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor,
        teacher_pixel_values: torch.Tensor | None = None,
    ) -> ExtremaForPreTrainingOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, image_size, image_size)`):
            The student's view, normalised with `config.image_mean` / `image_std`.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, num_masks, num_patches)`):
            True where a patch is masked; every mask leaves the same number of patches visible.
        teacher_pixel_values (`torch.FloatTensor`, *optional*):
            The teacher's full view (same crop, its own colour augmentation); `pixel_values` when omitted.
        """
        batch = pixel_values.shape[0]
        tokens = self.embed(self.backbone, pixel_values)  # (B, N, D)
        visible = self.select_visible(tokens, bool_masked_pos)  # (B·M, V, D)
        hidden_states = self.forward_encoder(self.backbone, visible)  # (B·M, V, D)
        predictions = self.forward_head(hidden_states).view(batch, -1, self.config.projection_size)  # (B, M, P)
        targets = self.forward_teacher(pixel_values if teacher_pixel_values is None else teacher_pixel_values)
        loss = self.forward_loss(predictions, targets)

        with torch.no_grad():
            normalised_targets = l2_normalize(targets)
            cosine = (l2_normalize(predictions) * normalised_targets.unsqueeze(1)).sum(-1)
            target_std = normalised_targets.std(dim=0).mean() if batch > 1 else normalised_targets.new_zeros(())
        return ExtremaForPreTrainingOutput(
            loss=loss,
            prediction_cosine=cosine.mean(),
            target_std=target_std,
            predictions=predictions,
            targets=targets,
        )

    # ---------------------------------------------------------------------------------------------- evaluation
    def get_image_features(self, pixel_values: torch.Tensor, pooling: str = "class_attention") -> torch.Tensor:
        """(B, 3, S, S) full view → (B, D) features of the teacher encoder (the one `export_encoder` writes).

        ``pooling="class_attention"``: the instance representation the method trains (class-attention pooling and
        its LayerNorm, before the projector). ``pooling="mean"``: the mean of the tokens through a LayerNorm without
        affine, which is what the exported encoder's ``pooler_output`` reproduces.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}.")
        hidden_states = self.forward_encoder(self.teacher_backbone, self.embed(self.teacher_backbone, pixel_values))
        if pooling == "class_attention":
            return self.teacher_pooler(hidden_states)
        return _mean_pool(hidden_states, self.config.backbone_config.layer_norm_eps)

    # ---------------------------------------------------------------------------------------------- export
    def encoder_for_export(self) -> BeitModel:
        """The teacher's encoder as a stock `BeitModel` with mean pooling.

        The teacher, not the student, is exported: it is the EMA of the student's trajectory, the encoder that sees
        full views in pretraining and the one the official linear evaluation uses (``--eval_momentum``). Stock Beit
        prepends a [CLS] token that ExtreMA never used: its slot holds ``export_cls_token`` (see `calibrate_export`)
        with a zero position embedding, so that the export's mean-pooled features stay close to the teacher's.
        """
        if not torch.any(self.export_cls_token):
            logger.warning(
                "The [CLS] slot of the exported encoder is not calibrated: call calibrate_export(pixel_values) on a "
                "few batches of full views first, or the export's features drift from the pretrained encoder's."
            )
        return self._stock_encoder(self.export_cls_token)

    def _stock_encoder(self, cls_token: torch.Tensor) -> BeitModel:
        config = copy.deepcopy(self.config.backbone_config)
        config.architectures = ["BeitModel"]
        encoder = BeitModel(config, add_pooling_layer=True)
        missing, unexpected = encoder.load_state_dict(self.teacher_backbone.state_dict(), strict=False)
        if unexpected or set(missing) != {"pooler.layernorm.weight", "pooler.layernorm.bias"}:
            raise RuntimeError(f"Export mismatch: missing {missing}, unexpected {unexpected}.")
        with torch.no_grad():
            encoder.embeddings.cls_token.copy_(cls_token)
            encoder.embeddings.position_embeddings[:, 0].zero_()
        return encoder.to(device=cls_token.device, dtype=self.teacher_backbone.dtype).eval()

    def calibrate_export(
        self, pixel_values: torch.Tensor, steps: int = 100, learning_rate: float = 0.05
    ) -> dict[str, float]:
        """Fit the [CLS] slot of the exported encoder on full views ``pixel_values`` (B, 3, S, S).

        The slot starts at the mean input token and is optimised with Adam, the rest of the encoder frozen, so that
        the export's ``pooler_output`` matches ``get_image_features(pooling="mean")`` of the encoder without [CLS].
        Costs ``steps`` forward/backward passes of the encoder on the batch. Returns the mean relative error
        ``|export - teacher| / |teacher|`` of the zero slot and of the calibrated one.
        """
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}.")
        with torch.no_grad():
            reference = self.get_image_features(pixel_values, pooling="mean")
            mean_token = self.embed(self.teacher_backbone, pixel_values).mean(dim=(0, 1))
        encoder = self._stock_encoder(torch.zeros_like(self.export_cls_token)).requires_grad_(False)
        slot = encoder.embeddings.cls_token

        def relative_error() -> torch.Tensor:
            features = encoder(pixel_values).pooler_output
            return ((features - reference).norm(dim=-1) / reference.norm(dim=-1)).mean()

        with torch.no_grad():
            uncalibrated = relative_error().item()
            slot.copy_(mean_token.view_as(slot))
        slot.requires_grad_(True)
        optimizer = torch.optim.Adam([slot], lr=learning_rate)
        best_error, best_slot = float("inf"), slot.detach().clone()
        with torch.enable_grad():
            for _ in range(steps):
                error = relative_error()
                if error.item() < best_error:
                    best_error, best_slot = error.item(), slot.detach().clone()
                optimizer.zero_grad(set_to_none=True)
                error.backward()
                optimizer.step()
        with torch.no_grad():
            final_error = relative_error().item()
            if final_error < best_error:
                best_error, best_slot = final_error, slot.detach().clone()
            self.export_cls_token.copy_(best_slot)
        return {"export_error_uncalibrated": uncalibrated, "export_error": best_error}


# The method as its model card states it (`maskvision.cards.methods`): the name, a one-line summary, the paper, the
# BibTeX keys to cite (each model"s BIBTEX, gathered by the cards) and the Hub tags.
METHOD_CARD = dict(
    name="ExtreMA",
    summary=(
        "extreme masking as augmentation for siamese learning: the student encodes only the visible patches of several "
        "disjoint random masks (75-90% masked) and predicts a momentum teacher's embedding of the whole image (BYOL "
        "loss)"
    ),
    paper="https://arxiv.org/abs/2206.04667",
    citations=("extrema",),
    tags=("extrema", "masked-image-modeling", "byol"),
)
BIBTEX = {
    "extrema": """@article{wu2022extreme,
  title={Extreme Masking for Learning Instance and Distributed Visual Representations},
  author={Wu, Zhirong and Lai, Zihang and Sun, Xiao and Lin, Stephen},
  journal={arXiv preprint arXiv:2206.04667},
  year={2022}
}""",
}


__all__ = ["ExtremaForPreTraining", "ExtremaForPreTrainingOutput"]
