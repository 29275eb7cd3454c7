"""The DALL-E dVAE tokenizer: architecture, objective, tokenizer API, codebook health and re-seeding, schedules."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_dvae
from transformers import AutoModel

from maskvision import DVAEConfig, DVAETokenizer
from maskvision.modeling.tokenizer_utils import CodebookRecorder, code_counts, codebook_health, perplexity
from maskvision.training.runs.tokenizer_callbacks import (
    CodebookCallback,
    RelaxationScheduleCallback,
    copy_optimizer_state,
)


def shapes_images(batch: int = 8, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Images with structure (a coloured rectangle on a coloured background) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, 1, 1, generator=generator).expand(batch, 3, size, size).clone()
    for image in images:
        top, left = torch.randint(0, size // 2, (2,), generator=generator).tolist()
        image[:, top : top + size // 2, left : left + size // 2] = torch.rand(3, 1, 1, generator=generator)
    return images


# ------------------------------------------------------------------------------------------------ architecture
def test_dalle_size_parameter_counts_and_forward_backward():
    """Default config = DALL-E's dVAE: encoder 53.8M, decoder 43.8M; one real-size forward/backward (slow)."""
    model = DVAETokenizer(DVAEConfig())
    assert model.config.vocab_size == 8192 and model.downsample_factor == 8
    assert round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 1) == 53.8
    assert round(sum(p.numel() for p in model.decoder.parameters()) / 1e6, 1) == 43.8
    assert model.encoder.blocks.group_1.block_1.post_gain == pytest.approx(1 / 64)
    pixel_values = torch.rand(1, 3, 32, 32)
    output = model(pixel_values)
    assert output.logits.shape == (1, 8192, 4, 4) and output.reconstruction.shape == (1, 3, 32, 32)
    output.loss.backward()
    assert model.encoder.blocks.input.weight.grad.abs().sum() > 0
    assert model.decoder.blocks.output.conv.weight.grad.abs().sum() > 0


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="reconstruction_loss"):
        DVAEConfig(reconstruction_loss="l1")
    with pytest.raises(ValueError, match="image_size"):
        DVAEConfig(image_size=100)  # not a multiple of 8
    with pytest.raises(ValueError, match="hidden_size"):
        DVAEConfig(hidden_size=30)
    assert DVAEConfig(num_groups=3).downsample_factor == 4


def test_pixel_mapping_to_point1_point9():
    model = tiny_dvae()
    pixels = torch.tensor([0.0, 0.5, 1.0])
    assert torch.allclose(model.map_pixels(pixels), torch.tensor([0.1, 0.5, 0.9]))
    assert torch.allclose(model.unmap_pixels(model.map_pixels(pixels)), pixels)
    assert torch.equal(model.unmap_pixels(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1.0]))  # clamped


def test_tokenizer_api_shapes_ranges_and_targets():
    model = tiny_dvae().eval()
    pixel_values = shapes_images(4)
    indices = model.get_codebook_indices(pixel_values)
    assert indices.shape == (4, 4, 4) and indices.dtype == torch.long
    assert 0 <= int(indices.min()) and int(indices.max()) < 64
    assert not indices.is_inference()  # usable as a cross-entropy target
    logits = torch.randn(4 * 16, 64, requires_grad=True)
    F.cross_entropy(logits, indices.flatten()).backward()
    images = model.decode(indices)
    assert images.shape == (4, 3, 16, 16) and 0 <= float(images.min()) and float(images.max()) <= 1
    output = model(pixel_values)
    assert torch.equal(output.codebook_indices, indices)  # eval mode: argmax codes, deterministic
    assert torch.allclose(output.reconstruction, images, atol=1e-5)


def test_bad_inputs_raise_clear_errors():
    model = tiny_dvae()
    with pytest.raises(ValueError, match="multiples of the tokenizer's downsample_factor"):
        model.get_codebook_indices(torch.rand(1, 3, 18, 16))
    with pytest.raises(ValueError, match="channels"):
        model.get_codebook_indices(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="floating point"):
        model.get_codebook_indices(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="vocab_size"):
        model.decode(torch.full((1, 2, 2), 64))


# --------------------------------------------------------------------------------------------------- objective
def test_logit_laplace_nll_matches_the_density():
    """-log p(x) with p the density of x = sigmoid(y), y ~ Laplace(mu, b), on mapped pixels."""
    model = tiny_dvae()
    pixel_values = torch.rand(2, 3, 16, 16)
    stats = torch.randn(2, 6, 16, 16)
    logits = torch.zeros(2, 64, 4, 4)
    _, reconstruction_loss, kl = model.forward_loss(pixel_values, stats, logits)
    x = model.map_pixels(pixel_values)
    laplace = torch.distributions.Laplace(stats[:, :3], stats[:, 3:].exp())
    expected = -(laplace.log_prob(torch.logit(x)) - torch.log(x * (1 - x))).mean()
    assert reconstruction_loss == pytest.approx(float(expected), rel=1e-5)
    assert kl == pytest.approx(0.0, abs=1e-6)  # uniform q is the prior


def test_kl_weight_scaling_and_mse_option():
    model = tiny_dvae(reconstruction_loss="mse")
    assert model.decoder.blocks.output.conv.out_channels == 3
    pixel_values = torch.rand(2, 3, 16, 16)
    stats = torch.randn(2, 3, 16, 16)
    logits = torch.zeros(2, 64, 4, 4)
    logits[:, 0] = 50.0  # every position certain of code 0: KL = log V
    model.kl_weight = 6.6
    loss, reconstruction_loss, kl = model.forward_loss(pixel_values, stats, logits)
    eps = model.config.logit_laplace_eps
    assert reconstruction_loss == pytest.approx(
        float(F.mse_loss((torch.sigmoid(stats) - eps) / (1 - 2 * eps), pixel_values)), rel=1e-5
    )
    assert kl == pytest.approx(math.log(64), rel=1e-4)
    # DALL-E divides the ELBO by the pixel values: the KL of a position weighs beta / (C * f^2)
    assert loss == pytest.approx(float(reconstruction_loss + 6.6 * kl / (3 * 4**2)), rel=1e-5)


def test_loss_terms_finite_and_loss_drops():
    torch.manual_seed(0)
    model = tiny_dvae().train()
    batches = [shapes_images(16, seed=seed) for seed in range(4)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for step in range(40):
        output = model(batches[step % 4])
        for value in (output.loss, output.reconstruction_loss, output.kl_divergence, output.perplexity):
            assert torch.isfinite(value)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(output.loss.item())
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1


def test_relaxed_and_straight_through_samples():
    logits = torch.randn(2, 64, 4, 4, requires_grad=True)
    relaxed, hard = tiny_dvae().train(), tiny_dvae(straight_through=True).train()
    relaxed.temperature = hard.temperature = 0.5
    soft = relaxed.sample_codes(logits)
    assert torch.allclose(soft.sum(dim=1), torch.ones(2, 4, 4)) and float(soft.detach().max()) < 1
    one_hot = hard.sample_codes(logits)
    assert torch.equal(one_hot.sum(dim=1), torch.ones(2, 4, 4)) and set(one_hot.unique().tolist()) == {0.0, 1.0}
    (one_hot * torch.randn_like(one_hot)).sum().backward()
    assert logits.grad.abs().sum() > 0  # gradients through the relaxation
    eval_codes = hard.eval().sample_codes(logits)
    assert torch.equal(eval_codes.argmax(dim=1), logits.argmax(dim=1))


def test_round_trip_gives_identical_ids(tmp_path):
    model = tiny_dvae().eval()
    pixel_values = shapes_images(4)
    model.save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    assert isinstance(reloaded, DVAETokenizer)
    assert torch.equal(reloaded.get_codebook_indices(pixel_values), model.get_codebook_indices(pixel_values))
    assert torch.equal(
        reloaded.decode(model.get_codebook_indices(pixel_values)),
        model.decode(model.get_codebook_indices(pixel_values)),
    )
    processor = model.image_processor()
    assert processor.size == {"height": 16, "width": 16} and not processor.do_normalize


# ----------------------------------------------------------------------------------------------- codebook
def test_codebook_health_on_constructed_index_maps():
    vocab = 64
    collapsed = codebook_health(code_counts(torch.full((8, 4, 4), 5), vocab))
    assert collapsed == {"perplexity": 1.0, "used_fraction": 1 / vocab, "dead_codes": vocab - 1}
    uniform = codebook_health(code_counts(torch.arange(vocab).repeat(3), vocab))
    assert uniform["perplexity"] == pytest.approx(vocab, rel=1e-4) and uniform["used_fraction"] == 1.0
    half = code_counts(torch.arange(0, vocab, 2), vocab)
    assert codebook_health(half)["dead_codes"] == vocab // 2
    assert float(perplexity(half)) == pytest.approx(vocab / 2, rel=1e-4)


def test_recorder_sums_micro_batches_and_samples():
    recorder = CodebookRecorder(vocab_size=8, num_samples=5, track_sums=True)
    recorder.record(torch.tensor([[0, 1], [1, 2]]), torch.ones(2, 2, 3))
    recorder.record(torch.tensor([1, 7]), 2 * torch.ones(2, 3))
    step = recorder.pop()
    assert step.counts.tolist() == [1, 3, 1, 0, 0, 0, 0, 1]
    assert step.sums[1].tolist() == [4.0, 4.0, 4.0] and step.sums[7].tolist() == [2.0, 2.0, 2.0]
    assert step.samples.shape == (5, 3)
    assert recorder.pop() is None  # reset


def test_reseeding_splits_a_used_code_at_an_encoder_output():
    model = tiny_dvae().eval()
    optimizer = torch.optim.AdamW(model.parameters())
    model(shapes_images(4)).loss.backward()
    optimizer.step()
    head, embedding = model.encoder.blocks.output.conv, model.decoder.blocks.input
    with torch.no_grad():
        features = model.encoder.forward_features(model.map_pixels(shapes_images(4)))  # (B, D, h, w)
    samples = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    dead = torch.tensor([3])
    before = head.weight.detach().clone()
    copies = model.reseed_codes(dead, samples[:1], torch.Generator().manual_seed(0))
    copy_optimizer_state(optimizer, copies)
    logits = model.encoder.forward_head(samples[:1, :, None, None])[0, :, 0, 0]
    assert int(logits.argmax()) == 3  # the re-seeded code now wins at its encoder output
    parent = int(F.linear(F.relu(samples[:1]), before[:, :, 0, 0], head.bias).argmax())
    assert parent != 3
    assert torch.equal(embedding.weight[:, 3], embedding.weight[:, parent])  # decodes like its parent
    changed = (head.weight != before).flatten(1).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [3]
    for parameter, dim in ((head.weight, 0), (embedding.weight, 1)):  # the parent's Adam moments come along
        moments = optimizer.state[parameter]["exp_avg_sq"]
        assert torch.equal(moments.select(dim, 3), moments.select(dim, parent))


def test_codebook_callback_logs_health_and_reseeds_dead_codes():
    model = tiny_dvae().train()
    callback = CodebookCallback(reseed_interval=2)
    state = SimpleNamespace(global_step=0, max_steps=4)
    args = SimpleNamespace(seed=0)
    before = model.encoder.blocks.output.conv.weight.detach().clone()
    for step in range(2):
        model(shapes_images(4, seed=step))
        state.global_step = step + 1
        callback.on_step_end(args, state, None, model=model)
    values = callback.log_values()
    assert set(values) == {"codebook_perplexity", "codebook_used_fraction", "dead_codes", "reseeded_codes"}
    assert values["dead_codes"] == 64 - round(values["codebook_used_fraction"] * 64) > 0
    assert values["reseeded_codes"] == values["dead_codes"]
    changed = (model.encoder.blocks.output.conv.weight != before).flatten(1).any(dim=1)
    assert int(changed.sum()) == values["dead_codes"]
    assert callback.log_values() == {}  # interval reset
    for step in range(2, 4):  # the last interval of the run: no re-seeding, the codes could not be trained
        model(shapes_images(4, seed=step))
        state.global_step = step + 1
        callback.on_step_end(args, state, None, model=model)
    assert callback.reseeded_codes == values["reseeded_codes"]


# ------------------------------------------------------------------------------------------------- schedules
def test_relaxation_schedule_values_at_steps():
    callback = RelaxationScheduleCallback(temperature_steps=100, kl_warmup_steps=0.1)
    assert callback.values_at(0, 1000) == (1.0, 0.0)
    temperature, kl_weight = callback.values_at(50, 1000)
    assert temperature == pytest.approx((1 + 1 / 16) / 2) and kl_weight == pytest.approx(3.3)  # cosine midpoints
    assert callback.values_at(100, 1000) == (pytest.approx(1 / 16), pytest.approx(6.6))
    assert callback.values_at(5000, 1000) == (pytest.approx(1 / 16), pytest.approx(6.6))
    with pytest.raises(ValueError, match="temperature_end"):
        RelaxationScheduleCallback(temperature_end=2.0)


def test_relaxation_schedule_is_restored_from_global_step():
    """A resumed run (global_step restored by the Trainer before on_train_begin) continues the schedules."""
    model = tiny_dvae()
    callback = RelaxationScheduleCallback(temperature_steps=0.5, kl_warmup_steps=0.25)
    state = SimpleNamespace(global_step=30, max_steps=100)
    callback.on_train_begin(None, state, None, model=model)
    assert (model.temperature, model.kl_weight) == callback.values_at(30, 100)
    assert model.kl_weight == pytest.approx(6.6) and 1 / 16 < model.temperature < 1
    assert callback.log_values() == {"temperature": round(model.temperature, 6), "kl_weight": 6.6}
