"""Collators on the demo images: batch keys and shapes, data-loader workers, seeding per worker / rank / epoch,
odd images, use with the Trainer, errors."""

import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import PreTrainedConfig, PreTrainedModel, Trainer, TrainingArguments
from transformers.modeling_outputs import ModelOutput

from maskvision.data import load_image_dataset
from maskvision.training.inputs.collators import MaskedImageModelingCollator, MultiMaskCollator, TwoViewCollator
from maskvision.training.inputs.masking import BlockwiseMaskGenerator, RandomMaskGenerator
from maskvision.training.inputs.transforms import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

STATS = {"image_mean": IMAGENET_DEFAULT_MEAN, "image_std": IMAGENET_DEFAULT_STD}


@pytest.fixture(scope="module")
def demo():
    return load_image_dataset("demo").select(range(64))


def beit_collator(seed: int = 0, **overrides) -> MaskedImageModelingCollator:
    arguments = {
        "image_size": 32,
        "patch_size": 4,
        "tokenizer_image_size": 16,
        **STATS,
        "seed": seed,
        "mask_generator": BlockwiseMaskGenerator(8, 24, min_num_patches=4),
        **overrides,
    }
    return MaskedImageModelingCollator(**arguments)


def assert_equal_batches(first: dict, second: dict, equal: bool = True):
    same = first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    assert same == equal


# -- batches ----------------------------------------------------------------------------------------------------------


def test_beit_batches_from_two_workers(demo):
    loader = torch.utils.data.DataLoader(demo, batch_size=16, num_workers=2, collate_fn=beit_collator())
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert list(batch) == ["pixel_values", "tokenizer_pixel_values", "bool_masked_pos"]
        assert batch["pixel_values"].shape == (16, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
        assert batch["tokenizer_pixel_values"].shape == (16, 3, 16, 16)
        assert 0 <= batch["tokenizer_pixel_values"].min() and batch["tokenizer_pixel_values"].max() <= 1
        assert batch["bool_masked_pos"].shape == (16, 64) and batch["bool_masked_pos"].dtype == torch.bool
        masked = batch["bool_masked_pos"].sum(1)
        assert ((masked >= 1) & (masked <= 24)).all()


def test_beit_collator_jitters_a_uniform_image_into_varying_colours_the_same_on_both_views():
    # BEiT's ColorJitter(0.4, 0.4, 0.4) runs before the crop: both views of one image share its colours.
    rows = [{"image": Image.new("RGB", (48, 48), (120, 90, 60))} for _ in range(16)]
    batch = beit_collator()(rows)
    mean, std = torch.tensor(IMAGENET_DEFAULT_MEAN)[:, None, None], torch.tensor(IMAGENET_DEFAULT_STD)[:, None, None]
    encoder = (batch["pixel_values"] * std + mean).mean((2, 3))  # (16, 3) colour of each image's encoder view
    tokenizer = batch["tokenizer_pixel_values"].mean((2, 3))
    assert encoder.std(0).min() > 0.02  # varying colours, not the one colour of the images
    torch.testing.assert_close(encoder, tokenizer, atol=2e-3, rtol=0)
    plain = beit_collator(color_jitter=0.0)(rows)["tokenizer_pixel_values"].mean((2, 3))
    torch.testing.assert_close(plain, torch.tensor([[120, 90, 60]] * 16) / 255, atol=2e-3, rtol=0)


def test_real_size_batches(demo):
    rows = [demo[index] for index in range(4)]
    beit = MaskedImageModelingCollator(
        image_size=224, patch_size=16, tokenizer_image_size=112, **STATS, mask_generator=BlockwiseMaskGenerator(14, 75)
    )(rows)
    assert beit["pixel_values"].shape == (4, 3, 224, 224) and beit["tokenizer_pixel_values"].shape == (4, 3, 112, 112)
    assert beit["bool_masked_pos"].shape == (4, 196) and (beit["bool_masked_pos"].sum(1) <= 75).all()
    extrema = MultiMaskCollator(image_size=224, patch_size=16, **STATS, mask_generator=RandomMaskGenerator(14, 0.8, 5))(
        rows
    )
    assert list(extrema) == ["pixel_values", "teacher_pixel_values", "bool_masked_pos"]
    assert extrema["pixel_values"].shape == extrema["teacher_pixel_values"].shape == (4, 3, 224, 224)
    assert extrema["bool_masked_pos"].shape == (4, 5, 196) and (extrema["bool_masked_pos"].sum(-1) == 157).all()
    assert ((~extrema["bool_masked_pos"]).sum(1) <= 1).all()  # disjoint visible sets


def test_extrema_and_moby_batches(demo):
    rows = [demo[index] for index in range(8)]
    masks = RandomMaskGenerator(8, 0.75, 4)
    extrema = MultiMaskCollator(image_size=32, patch_size=4, **STATS, mask_generator=masks)(rows)
    assert extrema["bool_masked_pos"].shape == (8, 4, 64) and (extrema["bool_masked_pos"].sum(-1) == 48).all()
    assert not torch.equal(extrema["pixel_values"], extrema["teacher_pixel_values"])  # colour drawn per branch
    moby = TwoViewCollator(image_size=32, **STATS)(rows)
    assert list(moby) == ["pixel_values", "pixel_values_2"]
    assert moby["pixel_values"].shape == moby["pixel_values_2"].shape == (8, 3, 32, 32)
    assert not torch.equal(moby["pixel_values"], moby["pixel_values_2"])


def test_pixel_targets_have_no_tokenizer_view(demo):
    batch = beit_collator(tokenizer_image_size=None)([demo[0], demo[1]])
    assert list(batch) == ["pixel_values", "bool_masked_pos"]


# -- random streams ---------------------------------------------------------------------------------------------------


def test_same_seed_same_batch_and_other_seed_other_batch(demo):
    rows = [demo[index] for index in range(8)]
    assert_equal_batches(beit_collator(seed=3)(rows), beit_collator(seed=3)(rows))
    assert_equal_batches(beit_collator(seed=3)(rows), beit_collator(seed=4)(rows), equal=False)


def test_ranks_get_different_streams(demo, monkeypatch):
    rows = [demo[index] for index in range(8)]
    monkeypatch.setenv("RANK", "0")
    rank_0 = beit_collator()(rows)
    monkeypatch.setenv("RANK", "1")
    assert_equal_batches(rank_0, beit_collator()(rows), equal=False)


def test_workers_and_epochs_get_different_streams_reproducibly(demo):
    same_image = demo.select([0] * 16)  # every batch holds the same images: only the random streams differ
    loader = torch.utils.data.DataLoader(same_image, batch_size=8, num_workers=2, collate_fn=beit_collator())
    torch.manual_seed(0)
    first_epoch = list(loader)  # batch 0 from worker 0, batch 1 from worker 1
    second_epoch = list(loader)
    assert_equal_batches(first_epoch[0], first_epoch[1], equal=False)
    assert_equal_batches(first_epoch[0], second_epoch[0], equal=False)
    torch.manual_seed(0)  # the loader's worker seeds come from the torch seed, as the Trainer sets it
    assert_equal_batches(first_epoch[1], list(loader)[1])


# -- images as users have them ---------------------------------------------------------------------------------------


def odd_images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    deep = Image.fromarray(rng.integers(0, 65536, (30, 40), dtype=np.uint16))  # 16-bit grayscale
    return [rgb.convert("L"), rgb.convert("RGBA"), rgb.convert("P"), rgb.convert("CMYK"), deep, rgb.resize((3, 2))]


def test_odd_images_become_rgb_views():
    rows = [{"image": image, "label": 1} for image in odd_images()]
    batch = TwoViewCollator(image_size=32, **STATS)(rows)
    assert batch["pixel_values"].shape == (6, 3, 32, 32) and torch.isfinite(batch["pixel_values"]).all()
    # a 16-bit image is scaled, not clipped to white
    assert batch["pixel_values"][4].std() > 0.1


def test_large_photo():
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).resize(
        (3000, 2000), Image.Resampling.BILINEAR
    ).save(buffer, format="JPEG")
    photo = Image.open(io.BytesIO(buffer.getvalue()))  # not decoded yet: to_rgb may decode it at a reduced size
    collator = beit_collator(
        image_size=224, patch_size=16, tokenizer_image_size=112, mask_generator=BlockwiseMaskGenerator(14, 75)
    )
    batch = collator([{"image": photo}])
    assert batch["pixel_values"].shape == (1, 3, 224, 224) and batch["tokenizer_pixel_values"].shape == (1, 3, 112, 112)


def test_exif_orientation_is_applied():
    cells = np.kron(np.arange(12).reshape(4, 3) * 20, np.ones((10, 10)))  # 40 x 30, no symmetry
    upright = Image.fromarray(cells.astype(np.uint8)).convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote; EXIF 6 rotates it back
    exif = stored.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    rotated = Image.open(io.BytesIO(buffer.getvalue()))
    collator = TwoViewCollator(image_size=16, **STATS, min_crop_scale=1.0)
    expected = TwoViewCollator(image_size=16, **STATS, min_crop_scale=1.0)([{"image": upright}])
    assert_equal_batches(collator([{"image": rotated}]), expected)


# -- use with the Trainer -------------------------------------------------------------------------------------------


@dataclass
class ToyOutput(ModelOutput):
    loss: torch.Tensor | None = None


class ToyMaskedModel(PreTrainedModel):
    """Predicts the tokenizer view's mean colour from the visible patches' mean colour."""

    config_class = PreTrainedConfig
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        self.linear = torch.nn.Linear(3, 3)
        self.post_init()

    def forward(self, pixel_values, tokenizer_pixel_values, bool_masked_pos):
        patches = pixel_values.unfold(2, 4, 4).unfold(3, 4, 4).mean((-1, -2)).flatten(2)  # (B, 3, N)
        visible = (~bool_masked_pos)[:, None].float()
        pooled = (patches * visible).sum(-1) / visible.sum(-1)
        loss = (self.linear(pooled) - tokenizer_pixel_values.mean((2, 3))).pow(2).mean()
        return ToyOutput(loss=loss)


def test_trainer_runs_on_the_collator(demo, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        remove_unused_columns=False,
        per_device_train_batch_size=8,
        max_steps=3,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    model = ToyMaskedModel(PreTrainedConfig())
    trainer = Trainer(model=model, args=args, train_dataset=demo, data_collator=beit_collator())
    result = trainer.train()
    assert result.global_step == 3 and np.isfinite(result.training_loss)


# -- errors -----------------------------------------------------------------------------------------------------------


def test_rows_without_images_are_explained(demo):
    collator = beit_collator()
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        collator([{"label": 3}])
    with pytest.raises(TypeError, match=r"PIL image, got a torch.float32 tensor \(3, 32, 32\).*uint8 \(3, H, W\)"):
        collator([{"image": torch.zeros(3, 32, 32)}])
    with pytest.raises(ValueError, match="empty batch"):
        collator([])


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"mask_generator": BlockwiseMaskGenerator(14, 75)}, ValueError, "14x14 grid"),
        ({"mask_generator": RandomMaskGenerator(8, 0.5)}, TypeError, "BlockwiseMaskGenerator"),
        ({"tokenizer_image_size": 20}, ValueError, "tokenizer_image_size"),
        ({"patch_size": 5}, ValueError, "patch_size"),
        ({"seed": -1}, ValueError, "seed"),
        ({"min_crop_scale": 0}, ValueError, "min_scale"),
        ({"image_mean": (0.5,)}, ValueError, "image_mean"),
    ],
)
def test_collator_errors(overrides, error, message):
    with pytest.raises(error, match=message):
        beit_collator(**overrides)


def test_multi_mask_collator_checks_its_grid():
    with pytest.raises(ValueError, match="8x8"):
        MultiMaskCollator(image_size=224, patch_size=16, **STATS, mask_generator=RandomMaskGenerator(8, 0.75))
