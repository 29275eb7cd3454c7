"""BEiT's fine-tuning augmentation on tensors: each RandAugment op matches timm's PIL definition, the policy draws
per image, random erasing covers the official share of images and areas."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from maskvision.training.inputs.rand_augment import INCREASING_OPS, RandAugment, RandomErasing, parse_rand_augment

MAGNITUDE = 9.0


def _image(seed=0, size=24) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255


def _apply(name: str, image: Image.Image, sign: float = 1.0, fill=(0.5, 0.5, 0.5)) -> torch.Tensor:
    arguments = (_tensor(image), torch.tensor([MAGNITUDE]), torch.tensor([sign]))
    if name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):
        arguments += (torch.tensor(fill),)
    return INCREASING_OPS[name](*arguments)


# timm's op on a PIL image at magnitude 9 (rand-m9 ... inc1), positive sign
PIL_OPS = {
    "AutoContrast": ImageOps.autocontrast,
    "Invert": ImageOps.invert,
    "PosterizeIncreasing": lambda image: ImageOps.posterize(image, 4 - int(MAGNITUDE / 10 * 4)),
    "SolarizeIncreasing": lambda image: ImageOps.solarize(image, 256 - int(MAGNITUDE / 10 * 256)),
    "SolarizeAdd": lambda image: image.point(
        [min(255, i + int(MAGNITUDE / 10 * 110)) if i < 128 else i for i in range(256)] * 3
    ),
    "ColorIncreasing": lambda image: ImageEnhance.Color(image).enhance(1 + MAGNITUDE / 10 * 0.9),
    "ContrastIncreasing": lambda image: ImageEnhance.Contrast(image).enhance(1 + MAGNITUDE / 10 * 0.9),
    "BrightnessIncreasing": lambda image: ImageEnhance.Brightness(image).enhance(1 + MAGNITUDE / 10 * 0.9),
    "SharpnessIncreasing": lambda image: ImageEnhance.Sharpness(image).enhance(1 + MAGNITUDE / 10 * 0.9),
}


@pytest.mark.parametrize("name", sorted(PIL_OPS))
def test_photometric_ops_match_timms_pil_definitions(name):
    image = _image()
    expected = _tensor(PIL_OPS[name](image))
    difference = (_apply(name, image) - expected).abs()
    assert difference.mean() < 0.01 and difference.max() <= 3 / 255 + 1e-6  # PIL rounds each step to 8 bits


@pytest.mark.parametrize(
    "name, pil",
    [
        ("Rotate", lambda image: image.rotate(27.0, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))),
        (
            "TranslateXRel",
            lambda image: image.transform(
                image.size, Image.Transform.AFFINE, (1, 0, 0.405 * 24, 0, 1, 0), fillcolor=(128, 128, 128)
            ),
        ),
        (
            "ShearY",
            lambda image: image.transform(
                image.size,
                Image.Transform.AFFINE,
                (1, 0, 0, 0.27, 1, 0),
                resample=Image.Resampling.BICUBIC,
                fillcolor=(128, 128, 128),
            ),
        ),
    ],
)
def test_geometric_ops_move_pixels_as_pil_does(name, pil):
    image = _image(size=24).resize((24, 24))
    smooth = image.resize((6, 6), Image.Resampling.BOX).resize((24, 24), Image.Resampling.BILINEAR)  # low frequency
    expected, opposite = _tensor(pil(smooth)), _apply(name, smooth, sign=-1.0)
    assert (_apply(name, smooth) - expected).abs().mean() < 0.03  # resampling differs, the motion does not
    assert (opposite - expected).abs().mean() > 2 * (_apply(name, smooth) - expected).abs().mean()


def test_rand_augment_draws_ops_per_image_and_parses_timms_notation():
    policy = parse_rand_augment("rand-m9-mstd0.5-inc1")
    assert (policy.magnitude, policy.num_layers, policy.magnitude_std, policy.prob) == (9, 2, 0.5, 0.5)
    assert parse_rand_augment("none") is None
    for bad in ("rand-m9-mstd0.5", "auto-m9-inc1", "rand-x9-inc1"):
        with pytest.raises(ValueError, match="rand_augment"):
            parse_rand_augment(bad)
    images = _tensor(_image()).repeat(64, 1, 1, 1)
    out = RandAugment()(images, torch.Generator().manual_seed(0))
    changed = (out - images).abs().flatten(1).mean(1) > 1e-4
    assert 0.5 < changed.float().mean() < 0.95  # 1 - 0.5^2 = 75% of images touched by at least one op
    assert len({round(float(value), 4) for value in (out - images).abs().flatten(1).mean(1)}) > 10  # various ops


def test_random_erasing_erases_a_quarter_of_the_images_with_noise_boxes():
    images = torch.zeros(2000, 3, 32, 32)
    erased = RandomErasing(0.25)(images, torch.Generator().manual_seed(0)) != 0
    per_image = erased.flatten(1).float().mean(1)
    assert abs((per_image > 0).float().mean() - 0.25) < 0.03
    assert per_image.max() <= 1 / 3 + 0.05 and per_image[per_image > 0].min() >= 0.01
