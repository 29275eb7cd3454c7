"""Every method's loss against a hand computation on tiny tensors, written out here from the papers and the official
code rather than taken from maskvision:

- BEiT (unilm beit/engine_for_pretraining.py): cross-entropy of the tokenizer's ids at the masked patches only;
  the pixel-regression ablation: mean squared error of the masked patches, each normalised by its own statistics
  (MAE's ``norm_pix_loss``).
- BYOL as ExtreMA writes it (microsoft/ExtreMA lib/builder.py ``byol_loss``): ``||q/|q| - k/|k| ||²`` per image,
  averaged over the masks; its InfoNCE variant (MoCo v3 ``contrastive_loss``): the other targets of the batch are
  the negatives, times ``2 T``.
- MoBY (Transformer-SSL models/moby.py ``contrastive_loss``): logits ``[q·k, q·queue] / T`` with the positive first,
  one direction per view with the other view's key and queue (maskvision takes the mean of the two, the official
  code their sum).
- DALL-E's dVAE: logit-Laplace negative log-likelihood per pixel value plus ``kl_weight`` times the KL divergence
  to the uniform prior per position, divided by the pixel values per position.
- VQ-KD (unilm beit2/modeling_vqkd.py, norm_ema_quantizer.py): ``1 - cos(reconstruction, teacher)`` plus the
  commitment ``||z - sg(code)||²``, both averaged.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_beit_config, tiny_dvae, tiny_extrema_config, tiny_moby_config, tiny_vqkd_config
from transformers import BeitConfig, BeitModel

from maskvision import BeitMimForPreTraining, ExtremaForPreTraining, MobyForPreTraining, VQKDTokenizer
from maskvision.modeling.losses import byol_loss, info_nce_loss
from maskvision.modeling.modeling_vqkd import load_teacher
from maskvision.training.inputs.masking import RandomMaskGenerator


def unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True)


def minus_log_softmax_of(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log p(label) per row, from the definition: logsumexp of the row minus the label's logit."""
    return torch.logsumexp(logits, dim=-1) - logits.gather(-1, labels[:, None])[:, 0]


# ------------------------------------------------------------------------------------------ shared functions
def test_byol_loss_is_the_squared_distance_between_unit_vectors():
    query, key = torch.randn(5, 8), torch.randn(5, 8)
    expected = ((unit(query) - unit(key)) ** 2).sum(dim=-1).mean()
    torch.testing.assert_close(byol_loss(query, key), expected)
    assert byol_loss(query, 3 * query).item() == pytest.approx(0.0, abs=1e-6)  # the scale does not matter
    assert byol_loss(query, -query).item() == pytest.approx(4.0, abs=1e-5)


def test_byol_loss_sends_no_gradient_to_the_target():
    query, key = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    byol_loss(query, key).backward()
    assert query.grad is not None and query.grad.abs().sum() > 0
    assert key.grad is None


@pytest.mark.parametrize("temperature", [0.2, 0.07])
def test_info_nce_with_a_queue_picks_the_positive_among_the_queue(temperature):
    query, key, queue = torch.randn(4, 8), torch.randn(4, 8), torch.randn(6, 8)
    positive = (unit(query) * unit(key)).sum(dim=-1, keepdim=True)  # (4, 1)
    negatives = unit(query) @ unit(queue).T  # (4, 6)
    logits = torch.cat([positive, negatives], dim=1) / temperature
    expected = minus_log_softmax_of(logits, torch.zeros(4, dtype=torch.long)).mean()
    torch.testing.assert_close(info_nce_loss(query, key, temperature, negatives=queue), expected)


def test_info_nce_without_a_queue_takes_the_other_keys_of_the_batch_as_negatives():
    query, key = torch.randn(5, 8), torch.randn(5, 8)
    similarity = unit(query) @ unit(key).T / 0.5  # (5, 5): row i's positive is column i
    expected = torch.stack([torch.logsumexp(similarity[i], 0) - similarity[i, i] for i in range(5)]).mean()
    torch.testing.assert_close(info_nce_loss(query, key, temperature=0.5), expected)


def test_info_nce_sends_no_gradient_to_keys_or_queue_and_refuses_a_non_positive_temperature():
    query = torch.randn(4, 8, requires_grad=True)
    key, queue = torch.randn(4, 8, requires_grad=True), torch.randn(6, 8, requires_grad=True)
    info_nce_loss(query, key, negatives=queue).backward()
    assert query.grad is not None and key.grad is None and queue.grad is None
    with pytest.raises(ValueError, match="temperature must be positive"):
        info_nce_loss(query, key, temperature=0.0)


# ---------------------------------------------------------------------------------------------------- BEiT
def beit_batch(model: BeitMimForPreTraining, batch: int = 3, masked: int = 20) -> dict:
    generator = torch.Generator().manual_seed(1)
    patches, vocab = model.config.num_patches, model.config.vocab_size
    size = model.config.backbone_config.image_size
    return {
        "pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "bool_masked_pos": torch.rand(batch, patches, generator=generator).argsort(dim=1) < masked,
        "labels": torch.randint(0, vocab, (batch, patches), generator=generator),
    }


def test_beit_token_loss_is_the_cross_entropy_at_the_masked_patches_only():
    model = BeitMimForPreTraining(tiny_beit_config()).eval()
    batch = beit_batch(model)
    mask, labels = batch["bool_masked_pos"], batch["labels"]
    output = model(**batch)
    with torch.no_grad():
        # The official head over every patch (``return_all_tokens``), the loss then taken at the masked ones.
        hidden = model.beit(batch["pixel_values"], bool_masked_pos=mask).last_hidden_state[:, 1:]
        logits = model.lm_head(model.layernorm(hidden))  # (B, N, vocab)
    rows = mask.nonzero().tolist()  # (image, patch) of each masked patch
    per_patch = [minus_log_softmax_of(logits[b, n][None], labels[b, n][None])[0] for b, n in rows]
    torch.testing.assert_close(output.loss, torch.stack(per_patch).mean(), atol=1e-5, rtol=1e-5)
    correct = [float(logits[b, n].argmax() == labels[b, n]) for b, n in rows]
    assert output.accuracy.item() == pytest.approx(sum(correct) / len(rows))

    unmasked_changed = torch.where(mask, labels, (labels + 1) % model.config.vocab_size)
    torch.testing.assert_close(model(**{**batch, "labels": unmasked_changed}).loss, output.loss)
    masked_changed = torch.where(mask, (labels + 1) % model.config.vocab_size, labels)
    assert not torch.allclose(model(**{**batch, "labels": masked_changed}).loss, output.loss)


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_beit_pixel_loss_is_the_mean_squared_error_of_the_masked_patches(norm_pix_loss):
    model = BeitMimForPreTraining(tiny_beit_config(target="pixels", norm_pix_loss=norm_pix_loss)).eval()
    batch = beit_batch(model)
    pixels, mask = batch["pixel_values"], batch["bool_masked_pos"]
    output = model(pixels, bool_masked_pos=mask)
    with torch.no_grad():
        hidden = model.beit(pixels, bool_masked_pos=mask).last_hidden_state[:, 1:]
        predictions = model.lm_head(model.layernorm(hidden))  # (B, N, P²·3)
    size, grid = model.config.backbone_config.patch_size, model.config.grid_size
    errors = []
    for b, n in mask.nonzero().tolist():
        row, column = divmod(n, grid)
        patch = pixels[b, :, row * size : (row + 1) * size, column * size : (column + 1) * size]
        target = patch.permute(1, 2, 0).reshape(-1)  # (P, P, C) order, as MAE's patchify
        if norm_pix_loss:
            target = (target - target.mean()) / (target.var() + 1e-6).sqrt()
        errors.append(((predictions[b, n] - target) ** 2).mean())
    torch.testing.assert_close(output.loss, torch.stack(errors).mean(), atol=1e-5, rtol=1e-5)
    assert output.accuracy is None


# ------------------------------------------------------------------------------------------------- ExtreMA
def extrema_batch(model: ExtremaForPreTraining, batch: int = 3) -> dict:
    generator = torch.Generator().manual_seed(2)
    config = model.config
    size = config.backbone_config.image_size
    grid = size // config.backbone_config.patch_size
    return {
        "pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "teacher_pixel_values": torch.randn(batch, 3, size, size, generator=generator),
        "bool_masked_pos": RandomMaskGenerator(grid, config.mask_ratio, config.num_masks).gen(batch, generator),
    }


def test_extrema_byol_loss_is_the_official_per_mask_loss_averaged_over_the_masks():
    model = ExtremaForPreTraining(tiny_extrema_config(num_masks=3)).eval()
    output = model(**extrema_batch(model))
    predictions, targets = output.predictions.detach(), output.targets  # (B, M, P), (B, P)
    assert predictions.shape == (3, 3, 16) and targets.shape == (3, 16)
    per_mask = [((unit(predictions[:, m]) - unit(targets)) ** 2).sum(dim=-1).mean() for m in range(3)]
    torch.testing.assert_close(output.loss, sum(per_mask) / 3)
    assert len({round(float(value), 5) for value in per_mask}) == 3  # each mask has its own prediction


def test_extrema_infonce_loss_is_moco_v3s_per_mask_loss_times_two_temperatures():
    model = ExtremaForPreTraining(tiny_extrema_config(num_masks=2, loss="infonce", temperature=0.2)).eval()
    output = model(**extrema_batch(model, batch=4))
    predictions, targets = output.predictions.detach(), output.targets
    per_mask = []
    for m in range(2):
        logits = unit(predictions[:, m]) @ unit(targets).T / 0.2  # (B, B): image i's positive is target i
        per_mask.append(minus_log_softmax_of(logits, torch.arange(4)).mean() * (2 * 0.2))
    torch.testing.assert_close(output.loss, sum(per_mask) / 2)


# ---------------------------------------------------------------------------------------------------- MoBY
@pytest.mark.parametrize("temperature", [0.2, 0.1])
def test_moby_loss_is_half_the_official_sum_of_both_directions_with_their_queues(temperature):
    model = MobyForPreTraining(tiny_moby_config(temperature=temperature)).train()
    generator = torch.Generator().manual_seed(3)
    queue_1, queue_2 = unit(torch.randn(2, 64, 32, generator=generator))
    model.queue_1.copy_(queue_1)
    model.queue_2.copy_(queue_2)
    predictions = torch.randn(2, 5, 32, generator=generator)
    keys = unit(torch.randn(2, 5, 32, generator=generator))
    loss, metrics = model.forward_loss(predictions, keys)

    def contrastive_loss(q, k, queue):  # the official layout: the queue is (dim, K), q and k normalised
        l_pos = torch.einsum("nc,nc->n", q, k)[:, None]
        l_neg = torch.einsum("nc,ck->nk", q, queue)
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature
        return minus_log_softmax_of(logits, torch.zeros(len(q), dtype=torch.long)).mean()

    pred_1, pred_2 = unit(predictions[0]), unit(predictions[1])
    official = contrastive_loss(pred_1, keys[1], queue_2.T) + contrastive_loss(pred_2, keys[0], queue_1.T)
    torch.testing.assert_close(loss, official / 2)
    # Swapping the views and their queues leaves the loss unchanged: it is symmetric.
    model.queue_1.copy_(queue_2)
    model.queue_2.copy_(queue_1)
    torch.testing.assert_close(model.forward_loss(predictions.flip(0), keys.flip(0))[0], loss)
    assert 0 <= metrics["contrastive_accuracy"] <= 1


# ---------------------------------------------------------------------------------------------------- dVAE
def test_dvae_loss_is_the_logit_laplace_nll_plus_the_weighted_kl_to_the_uniform_prior():
    model = tiny_dvae().eval()  # eval: the decoder sees the argmax codes, a deterministic loss
    model.kl_weight = 6.6
    generator = torch.Generator().manual_seed(4)
    pixels = torch.rand(2, 3, 16, 16, generator=generator)
    with torch.no_grad():
        model.encoder.blocks.output.conv.weight.mul_(20)  # sharper code distributions: a KL far from 0 and log V
    output = model(pixels)

    with torch.no_grad():
        codes = F.one_hot(output.logits.argmax(dim=1), 64).permute(0, 3, 1, 2).float()
        stats = model.decoder(codes)  # (B, 6, H, W): location and log-scale of each pixel value
    x = 0.8 * pixels + 0.1  # DALL-E's map_pixels with eps = 0.1
    location, scale = stats[:, :3], stats[:, 3:].exp()
    # x = sigmoid(y) with y ~ Laplace(location, scale): p(x) = p(logit x) / (x (1 - x))
    density = torch.exp(-(torch.logit(x) - location).abs() / scale) / (2 * scale) / (x * (1 - x))
    nll = -density.log().mean()
    q = output.logits.softmax(dim=1)  # (B, V, h, w)
    kl = (q * (q.log() - math.log(1 / 64))).sum(dim=1).mean()  # per position
    assert 0.1 < kl.item() < math.log(64) - 0.1
    values_per_position = 3 * 4 * 4  # channels x the 4x4 pixels of one code
    torch.testing.assert_close(output.reconstruction_loss, nll, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(output.kl_divergence, kl, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(output.loss, nll + 6.6 * kl / values_per_position, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------------------------------- VQ-KD
def test_vqkd_loss_is_the_cosine_distance_to_the_teacher_plus_the_commitment(tmp_path):
    teacher_config = BeitConfig(
        image_size=16, patch_size=4, hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=48
    )
    BeitModel(teacher_config, add_pooling_layer=False).save_pretrained(tmp_path)
    teacher, fields = load_teacher(str(tmp_path))
    model = VQKDTokenizer(tiny_vqkd_config(**fields)).eval()
    model.set_teacher(teacher)
    pixels = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    output = model(pixels)

    with torch.no_grad():
        vectors = model.forward_encoder(pixels)  # (B, h, w, d), unit vectors
        indices = (vectors @ model.codebook.T).argmax(dim=-1)  # the nearest code by cosine
        codes = model.codebook[indices]
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # ImageNet's: the teacher has no processor
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        target = teacher(pixel_values=(pixels - mean) / std).last_hidden_state[:, 1:]  # (B, 16, 24)
        reconstruction = model.forward_decoder(codes)  # the decoder sees the codes, not the encoder outputs
    commitment = ((vectors - codes) ** 2).mean()
    cosine_distance = (1 - (unit(output.reconstruction) * unit(target)).sum(dim=-1)).mean()
    torch.testing.assert_close(output.codebook_indices, indices)
    torch.testing.assert_close(output.reconstruction, reconstruction)
    torch.testing.assert_close(output.commitment_loss, commitment)
    torch.testing.assert_close(output.reconstruction_loss, cosine_distance)
    torch.testing.assert_close(output.loss, cosine_distance + commitment)
    assert commitment > 0 and cosine_distance > 0
