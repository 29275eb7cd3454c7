"""MoBY (Xie et al. 2021, "Self-Supervised Learning with Swin Transformers", arXiv:2105.04553).

Two views of each image go through an online branch (encoder → projector → predictor) and a momentum target branch
(encoder → projector, an EMA of the online one). Each view's prediction must pick the other view's target key among
the keys of a queue (MoCo v2), and the loss is symmetric in the two views:

    loss = ½ [InfoNCE(q₁, k₂, queue₂) + InfoNCE(q₂, k₁, queue₁)],   τ = 0.2

The official code sums the two terms; the mean starts at ln(queue_size + 1) and the recipe halves the
gradient-clipping threshold to match (AdamW itself does not see a constant factor).

Once per optimizer step, after the optimizer (`MomentumTeacherCallback` → `update_teacher`), never inside `forward`:
1. the target encoder and projector move towards the online ones (momentum 0.99 → 1, cosine);
2. the target keys of the step — every micro-batch of a gradient-accumulation cycle, from every DDP rank
   (`all_gather_no_grad`) — enter the two queues. A step with gradient accumulation thus sees exactly the
   negatives one large batch would see, and no micro-batch's keys become negatives of a later micro-batch of the
   same step. Every rank enqueues the same keys in the same order, so the queues stay identical across ranks with
   no buffer broadcast. The queues are persistent buffers: saved in every checkpoint and restored on resume.

The target branch runs in the model's train/eval mode like the official code: its projector's BatchNorm normalises
with batch statistics (as BYOL and MoCo v3), and its encoder has no drop path (`target_drop_path_rate`, 0 by
default, against 0.2 online: the paper's asymmetric drop path).
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BeitModel, PreTrainedModel, SwinConfig, SwinModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ..configuration.configuration_moby import DROP_PATH_RATE, MobyConfig
from .distributed import all_gather_no_grad
from .heads import MLPHead
from .losses import info_nce_loss, l2_normalize
from .modeling_utils import MaskVisionPreTrainedModel
from .momentum import MomentumTeacherMixin
from .pretrained_backbone import EncoderPlan, SourceEncoder, method_config


@dataclass
class MobyForPreTrainingOutput(ModelOutput):
    """
    loss (`torch.FloatTensor` of shape `()`):
        Symmetric InfoNCE loss, the mean of the two directions.
    contrastive_accuracy (`torch.FloatTensor` of shape `()`):
        Fraction of predictions whose positive key scores above every key of the queue.
    positive_similarity (`torch.FloatTensor` of shape `()`):
        Mean cosine similarity between a prediction and its positive key.
    predictions (`torch.FloatTensor` of shape `(2, batch_size, projection_dim)`):
        Online predictions of the two views (not normalised).
    target_keys (`torch.FloatTensor` of shape `(2, batch_size, projection_dim)`):
        Target keys of the two views, L2-normalised (fp32).
    """

    loss: torch.FloatTensor | None = None
    contrastive_accuracy: torch.FloatTensor | None = None
    positive_similarity: torch.FloatTensor | None = None
    predictions: torch.FloatTensor | None = None
    target_keys: torch.FloatTensor | None = None


def _build_encoder(backbone_config) -> PreTrainedModel:
    """The stock transformers encoder of a backbone config, with its pooler (Swin: average; ViT: mean of patches)."""
    if isinstance(backbone_config, SwinConfig):
        return SwinModel(backbone_config, add_pooling_layer=True)
    return BeitModel(backbone_config, add_pooling_layer=True)


class MobyForPreTraining(MomentumTeacherMixin, MaskVisionPreTrainedModel):
    config_class = MobyConfig
    base_model_prefix = "moby"
    _no_split_modules = ["SwinStage", "BeitLayer"]
    _supports_sdpa = True  # both encoders attend through transformers' attention interface
    _supports_attention_backend = True

    def __init__(self, config: MobyConfig):
        super().__init__(config)
        self.config = config
        head = {"norm": config.head_norm, "activation": "relu"}

        # Online branch: encoder (drop path from the backbone config) → projector → predictor.
        self.encoder = _build_encoder(config.backbone_config)
        self.projector = MLPHead(
            config.encoder_hidden_size,
            config.projector_hidden_size,
            config.projection_dim,
            num_layers=config.projector_num_layers,
            **head,
        )
        self.predictor = MLPHead(
            config.projection_dim,
            config.predictor_hidden_size,
            config.projection_dim,
            num_layers=config.predictor_num_layers,
            **head,
        )

        # Target branch: the same encoder and projector without drop path, an EMA of the online ones.
        target_backbone = copy.deepcopy(config.backbone_config)
        target_backbone.drop_path_rate = config.target_drop_path_rate
        self.target_encoder = _build_encoder(target_backbone)
        self.target_projector = copy.deepcopy(self.projector)

        # One queue of target keys per view (rows are L2-normalised keys) and the shared write position.
        self.register_buffer("queue_1", torch.zeros(config.queue_size, config.projection_dim))
        self.register_buffer("queue_2", torch.zeros(config.queue_size, config.projection_dim))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self._pending_keys: list[torch.Tensor] = []  # (2, B, D) per training micro-batch since the last step

        self.post_init()
        self.init_teachers()
        self.train(self.training)  # the target branch follows the model's mode (see `train`)

    @torch.no_grad()
    def _init_weights(self, module):
        # The encoders are transformers models with their own initialisation; this covers the heads and queues.
        if isinstance(module, nn.Linear):  # PyTorch's default, as the official MoBY heads
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                bound = 1 / math.sqrt(module.in_features)
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.BatchNorm1d, nn.LayerNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, MobyForPreTraining):
            # Random unit keys until real keys replace them; a fixed seed makes them identical on every DDP rank
            # without a broadcast (DDP does not broadcast buffers when `ddp_broadcast_buffers` is off).
            generator = torch.Generator().manual_seed(0)
            for queue in (module.queue_1, module.queue_2):
                init.copy_(queue, F.normalize(torch.randn(queue.shape, generator=generator), dim=1))
            init.zeros_(module.queue_ptr)

    # ------------------------------------------------------------------------------------------------ teachers
    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def train(self, mode: bool = True):
        super().train(mode)  # the mixin puts teachers in eval mode; MoBY's target follows the model's mode
        for _, teacher in self.momentum_pairs():
            teacher.train(mode)
        return self

    def update_teacher(self, momentum: float) -> None:
        """After each optimizer step (`MomentumTeacherCallback`): EMA of the target branch, then the step's keys
        enter the queues. A custom training loop calls it once after each ``optimizer.step()``."""
        super().update_teacher(momentum)
        self.enqueue_pending_keys()

    def discard_step(self) -> None:
        """After a skipped optimizer step: its keys (from a batch with a non-finite loss) never enter the queues."""
        self._pending_keys = []

    # -------------------------------------------------------------------------------------------------- queues
    def _stash_keys(self, keys: torch.Tensor) -> None:
        # Keys (2, B, D) wait for the end of the optimizer step (`update_teacher`). Only the newest `queue_size`
        # of them can survive the enqueue, so no more are kept (bounded memory even if no step ever comes).
        self._pending_keys.append(keys)
        if sum(pending.shape[1] for pending in self._pending_keys) > self.config.queue_size:
            self._pending_keys = [torch.cat(self._pending_keys, dim=1)[:, -self.config.queue_size :]]

    @torch.no_grad()
    def enqueue_pending_keys(self) -> None:
        """Gather the keys of the micro-batches since the last step from every rank and enqueue them."""
        if not self._pending_keys:
            return
        keys = torch.cat(self._pending_keys, dim=1)  # (2, n, D), micro-batches in order
        self._pending_keys = []
        keys = all_gather_no_grad(keys.transpose(0, 1).contiguous()).transpose(0, 1)  # (2, world * n, D), rank-major
        self.enqueue(keys[0], keys[1])

    @torch.no_grad()
    def enqueue(self, keys_1: torch.Tensor, keys_2: torch.Tensor) -> None:
        """Write N keys per view (N, D) at the pointer, wrapping around the end of the queues; the pointer moves
        by N modulo the queue size. When N exceeds the queue size only the newest keys stay, as if written one by
        one."""
        if keys_1.shape != keys_2.shape or keys_1.shape[1:] != self.queue_1.shape[1:]:
            raise ValueError(
                f"Keys of both views must be (N, {self.config.projection_dim}), got {tuple(keys_1.shape)} and "
                f"{tuple(keys_2.shape)}."
            )
        queue_size, count = self.queue_1.shape[0], keys_1.shape[0]
        start = int(self.queue_ptr)
        positions = (start + torch.arange(count, device=self.queue_ptr.device)) % queue_size
        newest = slice(max(count - queue_size, 0), count)  # distinct positions, so the writes do not collide
        self.queue_1[positions[newest]] = keys_1[newest].to(self.queue_1.dtype)
        self.queue_2[positions[newest]] = keys_2[newest].to(self.queue_2.dtype)
        self.queue_ptr[0] = (start + count) % queue_size

    # --------------------------------------------------------------------------------------------------- model
    def forward_online(self, views: torch.Tensor) -> torch.Tensor:
        # views: (2B, 3, S, S), view 1 then view 2 → predictions (2, B, D)
        features = self.encoder(pixel_values=views).pooler_output  # (2B, C); encoders hold LayerNorms only
        # The heads see one view at a time: their BatchNorm statistics are per view, as the official code.
        return torch.stack([self.predictor(self.projector(view)) for view in features.chunk(2)])

    @torch.no_grad()
    def forward_target(self, views: torch.Tensor) -> torch.Tensor:
        # views: (2B, 3, S, S) → L2-normalised keys (2, B, D), fp32
        features = self.target_encoder(pixel_values=views).pooler_output  # (2B, C)
        keys = torch.stack([self.target_projector(view) for view in features.chunk(2)])
        return l2_normalize(keys)

    def forward_loss(self, predictions: torch.Tensor, keys: torch.Tensor) -> tuple[torch.Tensor, dict]:
        # predictions, keys: (2, B, D). View 1's prediction against view 2's key, view 2's queue as negatives,
        # and the reverse.
        temperature, queues = self.config.temperature, (self.queue_1, self.queue_2)
        pairs = [(predictions[0], keys[1], queues[1]), (predictions[1], keys[0], queues[0])]
        loss = sum(info_nce_loss(query, key, temperature, negatives=queue) for query, key, queue in pairs) / 2
        with torch.no_grad():
            accuracy, similarity = zip(*(_agreement(query, key, queue) for query, key, queue in pairs))
        metrics = {
            "contrastive_accuracy": torch.stack(accuracy).mean(),
            "positive_similarity": torch.stack(similarity).mean(),
        }
        return loss, metrics

    def forward(self, pixel_values: torch.Tensor, pixel_values_2: torch.Tensor) -> MobyForPreTrainingOutput:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            First view, normalised with `config.image_mean` / `config.image_std`.
        pixel_values_2 (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Second view of the same images, in the same order.
        """
        if pixel_values.shape != pixel_values_2.shape or pixel_values.ndim != 4:
            raise ValueError(
                "pixel_values and pixel_values_2 must be two views of the same shape (B, C, H, W), got "
                f"{tuple(pixel_values.shape)} and {tuple(pixel_values_2.shape)}."
            )
        views = torch.cat([pixel_values, pixel_values_2])  # (2B, 3, S, S)
        predictions = self.forward_online(views)  # (2, B, D)
        keys = self.forward_target(views)  # (2, B, D)
        loss, metrics = self.forward_loss(predictions, keys)
        if self.training:
            self._stash_keys(keys)
        return MobyForPreTrainingOutput(loss=loss, **metrics, predictions=predictions, target_keys=keys)

    @classmethod
    def plan_from_encoder(cls, source: SourceEncoder, config: MobyConfig | None) -> EncoderPlan:
        """MoBY from a stock encoder (`from_backbone`): a `SwinModel` as it is, or a ViT-family encoder in the Beit
        layout with its pooled feature (mean of the patch tokens through its final LayerNorm, or the normalised
        [CLS] token: whichever the checkpoint pools); heads, queues and the target branch are new."""
        backbone, unused, notes = copy.deepcopy(source.config), list(source.head), []
        if not source.is_swin:
            if source.tensors.pop("embeddings.mask_token", None) is not None:
                unused.append("embeddings.mask_token")
            backbone.use_mask_token = False
            if "layernorm.weight" in source.head:  # BeitForMaskedImageModeling: its final LayerNorm is the head's
                source.tensors.update(
                    {f"pooler.{name}": source.head[name] for name in ("layernorm.weight", "layernorm.bias")}
                )
                unused = ["lm_head.weight", "lm_head.bias"]
                notes.append("the head's LayerNorm of the BeitForMaskedImageModeling normalises the pooled feature")
        config = method_config(MobyConfig, config, backbone, DROP_PATH_RATE)
        tensors = {f"encoder.{name}": tensor for name, tensor in source.tensors.items()}
        return EncoderPlan(config=config, tensors=tensors, unused=unused, notes=notes)

    # -------------------------------------------------------------------------------------------------- export
    def encoder_for_export(self) -> PreTrainedModel:
        """The online encoder (a stock `SwinModel` or `BeitModel`), as the official linear evaluation loads."""
        return self.encoder

    def no_weight_decay(self) -> set[str]:
        """None besides the 1-D parameters, as the official optimizer: Transformer-SSL's ``build_optimizer`` reads
        ``no_weight_decay()`` from the MoBY wrapper, which defines none, so the relative position bias tables (and a
        ViT's [CLS] and position embeddings) are decayed."""
        return set()


@torch.no_grad()
def _agreement(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(accuracy, mean positive cosine): the fraction of queries whose key beats every negative, and their cosine."""
    query, key = l2_normalize(query), key.float()
    positive = (query * key).sum(dim=-1)  # (B,)
    hardest_negative = (query @ negatives.float().T).amax(dim=-1)  # (B,)
    return (positive > hardest_negative).float().mean(), positive.mean()


# The method as its model card states it (`maskvision.cards.methods`): the name, a one-line summary, the paper, the
# BibTeX keys to cite (each model"s BIBTEX, gathered by the cards) and the Hub tags.
METHOD_CARD = dict(
    name="MoBY",
    summary=(
        "MoCo v2 with BYOL: an online encoder with projector and predictor, a momentum target encoder and two key "
        "queues; each view's prediction must pick the other view's target key among the queue's (symmetric InfoNCE)"
    ),
    paper="https://arxiv.org/abs/2105.04553",
    citations=("moby",),
    tags=("moby", "contrastive-learning"),
)
BIBTEX = {
    "moby": """@article{xie2021moby,
  title={Self-Supervised Learning with Swin Transformers},
  author={Xie, Zhenda and Lin, Yutong and Yao, Zhuliang and Zhang, Zheng and Dai, Qi and Cao, Yue and Hu, Han},
  journal={arXiv preprint arXiv:2105.04553},
  year={2021}
}""",
}


__all__ = ["MobyForPreTraining", "MobyForPreTrainingOutput"]
