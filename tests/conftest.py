"""Test-wide settings (no network, small thread counts, deterministic seeds), `image_shards` (streamed test data) and
the tiny model builders the model tests share (`tiny_beit_config`, `tiny_extrema_config`, `tiny_moby_config`,
`tiny_dvae`, `tiny_vqkd_config`): 32 px images or smaller, two layers, widths 16-64, so that a forward pass takes
milliseconds on a CPU. Keyword arguments override any field; test files import them (``from conftest import ...``)."""

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

from maskvision import (  # noqa: E402
    BeitMimConfig,
    DVAEConfig,
    DVAETokenizer,
    ExtremaConfig,
    MobyConfig,
    VQKDConfig,
)
from maskvision.configuration.backbones import swin_backbone_config, vit_backbone_config  # noqa: E402
from maskvision.configuration.configuration_extrema import extrema_backbone_config  # noqa: E402
from maskvision.configuration.configuration_vqkd import VQKD_VIT_DEFAULTS  # noqa: E402

# A two-layer ViT of width 32 on 32 px images with 4 px patches (an 8x8 grid).
TINY_VIT = dict(
    image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
)
# A DALL-E dVAE with 64 codes, 16 px images and three groups (downsampling 4: a 4x4 grid of codes).
TINY_DVAE = dict(vocab_size=64, hidden_size=16, num_groups=3, blocks_per_group=1, code_embedding_size=16, image_size=16)


def tiny_beit_config(**overrides) -> BeitMimConfig:
    """BEiT-MIM on `TINY_VIT` at width 64 with 512 visual tokens."""
    return BeitMimConfig.from_size(
        "tiny", **{**TINY_VIT, "hidden_size": 64, "intermediate_size": 128, "vocab_size": 512, **overrides}
    )


def tiny_extrema_config(backbone: dict | None = None, **overrides) -> ExtremaConfig:
    """ExtreMA on `TINY_VIT` (``backbone`` overrides its fields), 4 masks, projections of 16 through width 64."""
    defaults = dict(
        backbone_config=extrema_backbone_config("tiny", **{**TINY_VIT, **(backbone or {})}),
        num_masks=4,
        projector_hidden_size=64,
        predictor_hidden_size=64,
        projection_size=16,
    )
    return ExtremaConfig(**{**defaults, **overrides})


def tiny_swin_config(**overrides):
    """A two-stage Swin on 32 px images: 4 px patches, width 32, 4x4 windows."""
    values = dict(image_size=32, patch_size=4, embed_dim=32, depths=[2, 2], num_heads=[2, 4], window_size=4)
    return swin_backbone_config("tiny", **{**values, **overrides})


def tiny_moby_config(**overrides) -> MobyConfig:
    """MoBY on `tiny_swin_config` without drop path, keys of 32 through width 64, queues of 64 keys."""
    values = dict(
        backbone_config=tiny_swin_config(drop_path_rate=0.0),
        projection_dim=32,
        projector_hidden_size=64,
        predictor_hidden_size=64,
        queue_size=64,
    )
    return MobyConfig(**{**values, **overrides})


def tiny_dvae(**overrides) -> DVAETokenizer:
    """A `TINY_DVAE` tokenizer."""
    return DVAETokenizer(DVAEConfig(**{**TINY_DVAE, **overrides}))


def tiny_vqkd_config(**overrides) -> VQKDConfig:
    """VQ-KD on 16 px images with 4 px patches: 32 codes of 8 dimensions, a two-layer encoder and one-layer decoder
    of width 32, a teacher of width 24."""
    vit = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **VQKD_VIT_DEFAULTS)
    kwargs = dict(
        vocab_size=32,
        codebook_dim=8,
        image_size=16,
        patch_size=4,
        teacher_hidden_size=24,
        encoder_config=vit_backbone_config("tiny", **vit),
        decoder_config=vit_backbone_config("tiny", **{**vit, "num_hidden_layers": 1}),
    )
    return VQKDConfig(**{**kwargs, **overrides})


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
