"""Data collators for pretraining: dataset rows holding PIL images → the batch each method's model takes.

Use them as ``Trainer(data_collator=..., args=TrainingArguments(..., remove_unused_columns=False))``: they read the
``image`` column of each row (labels and other columns are ignored), convert every image with
`maskvision.data.to_rgb` (EXIF orientation, transparency, CMYK, 16-bit...), build the method's views
(`maskvision.training.inputs.transforms`) and masks (`maskvision.training.inputs.masking`). Key names follow CONTRIBUTING.md:

| collator | keys |
| --- | --- |
| `MaskedImageModelingCollator` (BEiT) | ``pixel_values``, ``tokenizer_pixel_values``, ``bool_masked_pos`` (B, N) |
| `MultiMaskCollator` (ExtreMA) | ``pixel_values`` (student), ``teacher_pixel_values``, ``bool_masked_pos`` (B, M, N) |
| `TwoViewCollator` (MoBY) | ``pixel_values``, ``pixel_values_2`` |
| `TokenizerCollator` (visual tokenizers) | ``pixel_values`` in [0, 1] |

Random streams. When the rows carry their position in the dataset (a ``sample_index`` entry, added by
`IndexedRows`, as `run_pretraining` and `train_tokenizer` do), each batch's views and masks come from a
generator derived from (seed, epoch, the batch's sample indices): a batch is a function of its samples alone, whatever
the process, worker, number of workers or history, so a run resumed from a checkpoint replays exactly the batches of
an uninterrupted one, different ranks and workers (which collate different samples) draw different streams, and a
new epoch (`set_epoch`, called by `MaskVisionTrainer`) draws new views of the same images. Rows without the column
fall back to one ``torch.Generator`` per process, created lazily by `stream_generator` from the seed, the rank and
the data-loader worker.

``augment_on_device=True`` (``--augment_on_device``): the collators return uint8 crops and masks, and
`MaskVisionTrainer` calls the collator's ``augment(batch)`` after moving the batch to the device (flips already done,
colour, blur, solarize and normalisation there), so that the data loader keeps ahead of a fast GPU.
"""

import hashlib
import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from ...configuration.backbones import check_patch_grid
from ...data.images import to_rgb
from ...data.streaming import SAMPLE_INDEX  # the column of each row's position, read by the collators
from ...modeling.distributed import rank_and_world_size
from .masking import BlockwiseMaskGenerator, RandomMaskGenerator
from .transforms import BeitViews, ColorAugmentation, SharedCropViews, TwoCropViews, beit_color_jitter


class IndexedRows(torch.utils.data.Dataset):
    """A map-style dataset's rows with their position added as ``sample_index``, from which the collators derive each
    batch's random stream (resumable, see the module's docstring). A view, not a copy: adding a column to a
    `datasets.Dataset` whose corrupt rows were dropped would rewrite all of its images."""

    def __init__(self, dataset):
        if SAMPLE_INDEX in (getattr(dataset, "column_names", None) or ()):
            raise ValueError(f"The dataset already has a {SAMPLE_INDEX!r} column: rename it (dataset.rename_column).")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], SAMPLE_INDEX: int(index)}

    def __getitems__(self, indices: list[int]) -> list[dict]:  # the data loader's batched fetch
        fetch = getattr(self.dataset, "__getitems__", None)
        rows = fetch(indices) if fetch is not None else [self.dataset[index] for index in indices]
        return [{**row, SAMPLE_INDEX: int(index)} for row, index in zip(rows, indices)]


def _process_rank() -> int:
    """The global rank: torch.distributed's when initialised, else the launcher's ``RANK`` (a data-loader worker
    started by spawn has no process group), else 0."""
    rank, world_size = rank_and_world_size()
    return rank if world_size > 1 else int(os.environ.get("RANK", 0))


def stream_generator(seed: int, stream: int = 0) -> torch.Generator:
    """A CPU generator for this process's share of the data, seeded from ``seed``, the rank and the worker.

    Inside a data-loader worker the worker's own seed (PyTorch's ``base_seed + worker_id``, drawn anew for every
    epoch's workers) enters too, so workers, ranks and epochs all get different streams. A non-zero ``stream`` gives
    an independent stream of the same process (the on-device augmentation's).
    """
    worker = torch.utils.data.get_worker_info()
    entropy = [seed, _process_rank()] + ([worker.seed] if worker is not None else []) + ([stream] if stream else [])
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class PretrainingCollator:
    """Shared by the collators: the seed and its per-process stream, reading RGB images from the rows, and the switch
    that leaves the batched augmentation to the accelerator.

    With ``augment_on_device`` the collator stops after the per-image crops: the batch holds uint8 crops (and the
    masks), and `augment` (which `MaskVisionTrainer` calls once the batch is on the device) turns them into the
    model's float views with the same transform objects, drawing from a stream of its own. Data-loader workers then
    only decode and crop, and the photometric work runs batched on the GPU.
    """

    image_column = "image"
    _DEVICE_STREAM = 1  # `stream_generator`'s stream for the on-device augmentation

    def __init__(self, seed: int, augment_on_device: bool = False):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
        self.seed = seed
        self.epoch = 0
        self.augment_on_device = augment_on_device
        self._stream = None  # (process key, generator), made lazily in the process that collates
        self._device_stream = None  # the same for `augment`, in the training process

    @property
    def augment_on_device(self) -> bool:
        return self._augment_on_device

    @augment_on_device.setter
    def augment_on_device(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"augment_on_device must be True or False, got {value!r}.")
        self._augment_on_device = value

    @property
    def device_generator(self) -> torch.Generator:
        """The on-device augmentation's generator (CPU: its draws are small and moved to the images' device)."""
        key = (os.getpid(), _process_rank())
        if self._device_stream is None or self._device_stream[0] != key:
            self._device_stream = (key, stream_generator(self.seed, self._DEVICE_STREAM))
        return self._device_stream[1]

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A batch of uint8 crops (``augment_on_device``), on any device → the model's batch of float views."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """The epoch entering each batch's stream (`MaskVisionTrainer` calls it before every epoch)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}.")
        self.epoch = epoch

    def generator_for(self, rows: Sequence[Mapping]) -> torch.Generator:
        """The batch's generator: derived from (seed, epoch, the rows' ``sample_index``) when every row has one,
        else this process's stream (`generator`)."""
        indices = [row.get(SAMPLE_INDEX) if isinstance(row, Mapping) else None for row in rows]
        if not indices or any(index is None for index in indices):
            return self.generator
        # A 128-bit digest of the indices (in order) keeps the seeding cost flat in the batch size (~10 us at 256).
        digest = hashlib.blake2b(np.asarray(indices, dtype=np.int64).tobytes(), digest_size=16).digest()
        entropy = [self.seed, self.epoch, int.from_bytes(digest, "little")]
        state = np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(state))

    @property
    def generator(self) -> torch.Generator:
        """This process's generator (see `stream_generator`), created on first use in each process and worker."""
        worker = torch.utils.data.get_worker_info()
        key = (os.getpid(), _process_rank(), None if worker is None else worker.seed)
        if self._stream is None or self._stream[0] != key:
            self._stream = (key, stream_generator(self.seed))
        return self._stream[1]

    def images(self, rows: Sequence[Mapping]) -> list[Image.Image] | torch.Tensor:
        """The rows' images as RGB PIL images, with a clear error when the rows are not what a collator needs; rows of
        `maskvision.data.TensorImages` (uint8 (3, H, W) tensors, ``--images_on_device``) as one (B, 3, H, W) tensor
        on their device, which the views then crop there."""
        if not rows:
            raise ValueError("The collator got an empty batch.")
        if all(isinstance(row, Mapping) and _is_image_tensor(row.get(self.image_column)) for row in rows):
            return torch.stack([row[self.image_column] for row in rows])
        images = []
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping) or self.image_column not in row:
                found = sorted(row) if isinstance(row, Mapping) else type(row).__name__
                raise ValueError(
                    f"Row {index} of the batch has no {self.image_column!r} column (got {found}). The collator needs "
                    "the dataset's images: load them with maskvision.data.load_image_dataset and train with "
                    "remove_unused_columns=False."
                )
            image = row[self.image_column]
            if not isinstance(image, Image.Image):
                found = type(image).__name__
                if torch.is_tensor(image):
                    found = f"a {image.dtype} tensor {tuple(image.shape)}"
                raise TypeError(
                    f"Row {index}: {self.image_column!r} must be a PIL image, got {found} (keep the datasets Image "
                    "feature; do not set a torch/numpy format on the dataset), or in every row a uint8 (3, H, W) "
                    "tensor of one size, as maskvision.data.TensorImages gives."
                )
            images.append(to_rgb(image, shrink_to=self.views.shrink_to))
        return images


class MaskedImageModelingCollator(PretrainingCollator):
    """BEiT's batch: two views of one crop (encoder, visual tokenizer) and a blockwise mask per image.

    Args:
        image_size, patch_size: the encoder's input side and patch side (the patch must divide the image).
        image_mean, image_std: the encoder's normalisation (from its config / image processor).
        mask_generator: a `BlockwiseMaskGenerator` over the patch grid (BEiT: 75 of 14 x 14, blocks >= 16).
        tokenizer_image_size: the tokenizer's input side, ``grid * downsample_factor`` so that its token grid is the
            patch grid (BEiT: 112 for 224 / 16 with a x8 dVAE); None for pixel targets (no tokenizer view).
        min_crop_scale: the smallest crop's share of the image (BEiT: 0.08).
        interpolation, tokenizer_interpolation: the views' resampling (BEiT: bicubic, lanczos).
        color_jitter: brightness, contrast and saturation jitter, the same for both views of an image (BEiT: 0.4,
            `transforms.beit_color_jitter`); 0 disables it.
        seed: the base seed of the views and masks (see `stream_generator`).
        augment_on_device: return the uint8 crops (same keys) and leave the rest to `augment`, on the device.

    Returns ``pixel_values`` (B, 3, S, S) normalised, ``tokenizer_pixel_values`` (B, 3, T, T) in [0, 1] (unless
    ``tokenizer_image_size`` is None) and ``bool_masked_pos`` (B, N) bool, True = masked, N = (S / patch)^2 row-major.
    """

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        image_mean,
        image_std,
        mask_generator: BlockwiseMaskGenerator,
        tokenizer_image_size: int | None = None,
        min_crop_scale: float = 0.08,
        interpolation: str = "bicubic",
        tokenizer_interpolation: str = "lanczos",
        color_jitter: float = 0.4,
        seed: int = 0,
        augment_on_device: bool = False,
    ):
        super().__init__(seed, augment_on_device)
        grid = _check_mask_generator(mask_generator, BlockwiseMaskGenerator, image_size, patch_size)
        if tokenizer_image_size is not None and (
            not isinstance(tokenizer_image_size, int) or tokenizer_image_size <= 0 or tokenizer_image_size % grid
        ):
            raise ValueError(
                f"tokenizer_image_size must be a positive multiple of the patch grid ({grid} = {image_size} / "
                f"{patch_size}), so that the tokenizer's token grid is the patch grid; got {tokenizer_image_size!r}."
            )
        self.views = BeitViews(
            image_size,
            tokenizer_image_size,
            image_mean,
            image_std,
            min_crop_scale,
            interpolation=interpolation,
            tokenizer_interpolation=tokenizer_interpolation,
            color=beit_color_jitter(color_jitter),
        )
        self.mask_generator = mask_generator

    def __call__(self, rows: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        images, generator = self.images(rows), self.generator_for(rows)
        crops = self.views.crop(images, generator)
        pixel_values, tokenizer_pixel_values = crops if self.augment_on_device else self.views.augment(crops, generator)
        batch = {"pixel_values": pixel_values}
        if tokenizer_pixel_values is not None:
            batch["tokenizer_pixel_values"] = tokenizer_pixel_values
        batch["bool_masked_pos"] = self.mask_generator.gen(len(images), generator).flatten(1)
        return batch

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        crops = (batch["pixel_values"], batch.get("tokenizer_pixel_values"))
        pixel_values, tokenizer_pixel_values = self.views.augment(crops, self.device_generator)
        augmented = {**batch, "pixel_values": pixel_values}
        if tokenizer_pixel_values is not None:
            augmented["tokenizer_pixel_values"] = tokenizer_pixel_values
        return augmented


class MultiMaskCollator(PretrainingCollator):
    """ExtreMA's batch: a student and a teacher view of one crop, and several random masks per image.

    Args:
        image_size, patch_size: the encoder's input side and patch side.
        image_mean, image_std: the encoder's normalisation.
        mask_generator: a `RandomMaskGenerator` over the patch grid (ExtreMA: ratio 0.8 x 5 masks, or 0.9 x 8); the
            visible sets of one image's masks are disjoint.
        min_crop_scale: the smallest shared crop's share of the image (ExtreMA: 0.2).
        interpolation: the crop's resampling (ExtreMA, torchvision's default: bilinear).
        color: each branch's colour augmentation (default: the official jitter + grayscale, no blur).
        seed: the base seed of the views and masks.
        augment_on_device: return the uint8 crops (same keys) and leave the rest to `augment`, on the device.

    Returns ``pixel_values`` (the student's view), ``teacher_pixel_values`` (B, 3, S, S) normalised and
    ``bool_masked_pos`` (B, num_masks, N) bool, True = masked.
    """

    def __init__(
        self,
        *,
        image_size: int,
        patch_size: int,
        image_mean,
        image_std,
        mask_generator: RandomMaskGenerator,
        min_crop_scale: float = 0.2,
        interpolation: str = "bilinear",
        color: ColorAugmentation | None = None,
        seed: int = 0,
        augment_on_device: bool = False,
    ):
        super().__init__(seed, augment_on_device)
        _check_mask_generator(mask_generator, RandomMaskGenerator, image_size, patch_size)
        self.views = SharedCropViews(
            image_size, image_mean, image_std, min_crop_scale, interpolation=interpolation, color=color
        )
        self.mask_generator = mask_generator

    def __call__(self, rows: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        images, generator = self.images(rows), self.generator_for(rows)
        crops = self.views.crop(images, generator)
        if self.augment_on_device:  # the shared crops; `augment` makes both branches
            return {"pixel_values": crops, "bool_masked_pos": self.mask_generator.gen(len(images), generator)}
        student, teacher = self.views.augment(crops, generator)
        return {
            "pixel_values": student,
            "teacher_pixel_values": teacher,
            "bool_masked_pos": self.mask_generator.gen(len(images), generator),
        }

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        student, teacher = self.views.augment(batch["pixel_values"], self.device_generator)
        return {**batch, "pixel_values": student, "teacher_pixel_values": teacher}


class TwoViewCollator(PretrainingCollator):
    """MoBY's batch: two independently cropped and colour-augmented views per image (no masks).

    Args:
        image_size: the views' side.
        image_mean, image_std: the encoder's normalisation.
        min_crop_scale: the smallest crop's share of the image (MoBY: 0.08).
        interpolation: the crops' resampling (MoBY, torchvision's default: bilinear).
        first_color, second_color: the views' colour recipes (default: BYOL's, blur p=1.0 / p=0.1 + solarize 0.2).
        seed: the base seed of the views.
        augment_on_device: return the uint8 crops (same keys) and leave the rest to `augment`, on the device.

    Returns ``pixel_values`` and ``pixel_values_2`` (B, 3, S, S) normalised.
    """

    def __init__(
        self,
        *,
        image_size: int,
        image_mean,
        image_std,
        min_crop_scale: float = 0.08,
        interpolation: str = "bilinear",
        first_color: ColorAugmentation | None = None,
        second_color: ColorAugmentation | None = None,
        seed: int = 0,
        augment_on_device: bool = False,
    ):
        super().__init__(seed, augment_on_device)
        self.views = TwoCropViews(
            image_size,
            image_mean,
            image_std,
            min_crop_scale,
            interpolation=interpolation,
            first_color=first_color,
            second_color=second_color,
        )

    def __call__(self, rows: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        generator = self.generator_for(rows)
        crops = self.views.crop(self.images(rows), generator)
        first, second = crops if self.augment_on_device else self.views.augment(crops, generator)
        return {"pixel_values": first, "pixel_values_2": second}

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        first, second = self.views.augment((batch["pixel_values"], batch["pixel_values_2"]), self.device_generator)
        return {**batch, "pixel_values": first, "pixel_values_2": second}


class TokenizerCollator(PretrainingCollator):
    """Rows holding a PIL ``image`` → ``{"pixel_values": (B, 3, S, S)}`` in [0, 1]: one random-resized crop (area
    ``min_crop_scale``-1 of the image) + flip, no colour augmentation (VQ-KD's ``--color_jitter 0``), resized with
    ``interpolation`` (`BeitViews`' view recipe at the tokenizer's size, unnormalised: tokenizers map their input
    themselves)."""

    def __init__(
        self,
        image_size: int,
        min_crop_scale: float = 0.08,
        seed: int = 0,
        augment_on_device: bool = False,
        interpolation: str = "lanczos",
    ):
        super().__init__(seed, augment_on_device)
        self.views = BeitViews(
            image_size,
            None,
            image_mean=(0.0, 0.0, 0.0),
            image_std=(1.0, 1.0, 1.0),
            min_scale=min_crop_scale,
            interpolation=interpolation,
        )

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        generator = self.generator_for(rows)
        crops = self.views.crop(self.images(rows), generator)
        pixel_values, _ = crops if self.augment_on_device else self.views.augment(crops, generator)
        return {"pixel_values": pixel_values}

    def augment(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pixel_values, _ = self.views.augment((batch["pixel_values"], None), self.device_generator)
        return {**batch, "pixel_values": pixel_values}


def _is_image_tensor(value) -> bool:
    """A row's image held as a tensor (`maskvision.data.TensorImages`): uint8, (3, H, W)."""
    return torch.is_tensor(value) and value.dtype == torch.uint8 and value.ndim == 3 and value.shape[0] == 3


def _check_mask_generator(mask_generator, kind: type, image_size: int, patch_size: int) -> int:
    """The patch grid side; raises unless ``mask_generator`` is a ``kind`` over that grid."""
    grid = check_patch_grid(image_size, patch_size)
    if not isinstance(mask_generator, kind):
        raise TypeError(f"mask_generator must be a {kind.__name__}, got {type(mask_generator).__name__}.")
    if (mask_generator.height, mask_generator.width) != (grid, grid):
        raise ValueError(
            f"mask_generator covers a {mask_generator.height}x{mask_generator.width} grid, but image_size "
            f"{image_size} / patch_size {patch_size} gives {grid}x{grid} patches."
        )
    return grid
