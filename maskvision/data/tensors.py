"""`TensorImages`: a dataset's images decoded once into one uint8 tensor, kept on the training device.

Small images of one size (CIFAR-10: 50 000 x 3 x 32 x 32 = 150 MB) fit in an accelerator's memory many times over.
Held there, a pretraining step needs no decoding and no data-loader worker: the collators crop the rows' tensors with
`maskvision.training.inputs.transforms` on the device (``--images_on_device``), and the colour augmentation and the
normalisation follow there too (``--augment_on_device``).
"""

import torch

from .images import to_rgb

DECODE_BATCH = 1024  # images read from the dataset per call while decoding


class TensorImages(torch.utils.data.Dataset):
    """Images as one uint8 tensor (N, 3, H, W), on any device; row ``i`` is ``{"image": images[i]}`` (a view).

    Build it from a `datasets.Dataset` with an ``image`` column (`maskvision.data.load_image_dataset`) with
    `from_dataset`, or from a tensor. The collators accept these rows as they accept PIL images (see
    `maskvision.training.inputs.collators`).
    """

    def __init__(self, images: torch.Tensor):
        if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            found = f"{images.dtype} {tuple(images.shape)}" if torch.is_tensor(images) else type(images).__name__
            raise ValueError(f"TensorImages holds uint8 RGB images (N, 3, H, W), got {found}.")
        self.images = images

    @classmethod
    def from_dataset(cls, dataset, device: torch.device | str | None = None) -> "TensorImages":
        """Decode every image of ``dataset`` (through `to_rgb`) into one tensor on ``device``; the images must share
        one size (stack them as they are: resizing is the transforms' job)."""
        if len(dataset) == 0:
            raise ValueError("The dataset holds no images.")
        arrays, size = [], None
        for start in range(0, len(dataset), DECODE_BATCH):
            for offset, image in enumerate(dataset[start : start + DECODE_BATCH]["image"]):
                image = to_rgb(image)
                if size is None:
                    size = image.size
                elif image.size != size:
                    raise ValueError(
                        f"Images kept on the device must share one size: image {start + offset} is "
                        f"{image.size[0]}x{image.size[1]}, the first {size[0]}x{size[1]}. Resize the dataset to one "
                        "size first, or load the images in data-loader workers (leave out --images_on_device)."
                    )
                arrays.append(torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8))
        images = torch.stack(arrays).view(len(arrays), size[1], size[0], 3).permute(0, 3, 1, 2).contiguous()
        return cls(images.to(device) if device is not None else images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index]}

    def __getitems__(self, indices: list[int]) -> list[dict]:
        return [{"image": image} for image in self.images[torch.as_tensor(indices, device=self.images.device)]]


__all__ = ["TensorImages"]
