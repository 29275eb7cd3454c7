"""BEiT's fine-tuning augmentation on batches of tensors (on the CPU or the accelerator): RandAugment and random
erasing with timm's semantics, the ``--aa rand-m9-mstd0.5-inc1 --reprob 0.25`` of unilm beit/run_class_finetuning.py.

- `RandAugment` (Cubuk et al. 2020, timm's ``rand_augment_transform``): per image, ``num_layers`` operations drawn
  with replacement from timm's 15 (the "increasing" variants with ``inc1``), each applied with probability 0.5 at a
  magnitude ~ N(m, mstd) clipped to [0, 10], signed ops negated with probability 0.5; geometric ops fill with the
  normalisation mean and resample bicubically (BEiT's ``--train_interpolation``). Each image draws its own ops, as
  timm does per image: the batch is grouped by op and each group transformed at once with kornia.
- `RandomErasing` (Zhong et al. 2020, timm's ``RandomErasing(mode="pixel")``): with probability ``probability`` a
  box of 2%-1/3 of the area and aspect 0.3-1/0.3 (first of 10 attempts that fits) is filled with N(0, 1) noise, on
  the normalised image.

Operations work on float RGB (B, 3, H, W) in [0, 1] with PIL's definitions on 8-bit levels (posterize, solarize).
"""

import math
import re

import kornia
import torch

MAX_LEVEL = 10.0  # timm's magnitude scale: "m9" is 9 of 10


def _levels(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats → 8-bit levels 0..255 (as floats), as PIL sees them."""
    return (images * 255).round()


def _gray(images: torch.Tensor) -> torch.Tensor:
    """PIL's "L" conversion (ITU-R 601-2 luma), (B, 1, H, W)."""
    weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def _blend(degenerate: torch.Tensor, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: ``degenerate + factor * (image - degenerate)``, clipped."""
    return (degenerate + factor.view(-1, 1, 1, 1) * (images - degenerate)).clamp(0, 1)


def auto_contrast(images, magnitude, sign):
    low, high = images.amin((2, 3), keepdim=True), images.amax((2, 3), keepdim=True)
    stretched = (images - low) / (high - low).clamp(min=1e-8)
    return torch.where(high > low, stretched, images)


def equalize(images, magnitude, sign):
    return kornia.enhance.equalize(images)


def invert(images, magnitude, sign):
    return 1 - images


def posterize_increasing(images, magnitude, sign):
    bits = 4 - (magnitude / MAX_LEVEL * 4).long()  # keep 4 down to 0 most significant bits
    step = (2 ** (8 - bits)).to(images.dtype).view(-1, 1, 1, 1)
    return (torch.div(_levels(images), step, rounding_mode="floor") * step) / 255


def solarize_increasing(images, magnitude, sign):
    threshold = 256 - (magnitude / MAX_LEVEL * 256).long().clamp(max=256)  # levels >= threshold are inverted
    levels = _levels(images)
    return torch.where(levels >= threshold.view(-1, 1, 1, 1), 255 - levels, levels) / 255


def solarize_add(images, magnitude, sign):
    add = (magnitude / MAX_LEVEL * 110).long().clamp(max=128).view(-1, 1, 1, 1)
    levels = _levels(images)
    return torch.where(levels < 128, (levels + add).clamp(max=255), levels) / 255


def _enhance_factor(magnitude, sign):
    return (1 + sign * magnitude / MAX_LEVEL * 0.9).clamp(min=0.1)  # 1 is the identity: 0.19-1.81 at m9


def color_increasing(images, magnitude, sign):
    return _blend(_gray(images), images, _enhance_factor(magnitude, sign))


def contrast_increasing(images, magnitude, sign):
    mean = (_levels(_gray(images)).mean((2, 3), keepdim=True) + 0.5).floor() / 255  # PIL: the rounded mean level
    return _blend(mean, images, _enhance_factor(magnitude, sign))


def brightness_increasing(images, magnitude, sign):
    return _blend(torch.zeros_like(images), images, _enhance_factor(magnitude, sign))


def sharpness_increasing(images, magnitude, sign):
    return kornia.enhance.sharpness(images, _enhance_factor(magnitude, sign)).clamp(0, 1)


def _affine(matrix_rows):
    """An op warping each image by the 2 x 3 source → output matrices ``matrix_rows(magnitude, sign, H, W)``."""

    def op(images, magnitude, sign, fill):
        height, width = images.shape[-2:]
        matrices = matrix_rows(magnitude.to(images.dtype), sign.to(images.dtype), height, width)
        return kornia.geometry.transform.warp_affine(
            images, matrices, (height, width), mode="bicubic", padding_mode="fill", fill_value=fill
        ).clamp(0, 1)

    return op


def _rotation(magnitude, sign, height, width):
    degrees = sign * magnitude / MAX_LEVEL * 30  # counter-clockwise, as PIL's rotate
    center = magnitude.new_tensor([(width - 1) / 2, (height - 1) / 2]).expand(len(magnitude), 2)
    return kornia.geometry.transform.get_rotation_matrix2d(center, degrees, torch.ones_like(center))


def _shear(axis: int):
    def rows(magnitude, sign, height, width):
        matrices = torch.eye(3, dtype=magnitude.dtype, device=magnitude.device)[:2].repeat(len(magnitude), 1, 1)
        matrices[:, axis, 1 - axis] = -sign * magnitude / MAX_LEVEL * 0.3  # PIL's input = output + factor * other
        return matrices

    return rows


def _translation(axis: int):
    def rows(magnitude, sign, height, width):
        matrices = torch.eye(3, dtype=magnitude.dtype, device=magnitude.device)[:2].repeat(len(magnitude), 1, 1)
        matrices[:, axis, 2] = -sign * magnitude / MAX_LEVEL * 0.45 * (width, height)[axis]  # share of the side
        return matrices

    return rows


# timm's _RAND_INCREASING_TRANSFORMS, in its order; geometric ops take the fill colour too.
INCREASING_OPS = {
    "AutoContrast": auto_contrast,
    "Equalize": equalize,
    "Invert": invert,
    "Rotate": _affine(_rotation),
    "PosterizeIncreasing": posterize_increasing,
    "SolarizeIncreasing": solarize_increasing,
    "SolarizeAdd": solarize_add,
    "ColorIncreasing": color_increasing,
    "ContrastIncreasing": contrast_increasing,
    "BrightnessIncreasing": brightness_increasing,
    "SharpnessIncreasing": sharpness_increasing,
    "ShearX": _affine(_shear(0)),
    "ShearY": _affine(_shear(1)),
    "TranslateXRel": _affine(_translation(0)),
    "TranslateYRel": _affine(_translation(1)),
}
GEOMETRIC_OPS = ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


def _draw(sample, shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """``sample`` (torch.rand, torch.randn) on the generator's device, moved to ``device``."""
    source = generator.device if generator is not None else torch.device("cpu")
    return sample(shape, generator=generator, device=source).to(device)


class RandAugment:
    """timm's RandAugment for a batch: ``num_layers`` ops per image at magnitude ``magnitude`` (of 10) with noise
    ``magnitude_std``, each applied with probability ``prob``; geometric ops fill with ``fill`` (RGB in [0, 1])."""

    def __init__(
        self,
        magnitude: float = 9,
        num_layers: int = 2,
        magnitude_std: float = 0.5,
        prob: float = 0.5,
        fill=(0.5, 0.5, 0.5),
    ):
        if not 0 <= magnitude <= MAX_LEVEL or num_layers < 1 or magnitude_std < 0 or not 0 <= prob <= 1:
            raise ValueError(
                f"RandAugment needs 0 <= magnitude <= 10, num_layers >= 1, magnitude_std >= 0 and 0 <= prob <= 1; got "
                f"{magnitude}, {num_layers}, {magnitude_std}, {prob}."
            )
        self.magnitude, self.num_layers, self.magnitude_std, self.prob = magnitude, num_layers, magnitude_std, prob
        self.fill = torch.as_tensor(fill, dtype=torch.float32)
        self.ops = list(INCREASING_OPS.items())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(m={self.magnitude}, n={self.num_layers}, mstd={self.magnitude_std}, p={self.prob})"
        )

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Float RGB images (B, 3, H, W) in [0, 1] → augmented images of the same shape."""
        batch, device = len(images), images.device
        images = images.clone()
        for _ in range(self.num_layers):
            draws = _draw(torch.rand, (3, batch), generator, device)  # op, applied, sign: drawn, used or not
            noise = _draw(torch.randn, batch, generator, device)
            op_index = (draws[0] * len(self.ops)).long().clamp(max=len(self.ops) - 1)
            applied = draws[1] < self.prob
            sign = torch.where(draws[2] > 0.5, -1.0, 1.0)  # timm: negated when random() > 0.5
            magnitude = (self.magnitude + self.magnitude_std * noise).clamp(0, MAX_LEVEL)
            for index, (name, op) in enumerate(self.ops):
                selected = applied & (op_index == index)
                if selected.any():
                    arguments = (images[selected], magnitude[selected], sign[selected])
                    if name in GEOMETRIC_OPS:
                        arguments += (self.fill.to(device, images.dtype),)
                    images[selected] = op(*arguments).to(images.dtype)
        return images


def parse_rand_augment(spec: str | None, fill=(0.5, 0.5, 0.5)) -> RandAugment | None:
    """timm's notation, ``rand-m9-mstd0.5-inc1`` (m: magnitude, n: layers, mstd: magnitude noise, inc: the
    increasing ops, the only ones offered here); None for "" or "none"."""
    if not spec or spec.lower() == "none":
        return None
    name, *parts = spec.split("-")
    options = {}
    for part in parts:
        match = re.fullmatch(r"([a-z]+)([0-9.]+)", part)
        if name != "rand" or match is None or match[1] not in ("m", "n", "mstd", "inc"):
            raise ValueError(
                f"--rand_augment {spec!r}: expected timm's notation 'rand-m<magnitude>[-n<layers>][-mstd<std>]-inc1', "
                "e.g. BEiT's 'rand-m9-mstd0.5-inc1', or 'none'."
            )
        options[match[1]] = float(match[2])
    if options.get("inc") != 1:
        raise ValueError(f"--rand_augment {spec!r}: only the increasing ops are implemented: add '-inc1'.")
    return RandAugment(options.get("m", 9), int(options.get("n", 2)), options.get("mstd", 0.0), fill=fill)


class RandomErasing:
    """timm's ``RandomErasing(probability, mode="pixel")`` for a batch of normalised images: a box of
    ``area_range`` of the image and aspect ratio in [``min_aspect``, 1 / ``min_aspect``] (the first of 10 attempts
    that fits), filled with per-pixel N(0, 1) noise."""

    num_attempts = 10

    def __init__(self, probability: float = 0.25, area_range=(0.02, 1 / 3), min_aspect: float = 0.3):
        if not 0 <= probability <= 1:
            raise ValueError(f"The random erasing probability must be in [0, 1], got {probability}.")
        self.probability, self.area_range = probability, area_range
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, _, height, width = images.shape
        device = images.device
        draws = _draw(torch.rand, (5, batch, self.num_attempts), generator, device)
        area = height * width * (self.area_range[0] + (self.area_range[1] - self.area_range[0]) * draws[0])
        aspect = torch.exp(self.log_aspect[0] + (self.log_aspect[1] - self.log_aspect[0]) * draws[1])
        box_h, box_w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
        fits = (box_w < width) & (box_h < height)
        first = fits.long().argmax(1, keepdim=True)
        box_h, box_w = box_h.gather(1, first).squeeze(1), box_w.gather(1, first).squeeze(1)
        top = (draws[2].gather(1, first).squeeze(1) * (height - box_h + 1)).floor()
        left = (draws[3].gather(1, first).squeeze(1) * (width - box_w + 1)).floor()
        erased = fits.any(1) & (draws[4][:, 0] < self.probability)
        rows = torch.arange(height, device=device).view(1, height, 1)
        columns = torch.arange(width, device=device).view(1, 1, width)
        inside = (
            (rows >= top.view(-1, 1, 1))
            & (rows < (top + box_h).view(-1, 1, 1))
            & (columns >= left.view(-1, 1, 1))
            & (columns < (left + box_w).view(-1, 1, 1))
        )
        mask = (inside & erased.view(-1, 1, 1)).unsqueeze(1)  # (B, 1, H, W)
        return torch.where(mask, _draw(torch.randn, images.shape, generator, device).to(images.dtype), images)


__all__ = ["INCREASING_OPS", "RandAugment", "RandomErasing", "parse_rand_augment"]
