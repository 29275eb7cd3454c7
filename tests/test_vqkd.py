"""BEiT v2's VQ-KD tokenizer: config geometry, quantiser, EMA codebook, k-means init, restarts, teacher handling."""

import os

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_vqkd_config
from transformers import AutoModel, BeitConfig, BeitModel

from maskvision import VQKDConfig, VQKDTokenizer
from maskvision.modeling.modeling_vqkd import load_teacher, spherical_kmeans, teacher_patch_tokens
from maskvision.modeling.tokenizer_utils import CodebookStep


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    """A stock BeitModel saved to disk (no image processor: ImageNet normalisation applies)."""
    path = tmp_path_factory.mktemp("teacher")
    config = BeitConfig(
        image_size=16, patch_size=4, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48
    )
    BeitModel(config, add_pooling_layer=False).save_pretrained(path)
    return str(path)


def test_config_derives_geometry_and_validates():
    config = tiny_vqkd_config()
    assert config.downsample_factor == 4 and config.grid_size == 4
    assert (config.encoder_config.image_size, config.encoder_config.patch_size) == (16, 4)
    decoder = config.decoder_config
    assert (decoder.image_size, decoder.patch_size, decoder.num_channels) == (4, 1, 8)
    default = VQKDConfig()
    assert (default.vocab_size, default.codebook_dim, default.decoder_config.num_hidden_layers) == (8192, 32, 3)
    with pytest.raises(ValueError, match="patch_size"):
        VQKDConfig(image_size=100)
    with pytest.raises(ValueError, match="codebook_decay"):
        VQKDConfig(codebook_decay=1.0)


def test_a_partial_encoder_config_dict_keeps_the_vqkd_defaults():
    config = VQKDConfig(encoder_config=dict(num_hidden_layers=2), decoder_config=dict(hidden_size=96))
    encoder, decoder = config.encoder_config, config.decoder_config
    assert encoder.num_hidden_layers == 2 and encoder.hidden_size == 768
    for vit in (encoder, decoder):  # absolute positions, no layer scale, a final LayerNorm (not BeitConfig's own)
        assert vit.use_absolute_position_embeddings and vit.layer_scale_init_value == 0.0
        assert not vit.use_mean_pooling and vit.layer_norm_eps == 1e-6
    assert decoder.num_hidden_layers == 3 and decoder.hidden_size == 96


@pytest.mark.parametrize("architecture", ["CLIPModel", "CLIPVisionModelWithProjection"])
def test_a_clip_teacher_gives_its_projected_tokens_as_beit_v2(tmp_path, architecture):
    # BEiT v2 regresses ln_post(x) @ visual.proj of every patch token (512-d for ViT-B/16), not last_hidden_state
    import transformers

    vision = dict(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        projection_dim=24,
    )
    if architecture == "CLIPModel":
        config = transformers.CLIPConfig(
            vision_config=vision,
            projection_dim=24,
            text_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
        )
    else:
        config = transformers.CLIPVisionConfig(**vision)
    torch.manual_seed(0)
    getattr(transformers, architecture)(config).save_pretrained(tmp_path)
    teacher, fields = load_teacher(str(tmp_path))
    assert fields["teacher_hidden_size"] == 24  # the projection's width, not the tower's 32
    reference = getattr(transformers, architecture).from_pretrained(tmp_path).eval()
    pixel_values = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        hidden = reference.vision_model(pixel_values=pixel_values).last_hidden_state
        expected = reference.visual_projection(reference.vision_model.post_layernorm(hidden))
        torch.testing.assert_close(teacher(pixel_values).last_hidden_state, expected)
    model = VQKDTokenizer(tiny_vqkd_config(**fields))
    model.set_teacher(teacher)
    assert model.teacher_features(torch.rand(2, 3, 16, 16)).shape == (2, 16, 24)


def test_official_size_forward_backward(teacher_path):
    """ViT-B/16 encoder, 3-layer decoder, 8192 x 32 codebook (at 64 px to stay fast); slow."""
    teacher, fields = load_teacher(teacher_path)
    model = VQKDTokenizer(VQKDConfig(image_size=64, **fields))
    model.set_teacher(teacher)
    assert model.config.encoder_config.hidden_size == 768 and model.config.encoder_config.num_hidden_layers == 12
    assert round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 1) == 85.7  # ViT-B/16, 16 patches
    output = model(torch.rand(1, 3, 64, 64))
    assert output.codebook_indices.shape == (1, 4, 4) and output.reconstruction.shape == (1, 16, 24)
    output.loss.backward()
    assert model.encoder.embeddings.patch_embeddings.projection.weight.grad.abs().sum() > 0


def test_forward_shapes_straight_through_and_codebook_without_gradient(teacher_path):
    teacher, fields = load_teacher(teacher_path)
    assert fields["teacher_hidden_size"] == 24 and fields["teacher_name_or_path"] == teacher_path
    model = VQKDTokenizer(tiny_vqkd_config(**fields)).train()
    model.set_teacher(teacher)
    output = model(torch.rand(2, 3, 16, 16))
    assert output.codebook_indices.shape == (2, 4, 4) and output.reconstruction.shape == (2, 16, 24)
    assert 0 <= float(output.reconstruction_loss) <= 2 and float(output.commitment_loss) >= 0
    output.loss.backward()
    assert model.encode_task_layer[0].weight.grad.abs().sum() > 0  # through the straight-through estimator
    assert "codebook" not in dict(model.named_parameters())
    assert torch.allclose(model.codebook.norm(dim=1), torch.ones(32), atol=1e-5)
    indices = model.get_codebook_indices(torch.rand(2, 3, 16, 16))
    assert indices.dtype == torch.long and int(indices.max()) < 32


def test_teacher_is_referenced_not_saved(tmp_path, teacher_path):
    teacher, fields = load_teacher(teacher_path)
    model = VQKDTokenizer(tiny_vqkd_config(**fields)).eval()
    model.set_teacher(teacher)
    assert not any(name.startswith("teacher") for name in model.state_dict())
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, VQKDTokenizer) and reloaded.teacher is None
    assert reloaded.config.teacher_name_or_path == teacher_path
    pixel_values = torch.rand(3, 3, 16, 16)
    assert torch.equal(reloaded.get_codebook_indices(pixel_values), model.get_codebook_indices(pixel_values))
    with pytest.raises(ValueError, match="no teacher"):
        reloaded(pixel_values)
    assert reloaded(pixel_values, return_loss=False).loss is None
    assert os.path.getsize(tmp_path / "model.safetensors") < 2 * sum(t.numel() * 4 for t in model.state_dict().values())


def test_teacher_patch_tokens_drop_prefix_tokens_and_resize():
    hidden = torch.randn(2, 1 + 4 + 16, 5)  # [CLS] + 4 registers + a 4 x 4 grid
    grid = teacher_patch_tokens(hidden, image_size=16, patch_size=4)
    assert grid.shape == (2, 5, 4, 4)
    assert torch.equal(grid[:, :, 0, 1], hidden[:, 6])
    conv_map = torch.randn(2, 5, 3, 3)
    assert teacher_patch_tokens(conv_map, 16, None) is conv_map
    hierarchical = torch.randn(2, 9, 5)  # Swin: every token a patch of the last stage
    assert teacher_patch_tokens(hierarchical, 96, 4).shape == (2, 5, 3, 3)


def test_ema_update_moves_used_codes_towards_their_means():
    model = VQKDTokenizer(tiny_vqkd_config(kmeans_init=False))
    assert bool(model.codebook_initialized)
    before = model.codebook.clone()
    counts = torch.zeros(32)
    counts[[1, 5]] = torch.tensor([2.0, 4.0])
    sums = torch.zeros(32, 8)
    sums[1], sums[5] = torch.tensor([2.0] + [0.0] * 7), torch.tensor([0.0, 4.0] + [0.0] * 6)
    model.update_codebook(CodebookStep(counts=counts, samples=torch.randn(4, 8), sums=sums))
    decay = model.config.codebook_decay
    expected = F.normalize(decay * before[1] + (1 - decay) * torch.eye(8)[0], dim=0)
    assert torch.allclose(model.codebook[1], expected, atol=1e-6)
    assert torch.allclose(model.codebook[5], F.normalize(decay * before[5] + (1 - decay) * torch.eye(8)[1], dim=0))
    unused = torch.ones(32, dtype=torch.bool)
    unused[[1, 5]] = False
    assert torch.equal(model.codebook[unused], before[unused])


def test_kmeans_initialisation_on_first_update_finds_the_clusters():
    centres = F.normalize(torch.eye(4, 8) + 0.1, dim=1)
    samples = F.normalize(centres.repeat(50, 1) + 0.02 * torch.randn(200, 8), dim=1)
    model = VQKDTokenizer(tiny_vqkd_config(vocab_size=4))
    assert not bool(model.codebook_initialized)
    model.update_codebook(CodebookStep(counts=torch.ones(4), samples=samples, sums=torch.zeros(4, 8)))
    assert bool(model.codebook_initialized)
    similarity = model.codebook @ centres.T  # each centre has a centroid close to it
    assert float(similarity.max(dim=0).values.min()) > 0.99
    kmeans = spherical_kmeans(samples, 4, torch.Generator().manual_seed(1))
    assert torch.allclose(kmeans.norm(dim=1), torch.ones(4), atol=1e-5)


def test_dead_code_restart_uses_encoder_outputs():
    model = VQKDTokenizer(tiny_vqkd_config(kmeans_init=False))
    before = model.codebook.clone()
    samples = F.normalize(torch.randn(6, 8), dim=1)
    model.reseed_codes(torch.tensor([2, 7]), samples, torch.Generator().manual_seed(0))
    for code in (2, 7):
        assert (model.codebook[code] @ samples.T).max() == pytest.approx(1.0, abs=1e-5)
    keep = torch.ones(32, dtype=torch.bool)
    keep[[2, 7]] = False
    assert torch.equal(model.codebook[keep], before[keep])


def test_distillation_loss_drops_with_ema_codebook(teacher_path):
    torch.manual_seed(0)
    teacher, fields = load_teacher(teacher_path)
    model = VQKDTokenizer(tiny_vqkd_config(**fields)).train()
    model.set_teacher(teacher)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    batches = [torch.rand(8, 3, 16, 16) for _ in range(3)]
    losses = []
    for step in range(30):
        output = model(batches[step % 3])
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        model.update_codebook(model.codebook_recorder.pop())
        losses.append(output.reconstruction_loss.item())
    assert bool(model.codebook_initialized)
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
