"""``--images_on_device``: images decoded once into a uint8 tensor (`TensorImages`), cropped batched on their device
(`resized_tensor_crops`) into the same views as PIL's crops, through the same collators and pretraining run."""

import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from maskvision.data import TensorImages
from maskvision.training.inputs.collators import IndexedRows, MultiMaskCollator, TwoViewCollator
from maskvision.training.inputs.masking import RandomMaskGenerator
from maskvision.training.inputs.transforms import RESAMPLING, RandomResizedCrop, image_sizes, resized_crops

STATS = {"image_mean": (0.5, 0.5, 0.5), "image_std": (0.5, 0.5, 0.5)}


def smooth_images(count: int = 16, size: int = 32, seed: int = 0) -> list[Image.Image]:
    """Smooth random images (a coarse grid upsampled): interpolation errors stay small, differences of filters too."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.integers(0, 256, (count, 3, size // 4, size // 4))).float()
    fine = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear", align_corners=False)
    arrays = fine.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(array) for array in arrays]


def dataset_of(images: list[Image.Image]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()}))


def test_tensor_images_hold_the_decoded_pixels():
    images = smooth_images(5)
    held = TensorImages.from_dataset(dataset_of(images))
    assert held.images.shape == (5, 3, 32, 32) and held.images.dtype == torch.uint8 and len(held) == 5
    assert torch.equal(held[3]["image"].permute(1, 2, 0), torch.from_numpy(np.array(images[3])))
    assert all(torch.equal(row["image"], held.images[i]) for row, i in zip(held.__getitems__([4, 0]), [4, 0]))


def test_tensor_images_refuse_mixed_sizes_and_bad_tensors():
    with pytest.raises(ValueError, match=r"image 1 is 20x24, the first 32x32.*leave out --images_on_device"):
        TensorImages.from_dataset(dataset_of([smooth_images(1)[0], Image.new("RGB", (20, 24))]))
    with pytest.raises(ValueError, match=r"uint8 RGB images \(N, 3, H, W\), got torch.float32"):
        TensorImages(torch.zeros(2, 3, 8, 8))


@pytest.mark.parametrize("interpolation, tolerance", [("bilinear", 0.25), ("bicubic", 1.5), ("nearest", 0.0)])
def test_tensor_crops_match_pil_crops(interpolation, tolerance):
    """The same boxes cut from PIL images and from their tensor give the same views (PIL's bicubic is a = -0.5,
    grid_sample's a = -0.75: a few levels apart on sharp edges)."""
    images = smooth_images(32)
    tensor = TensorImages.from_dataset(dataset_of(images)).images
    boxes = RandomResizedCrop((0.2, 1.0)).sample(image_sizes(tensor), torch.Generator().manual_seed(0))
    assert torch.equal(image_sizes(tensor), image_sizes(images))
    from_pil = resized_crops(images, boxes, 32, RESAMPLING[interpolation]).float()
    from_tensor = resized_crops(tensor, boxes, 32, RESAMPLING[interpolation])
    assert from_tensor.dtype == torch.uint8 and from_tensor.shape == from_pil.shape
    assert (from_tensor.float() - from_pil).abs().mean() <= tolerance
    if interpolation == "nearest":  # the whole crop, unchanged: the image itself
        whole = torch.tensor([[0, 0, 32, 32]]).expand(len(tensor), 4)
        assert torch.equal(resized_crops(tensor, whole, 32, RESAMPLING["nearest"]), tensor)


@pytest.mark.parametrize("augment_on_device", [False, True])
def test_collators_take_tensor_rows_like_pil_rows(augment_on_device):
    """Rows of a `TensorImages` give the batch PIL rows give: same keys, shapes, dtypes, masks and (bilinear)
    nearly the same pixels, drawn from the same (seed, epoch, samples) stream."""
    images = smooth_images(16)
    pil_rows = IndexedRows(dataset_of(images)).__getitems__(list(range(16)))
    tensor_rows = IndexedRows(TensorImages.from_dataset(dataset_of(images))).__getitems__(list(range(16)))
    for make in (
        lambda: TwoViewCollator(image_size=32, min_crop_scale=0.2, augment_on_device=augment_on_device, **STATS),
        lambda: MultiMaskCollator(
            image_size=32,
            patch_size=8,
            mask_generator=RandomMaskGenerator(4, 0.75, 2),
            augment_on_device=augment_on_device,
            **STATS,
        ),
    ):
        from_pil, from_tensor = make()(pil_rows), make()(tensor_rows)
        assert from_pil.keys() == from_tensor.keys()
        for key, value in from_pil.items():
            assert from_tensor[key].shape == value.shape and from_tensor[key].dtype == value.dtype, key
            if value.dtype == torch.bool:
                assert torch.equal(from_tensor[key], value)
            else:
                scale = 255 if value.dtype == torch.uint8 else 2 / 0.5  # uint8 levels, or normalised units
                assert (from_tensor[key].float() - value.float()).abs().mean() <= 1.5 * scale / 255, key


def test_pretraining_with_images_on_the_device(tmp_path):
    from maskvision.cli import main
    from maskvision.training.recipes.moby import MobyTrainingArguments

    args = MobyTrainingArguments(output_dir=str(tmp_path), images_on_device=True, dataloader_num_workers=3)
    assert (args.dataloader_num_workers, args.dataloader_pin_memory) == (0, False)  # the collator reads the device
    assert main([
        "pretrain", "moby", "--dataset", "demo", "--max_train_samples", "32", "--image_size", "32", "--patch_size", "4",
        "--window_size", "4", "--embed_dim", "16", "--depths", "1", "1", "--num_heads", "1", "2",
        "--projector_hidden_size", "32", "--predictor_hidden_size", "32", "--projection_dim", "16",
        "--queue_size", "16",
        "--per_device_train_batch_size", "8", "--logging_steps", "1", "--save_strategy", "no", "--use_cpu",
        "--disable_tqdm", "true", "--max_steps", "2", "--images_on_device", "--augment_on_device",
        "--output_dir", str(tmp_path),
    ]) == 0  # fmt: skip
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert (tmp_path / "encoder" / "model.safetensors").exists()
