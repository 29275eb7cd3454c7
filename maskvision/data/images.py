"""`to_rgb`: the one conversion from any PIL image a user's data holds to the 8-bit RGB image every consumer
(collators, evaluation, the demo) works on.

Real photo collections hold more than RGB JPEGs: camera images rotated by an EXIF tag, grayscale scans, PNGs with
transparency, CMYK print files, 16-bit and floating-point scientific images, 1-bit masks, 1-pixel thumbnails and
40-megapixel originals. ``image.convert("RGB")`` gets several of these silently wrong: it ignores the EXIF
orientation, turns transparent pixels into whatever colour they happen to hold (often black), clips 16-bit and
float values to white, and decodes a huge JPEG at full size only for it to be resized to 224 pixels.
"""

import io

import numpy as np
from PIL import Image, ImageCms, ImageOps

# Modes with an alpha channel. ("P" and "L"/"RGB" images can also carry a transparent colour in info["transparency"].)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})
# 16-bit integer modes: their nominal range is 0..65535.
UINT16_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# 32-bit integer and float modes: no nominal range, see `_high_bit_depth_to_8bit`.
WIDE_MODES = frozenset({"I", "F"})
# EXIF orientations other than 1 (upright): mirrored and/or rotated.
TRANSPOSED_ORIENTATIONS = frozenset(range(2, 9))
# transformers' `image_transforms.convert_to_rgb` composites transparent images on white: so do we, so that training
# and a stock image processor see the same pixels.
DEFAULT_BACKGROUND = (255, 255, 255)

_SRGB_PROFILE = ImageCms.createProfile("sRGB")


def to_rgb(
    image: Image.Image,
    background: tuple[int, int, int] = DEFAULT_BACKGROUND,
    shrink_to: int | None = None,
) -> Image.Image:
    """Convert ``image`` to an 8-bit RGB image, upright and opaque.

    - EXIF orientation is applied (and removed, so a second call does not rotate again).
    - Transparency (RGBA, LA, PA, palette or grayscale with a transparent colour) is composited on ``background``.
    - CMYK goes through its embedded ICC profile when it has one (PIL's own formula otherwise).
    - 16-bit modes (I;16, I;16B, ...) are scaled from 0..65535 to 0..255. 32-bit integer (I) and float (F) images
      have no nominal range: values within [0, 1], [0, 255] or [0, 65535] are scaled from that range, any other
      range is stretched min..max to 0..255. Nothing is clipped to white.
    - Grayscale, 1-bit, palette, YCbCr, LAB and HSV images are converted by PIL.
    - ``shrink_to``: when given, an image whose shorter side is at least twice ``shrink_to`` is shrunk by the largest
      integer factor that keeps its shorter side >= ``shrink_to`` (a JPEG not decoded yet, as ``Image.open`` gives
      it, is set by ``draft()`` to decode at 1/2, 1/4 or 1/8 of its size; a decoded image is box-reduced). Use it with the size the image is cropped
      and resized to next, so that a 40-megapixel photo does not travel through augmentation at full size.

    An upright opaque RGB image that needs no shrinking is returned as is (no copy), so the call is idempotent and
    cheap on images that are already converted. Small images (even 1x1) are returned at their size: resizing is the
    transforms' job. Raises `TypeError` for anything but a PIL image and `ValueError` for a mode PIL cannot convert.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"to_rgb expects a PIL.Image.Image, got {type(image).__name__}.")
    if shrink_to is not None:
        if shrink_to < 1:
            raise ValueError(f"shrink_to must be a positive number of pixels or None, got {shrink_to}.")
        # Before anything decodes the image (this sets up the caller's lazily opened JPEG).
        _draft(image, shrink_to)
    if image.getexif().get(Image.ExifTags.Base.Orientation) in TRANSPOSED_ORIENTATIONS:
        image = ImageOps.exif_transpose(image)

    if image.mode in UINT16_MODES or image.mode in WIDE_MODES:
        image = _high_bit_depth_to_8bit(image)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        image = _composite(image, background)
    elif image.mode == "CMYK":
        image = _cmyk_to_rgb(image)
    elif image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise ValueError(f"Cannot convert an image of mode {image.mode!r} to RGB: {error}") from error

    if shrink_to is not None:
        image = _reduce(image, shrink_to)
    return image


def _draft(image: Image.Image, shrink_to: int) -> None:
    factor = min(image.size) // shrink_to
    if factor >= 2:  # a no-op for formats other than JPEG and for images already decoded
        image.draft(None, (image.width // factor, image.height // factor))


def _reduce(image: Image.Image, shrink_to: int) -> Image.Image:
    factor = min(image.size) // shrink_to
    return image.reduce(factor) if factor >= 2 else image


def _composite(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc_profile = image.info.get("icc_profile")
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            return ImageCms.profileToProfile(image, source, _SRGB_PROFILE, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to PIL's formula
    return image.convert("RGB")


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """An "L" image, or "LA" when a transparent value is set (a 16-bit PNG's tRNS gray level)."""
    values = np.asarray(image).astype(np.float32)
    finite = np.isfinite(values)
    if image.mode in UINT16_MODES:
        low, high = 0.0, 65535.0
    elif not finite.any():
        low, high = 0.0, 1.0
    else:
        low, high = float(values[finite].min()), float(values[finite].max())
        for nominal in (1.0, 255.0, 65535.0):
            if low >= 0.0 and high <= nominal:
                low, high = 0.0, nominal
                break
    scaled = (np.where(finite, values, low) - low) * (255.0 / max(high - low, 1e-12))
    gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))
    if "transparency" in image.info:
        opaque = np.asarray(image) != image.info["transparency"]
        gray.putalpha(Image.fromarray(opaque.astype(np.uint8) * 255))
    return gray
