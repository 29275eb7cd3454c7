"""View transforms for self-supervised pretraining: per-image crops in PIL, everything else batched on tensors.

Per image, only the geometry runs: a random-resized crop and its resize in one PIL call,
``image.resize(size, resample, box=crop)``, which reads the crop at full resolution and writes the output size
directly. Flips, colour jitter, grayscale, blur, solarize and normalisation then run on a whole batch with kornia,
tensor in and tensor out, on the CPU or on any device the tensors are moved to. Images already held as one uint8
tensor (`maskvision.data.TensorImages`, ``--images_on_device``) are cropped batched too, on their device
(`resized_tensor_crops`).

Each recipe has two stages so that the second can move to the accelerator: ``crop(images, generator)`` (RGB PIL
images → uint8 tensors) and ``augment(crops, generator)`` (uint8 tensors → float views); calling it runs both.

- `BeitViews`: one crop (scale 0.08-1) + flip, resized for the encoder (bicubic) and for the visual tokenizer
  (lanczos), both with the same colour jitter (`beit_color_jitter`)
  — Bao et al., "BEiT: BERT Pre-Training of Image Transformers", arXiv:2106.08254.
- `SharedCropViews`: one crop (scale 0.2-1) + flip shared by two branches with their own colour jitter and
  grayscale — ExtreMA (Wu et al., arXiv:2206.04667, official ``SpatialConsistentColorAug``).
- `TwoCropViews`: two independent crops (scale 0.08-1) + flips with BYOL's asymmetric colour recipe (blur p=1.0 /
  0.1, solarize p=0 / 0.2) — MoBY (Xie et al., "Self-Supervised Learning with Swin Transformers",
  arXiv:2105.04553), after BYOL (Grill et al., arXiv:2006.07733).

Every random number comes from the ``torch.Generator`` passed in (the global torch RNG when None).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import kornia
import numpy as np
import torch
from PIL import Image

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)

RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
BLUR_REFERENCE_SIZE = 224  # blur sigmas are given in pixels of a 224-px view, as in BYOL and MoBY
SOLARIZE_THRESHOLD = 128 / 255  # PIL's ImageOps.solarize default


def _rand(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, moved to ``device``."""
    source = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=source).to(device)


def _check_size(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int (pixels), got {value!r}.")
    return value


def _check_range(name: str, value, low: float = 0.0, high: float = math.inf, positive: bool = False) -> tuple:
    """A (min, max) pair of numbers within [low, high], min <= max (and min > 0 with ``positive``)."""
    pair = tuple(value) if isinstance(value, Sequence) else None
    if (
        pair is None
        or len(pair) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
        or not low <= pair[0] <= pair[1] <= high
        or (positive and pair[0] <= 0)
    ):
        bound = f"({low}, {high}]" if positive else f"[{low}, {high}]"
        raise ValueError(f"{name} must be a (min, max) pair with min <= max within {bound}, got {value!r}.")
    return (float(pair[0]), float(pair[1]))


def _check_probability(name: str, value) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}.")
    return float(value)


def _check_resample(name: str, value: str) -> Image.Resampling:
    if value not in RESAMPLING:
        raise ValueError(f"{name} must be one of {sorted(RESAMPLING)}, got {value!r}.")
    return RESAMPLING[value]


def _check_stats(name: str, value) -> torch.Tensor:
    stats = torch.as_tensor(value, dtype=torch.float32) if isinstance(value, Sequence) else None
    if stats is None or stats.shape != (3,) or not torch.isfinite(stats).all():
        raise ValueError(f"{name} must hold 3 numbers (one per RGB channel), got {value!r}.")
    return stats


# -- geometry: per image, in PIL --------------------------------------------------------------------------------------


class RandomResizedCrop:
    """torchvision's RandomResizedCrop sampling, for a batch at once, driven by a ``torch.Generator``.

    Per image: up to 10 attempts of area ~ U(scale) x image area and aspect log-uniform in ``ratio``; the first crop
    that fits is taken at a uniform position; if none fits, a central crop of the whole image clamped to ``ratio``.
    """

    num_attempts = 10

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.scale = _check_range("scale", scale, 0.0, 1.0, positive=True)
        self.ratio = _check_range("ratio", ratio, positive=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, ratio={self.ratio})"

    def sample(self, sizes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Crop boxes for images of ``sizes`` (B, 2) (width, height): long (B, 4) (left, top, right, bottom)."""
        sizes = sizes.to(torch.float64)
        width, height = sizes[:, :1], sizes[:, 1:]  # (B, 1)
        draws = _rand((4, len(sizes), self.num_attempts), generator, sizes.device).to(torch.float64)
        area = width * height * (self.scale[0] + (self.scale[1] - self.scale[0]) * draws[0])
        log_low, log_high = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_low + (log_high - log_low) * draws[1])
        crop_w = torch.round(torch.sqrt(area * aspect))  # (B, attempts)
        crop_h = torch.round(torch.sqrt(area / aspect))
        fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
        left = torch.floor(draws[2] * (width - crop_w + 1))
        top = torch.floor(draws[3] * (height - crop_h + 1))

        # the first crop that fits, else a central crop of the whole image with its aspect clamped to `ratio`
        first = fits.long().argmax(1, keepdim=True)
        crop_w, crop_h, left, top = (value.gather(1, first).squeeze(1) for value in (crop_w, crop_h, left, top))
        width, height = width.squeeze(1), height.squeeze(1)
        in_ratio = width / height
        # at least one pixel: a 1-pixel side times a ratio below 1 would round to an empty crop
        fallback_w = torch.where(in_ratio > self.ratio[1], torch.round(height * self.ratio[1]).clamp(min=1), width)
        fallback_h = torch.where(in_ratio < self.ratio[0], torch.round(width / self.ratio[0]).clamp(min=1), height)
        found = fits.any(1)
        crop_w = torch.where(found, crop_w, fallback_w)
        crop_h = torch.where(found, crop_h, fallback_h)
        left = torch.where(found, left, torch.floor((width - crop_w) / 2))
        top = torch.where(found, top, torch.floor((height - crop_h) / 2))
        return torch.stack([left, top, left + crop_w, top + crop_h], dim=1).long()


def image_sizes(images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
    """(B, 2) long tensor of the images' (width, height): PIL images, or one uint8 tensor (B, 3, H, W)."""
    if torch.is_tensor(images):
        return torch.tensor([images.shape[-1], images.shape[-2]], dtype=torch.long).expand(len(images), 2)
    return torch.tensor([image.size for image in images], dtype=torch.long).view(-1, 2)


# grid_sample's modes for PIL's filters: it has no Lanczos, box or Hamming filter; the nearest it has stands in.
TENSOR_RESAMPLING = {
    Image.Resampling.NEAREST: "nearest",
    Image.Resampling.BOX: "bilinear",
    Image.Resampling.BILINEAR: "bilinear",
    Image.Resampling.HAMMING: "bilinear",
    Image.Resampling.BICUBIC: "bicubic",
    Image.Resampling.LANCZOS: "bicubic",
}


def resized_tensor_crops(images: torch.Tensor, boxes: torch.Tensor, size: int, resample: Image.Resampling):
    """`resized_crops` of a uint8 tensor (B, 3, H, W) on its own device, all crops in one ``grid_sample``.

    Output pixel i of a box [left, right) samples the image at left + (i + 0.5) * (right - left) / size, as PIL's
    ``resize(box=...)`` does, with pixels beyond the border repeating the edge. Without PIL's antialiasing, which only
    matters when a crop is shrunk: images kept as tensors are about the views' size (CIFAR-10's 32 px for 32 px
    views), so crops are enlarged.
    """
    batch, _, height, width = images.shape
    boxes = boxes.to(images.device, torch.float32)
    steps = (torch.arange(size, device=images.device, dtype=torch.float32) + 0.5) / size  # (S,)
    x = boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])  # (B, S) in pixels from the left edge
    y = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])
    grid = torch.stack(torch.broadcast_tensors(x[:, None, :] * (2 / width) - 1, y[:, :, None] * (2 / height) - 1), -1)
    crops = torch.nn.functional.grid_sample(
        images.float(), grid, mode=TENSOR_RESAMPLING[resample], padding_mode="border", align_corners=False
    )
    return crops.round_().clamp_(0, 255).to(torch.uint8)


def resized_crops(
    images: Sequence[Image.Image] | torch.Tensor, boxes: torch.Tensor, size: int, resample: Image.Resampling
) -> torch.Tensor:
    """Crop each RGB image to its box and resize it to ``size`` x ``size`` in one PIL call: uint8 (B, 3, S, S).
    A uint8 tensor of images goes through `resized_tensor_crops` instead, on its device."""
    if torch.is_tensor(images):
        return resized_tensor_crops(images, boxes, size, resample)
    arrays = [
        np.asarray(image.resize((size, size), resample, box=tuple(box))) for image, box in zip(images, boxes.tolist())
    ]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def flip_horizontally(images: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Mirror the images (B, C, H, W) whose flag (B,) is True."""
    return torch.where(flags.to(images.device)[:, None, None, None], images.flip(-1), images)


# -- photometry: batched, on tensors ---------------------------------------------------------------------------------


def to_float(crops: torch.Tensor) -> torch.Tensor:
    """uint8 crops → float32 in [0, 1]."""
    return crops.to(torch.float32).div_(255)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std per RGB channel."""
    mean = mean.to(images.device, images.dtype)[:, None, None]
    std = std.to(images.device, images.dtype)[:, None, None]
    return images.sub(mean).div_(std)


@dataclass
class ColorAugmentation:
    """Batched photometric augmentation with torchvision's semantics, on float RGB images in [0, 1].

    Each image independently: with ``jitter_prob``, brightness, contrast, saturation and hue jitter in a random order
    (factors ~ U[max(0, 1 - s), 1 + s], hue shift ~ U[-hue, hue] of a full turn); with ``grayscale_prob``, grayscale
    (kept as 3 channels); with ``blur_prob``, a Gaussian blur of sigma ~ U(blur_sigma) (pixels at 224 px, scaled
    with the image size); with ``solarize_prob``, solarize (values >= 128/255 inverted). Defaults: the BYOL / MoBY /
    ExtreMA jitter (0.4, 0.4, 0.2, 0.1, p=0.8) and grayscale p=0.2, no blur, no solarize; `beit_color_jitter` gives
    BEiT's.
    """

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
        if not isinstance(self.hue, (int, float)) or isinstance(self.hue, bool) or not 0 <= self.hue <= 0.5:
            raise ValueError(f"hue must be a number in [0, 0.5] (a share of a full turn), got {self.hue!r}.")
        for name in ("jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
            setattr(self, name, _check_probability(name, getattr(self, name)))
        self.blur_sigma = _check_range("blur_sigma", self.blur_sigma, positive=True)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment float images (B, 3, H, W) in [0, 1]; returns a new tensor of the same shape, in [0, 1]."""
        return self.apply(images, self.draw(len(images), generator, images.device))

    def draw(self, batch: int, generator: torch.Generator | None, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The random parameters of ``batch`` images; `apply` them to several views to give each image's views the
        same colours (BEiT's encoder and tokenizer views). Every parameter of every image is drawn, used or not, so
        the stream does not depend on the outcomes."""
        draws = _rand((9, batch), generator, device)
        order = _rand((batch, 4), generator, device).argsort(1)  # each image's order of the four jitter ops
        return draws, order

    def apply(self, images: torch.Tensor, parameters: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Augment float images (B, 3, H, W) in [0, 1] with parameters from `draw`."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"ColorAugmentation expects float RGB images (B, 3, H, W), got {tuple(images.shape)}.")
        draws, order = (value.to(images.device) for value in parameters)
        images = self._jitter(images.clone(), draws[:5], order)
        gray = draws[5] < self.grayscale_prob
        if gray.any():
            images[gray] = kornia.color.rgb_to_grayscale(images[gray]).expand(-1, 3, -1, -1)
        blur = draws[6] < self.blur_prob
        if blur.any():
            images[blur] = self._blur(images[blur], draws[7][blur])
        solarize = draws[8] < self.solarize_prob
        if solarize.any():
            selected = images[solarize]
            images[solarize] = torch.where(selected >= SOLARIZE_THRESHOLD, 1 - selected, selected)
        return images

    def _jitter(self, images: torch.Tensor, draws: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        apply = draws[0] < self.jitter_prob

        def factor(strength: float, u: torch.Tensor) -> torch.Tensor:
            return max(0.0, 1 - strength) + (1 + strength - max(0.0, 1 - strength)) * u

        enhance = kornia.enhance  # torchvision's definitions: multiply, blend with the mean / the gray, HSV hue shift
        operations = [
            (self.brightness, enhance.adjust_brightness_accumulative, factor(self.brightness, draws[1])),
            (self.contrast, enhance.adjust_contrast_with_mean_subtraction, factor(self.contrast, draws[2])),
            (self.saturation, enhance.adjust_saturation_with_gray_subtraction, factor(self.saturation, draws[3])),
            (self.hue, enhance.adjust_hue, (2 * draws[4] - 1) * self.hue * 2 * math.pi),  # radians
        ]
        for step in range(4):
            for index, (strength, operation, factors) in enumerate(operations):
                selected = apply & (order[:, step] == index)
                if strength and selected.any():
                    images[selected] = operation(images[selected], factors[selected]).clamp_(0, 1)
        return images

    def _blur(self, images: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        scale = images.shape[-1] / BLUR_REFERENCE_SIZE
        low, high = (value * scale for value in self.blur_sigma)
        sigma = (low + (high - low) * u)[:, None].expand(-1, 2)
        kernel = min(2 * math.ceil(3 * high) + 1, images.shape[-1] - 1 + images.shape[-1] % 2)
        return kornia.filters.gaussian_blur2d(images, kernel, sigma, border_type="reflect")


def beit_color_jitter(strength: float = 0.4) -> ColorAugmentation | None:
    """BEiT's ``ColorJitter(strength, strength, strength)`` (unilm beit/ and beit2/ ``datasets.py``): brightness,
    contrast and saturation, no hue, on every image (no probability), no grayscale; None for strength 0."""
    if not strength:
        return None
    return ColorAugmentation(strength, strength, strength, hue=0.0, jitter_prob=1.0, grayscale_prob=0.0)


# -- the methods' view recipes ---------------------------------------------------------------------------------------


class _CropRecipe:
    """Shared set-up: a `RandomResizedCrop`, the view size and resampling, and the views' normalisation."""

    def __init__(self, image_size, image_mean, image_std, min_scale, ratio, interpolation):
        self.image_size = _check_size("image_size", image_size)
        self.image_mean = _check_stats("image_mean", image_mean)
        self.image_std = _check_stats("image_std", image_std)
        if not (self.image_std > 0).all():
            raise ValueError(f"image_std must be positive, got {image_std!r}.")
        if not isinstance(min_scale, (int, float)) or isinstance(min_scale, bool) or not 0 < min_scale <= 1:
            raise ValueError(f"min_scale (the smallest crop's share of the image) must be in (0, 1], got {min_scale}.")
        self.cropper = RandomResizedCrop((min_scale, 1.0), ratio)
        self.resample = _check_resample("interpolation", interpolation)

    def __call__(self, images: Sequence[Image.Image], generator: torch.Generator | None = None):
        """Both stages: RGB PIL images → float views."""
        return self.augment(self.crop(images, generator), generator)

    def output_sizes(self) -> list[int]:
        return [self.image_size]

    @property
    def shrink_to(self) -> int:
        """The shorter side a large image may be shrunk to before `crop` (`maskvision.data.to_rgb`'s ``shrink_to``)
        without losing detail: even the smallest, most elongated crop keeps the largest output size in pixels."""
        elongation = max(self.cropper.ratio[1], 1 / self.cropper.ratio[0])
        return math.ceil(max(self.output_sizes()) * math.sqrt(elongation / self.cropper.scale[0]))

    def _crops(self, images, generator, sizes: list[tuple[int, Image.Resampling]]) -> list[torch.Tensor]:
        """One random-resized crop + flip per image (PIL images, or a uint8 tensor (B, 3, H, W) on any device),
        resized to each (size, resampling) of ``sizes``."""
        if len(images) == 0:
            raise ValueError("No images to crop: the batch is empty.")
        boxes = self.cropper.sample(image_sizes(images), generator)
        flips = _rand(len(images), generator, torch.device("cpu")) < 0.5
        return [flip_horizontally(resized_crops(images, boxes, size, resample), flips) for size, resample in sizes]


class BeitViews(_CropRecipe):
    """BEiT's two views of one random-resized crop + flip: the encoder's and the visual tokenizer's.

    ``crop`` → (encoder crops (B, 3, S, S), tokenizer crops (B, 3, T, T)) uint8; ``augment`` → (``pixel_values``
    normalised with ``image_mean``/``image_std``, ``tokenizer_pixel_values`` in [0, 1]: tokenizers normalise their
    input themselves, CONTRIBUTING.md). With ``tokenizer_size=None`` (pixel targets) the second view is None.

    ``color`` (BEiT pretraining: `beit_color_jitter`) gives both views of an image the same colours: the official
    code jitters the whole image before its crop and flip. Here the jitter runs on the crops, batched (on the device
    with ``augment_on_device``), with one draw per image applied to both views; the only change is that contrast
    blends with the mean gray of the crop rather than of the whole image.
    """

    def __init__(
        self,
        image_size: int,
        tokenizer_size: int | None,
        image_mean,
        image_std,
        min_scale: float = 0.08,
        ratio=(3 / 4, 4 / 3),
        interpolation: str = "bicubic",
        tokenizer_interpolation: str = "lanczos",
        color: ColorAugmentation | None = None,
    ):
        super().__init__(image_size, image_mean, image_std, min_scale, ratio, interpolation)
        self.tokenizer_size = None if tokenizer_size is None else _check_size("tokenizer_size", tokenizer_size)
        self.tokenizer_resample = _check_resample("tokenizer_interpolation", tokenizer_interpolation)
        self.color = color

    def output_sizes(self) -> list[int]:
        return [self.image_size] + ([] if self.tokenizer_size is None else [self.tokenizer_size])

    def crop(self, images, generator=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        sizes = [(self.image_size, self.resample)]
        if self.tokenizer_size is not None:
            sizes.append((self.tokenizer_size, self.tokenizer_resample))
        encoder_crops, *tokenizer_crops = self._crops(images, generator, sizes)
        return encoder_crops, (tokenizer_crops[0] if tokenizer_crops else None)

    def augment(self, crops, generator=None) -> tuple[torch.Tensor, torch.Tensor | None]:
        views = [to_float(view) for view in crops if view is not None]
        if self.color is not None:
            parameters = self.color.draw(len(views[0]), generator, views[0].device)
            views = [self.color.apply(view, parameters) for view in views]
        pixel_values = normalize(views[0], self.image_mean, self.image_std)
        return pixel_values, (views[1] if len(views) > 1 else None)


class SharedCropViews(_CropRecipe):
    """ExtreMA's two branches of one random-resized crop + flip, each with its own colour augmentation.

    ``crop`` → the shared crops (B, 3, S, S) uint8; ``augment`` → (first branch, second branch), each normalised,
    each with its own draw of ``color`` (by default the official recipe: jitter 0.4/0.4/0.2/0.1 p=0.8, grayscale
    p=0.2, no blur). In ExtreMA the first branch is the masked student's view, the second the teacher's.
    """

    def __init__(
        self,
        image_size: int,
        image_mean,
        image_std,
        min_scale: float = 0.2,
        ratio=(3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        color: ColorAugmentation | None = None,
    ):
        super().__init__(image_size, image_mean, image_std, min_scale, ratio, interpolation)
        self.color = ColorAugmentation() if color is None else color

    def crop(self, images, generator=None) -> torch.Tensor:
        return self._crops(images, generator, [(self.image_size, self.resample)])[0]

    def augment(self, crops, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        shared = to_float(crops)
        first, second = (normalize(self.color(shared, generator), self.image_mean, self.image_std) for _ in range(2))
        return first, second


class TwoCropViews(_CropRecipe):
    """MoBY's two views: independent random-resized crops + flips, each with its own colour recipe.

    Defaults follow MoBY's ``byol`` augmentation: jitter 0.4/0.4/0.2/0.1 p=0.8 and grayscale p=0.2 on both; blur
    p=1.0 on the first view, blur p=0.1 and solarize p=0.2 on the second. ``crop`` → (first crops, second crops)
    uint8; ``augment`` → the two normalised views.
    """

    def __init__(
        self,
        image_size: int,
        image_mean,
        image_std,
        min_scale: float = 0.08,
        ratio=(3 / 4, 4 / 3),
        interpolation: str = "bilinear",
        first_color: ColorAugmentation | None = None,
        second_color: ColorAugmentation | None = None,
    ):
        super().__init__(image_size, image_mean, image_std, min_scale, ratio, interpolation)
        self.first_color = ColorAugmentation(blur_prob=1.0) if first_color is None else first_color
        if second_color is None:
            second_color = ColorAugmentation(blur_prob=0.1, solarize_prob=0.2)
        self.second_color = second_color

    def crop(self, images, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        sizes = [(self.image_size, self.resample)]
        return self._crops(images, generator, sizes)[0], self._crops(images, generator, sizes)[0]

    def augment(self, crops, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        first, second = (
            normalize(color(to_float(view), generator), self.image_mean, self.image_std)
            for color, view in zip((self.first_color, self.second_color), crops)
        )
        return first, second
