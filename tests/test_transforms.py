"""View transforms: crop sampling, shared geometry of BEiT's two views, per-branch colour, value ranges, errors."""

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from maskvision.training.inputs.transforms import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    BeitViews,
    ColorAugmentation,
    RandomResizedCrop,
    SharedCropViews,
    TwoCropViews,
    image_sizes,
    normalize,
)

IDENTITY = {"image_mean": (0.0, 0.0, 0.0), "image_std": (1.0, 1.0, 1.0)}
NO_COLOR = ColorAugmentation(jitter_prob=0.0, grayscale_prob=0.0)


def ramp_image(width: int = 96, height: int = 64) -> Image.Image:
    """Red grows left to right, green top to bottom: a view's pixel values tell where in the image it comes from."""
    x = np.linspace(0, 255, width)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, np.full_like(x, 128)], -1).round().astype(np.uint8))


def photos(count: int = 6, size: int = 40) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    smooth = [np.kron(rng.integers(0, 256, (size // 8, size // 8, 3)), np.ones((8, 8, 1))) for _ in range(count)]
    return [Image.fromarray(array.astype(np.uint8)) for array in smooth]


# -- crop sampling ----------------------------------------------------------------------------------------------------


def torchvision_crop_area(width, height, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> float:
    """The area share of one crop by torchvision's RandomResizedCrop.get_params, one image at a time."""
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            return w * h / (width * height)
    w, h = (round(height * ratio[1]), height) if width / height > ratio[1] else (width, height)
    return w * h / (width * height)


def test_crop_boxes_follow_scale_and_ratio():
    sizes = torch.tensor([[120, 80]] * 2000)
    boxes = RandomResizedCrop((0.08, 1.0)).sample(sizes, torch.Generator().manual_seed(0)).double()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= 120).all() and (boxes[:, 3] <= 80).all()
    area = width * height / (120 * 80)
    assert area.min() > 0.07 and area.max() <= 1.0
    assert (width / height).min() > 0.7 and (width / height).max() < 1.4
    # the area distribution of torchvision's per-image sampling (below U(0.08, 1)'s 0.54: large crops rarely fit)
    reference = [torchvision_crop_area(120, 80, random.Random(seed)) for seed in range(2000)]
    assert abs(area.mean() - np.mean(reference)) < 0.02
    # positions spread over the image
    assert boxes[:, 0].min() == 0 and boxes[:, 2].max() == 120


def test_crop_falls_back_to_a_central_crop():
    # a 1000x10 strip: no crop of half its area fits with an aspect ratio <= 4/3
    box = RandomResizedCrop((0.5, 1.0)).sample(torch.tensor([[1000, 10]]), torch.Generator().manual_seed(0))
    assert box.tolist() == [[493, 0, 506, 10]]


def test_crop_sampling_is_seeded():
    sizes = image_sizes([ramp_image()] * 8)
    cropper = RandomResizedCrop()
    first = cropper.sample(sizes, torch.Generator().manual_seed(1))
    assert torch.equal(first, cropper.sample(sizes, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, cropper.sample(sizes, torch.Generator().manual_seed(2)))


@pytest.mark.parametrize(
    "kwargs", [{"scale": (0.0, 1.0)}, {"scale": (0.5, 0.2)}, {"scale": (0.1, 1.5)}, {"ratio": (2.0, 1.0)}]
)
def test_crop_errors(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RandomResizedCrop(**kwargs)


# -- BEiT: two views of one crop --------------------------------------------------------------------------------------


def test_beit_views_share_crop_and_flip():
    images = [ramp_image()] * 24
    views = BeitViews(32, 16, **IDENTITY)
    encoder, tokenizer = views(images, torch.Generator().manual_seed(0))
    assert encoder.shape == (24, 3, 32, 32) and tokenizer.shape == (24, 3, 16, 16)
    # the tokenizer view is the encoder view at half the resolution
    assert (torch.nn.functional.avg_pool2d(encoder, 2) - tokenizer).abs().max() < 0.03
    # and both come from the sampled box: their mean red / green is the box's mean x / y
    boxes = views.cropper.sample(image_sizes(images), torch.Generator().manual_seed(0)).double()
    centre_x = ((boxes[:, 0] + boxes[:, 2]) / 2 - 0.5) / 95
    centre_y = ((boxes[:, 1] + boxes[:, 3]) / 2 - 0.5) / 63
    for view in (encoder, tokenizer):
        assert torch.allclose(view[:, 0].mean((1, 2)).double(), centre_x, atol=0.02)
        assert torch.allclose(view[:, 1].mean((1, 2)).double(), centre_y, atol=0.02)
    # flips: red decreases left to right in a flipped view, in both views alike, and both cases occur
    flipped = [(view[:, 0, :, -1] < view[:, 0, :, 0]).all(1) for view in (encoder, tokenizer)]
    assert torch.equal(flipped[0], flipped[1]) and 0 < flipped[0].sum() < 24


def test_beit_views_ranges_and_normalisation():
    encoder, tokenizer = BeitViews(48, 24, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)(photos())
    assert encoder.dtype == tokenizer.dtype == torch.float32
    assert tokenizer.min() >= 0 and tokenizer.max() <= 1
    mean = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    restored = encoder * std + mean
    assert restored.min() > -1e-5 and restored.max() < 1 + 1e-5
    assert encoder.min() < -1.5  # normalised, not [0, 1]


def test_beit_views_without_tokenizer():
    encoder, tokenizer = BeitViews(32, None, **IDENTITY)(photos(2))
    assert encoder.shape == (2, 3, 32, 32) and tokenizer is None


def test_shrink_to_keeps_the_smallest_crop_at_full_resolution():
    # an image shrunk to `shrink_to` on its shorter side still gives its smallest, most elongated crop 224 px
    side = BeitViews(224, 112, **IDENTITY).shrink_to
    short_side_of_smallest_crop = lambda image_side: math.sqrt(0.08 * image_side**2 / (4 / 3))  # noqa: E731
    assert short_side_of_smallest_crop(side) >= 224 > short_side_of_smallest_crop(side - 2)
    assert SharedCropViews(32, **IDENTITY).shrink_to == math.ceil(32 * math.sqrt((4 / 3) / 0.2))


def test_beit_crop_and_augment_stages():
    views = BeitViews(24, 12, **IDENTITY)
    encoder_crops, tokenizer_crops = views.crop(photos(3), torch.Generator().manual_seed(0))
    assert encoder_crops.dtype == torch.uint8 and encoder_crops.shape == (3, 3, 24, 24)
    assert tokenizer_crops.shape == (3, 3, 12, 12)
    encoder, _ = views.augment((encoder_crops, tokenizer_crops))
    assert torch.equal(encoder, encoder_crops.float() / 255)


# -- ExtreMA and MoBY -------------------------------------------------------------------------------------------------


def test_shared_crop_branches_differ_only_in_colour():
    images = photos(8)
    same, other = SharedCropViews(32, **IDENTITY, color=NO_COLOR)(images, torch.Generator().manual_seed(0))
    assert torch.equal(same, other)  # without colour augmentation the two branches are the same crop
    first, second = SharedCropViews(32, **IDENTITY)(images, torch.Generator().manual_seed(0))
    differs = (first - second).abs().flatten(1).amax(1) > 0.05
    assert differs.sum() >= 5  # jitter p=0.8 / grayscale p=0.2, drawn per branch
    # same crop as without colour: where a branch kept its colours (no jitter, no grayscale) it equals it exactly
    unchanged = [(branch - same).abs().flatten(1).amax(1) == 0 for branch in (first, second)]
    assert (unchanged[0] | unchanged[1]).any()


def test_two_crop_views_are_independent_crops():
    views = TwoCropViews(32, **IDENTITY, first_color=NO_COLOR, second_color=NO_COLOR)
    first, second = views([ramp_image()] * 8, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (8, 3, 32, 32)
    assert ((first[:, :2].mean((2, 3)) - second[:, :2].mean((2, 3))).abs().amax(1) > 0.02).sum() >= 6


def test_moby_default_recipe_is_byol():
    views = TwoCropViews(224, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    assert views.first_color.blur_prob == 1.0 and views.first_color.solarize_prob == 0.0
    assert views.second_color.blur_prob == 0.1 and views.second_color.solarize_prob == 0.2
    assert (
        views.first_color.brightness,
        views.first_color.contrast,
        views.first_color.saturation,
        views.first_color.hue,
        views.first_color.jitter_prob,
        views.first_color.grayscale_prob,
    ) == (0.4, 0.4, 0.2, 0.1, 0.8, 0.2)


@pytest.mark.parametrize("size", [16, 36, 64])
def test_any_image_size(size):
    for views in (SharedCropViews(size, **IDENTITY), TwoCropViews(size, **IDENTITY)):
        for view in views(photos(2)):
            assert view.shape == (2, 3, size, size)
            assert view.min() >= 0 and view.max() <= 1


# -- colour augmentation ----------------------------------------------------------------------------------------------


def random_images(batch: int = 16, size: int = 24) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_color_augmentation_off_is_identity():
    images = random_images()
    off = ColorAugmentation(jitter_prob=0, grayscale_prob=0, blur_prob=0, solarize_prob=0)
    assert torch.equal(off(images), images)


def test_grayscale_and_solarize():
    images = random_images()
    gray = ColorAugmentation(jitter_prob=0, grayscale_prob=1)(images)
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    expected = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    assert torch.allclose(gray[:, 0], expected, atol=1e-5)
    solarized = ColorAugmentation(jitter_prob=0, grayscale_prob=0, solarize_prob=1)(images)
    assert torch.allclose(solarized, torch.where(images >= 128 / 255, 1 - images, images))


def test_brightness_jitter_scales_each_image():
    images = random_images() * 0.5 + 0.2
    bright = ColorAugmentation(0.4, 0, 0, 0, jitter_prob=1, grayscale_prob=0)(images, torch.Generator().manual_seed(0))
    factors = (bright / images).flatten(1)
    assert torch.allclose(factors.amin(1), factors.amax(1), atol=1e-4)  # one factor per image (none clipped here)
    assert factors.min() >= 0.6 - 1e-5 and factors.max() <= 1.4 + 1e-5 and factors[:, 0].std() > 0.05


def test_hue_and_saturation_keep_gray_pixels():
    gray = random_images()[:, :1].expand(-1, 3, -1, -1).contiguous()
    jitter = ColorAugmentation(0, 0, 0.5, 0.5, jitter_prob=1, grayscale_prob=0)
    assert torch.allclose(jitter(gray), gray, atol=1e-5)


def test_blur_smooths():
    images = random_images(size=32)
    blurred = ColorAugmentation(jitter_prob=0, grayscale_prob=0, blur_prob=1, blur_sigma=(10.0, 10.0))(images)
    variation = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()  # noqa: E731
    assert variation(blurred) < 0.5 * variation(images)
    assert blurred.shape == images.shape


def test_color_augmentation_is_seeded_and_in_range():
    images = random_images()
    augment = ColorAugmentation(blur_prob=0.5, solarize_prob=0.5)
    first = augment(images, torch.Generator().manual_seed(0))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(0)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(1)))
    assert first.min() >= 0 and first.max() <= 1 and first.shape == images.shape


def test_normalize():
    images = torch.full((2, 3, 4, 4), 0.5)
    out = normalize(images, torch.tensor([0.5, 0.25, 0.0]), torch.tensor([1.0, 0.5, 0.25]))
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.0, 0.5, 2.0]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"brightness": -0.1}, "brightness"),
        ({"hue": 0.6}, "hue"),
        ({"jitter_prob": 1.5}, "jitter_prob"),
        ({"solarize_prob": -1}, "solarize_prob"),
        ({"blur_sigma": (2.0, 1.0)}, "blur_sigma"),
        ({"blur_sigma": (0.0, 1.0)}, "blur_sigma"),
    ],
)
def test_color_augmentation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ColorAugmentation(**kwargs)


def test_color_augmentation_rejects_non_rgb_floats():
    with pytest.raises(ValueError, match="float RGB"):
        ColorAugmentation()(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 0}, "image_size"),
        ({"tokenizer_size": -16}, "tokenizer_size"),
        ({"min_scale": 0.0}, "min_scale"),
        ({"min_scale": 1.5}, "min_scale"),
        ({"interpolation": "cubic"}, "interpolation"),
        ({"tokenizer_interpolation": "antialias"}, "tokenizer_interpolation"),
        ({"image_mean": (0.5, 0.5)}, "image_mean"),
        ({"image_std": (0.5, 0.0, 0.5)}, "image_std"),
    ],
)
def test_view_errors(kwargs, message):
    arguments = {"image_size": 32, "tokenizer_size": 16, **IDENTITY, **kwargs}
    with pytest.raises(ValueError, match=message):
        BeitViews(**arguments)
