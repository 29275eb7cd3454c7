"""``augment_on_device``: collators hand over uint8 crops and masks, `MaskVisionTrainer` runs the same transform
objects' batched augmentation once the batch is on the device; views of the same shapes and distribution."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from maskvision.training.inputs.collators import MaskedImageModelingCollator, MultiMaskCollator, TwoViewCollator
from maskvision.training.inputs.masking import BlockwiseMaskGenerator, RandomMaskGenerator

STATS = {"image_mean": (0.485, 0.456, 0.406), "image_std": (0.229, 0.224, 0.225)}


def rows(count: int = 64) -> list[dict]:
    """Images of coloured rectangles of various sizes."""
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        height, width = rng.integers(36, 64, 2)
        array = np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
        top, left = rng.integers(0, 20, 2)
        array[top : top + 16, left : left + 16] = rng.integers(0, 256, 3)
        images.append({"image": Image.fromarray(array)})
    return images


COLLATORS = {
    "beit": lambda **kw: MaskedImageModelingCollator(
        image_size=32,
        patch_size=8,
        tokenizer_image_size=16,
        mask_generator=BlockwiseMaskGenerator(4, 6, 2),
        **STATS,
        **kw,
    ),
    "extrema": lambda **kw: MultiMaskCollator(
        image_size=32, patch_size=8, mask_generator=RandomMaskGenerator(4, 0.75, 2), **STATS, **kw
    ),
    "moby": lambda **kw: TwoViewCollator(image_size=32, **STATS, **kw),
}


@pytest.mark.parametrize("method", sorted(COLLATORS))
def test_device_mode_returns_uint8_crops_that_augment_into_the_same_views(method):
    batch_rows = rows()
    on_host = COLLATORS[method](seed=0)(batch_rows)
    collator = COLLATORS[method](seed=0, augment_on_device=True)
    crops = collator(batch_rows)
    image_keys = [key for key in crops if key != "bool_masked_pos"]
    assert image_keys and all(crops[key].dtype == torch.uint8 for key in image_keys)
    assert crops["pixel_values"].shape == on_host["pixel_values"].shape
    if "bool_masked_pos" in on_host:  # masks of the same kind (other ones: on the host, colour draws precede them)
        masks, host_masks = crops["bool_masked_pos"], on_host["bool_masked_pos"]
        assert masks.shape == host_masks.shape and torch.equal(masks.sum(-1).unique(), host_masks.sum(-1).unique())

    augmented = collator.augment(crops)
    assert augmented.keys() == on_host.keys()
    for key, value in on_host.items():
        assert augmented[key].shape == value.shape and augmented[key].dtype == value.dtype, key
    for key in ("pixel_values", "tokenizer_pixel_values", "teacher_pixel_values", "pixel_values_2"):
        if key in on_host:  # the same distribution: per-channel means and spreads over 64 images
            host, device = on_host[key], augmented[key]
            torch.testing.assert_close(device.mean((0, 2, 3)), host.mean((0, 2, 3)), atol=0.25, rtol=0)
            torch.testing.assert_close(device.std((0, 2, 3)), host.std((0, 2, 3)), atol=0.25, rtol=0.2)
    if method == "beit":  # crops and flips come from the collator: without the colour draw the views are identical
        host = COLLATORS[method](seed=0, color_jitter=0.0)(batch_rows)
        device = COLLATORS[method](seed=0, color_jitter=0.0, augment_on_device=True)
        torch.testing.assert_close(device.augment(device(batch_rows))["pixel_values"], host["pixel_values"])
    if method == "extrema":  # one shared crop, two colour draws
        assert not torch.equal(augmented["pixel_values"], augmented["teacher_pixel_values"])


def test_device_stream_is_seeded_and_separate():
    crops = COLLATORS["moby"](seed=3, augment_on_device=True)(rows(8))
    first = COLLATORS["moby"](seed=3, augment_on_device=True).augment(crops)
    again = COLLATORS["moby"](seed=3, augment_on_device=True).augment(crops)
    other = COLLATORS["moby"](seed=4, augment_on_device=True).augment(crops)
    assert torch.equal(first["pixel_values"], again["pixel_values"])
    assert not torch.equal(first["pixel_values"], other["pixel_values"])
    with pytest.raises(TypeError, match="augment_on_device must be True or False"):
        COLLATORS["moby"](augment_on_device="yes")


def test_pretrain_command_trains_with_augmentation_on_the_device(tmp_path):
    from maskvision.cli import main
    from maskvision.training.inputs import collators

    calls = []
    augment = collators.MultiMaskCollator.augment

    def recording(self, batch):
        calls.append(batch["pixel_values"].dtype)
        return augment(self, batch)

    collators.MultiMaskCollator.augment = recording
    try:
        assert main([
            "pretrain", "extrema", "--dataset", "demo", "--max_train_samples", "32", "--model_size", "tiny",
            "--image_size", "32", "--patch_size", "8", "--hidden_size", "32", "--num_hidden_layers", "1",
            "--num_attention_heads", "2", "--mask_ratio", "0.75", "--num_masks", "2", "--projector_hidden_size", "32",
            "--projection_size", "16", "--calibration_images", "8", "--calibration_steps", "1",
            "--per_device_train_batch_size", "8", "--logging_steps", "1", "--save_strategy", "no", "--use_cpu",
            "--dataloader_num_workers", "0", "--disable_tqdm", "true", "--max_steps", "2", "--augment_on_device",
            "--output_dir", str(tmp_path),
        ]) == 0  # fmt: skip
    finally:
        collators.MultiMaskCollator.augment = augment
    # each of the 2 training batches (and the export calibration's) arrived as crops and was augmented once
    assert calls == [torch.uint8] * 3
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_tokenizer_collator_hands_over_crops_too():
    from maskvision.training.runs.tokenizer import TokenizerCollator

    batch_rows = rows(8)
    on_host = TokenizerCollator(16, seed=0)(batch_rows)
    collator = TokenizerCollator(16, seed=0, augment_on_device=True)
    crops = collator(batch_rows)
    assert crops["pixel_values"].dtype == torch.uint8
    # the tokenizer's view has no colour augmentation: on the device it is the same view
    torch.testing.assert_close(collator.augment(crops)["pixel_values"], on_host["pixel_values"])


def test_finetuning_refuses_augmentation_on_the_device(tmp_path):
    from maskvision.training.labelled_data import LabelledDataArguments
    from maskvision.training.runs.finetune import FinetuneArguments, FinetuneModelArguments, run_finetuning

    args = FinetuneArguments(output_dir=str(tmp_path), augment_on_device=True, use_cpu=True)
    with pytest.raises(ValueError, match="--augment_on_device applies to pretraining"):
        run_finetuning(FinetuneModelArguments(model="unused"), LabelledDataArguments(dataset="demo"), args)
