"""The prediction heads, projectors, predictors and poolings: their structure against the official code at the real
sizes, their values against a hand computation on tiny tensors.

- MoBY (Transformer-SSL models/moby.py ``MoBYMLP``): Linear → BatchNorm → ReLU → Linear, in → 4096 → 256 and
  256 → 4096 → 256 (the hidden bias, which BatchNorm cancels, is left out).
- ExtreMA (microsoft/ExtreMA lib/builder.py ``_build_proj`` / ``_build_pred``): LayerNorm + GELU, a 3-layer
  projector in → 4096 → 4096 → 256 and a 2-layer predictor 256 → 4096 → 256; two class-attention blocks (CaiT)
  pool the visible tokens.
- BEiT (unilm beit/modeling_pretrain.py): LayerNorm + Linear to the vocabulary, applied to the masked patches only.
- Pooled features: MoBY's ViT feature is the mean of the patch tokens ([CLS] left out) through a LayerNorm, its
  Swin feature the mean of the last stage's tokens; ExtreMA's mean-pooled feature a LayerNorm without affine.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_beit_config, tiny_extrema_config, tiny_moby_config
from torch import nn

from maskvision import BeitMimForPreTraining, ExtremaConfig, ExtremaForPreTraining, MobyConfig, MobyForPreTraining
from maskvision.configuration.configuration_moby import moby_vit_backbone_config
from maskvision.modeling.heads import ClassAttention, ClassAttentionBlock, ClassAttentionPooling, MLPHead


def randomized(module: nn.Module) -> nn.Module:
    """Every parameter random, so that a zero bias or a unit scale cannot hide a wrong formula."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return module


def layout(head: MLPHead) -> list[tuple]:
    """(type, in, out, bias) of each linear layer, (type, width, affine) of each norm, (type,) of each activation."""
    rows = []
    for layer in head.layers:
        if isinstance(layer, nn.Linear):
            rows.append(("Linear", layer.in_features, layer.out_features, layer.bias is not None))
        elif isinstance(layer, nn.BatchNorm1d):
            rows.append(("BatchNorm1d", layer.num_features, layer.affine))
        elif isinstance(layer, nn.LayerNorm):
            rows.append(("LayerNorm", layer.normalized_shape[0], layer.elementwise_affine))
        else:
            rows.append((type(layer).__name__,))
    return rows


# ----------------------------------------------------------------------------------------------- MLP heads
def test_moby_projector_and_predictor_have_the_official_structure_at_the_real_sizes():
    real = MobyConfig()
    assert (real.projector_hidden_size, real.projection_dim, real.predictor_hidden_size) == (4096, 256, 4096)
    model = MobyForPreTraining(
        tiny_moby_config(
            projector_hidden_size=real.projector_hidden_size,
            projection_dim=real.projection_dim,
            predictor_hidden_size=real.predictor_hidden_size,
        )
    )
    width = model.config.encoder_hidden_size  # 64: the tiny Swin's last stage
    assert layout(model.projector) == [
        ("Linear", width, 4096, False),
        ("BatchNorm1d", 4096, True),
        ("ReLU",),
        ("Linear", 4096, 256, True),
    ]
    assert layout(model.predictor) == [
        ("Linear", 256, 4096, False),
        ("BatchNorm1d", 4096, True),
        ("ReLU",),
        ("Linear", 4096, 256, True),
    ]
    assert layout(model.target_projector) == layout(model.projector)


def test_extrema_projector_and_predictor_have_the_official_structure_at_the_real_sizes():
    real = ExtremaConfig()
    sizes = dict(
        projector_hidden_size=real.projector_hidden_size,
        projection_size=real.projection_size,
        predictor_hidden_size=real.predictor_hidden_size,
        projector_num_layers=real.projector_num_layers,
        predictor_num_layers=real.predictor_num_layers,
    )
    assert sizes == dict(
        projector_hidden_size=4096,
        projection_size=256,
        predictor_hidden_size=4096,
        projector_num_layers=3,
        predictor_num_layers=2,
    )
    model = ExtremaForPreTraining(tiny_extrema_config(**sizes))
    width = model.config.backbone_config.hidden_size
    assert layout(model.projector) == [
        ("Linear", width, 4096, True),
        ("LayerNorm", 4096, True),
        ("GELU",),
        ("Linear", 4096, 4096, True),
        ("LayerNorm", 4096, True),
        ("GELU",),
        ("Linear", 4096, 256, True),
    ]
    assert layout(model.predictor) == [
        ("Linear", 256, 4096, True),
        ("LayerNorm", 4096, True),
        ("GELU",),
        ("Linear", 4096, 256, True),
    ]
    assert layout(model.teacher_projector) == layout(model.projector)
    assert len(model.pooler.blocks) == real.pooling_depth == 2


def test_batch_norm_head_normalises_with_the_batch_statistics_in_training_and_running_ones_in_eval():
    head = randomized(MLPHead(6, 10, 4, num_layers=2, norm="batch", activation="relu")).train()
    features = torch.randn(8, 6)
    first, norm, _, last = head.layers
    hidden = features @ first.weight.T  # (8, 10), no bias
    mean, variance = hidden.mean(dim=0), hidden.var(dim=0, unbiased=False)
    normalised = (hidden - mean) / torch.sqrt(variance + norm.eps) * norm.weight + norm.bias
    expected = torch.relu(normalised) @ last.weight.T + last.bias
    torch.testing.assert_close(head(features), expected)

    head.eval()  # running statistics after one batch: momentum 0.1 from (0, 1), the variance unbiased
    running_mean, running_variance = 0.1 * mean, 0.9 + 0.1 * hidden.var(dim=0, unbiased=True)
    normalised = (hidden - running_mean) / torch.sqrt(running_variance + norm.eps) * norm.weight + norm.bias
    torch.testing.assert_close(head(features), torch.relu(normalised) @ last.weight.T + last.bias)


def test_layer_norm_head_is_linear_layer_norm_gelu_per_sample():
    head = randomized(MLPHead(6, 10, 4, num_layers=3, norm="layer", activation="gelu"))
    features = torch.randn(5, 6)
    hidden = features
    linears = [layer for layer in head.layers if isinstance(layer, nn.Linear)]
    norms = [layer for layer in head.layers if isinstance(layer, nn.LayerNorm)]
    for linear, norm in zip(linears[:-1], norms):
        hidden = hidden @ linear.weight.T + linear.bias
        hidden = (hidden - hidden.mean(-1, keepdim=True)) / torch.sqrt(
            hidden.var(-1, unbiased=False, keepdim=True) + norm.eps
        )
        hidden = hidden * norm.weight + norm.bias
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # exact GELU
    expected = hidden @ linears[-1].weight.T + linears[-1].bias
    torch.testing.assert_close(head(features), expected)
    torch.testing.assert_close(head(features[:1]), expected[:1])  # no batch statistics: each sample on its own


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_last_norm_ends_the_head_with_a_norm_without_affine_parameters(norm):
    head = MLPHead(6, 10, 4, num_layers=2, norm=norm, last_norm=True).train()
    kind = "BatchNorm1d" if norm == "batch" else "LayerNorm"
    assert layout(head)[-2:] == [("Linear", 10, 4, norm == "layer"), (kind, 4, False)]
    output = head(torch.randn(16, 6))
    statistics_dim = 0 if norm == "batch" else 1
    torch.testing.assert_close(
        output.mean(dim=statistics_dim), torch.zeros(output.shape[1 - statistics_dim]), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(num_layers=0), "num_layers must be at least 1"),
        (dict(norm="group"), "norm must be one of \\['batch', 'layer'\\]"),
        (dict(activation="tanh"), "activation must be one of \\['gelu', 'relu'\\]"),
    ],
)
def test_mlp_head_refuses_bad_arguments_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLPHead(6, 10, 4, **kwargs)


# ------------------------------------------------------------------------------------------ class attention
def test_class_attention_is_the_class_tokens_softmax_attention_over_all_tokens():
    attention = randomized(ClassAttention(dim=8, num_heads=2))
    tokens = torch.randn(3, 5, 8)
    query = tokens[:, :1] @ attention.q.weight.T + attention.q.bias  # (3, 1, 8)
    key_value = tokens @ attention.kv.weight.T + attention.kv.bias  # (3, 5, 16): keys, then values
    key, value = key_value[..., :8], key_value[..., 8:]
    heads = []
    for h in range(2):
        part = slice(4 * h, 4 * (h + 1))
        weights = torch.softmax(query[..., part] @ key[..., part].transpose(1, 2) / math.sqrt(4), dim=-1)
        heads.append(weights @ value[..., part])  # (3, 1, 4)
    expected = torch.cat(heads, dim=-1) @ attention.proj.weight.T + attention.proj.bias
    torch.testing.assert_close(attention(tokens), expected)
    with pytest.raises(ValueError, match="multiple of num_heads"):
        ClassAttention(dim=10, num_heads=4)


def test_class_attention_block_updates_the_class_token_through_both_layer_scaled_branches():
    block = randomized(ClassAttentionBlock(dim=8, num_heads=2, layer_scale=0.1))
    cls_token, patches = torch.randn(3, 1, 8), torch.randn(3, 5, 8)
    tokens = torch.cat([cls_token, patches], dim=1)
    after_attention = cls_token + block.gamma1 * block.attention(block.norm1(tokens))
    expected = after_attention + block.gamma2 * block.mlp(block.norm2(after_attention))
    torch.testing.assert_close(block(cls_token, patches), expected)
    fresh = ClassAttentionBlock(dim=8, num_heads=2, layer_scale=0.1)
    assert torch.equal(fresh.gamma1, torch.full((8,), 0.1)) and torch.equal(fresh.gamma2, torch.full((8,), 0.1))
    with torch.no_grad():
        block.gamma1.zero_()
        block.gamma2.zero_()
    torch.testing.assert_close(block(cls_token, patches), cls_token)  # layer scale 0: the class token as it came


def test_class_attention_pooling_is_order_free_and_ends_with_a_layer_norm():
    pooling = randomized(ClassAttentionPooling(dim=8, num_heads=2, depth=2))
    tokens = torch.randn(3, 6, 8)
    pooled = pooling(tokens)
    assert pooled.shape == (3, 8) and len(pooling.blocks) == 2
    torch.testing.assert_close(pooling(tokens[:, torch.randperm(6)]), pooled)  # no positions inside the pooling
    cls_token = pooling.cls_token.expand(3, -1, -1)
    for block in pooling.blocks:
        cls_token = block(cls_token, tokens)
    torch.testing.assert_close(pooled, pooling.norm(cls_token[:, 0]))
    assert not torch.allclose(pooling(tokens[:, :3]), pooled)  # every token counts


# ------------------------------------------------------------------------------------------------ BEiT head
@pytest.mark.parametrize("target", ["tokens", "pixels"])
def test_beit_head_is_layer_norm_and_linear_run_on_the_masked_patches_only(target):
    model = BeitMimForPreTraining(tiny_beit_config(target=target)).eval()
    backbone = model.config.backbone_config
    width = backbone.hidden_size
    out = model.config.vocab_size if target == "tokens" else backbone.patch_size**2 * 3
    assert (model.layernorm.normalized_shape, model.layernorm.eps) == ((width,), backbone.layer_norm_eps)
    assert (model.lm_head.in_features, model.lm_head.out_features) == (width, out)

    pixels = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, [3, 10]] = mask[1, [0, 63, 7]] = True
    seen = []
    model.lm_head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    labels = torch.zeros(2, 64, dtype=torch.long)
    output = model(pixels, bool_masked_pos=mask, labels=labels if target == "tokens" else None)
    assert seen == [torch.Size([5, width])]  # five masked patches, never the other 123
    hidden = model.beit(pixels, bool_masked_pos=mask).last_hidden_state[:, 1:]
    rows = [hidden[0, 3], hidden[0, 10], hidden[1, 0], hidden[1, 7], hidden[1, 63]]  # image, then patch order
    expected = model.lm_head(model.layernorm(torch.stack(rows)))
    torch.testing.assert_close(output.logits, expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------ pooled features
def projector_inputs(model: MobyForPreTraining, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    seen = []
    model.projector.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach()))
    model(first, second)
    return torch.cat(seen)  # (2B, C): view 1, then view 2


@pytest.mark.parametrize("backbone", ["swin", "vit"])
def test_moby_projects_the_mean_of_the_patch_tokens(backbone):
    if backbone == "swin":
        config = tiny_moby_config()
    else:
        config = tiny_moby_config(
            backbone_config=moby_vit_backbone_config(
                "tiny",
                image_size=32,
                patch_size=8,
                num_hidden_layers=2,
                hidden_size=32,
                num_attention_heads=2,
                intermediate_size=64,
                drop_path_rate=0.0,
            )
        )
    model = randomized(MobyForPreTraining(config)).train()
    first, second = torch.randn(2, 4, 3, 32, 32)
    features = projector_inputs(model, first, second)
    with torch.no_grad():
        hidden = model.encoder(pixel_values=torch.cat([first, second])).last_hidden_state
        if backbone == "swin":  # the last stage's tokens, already through the final LayerNorm
            expected = hidden.mean(dim=1)
        else:  # the patch tokens without [CLS], averaged, then the pooler's LayerNorm
            norm = model.encoder.pooler.layernorm
            patches = hidden[:, 1:].mean(dim=1)
            expected = F.layer_norm(patches, patches.shape[-1:], norm.weight, norm.bias, norm.eps)
            with_cls = F.layer_norm(hidden.mean(dim=1), patches.shape[-1:], norm.weight, norm.bias, norm.eps)
            assert not torch.allclose(features, with_cls, atol=1e-4)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_extrema_features_pool_the_teachers_tokens_by_class_attention_or_by_their_mean():
    model = randomized(ExtremaForPreTraining(tiny_extrema_config())).eval()
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        hidden = model.forward_encoder(model.teacher_backbone, model.embed(model.teacher_backbone, pixels))
        mean = hidden.mean(dim=1)
        expected_mean = (mean - mean.mean(-1, keepdim=True)) / torch.sqrt(
            mean.var(-1, unbiased=False, keepdim=True) + 1e-6
        )
        torch.testing.assert_close(model.get_image_features(pixels, pooling="mean"), expected_mean)
        torch.testing.assert_close(model.get_image_features(pixels), model.teacher_pooler(hidden))
        assert not torch.allclose(model.get_image_features(pixels), model.pooler(hidden))  # the teacher's pooling
