"""Test-wide settings (no network, small thread counts, deterministic seeds) and `image_shards`, streamed test data."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import io  # noqa: E402
import tarfile  # noqa: E402

import datasets  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _png(red: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (red, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def image_shards(tmp_path):
    """``make(kind, num_shards, per_shard, bad=())``: a glob of ``kind`` shards ("parquet" or "webdataset" .tar) of 8x8
    PNGs whose red value is the image's id (0, 1, ... in shard order), labelled id % 3; the ids in ``bad`` are
    corrupt files."""

    def make(kind: str, num_shards: int, per_shard: int, bad=()) -> str:
        folder = tmp_path / f"{kind}-{num_shards}x{per_shard}"
        folder.mkdir()
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"])})
        for shard in range(num_shards):
            ids = range(shard * per_shard, (shard + 1) * per_shard)
            images = [b"not an image" if index in bad else _png(index) for index in ids]
            if kind == "parquet":
                columns = {"image": [{"bytes": image, "path": None} for image in images], "label": [i % 3 for i in ids]}
                datasets.Dataset.from_dict(columns, features=features).to_parquet(str(folder / f"{shard:05d}.parquet"))
                continue
            with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
                for index, image in zip(ids, images):
                    for extension, data in (("png", image), ("cls", str(index % 3).encode())):
                        member = tarfile.TarInfo(f"sample{index:05d}.{extension}")
                        member.size = len(data)
                        tar.addfile(member, io.BytesIO(data))
        return str(folder / ("*.parquet" if kind == "parquet" else "*.tar"))

    return make
