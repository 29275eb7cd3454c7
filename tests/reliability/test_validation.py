"""Bad input gets a clear error; odd input gets a correct result. Property-based (hypothesis) tests over the
transforms' and collators' parameters (the masks' own properties are in test_masking.py), and loading a checkpoint
into another method's class."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

import maskvision
from maskvision.configuration.backbones import swin_backbone_config
from maskvision.modeling.modeling_utils import check_checkpoint_model_type
from maskvision.training.inputs.collators import MultiMaskCollator, TwoViewCollator
from maskvision.training.inputs.masking import RandomMaskGenerator
from maskvision.training.inputs.transforms import ColorAugmentation, RandomResizedCrop
from maskvision.training.loop.trainer import MaskVisionTrainer
from maskvision.training.runs.pretrain import PretrainingArguments

FAST = settings(max_examples=40, deadline=None)


@FAST
@given(
    sizes=st.lists(st.tuples(st.integers(1, 400), st.integers(1, 400)), min_size=1, max_size=6),
    low=st.floats(0.01, 1.0),
    span=st.floats(0.0, 1.0),
    ratio_low=st.floats(0.2, 1.0),
    ratio_span=st.floats(1.0, 5.0),
    seed=st.integers(0, 2**31),
)
def test_crop_boxes_always_lie_inside_the_image_and_follow_the_ratio(sizes, low, span, ratio_low, ratio_span, seed):
    scale = (low, min(1.0, low + span))
    ratio = (ratio_low, ratio_low * ratio_span)
    crop = RandomResizedCrop(scale=scale, ratio=ratio)
    sizes = torch.tensor(sizes)
    boxes = crop.sample(sizes, torch.Generator().manual_seed(seed))
    left, top, right, bottom = boxes.unbind(1)
    width, height = sizes.unbind(1)
    assert (left >= 0).all() and (top >= 0).all() and (right <= width).all() and (bottom <= height).all()
    assert ((right - left) >= 1).all() and ((bottom - top) >= 1).all()
    assert torch.equal(boxes, crop.sample(sizes, torch.Generator().manual_seed(seed)))  # seeded


@FAST
@given(
    brightness=st.floats(0, 2),
    contrast=st.floats(0, 2),
    saturation=st.floats(0, 2),
    hue=st.floats(0, 0.5),
    jitter=st.floats(0, 1),
    gray=st.floats(0, 1),
    blur=st.floats(0, 1),
    solarize=st.floats(0, 1),
    side=st.integers(1, 24),
    seed=st.integers(0, 2**31),
)
def test_colour_augmentation_stays_finite_in_range_and_seeded(
    brightness, contrast, saturation, hue, jitter, gray, blur, solarize, side, seed
):
    augment = ColorAugmentation(brightness, contrast, saturation, hue, jitter, gray, blur, (0.1, 2.0), solarize)
    images = torch.rand(3, 3, side, side, generator=torch.Generator().manual_seed(seed))
    images[0] = 0.0  # a black image: contrast and saturation must not divide by zero
    out = augment(images, torch.Generator().manual_seed(seed))
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert torch.equal(out, augment(images, torch.Generator().manual_seed(seed)))


@FAST
@given(
    widths=st.lists(st.integers(1, 300), min_size=1, max_size=4),
    aspect=st.floats(0.01, 100.0),
    patch=st.sampled_from([4, 8]),
    grid=st.integers(2, 4),
    data=st.data(),
    mode=st.sampled_from(["RGB", "L", "RGBA", "P", "I;16", "CMYK"]),
)
def test_collators_turn_any_image_into_views_and_valid_masks(widths, aspect, patch, grid, data, mode):
    image_size, patches = patch * grid, grid * grid
    masked = data.draw(st.integers(1, patches - 1))
    ratio = masked / patches
    visible = int(patches * (1 - ratio))  # ExtreMA's rule (float rounding may leave one fewer than patches - masked)
    assume(visible >= 1)
    num_masks = data.draw(st.integers(1, patches // visible))
    rows = [
        {"image": Image.new(mode, (width, max(1, round(width * aspect)))), "sample_index": index}
        for index, width in enumerate(widths)
    ]
    stats = {"image_mean": (0.5, 0.5, 0.5), "image_std": (0.25, 0.25, 0.25)}
    extrema = MultiMaskCollator(
        image_size=image_size, patch_size=patch, **stats, mask_generator=RandomMaskGenerator(grid, ratio, num_masks)
    )
    batch = extrema(rows)
    assert batch["pixel_values"].shape == batch["teacher_pixel_values"].shape == (len(rows), 3, image_size, image_size)
    masks = batch["bool_masked_pos"]
    assert masks.shape == (len(rows), num_masks, patches)
    assert ((~masks).sum(-1) == visible).all()  # the same count in every mask
    assert ((~masks).sum(1) <= 1).all()  # visible sets disjoint
    moby = TwoViewCollator(image_size=image_size, **stats)(rows)
    assert all(torch.isfinite(view).all() for view in moby.values())
    assert torch.equal(extrema(rows)["bool_masked_pos"], masks)  # a function of (seed, epoch, samples)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask_ratio": 1.0}, r"mask_ratio must be a number in \(0, 1\), got 1.0"),
        ({"mask_ratio": 0.5, "num_masks": 4}, r"num_masks=4 masks with 32 visible patches each need 128 disjoint"),
    ],
)
def test_mask_settings_errors_name_the_field_and_the_allowed_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomMaskGenerator(8, kwargs.pop("mask_ratio"), **kwargs)


@pytest.fixture(scope="module")
def moby_dir(tmp_path_factory) -> str:
    backbone = swin_backbone_config(
        "tiny", image_size=32, patch_size=4, window_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2]
    )
    config = maskvision.MobyConfig(
        backbone_config=backbone, projector_hidden_size=32, predictor_hidden_size=32, projection_dim=16, queue_size=16
    )
    path = str(tmp_path_factory.mktemp("moby"))
    maskvision.MobyForPreTraining(config).save_pretrained(path)
    return path


@pytest.mark.parametrize("model_class", [maskvision.BeitMimForPreTraining, maskvision.ExtremaForPreTraining,
                                         maskvision.DVAETokenizer, maskvision.VQKDTokenizer])  # fmt: skip
def test_loading_another_methods_checkpoint_is_an_error_naming_both(model_class, moby_dir):
    expected = model_class.config_class.model_type
    with pytest.raises(ValueError, match=rf"holds a 'maskvision_moby' checkpoint, but '{expected}' was expected"):
        model_class.from_pretrained(moby_dir)
    assert type(maskvision.MobyForPreTraining.from_pretrained(moby_dir)).__name__ == "MobyForPreTraining"


def test_resuming_a_run_from_another_methods_checkpoint_is_an_error(moby_dir, tmp_path):
    from maskvision.training.recipes.beit import BeitModelArguments

    config = BeitModelArguments(
        model_size="tiny",
        image_size=32,
        patch_size=4,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        target="pixels",
        num_masking_patches=20,
    ).config()
    trainer = MaskVisionTrainer(
        model=maskvision.BeitMimForPreTraining(config),
        args=PretrainingArguments(output_dir=str(tmp_path), use_cpu=True),
    )
    with pytest.raises(ValueError, match="holds a 'maskvision_moby' checkpoint, but 'maskvision_beit_mim'"):
        trainer._load_from_checkpoint(moby_dir)
    check_checkpoint_model_type(moby_dir, maskvision.MobyConfig)  # its own type: fine
    assert math.isfinite(trainer.args.learning_rate)
