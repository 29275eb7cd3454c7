"""maskvision.data: `to_rgb` on every kind of odd image, `load_image_dataset` on folders, parquet and the demo set,
bad images (skip / raise), column detection by feature type, and every error message."""

import io
import logging
import os
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from datasets import Image as ImageFeature
from PIL import Image

from maskvision.data import BadImageError, bad_images, load_image_dataset, to_rgb
from maskvision.data.loading import DEMO_FILES

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


# ----------------------------------------------------------------------------------------------- odd images


def encode(image: Image.Image, format: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **kwargs)
    return buffer.getvalue()


def reopen(image: Image.Image, format: str = "PNG", **kwargs) -> Image.Image:
    """The image as a file on disk would give it back."""
    return Image.open(io.BytesIO(encode(image, format, **kwargs)))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


def halves(left, right, size=(32, 16), mode="RGB") -> Image.Image:
    """``left`` colour on the left half, ``right`` on the right half."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def exif_rotated_jpeg() -> bytes:
    """Stored 32x16 with red left / blue right, EXIF orientation 6: displayed 16x32, red on top."""
    exif = Image.Exif()
    exif[Image.ExifTags.Base.Orientation] = 6
    return encode(halves(RED, BLUE), "JPEG", quality=95, exif=exif.tobytes())


def gradient16(size=(64, 64)) -> np.ndarray:
    return np.linspace(0, 65535, size[0] * size[1]).reshape(size[1], size[0]).astype(np.uint16)


def palette_with_transparency() -> Image.Image:
    """Palette image, index 0 (left half) transparent, index 1 (right half) green."""
    image = halves(0, 1, mode="P")
    image.putpalette([255, 0, 0, 0, 255, 0])
    image.info["transparency"] = 0
    return image


def odd_image_files() -> dict[str, bytes]:
    """One file of every kind of image real collections hold, all decodable."""
    gray_alpha = Image.new("LA", (20, 10), (80, 255))
    gray_alpha.paste((0, 0), (0, 0, 10, 10))
    return {
        "gray.png": encode(Image.new("L", (24, 24), 77)),
        "gray_alpha.png": encode(gray_alpha),
        "rgba.png": encode(Image.new("RGBA", (24, 24), (0, 0, 0, 0))),
        "palette_transparent.png": encode(palette_with_transparency()),
        "palette.gif": encode(halves(0, 1, mode="P"), "GIF"),
        "cmyk.jpg": encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95),
        "gray16.png": encode(Image.fromarray(gradient16())),
        "float.tiff": encode(Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)), "TIFF"),
        "bilevel.png": encode(halves(0, 1, mode="1")),
        "exif_rotated.jpg": exif_rotated_jpeg(),
        "tiny_1x1.png": encode(Image.new("RGB", (1, 1), RED)),
        "tiny_7x5.webp": encode(Image.new("RGB", (7, 5), BLUE), "WEBP", lossless=True),
        "large.jpg": encode(Image.new("RGB", (3000, 2000), (90, 120, 150)), "JPEG"),
    }


def bad_image_files() -> dict[str, bytes]:
    jpeg = encode(Image.effect_noise((64, 64), 60).convert("RGB"), "JPEG")
    png = encode(Image.effect_noise((64, 64), 60))
    return {
        "corrupt.jpg": b"\x89PNG not really an image",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "truncated.png": png[: len(png) // 2],
        "empty.png": b"",
    }


def write_files(folder, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    return str(folder)


def write_parquet(path, columns: dict, features: Features | None = None) -> str:
    Dataset.from_dict(columns, features=features).to_parquet(str(path))
    return str(path)


def image_rows(images: list[bytes]) -> list[dict]:
    return [{"bytes": data, "path": None} for data in images]


def file_names(dataset: Dataset) -> list[str]:
    stored = dataset.cast_column("image", ImageFeature(decode=False))["image"]
    return [os.path.basename(value["path"]) for value in stored]


@pytest.fixture
def load(tmp_path):
    """`load_image_dataset` with a cache of the test's own."""
    return partial(load_image_dataset, cache_dir=str(tmp_path / "cache"))


@pytest.fixture
def odd_folder(tmp_path):
    return write_files(tmp_path / "odd", odd_image_files())


# ----------------------------------------------------------------------------------------------- to_rgb


def test_rgb_image_is_returned_as_is():
    image = Image.new("RGB", (8, 8), RED)
    assert to_rgb(image) is image


def test_grayscale_and_bilevel_become_gray_rgb():
    gray = to_rgb(reopen(Image.new("L", (4, 4), 77)))
    assert gray.mode == "RGB" and (pixels(gray) == 77).all()
    bilevel = pixels(to_rgb(reopen(halves(0, 1, mode="1"))))
    assert (bilevel[:, :16] == 0).all() and (bilevel[:, 16:] == 255).all()


def test_transparent_pixels_are_composited_on_the_background():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # transparent black: the classic black-garbage case
    rgba.putpixel((0, 0), (0, 0, 0, 128))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    out = pixels(to_rgb(reopen(rgba)))
    assert tuple(out[3, 3]) == WHITE
    assert np.abs(out[0, 0] - 127).max() <= 1  # half-transparent black over white
    assert tuple(out[0, 1]) == RED
    assert tuple(pixels(to_rgb(rgba, background=(128, 128, 128)))[3, 3]) == (128, 128, 128)


def test_gray_alpha_and_palette_transparency():
    gray_alpha = Image.new("LA", (2, 1), (80, 255))
    gray_alpha.putpixel((0, 0), (0, 0))
    out = pixels(to_rgb(reopen(gray_alpha)))
    assert tuple(out[0, 0]) == WHITE and tuple(out[0, 1]) == (80, 80, 80)

    palette = reopen(palette_with_transparency())
    assert palette.mode == "P" and "transparency" in palette.info
    out = pixels(to_rgb(palette))
    assert (out[:, :16] == 255).all() and (out[:, 16:] == (0, 255, 0)).all()

    palette_alpha = halves(0, 1, mode="P")
    palette_alpha.putpalette([255, 0, 0, 0, 0, 255])
    palette_alpha = palette_alpha.convert("PA")
    palette_alpha.putalpha(halves(0, 255, mode="L"))
    out = pixels(to_rgb(palette_alpha))
    assert (out[:, :16] == 255).all() and (out[:, 16:] == BLUE).all()


def test_8bit_gray_with_a_transparent_level():
    image = Image.new("L", (2, 1), 10)
    image.putpixel((1, 0), 200)
    image.info["transparency"] = 10
    out = pixels(to_rgb(image))
    assert tuple(out[0, 0]) == WHITE and tuple(out[0, 1]) == (200, 200, 200)


def test_cmyk_becomes_rgb():
    cyan_free = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    assert tuple(pixels(to_rgb(cyan_free))[0, 0]) == RED
    jpeg = reopen(cyan_free, "JPEG", quality=95)
    assert jpeg.mode == "CMYK"
    assert np.abs(pixels(to_rgb(jpeg)) - RED).max() <= 8
    cyan_free.info["icc_profile"] = b"not a profile"  # a broken embedded profile falls back to PIL's formula
    assert tuple(pixels(to_rgb(cyan_free))[0, 0]) == RED


def test_16bit_images_are_scaled_not_clipped():
    values = gradient16()
    image = reopen(Image.fromarray(values))
    assert image.mode == "I;16"
    out = pixels(to_rgb(image))[..., 0]
    expected = np.rint(values / 257.0)
    assert np.abs(out - expected).max() <= 1
    assert out.min() == 0 and out.max() == 255 and 120 < out.mean() < 135  # not white
    big_endian = Image.frombytes("I;16B", (64, 64), values.astype(">u2").tobytes())
    assert (pixels(to_rgb(big_endian))[..., 0] == out).all()
    as_int32 = Image.fromarray(values.astype(np.int32))
    assert as_int32.mode == "I" and (pixels(to_rgb(as_int32))[..., 0] == out).all()


def test_16bit_png_with_a_transparent_level():
    values = np.array([[0, 65535, 1000]], dtype=np.uint16)
    image = reopen(Image.fromarray(values), transparency=1000)
    assert image.mode == "I;16" and image.info["transparency"] == 1000
    out = pixels(to_rgb(image))
    assert tuple(out[0, 0]) == (0, 0, 0) and tuple(out[0, 1]) == WHITE and tuple(out[0, 2]) == WHITE


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.0, 0.5, 1.0], [0, 128, 255]),  # within [0, 1]: x 255
        ([0.0, 100.0, 255.0], [0, 100, 255]),  # within [0, 255]: as is
        ([-1.0, 1.0, 3.0], [0, 128, 255]),  # other ranges: min..max stretched
        ([np.nan, 0.25, 1.0], [0, 64, 255]),  # non-finite values: the low end
    ],
)
def test_float_images_are_scaled_by_their_range(values, expected):
    image = Image.fromarray(np.array([values], dtype=np.float32))
    assert image.mode == "F"
    assert pixels(to_rgb(image))[0, :, 0].tolist() == expected


def test_32bit_integer_ranges():
    assert pixels(to_rgb(Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32))))[0, :, 0].tolist() == [0, 100, 255]
    stretched = pixels(to_rgb(Image.fromarray(np.array([[-500, 0, 500]], dtype=np.int32))))[0, :, 0]
    assert stretched.tolist() == [0, 128, 255]


def test_float_tiff_from_disk():
    values = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    image = reopen(Image.fromarray(values), "TIFF")
    assert image.mode == "F"
    assert np.abs(pixels(to_rgb(image))[..., 0] - values * 255).max() <= 0.5


def test_exif_orientation_is_applied_once():
    image = Image.open(io.BytesIO(exif_rotated_jpeg()))
    assert image.size == (32, 16)
    upright = to_rgb(image)
    assert upright.size == (16, 32)
    out = pixels(upright)
    assert np.abs(out[4, 8] - RED).max() < 40 and np.abs(out[28, 8] - BLUE).max() < 40  # red on top
    assert to_rgb(upright) is upright  # idempotent: the orientation tag is gone


@pytest.mark.parametrize(
    "image, expected",
    [
        (Image.new("RGB", (3, 2), RED).convert("YCbCr"), RED),
        (Image.new("HSV", (3, 2), (0, 255, 255)), RED),
        (Image.new("LAB", (3, 2), (255, 128, 128)), WHITE),
        (Image.new("RGBX", (3, 2), (*BLUE, 0)), BLUE),
    ],
    ids=["YCbCr", "HSV", "LAB", "RGBX"],
)
def test_other_colour_spaces(image, expected):
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == (3, 2)
    assert np.abs(pixels(out) - expected).max() <= 2


@pytest.mark.parametrize("size", [(1, 1), (7, 5)])
@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "I;16", "F", "1"])
def test_tiny_images_keep_their_size(size, mode):
    out = to_rgb(Image.new(mode, size))
    assert out.mode == "RGB" and out.size == size
    assert to_rgb(out) is out


def test_large_jpeg_decodes_at_reduced_size_with_draft():
    image = Image.open(io.BytesIO(encode(Image.new("RGB", (4000, 3000), (90, 120, 150)), "JPEG")))
    out = to_rgb(image, shrink_to=224)
    assert out.size == (500, 375)  # 1/8 DCT scaling: shorter side 375 >= 224, and < 2 x 224 so no further reduce
    assert np.abs(pixels(out).mean(axis=(0, 1)) - (90, 120, 150)).max() < 3


def test_large_decoded_image_is_reduced_by_an_integer_factor():
    image = Image.new("RGB", (2000, 1000), RED)
    out = to_rgb(image, shrink_to=224)
    assert out.size == (500, 250)  # factor 1000 // 224 = 4
    assert to_rgb(out, shrink_to=224) is out
    small = Image.new("RGB", (300, 200), RED)
    assert to_rgb(small, shrink_to=224) is small


def test_to_rgb_errors():
    with pytest.raises(TypeError, match="PIL.Image.Image, got ndarray"):
        to_rgb(np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="mode 'La'"):
        to_rgb(Image.new("La", (2, 2)))
    with pytest.raises(ValueError, match="shrink_to must be a positive"):
        to_rgb(Image.new("RGB", (2, 2)), shrink_to=0)


# ----------------------------------------------------------------------------------------------- folders


def test_folder_of_odd_images_loads_and_every_row_decodes(load, odd_folder, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = load(odd_folder)
    assert "Skipped" not in caplog.text
    assert dataset.column_names == ["image"]  # a flat folder has no labels
    assert len(dataset) == len(odd_image_files())
    sizes = {}
    for name, row in zip(file_names(dataset), dataset):
        image = to_rgb(row["image"])
        assert image.mode == "RGB"
        sizes[name] = image.size
    assert sizes["exif_rotated.jpg"] == (16, 32)
    assert sizes["tiny_1x1.png"] == (1, 1) and sizes["tiny_7x5.webp"] == (7, 5)
    assert sizes["large.jpg"] == (3000, 2000)


def test_bad_images_in_a_folder_are_skipped_with_one_warning(load, tmp_path, caplog):
    good = {f"good_{index}.png": encode(Image.new("RGB", (8, 8), (index, 0, 0))) for index in range(3)}
    folder = write_files(tmp_path / "mixed", {**good, **bad_image_files()})
    with caplog.at_level(logging.WARNING, logger="maskvision"):
        dataset = load(folder)
    assert len(dataset) == 3
    assert sorted(file_names(dataset)) == sorted(good)
    warnings = [record for record in caplog.records if "Skipped" in record.getMessage()]
    assert len(warnings) == 1 and "Skipped 4 of 7 images" in warnings[0].getMessage()


def test_bad_image_in_a_folder_raises_naming_row_and_file(load, tmp_path):
    files = {"a.png": encode(Image.new("RGB", (8, 8))), "b.jpg": bad_image_files()["truncated.jpg"]}
    folder = write_files(tmp_path / "one_bad", files)
    with pytest.raises(BadImageError, match=r"row 1 \(.*b\.jpg\)") as caught:
        load(folder, on_bad_image="raise")
    assert caught.value.index == 1 and caught.value.path.endswith("b.jpg") and "truncated" in caught.value.reason


def test_images_over_the_decompression_bomb_limit_are_bad(load, tmp_path, monkeypatch):
    folder = write_files(
        tmp_path / "bomb",
        {"small.png": encode(Image.new("RGB", (20, 20))), "huge.png": encode(Image.new("RGB", (100, 100)))},
    )
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100 x 100 > 2 x 1000: PIL would refuse it in a worker
    assert len(load(folder)) == 1
    with pytest.raises(BadImageError, match="MAX_IMAGE_PIXELS"):
        load(folder, on_bad_image="raise")


def test_class_folders_give_labels_and_split_folders_give_splits(load, tmp_path):
    files = {
        f"{split}/{name}/{index}.png": encode(Image.new("RGB", (4, 4)))
        for split in ("train", "val")
        for name in ("cat", "dog")
        for index in range(2)
    }
    folder = write_files(tmp_path / "classes", files)
    train = load(folder)
    assert train.column_names == ["image", "label"] and train.features["label"].names == ["cat", "dog"]
    assert sorted(train["label"]) == [0, 0, 1, 1]
    assert len(load(folder, split="validation")) == 4
    with pytest.raises(ValueError, match=r"Split 'test' not found .*its splits: 'train', 'validation'"):
        load(folder, split="test")
    assert load(os.path.join(folder, "train"), drop_labels=True).column_names == ["image"]


def test_file_names_never_choose_a_split_and_the_counts_are_reported(load, tmp_path, caplog):
    """87 of a real corpus's 970 file names held "test": datasets made them the only split and dropped the rest."""
    names = ["test-card.png", "g4-fillorder-test.tif", "x_train.png", "val.png", "validation-2.png",
             "deep/eval_1.png", "deep/er/training.png", "plain.png"]  # fmt: skip
    files = {name: encode(Image.new("RGB", (4, 4)), "TIFF" if name.endswith(".tif") else "PNG") for name in names}
    folder = write_files(tmp_path / "named", {**files, "broken-test.png": b"not an image"})
    with caplog.at_level(logging.INFO, logger="maskvision"):
        dataset = load(folder)
    assert sorted(file_names(dataset)) == sorted(os.path.basename(name) for name in names)  # nothing dropped
    assert "split 'train': 9 images found, 8 kept, 1 skipped" in caplog.text
    with pytest.raises(ValueError, match=r"Split 'test' not found in .*; its splits: 'train'"):
        load(folder, split="test")  # one split: an evaluation there would score the training images
    inferred = load(folder, split="test", split_from_file_names=True)  # asked for: datasets' inference
    assert "test-card.png" in file_names(inferred) and "plain.png" not in file_names(inferred)


def test_split_folders_are_the_splits_and_other_entries_are_named(load, tmp_path, caplog):
    image = encode(Image.new("RGB", (4, 4)))
    folder = write_files(
        tmp_path / "splits",
        {"train/a.png": image, "train/test-b.png": image, "val/c.png": image, "stray.png": image, "extra/d.png": image},
    )
    with caplog.at_level(logging.WARNING, logger="maskvision"):
        assert len(load(folder)) == 2 and len(load(folder, split="validation")) == 1
    assert "2 other entries at its top are in no split and not used: extra/, stray.png" in caplog.text


def test_check_is_cached_by_fingerprint(load, odd_folder, monkeypatch):
    first = load(odd_folder)

    def fail(*args, **kwargs):
        raise AssertionError("images decoded a second time")

    monkeypatch.setattr(bad_images, "image_error", fail)
    second = load(odd_folder)
    assert len(second) == len(first)


# ----------------------------------------------------------------------------------------------- parquet


def test_bad_images_in_parquet_skip_the_right_rows_or_raise_naming_the_row(load, tmp_path):
    good = encode(Image.new("RGB", (8, 8), RED))
    bad = bad_image_files()
    images = [good, bad["corrupt.jpg"], good, bad["truncated.jpg"], good, bad["empty.png"]]
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=[str(i) for i in range(6)])})
    path = write_parquet(tmp_path / "bad.parquet", {"image": image_rows(images), "label": list(range(6))}, features)
    dataset = load(path)
    assert dataset["label"] == [0, 2, 4]
    assert all(to_rgb(row["image"]).size == (8, 8) for row in dataset)
    with pytest.raises(BadImageError, match=r"row 1 of .*bad\.parquet.*\(2 more rows cannot be decoded"):
        load(path, on_bad_image="raise")


def test_max_train_samples_draws_at_random_from_class_sorted_data(tmp_path):
    """CIFAR-10's parquet files are sorted by class: the first N rows would pretrain on a single class."""
    from maskvision.training.runs.pretrain import DataArguments

    image = encode(Image.new("RGB", (4, 4)))
    features = Features({"image": ImageFeature(), "label": ClassLabel(names=["a", "b", "c", "d"])})
    path = write_parquet(
        tmp_path / "sorted.parquet",
        {"image": image_rows([image] * 40), "label": [i // 10 for i in range(40)]},
        features,
    )
    arguments = DataArguments(dataset=path, max_train_samples=8)
    subset = arguments.load(seed=0)
    assert len(subset) == 8 and len(set(subset["label"])) > 1
    assert subset["label"] == arguments.load(seed=0)["label"]  # fixed by the seed
    everything = DataArguments(dataset=path, max_train_samples=50).load()  # more than there are: all of them
    assert sorted(everything["label"]) == sorted(load_image_dataset(path)["label"])


def test_parquet_glob_and_folder_of_parquet_splits(load, tmp_path):
    image = encode(Image.new("RGB", (4, 4)))
    folder = tmp_path / "shards"
    folder.mkdir()
    for name, count in (("train-00000-of-00002", 3), ("train-00001-of-00002", 2), ("test-00000-of-00001", 4)):
        write_parquet(
            folder / f"{name}.parquet", {"image": image_rows([image] * count)}, Features({"image": ImageFeature()})
        )
    assert len(load(str(folder / "train-*.parquet"))) == 5
    assert len(load(str(folder / "*.parquet"), split="validation")) == 9  # a file or glob is the split asked for
    assert len(load(str(folder), split="test")) == 4  # a folder: splits from the file names
    assert len(load(str(folder), split="train[:4]")) == 4


def test_columns_are_found_by_feature_type(load, tmp_path):
    image = encode(Image.new("RGB", (4, 4), RED))
    features = Features(
        {"caption": Value("string"), "picture": ImageFeature(), "category": ClassLabel(names=["a", "b"])}
    )
    path = write_parquet(
        tmp_path / "named.parquet",
        {"caption": ["x", "y"], "picture": image_rows([image] * 2), "category": [1, 0]},
        features,
    )
    dataset = load(path)
    assert dataset.column_names == ["image", "label"]
    assert dataset.features["label"].names == ["a", "b"] and dataset["label"] == [1, 0]
    assert tuple(pixels(to_rgb(dataset[0]["image"]))[0, 0]) == RED


def test_undeclared_image_columns_are_sniffed(load, tmp_path):
    """Parquet written without datasets' metadata: the {bytes, path} struct or raw bytes, found by content."""
    image = encode(Image.new("RGB", (4, 4), BLUE))
    struct = pa.table({"note": ["x", "y"], "pixels": [{"bytes": image, "path": None}] * 2, "target": [3, 5]})
    pq.write_table(struct, tmp_path / "struct.parquet")
    dataset = load(str(tmp_path / "struct.parquet"))
    assert dataset.column_names == ["image", "label"] and dataset["label"] == [3, 5]
    assert isinstance(dataset.features["image"], ImageFeature)

    raw = pa.table(
        {"blob": pa.array([b"\x00\x01 not an image"] * 2), "jpg": pa.array([image] * 2), "label": ["dog", "cat"]}
    )
    pq.write_table(raw, tmp_path / "raw.parquet")
    dataset = load(str(tmp_path / "raw.parquet"))
    assert dataset.column_names == ["image", "label"]
    assert dataset.features["label"].names == ["cat", "dog"] and dataset["label"] == [1, 0]  # strings encoded
    assert tuple(pixels(to_rgb(dataset[1]["image"]))[0, 0]) == BLUE


def test_several_image_columns(load, tmp_path):
    image = encode(Image.new("RGB", (4, 4), RED))
    mask = encode(Image.new("L", (4, 4)))
    features = Features({"mask": ImageFeature(), "image": ImageFeature()})
    path = write_parquet(tmp_path / "two.parquet", {"mask": image_rows([mask]), "image": image_rows([image])}, features)
    assert load(path)[0]["image"].mode == "RGB"  # the one named image
    undecoded = Features({"mask": ImageFeature(decode=False), "image": ImageFeature(decode=False)})
    path = write_parquet(
        tmp_path / "undecoded.parquet", {"mask": image_rows([mask]), "image": image_rows([image])}, undecoded
    )
    assert isinstance(load(path)[0]["image"], Image.Image)  # always PIL on access
    assert load(path, image_column="mask")[0]["image"].mode == "L"

    features = Features({"left": ImageFeature(), "right": ImageFeature()})
    path = write_parquet(
        tmp_path / "pair.parquet", {"left": image_rows([image]), "right": image_rows([mask])}, features
    )
    with pytest.raises(ValueError, match=r"several image columns \(left, right\): pass image_column="):
        load(path)


def test_explicit_column_of_file_paths(load, tmp_path):
    folder = write_files(tmp_path / "files", {"a.png": encode(Image.new("RGB", (5, 5), RED))})
    path = write_parquet(tmp_path / "paths.parquet", {"file": [os.path.join(folder, "a.png")], "y": [7]})
    dataset = load(path, image_column="file", label_column="y")
    assert dataset.column_names == ["image", "label"] and dataset[0]["label"] == 7
    assert dataset[0]["image"].size == (5, 5)


# ----------------------------------------------------------------------------------------------- demo set


def test_demo_set_is_balanced_cifar10_and_small():
    assert sum(os.path.getsize(path) for path in DEMO_FILES.values()) <= 5 * 1024 * 1024
    for split, per_class in (("train", 200), ("test", 50)):
        dataset = load_image_dataset("demo", split=split)
        assert len(dataset) == 10 * per_class
        assert dataset.features["label"].names == CIFAR10_CLASSES
        assert np.bincount(dataset["label"], minlength=10).tolist() == [per_class] * 10
        assert len(set(dataset["label"][:100])) == 10  # shuffled: a prefix holds every class
        images = dataset.with_format("arrow")["image"].to_pylist()
        for value in images:
            with Image.open(io.BytesIO(value["bytes"])) as image:
                assert image.size == (32, 32)
    train = load_image_dataset("demo").with_format("arrow")["image"].to_pylist()
    test = load_image_dataset("demo", split="test").with_format("arrow")["image"].to_pylist()
    assert not {value["bytes"] for value in train} & {value["bytes"] for value in test}


# ----------------------------------------------------------------------------------------------- errors


def test_unknown_sources(load, tmp_path):
    with pytest.raises(ValueError, match=r"'no-such-owner/no-such-dataset' is not 'demo'.*offline mode is on"):
        load("no-such-owner/no-such-dataset")
    with pytest.raises(FileNotFoundError, match="No such file or folder"):
        load(str(tmp_path / "missing" / "images"))
    with pytest.raises(FileNotFoundError, match="No file matches"):
        load(str(tmp_path / "*.parquet"))
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="notes.csv is not a parquet file"):
        load(str(tmp_path / "notes.csv"))
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(ValueError, match="holds no images or parquet files"):
        load(str(tmp_path / "empty_folder"))
    with pytest.raises(TypeError, match="source must be a string or a path, got int"):
        load(3)


def test_argument_errors(load):
    with pytest.raises(ValueError, match=r"on_bad_image must be one of 'skip', 'raise', got 'ignore'"):
        load("demo", on_bad_image="ignore")
    with pytest.raises(ValueError, match=r"Split 'validation' not found in demo; its splits: 'train', 'test'"):
        load("demo", split="validation")
    with pytest.raises(ValueError, match="split must be a split name"):
        load("demo", split="")
    with pytest.raises(ValueError, match=r"image_column='photo' is not a column of demo; its columns: image \(Image"):
        load("demo", image_column="photo")


def test_data_errors(load, tmp_path):
    path = write_parquet(tmp_path / "text.parquet", {"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(
        ValueError, match=r"No image column in .*text\.parquet: its columns are text \(Value\('string'\)\)"
    ):
        load(path)
    path = write_parquet(
        tmp_path / "floats.parquet",
        {"image": image_rows([encode(Image.new("RGB", (2, 2)))]), "score": [0.5]},
        Features({"image": ImageFeature(), "score": Value("float32")}),
    )
    with pytest.raises(ValueError, match="label_column='score' .* must be a ClassLabel, integer or string column"):
        load(path, label_column="score")
    path = write_parquet(tmp_path / "empty.parquet", {"image": []}, Features({"image": ImageFeature()}))
    with pytest.raises(ValueError, match=r"Split 'train' of .*empty\.parquet is empty"):
        load(path)
    folder = write_files(tmp_path / "all_bad", bad_image_files())
    with pytest.raises(BadImageError, match="None of the 4 images of .* can be decoded"):
        load(folder)
