"""Masking: blockwise (BEiT) against its per-image reference algorithm, random multi-masks (ExtreMA), seeding,
errors."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from maskvision.training.inputs.masking import BlockwiseMaskGenerator, RandomMaskGenerator


def counts(masks: torch.Tensor) -> torch.Tensor:
    return masks.flatten(1).sum(1).float()


# -- BlockwiseMaskGenerator -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def beit_counts():
    """Masked counts on BEiT's setting (14x14, 75): 3000 vectorised masks and 3000 of the per-image reference."""
    generator = BlockwiseMaskGenerator(14, 75)
    vectorised = counts(generator.gen(3000, torch.Generator().manual_seed(1)))
    rng = random.Random(1)
    reference = counts(torch.stack([generator.reference(rng) for _ in range(3000)]))
    return vectorised, reference


def test_blockwise_matches_reference_statistics(beit_counts):
    vectorised, reference = beit_counts
    assert abs(vectorised.mean() - reference.mean()) / reference.mean() < 0.01
    below_vectorised, below_reference = (vectorised < 75).float().mean(), (reference < 75).float().mean()
    assert abs(below_vectorised - below_reference) < 0.05
    assert abs(vectorised.std() - reference.std()) < 0.5


def test_reference_reproduces_published_beit_statistics(beit_counts):
    # BEiT v1 on 14x14 with 75: mean about 74.5, about a third of the masks below 75, never above 75 (REFERENCE.md)
    for values in beit_counts:
        assert 74.0 < values.mean() < 75.0
        assert 0.25 < (values < 75).float().mean() < 0.42
        assert values.max() == 75 and values.min() > 55


def test_blockwise_masks_are_made_of_blocks():
    # blocks of >= 16 patches leave almost no masked patch without a masked neighbour (random masks: about 17%)
    masks = BlockwiseMaskGenerator(14, 75).gen(200, torch.Generator().manual_seed(0)).float()
    cross = torch.tensor([[[[0.0, 1, 0], [1, 0, 1], [0, 1, 0]]]])
    neighbours = torch.nn.functional.conv2d(masks[:, None], cross, padding=1)[:, 0]
    assert ((masks == 1) & (neighbours == 0)).sum() / masks.sum() < 0.01


def test_blockwise_exact_gives_the_target_everywhere():
    for grid, target in [(14, 75), ((7, 9), 20), (16, 154)]:
        masks = BlockwiseMaskGenerator(grid, target, exact=True).gen(200, torch.Generator().manual_seed(0))
        assert (counts(masks) == target).all()


def test_blockwise_never_empty_where_the_rule_finds_no_block():
    # on a 2x2 grid only 1x1 blocks fit, and an area of 3 never rounds to 1x1: BEiT's rule always returns nothing
    generator = BlockwiseMaskGenerator(2, 3, min_num_patches=3)
    assert all(generator.reference(random.Random(seed)).sum() == 0 for seed in range(20))
    masked = counts(generator.gen(100, torch.Generator().manual_seed(0)))
    assert ((masked >= 1) & (masked <= 3)).all()
    # no block fits a single row either
    masked = counts(BlockwiseMaskGenerator((1, 10), 4, min_num_patches=2).gen(50))
    assert ((masked >= 1) & (masked <= 4)).all()


def test_blockwise_tiny_target_has_one_patch():
    masks = BlockwiseMaskGenerator(14, 1, min_num_patches=1).gen(500, torch.Generator().manual_seed(0))
    assert (counts(masks) == 1).all()


def test_blockwise_shape_dtype_and_seeding():
    generator = BlockwiseMaskGenerator((6, 10), 20, min_num_patches=4)
    first = generator.gen(8, torch.Generator().manual_seed(3))
    assert first.shape == (8, 6, 10) and first.dtype == torch.bool
    assert torch.equal(first, generator.gen(8, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, generator.gen(8, torch.Generator().manual_seed(4)))
    torch.manual_seed(5)
    global_first = generator.gen(8)
    torch.manual_seed(5)
    assert torch.equal(global_first, generator.gen(8))  # no generator: the global torch RNG


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 16),
    width=st.integers(1, 16),
    data=st.data(),
    exact=st.booleans(),
    min_aspect=st.floats(0.1, 1.0),
    batch=st.integers(1, 9),
    seed=st.integers(0, 2**31),
)
def test_blockwise_properties(height, width, data, exact, min_aspect, batch, seed):
    patches = height * width
    if patches < 2:
        return
    target = data.draw(st.integers(1, patches - 1))
    minimum = data.draw(st.integers(1, target))
    maximum = data.draw(st.one_of(st.none(), st.integers(minimum, patches)))
    generator = BlockwiseMaskGenerator((height, width), target, minimum, maximum, min_aspect, exact=exact)
    masks = generator.gen(batch, torch.Generator().manual_seed(seed))
    assert masks.shape == (batch, height, width) and masks.dtype == torch.bool
    masked = counts(masks)
    if exact:
        assert (masked == target).all()
    else:
        assert ((masked >= 1) & (masked <= target)).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": 0, "num_masking_patches": 1}, "input_size"),
        ({"input_size": (4, -1), "num_masking_patches": 1}, "input_size"),
        ({"input_size": (4,), "num_masking_patches": 1}, "input_size"),
        ({"input_size": True, "num_masking_patches": 1}, "input_size"),
        ({"input_size": 14, "num_masking_patches": 0}, "num_masking_patches"),
        ({"input_size": 14, "num_masking_patches": 196}, "num_masking_patches"),
        ({"input_size": 14, "num_masking_patches": 75.0}, "num_masking_patches"),
        ({"input_size": 14, "num_masking_patches": 10}, "min_num_patches"),  # default 16 > 10
        ({"input_size": 14, "num_masking_patches": 75, "min_num_patches": 0}, "min_num_patches"),
        ({"input_size": 14, "num_masking_patches": 75, "max_num_patches": 8}, "max_num_patches"),
        ({"input_size": 14, "num_masking_patches": 75, "min_aspect": 0}, "min_aspect"),
        ({"input_size": 14, "num_masking_patches": 75, "min_aspect": 2.0}, "max_aspect"),
        ({"input_size": 14, "num_masking_patches": 75, "min_aspect": 0.5, "max_aspect": 0.4}, "max_aspect"),
    ],
)
def test_blockwise_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlockwiseMaskGenerator(**kwargs)


@pytest.mark.parametrize("batch_size", [0, -2, 2.0, True])
def test_gen_rejects_bad_batch_sizes(batch_size):
    for generator in (BlockwiseMaskGenerator(14, 75), RandomMaskGenerator(14, 0.75)):
        with pytest.raises(ValueError, match="batch_size"):
            generator.gen(batch_size)


# -- RandomMaskGenerator --------------------------------------------------------------------------------------------


def test_random_masks_extrema_settings():
    # 80% x 5 masks on 14x14: 157 masked, 39 visible per mask, the 5 visible sets disjoint
    masks = RandomMaskGenerator(14, 0.8, num_masks=5).gen(64, torch.Generator().manual_seed(0))
    assert masks.shape == (64, 5, 196) and masks.dtype == torch.bool
    assert (masks.sum(-1) == 157).all()
    visible = (~masks).sum(1)  # (B, N): how many masks show each patch
    assert visible.max() == 1 and (visible.sum(-1) == 5 * 39).all()


@pytest.mark.parametrize("ratio, visible", [(0.75, 49), (0.8, 39), (0.9, 19), (0.95, 9)])
def test_random_masks_leave_the_official_number_of_patches_visible(ratio, visible):
    # ExtreMA's generate_mask keeps int(196 * (1 - ratio)) patches: 19 at 90%, 9 at 95% (not 196 - round(ratio * 196))
    masks = RandomMaskGenerator(14, ratio).gen(3, torch.Generator().manual_seed(0))
    assert ((~masks).sum(-1) == visible).all()


def test_random_masks_are_uniform_over_patches():
    masks = RandomMaskGenerator(8, 0.75).gen(4000, torch.Generator().manual_seed(0))[:, 0].float()
    assert torch.allclose(masks.mean(0), torch.full((64,), 0.75), atol=0.04)


def test_random_masks_seeding():
    generator = RandomMaskGenerator((4, 6), 0.5, num_masks=2)
    first = generator.gen(5, torch.Generator().manual_seed(1))
    assert torch.equal(first, generator.gen(5, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, generator.gen(5, torch.Generator().manual_seed(2)))


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 16),
    width=st.integers(1, 16),
    ratio=st.floats(0.01, 0.99),
    data=st.data(),
    batch=st.integers(1, 6),
)
def test_random_mask_properties(height, width, ratio, data, batch):
    patches = height * width
    visible = int(patches * (1 - ratio))
    masked = patches - visible
    if not 0 < visible < patches:
        with pytest.raises(ValueError, match="mask_ratio"):
            RandomMaskGenerator((height, width), ratio)
        return
    num_masks = data.draw(st.integers(1, patches // visible))
    masks = RandomMaskGenerator((height, width), ratio, num_masks).gen(batch)
    assert masks.shape == (batch, num_masks, patches)
    assert (masks.sum(-1) == masked).all()
    assert ((~masks).sum(1) <= 1).all()


@pytest.mark.parametrize(
    "args, message",
    [
        ((14, 0.0), "mask_ratio"),
        ((14, 1.0), "mask_ratio"),
        ((14, -0.5), "mask_ratio"),
        ((14, True), "mask_ratio"),
        ((2, 0.9), "mask_ratio"),  # leaves int(4 x 0.1) = 0 patches visible
        ((14, 0.8, 0), "num_masks"),
        ((14, 0.8, 6), "num_masks=6"),  # 6 x 39 visible > 196
        ((0, 0.8), "input_size"),
    ],
)
def test_random_mask_errors(args, message):
    with pytest.raises(ValueError, match=message):
        RandomMaskGenerator(*args)
