"""Patch masks for masked image modeling, generated for a whole batch at once.

- `BlockwiseMaskGenerator`: BEiT's blockwise masking (Bao et al., "BEiT: BERT Pre-Training of Image
  Transformers", arXiv:2106.08254, section 2.3), with BEiT v2's exact-count variant.
- `RandomMaskGenerator`: uniform random masks, several per image whose visible sets are disjoint slices of one
  permutation (Wu et al., "Extreme Masking for Learning Instance and Distributed Visual Representations",
  arXiv:2206.04667, multi-masking).

Both return boolean tensors, True where a patch is masked, on the device of the optional ``torch.Generator`` they
are given, and take all their randomness from it (the global torch RNG when None): one seed, the same masks. Random
masks are drawn by torch on that device; block masks on the CPU by numpy, seeded by one draw of the generator.
Collators give each data-loader worker and each distributed rank its own generator
(`maskvision.training.inputs.collators.stream_generator`).
"""

import math
import random
import threading

import numpy as np
import torch

from ...configuration.configuration_extrema import num_visible_patches

_THREAD_LOCAL = threading.local()  # each thread's PCG64 bit generator for `_numpy_rng`


def _grid_size(input_size) -> tuple[int, int]:
    """(height, width) in patches from an int or a pair; positive integers only."""
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in size):
        raise ValueError(f"input_size must be a positive int or a (height, width) pair of them, got {input_size!r}.")
    return size


def _check_batch_size(batch_size) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


class BlockwiseMaskGenerator:
    """BEiT's blockwise masking: rectangles of random area and aspect ratio until ``num_masking_patches`` are hidden.

    BEiT v1's rule, per image: repeat { up to 10 attempts: area ~ U(min_num_patches, remaining) (``remaining`` =
    patches still to mask, capped at ``max_num_patches``), aspect log-uniform in [min_aspect, max_aspect], a random
    position; the first block that fits strictly inside the grid and adds between 1 and ``remaining`` new patches is
    painted } until the target is reached or no attempt of a round adds anything. Masks therefore hold at most the
    target and sometimes fewer (on 14x14 with 75: mean about 74.5, a third of the masks below 75).

    Here all images run their rounds together, with no per-image Python loop: each round samples the candidate
    blocks of every active image at once, counts the new patches each would add with one popcount (masks and blocks
    are bitsets), accepts each image's first valid candidate and ORs it in. The masked-count distribution is that
    of the per-image algorithm (`reference`, kept for tests and benchmarks), at a fraction of the cost.

    Args:
        input_size: patch grid, ``int`` or ``(height, width)`` (e.g. 14 for 224 px with 16 px patches).
        num_masking_patches: patches to mask per image (BEiT: 75 of 196); 1 <= target < number of patches.
        min_num_patches: smallest block area drawn (BEiT: 16).
        max_num_patches: largest area one block may add; default: the target.
        min_aspect, max_aspect: block aspect ratio range, log-uniform; ``max_aspect`` defaults to ``1 / min_aspect``.
        exact: mask exactly ``num_masking_patches`` per image, topping up a short mask with random patches (BEiT v2).

    A mask is never empty: an image left without any block (a tiny target the rule keeps missing, unilm #551)
    gets one near-square block of at most ``num_masking_patches`` patches at a random position.
    """

    num_attempts = 10  # candidate blocks per round, as in BEiT

    def __init__(
        self,
        input_size,
        num_masking_patches: int,
        min_num_patches: int = 16,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        exact: bool = False,
    ):
        self.height, self.width = _grid_size(input_size)
        self.num_patches = self.height * self.width
        if not isinstance(num_masking_patches, int) or not 0 < num_masking_patches < self.num_patches:
            raise ValueError(
                f"num_masking_patches must be an int in [1, {self.num_patches - 1}] for a {self.height}x{self.width} "
                f"grid, got {num_masking_patches!r}."
            )
        if not isinstance(min_num_patches, int) or not 1 <= min_num_patches <= num_masking_patches:
            raise ValueError(
                f"min_num_patches must be an int in [1, num_masking_patches={num_masking_patches}], "
                f"got {min_num_patches!r}."
            )
        max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        if not isinstance(max_num_patches, int) or max_num_patches < min_num_patches:
            raise ValueError(
                f"max_num_patches must be an int >= min_num_patches={min_num_patches} (or None for the target), "
                f"got {max_num_patches!r}."
            )
        if not min_aspect > 0:
            raise ValueError(f"min_aspect must be positive, got {min_aspect!r}.")
        max_aspect = 1 / min_aspect if max_aspect is None else max_aspect
        if not min_aspect <= max_aspect:
            raise ValueError(f"min_aspect ({min_aspect}) must not exceed max_aspect ({max_aspect}).")
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.exact = bool(exact)
        self._tables = None  # block bitsets, built on first use

    def __repr__(self) -> str:
        low, high = (math.exp(value) for value in self.log_aspect_ratio)
        return (
            f"{type(self).__name__}(input_size=({self.height}, {self.width}), num_masking_patches="
            f"{self.num_masking_patches}, block area [{self.min_num_patches}, {self.max_num_patches}], aspect "
            f"[{low:.3g}, {high:.3g}], exact={self.exact})"
        )

    def gen(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Masks of ``batch_size`` images: bool (batch_size, height, width), True = masked."""
        _check_batch_size(batch_size)
        rng = _numpy_rng(generator)
        mask, count = self._paint_blocks(batch_size, rng)
        mask, count = self._fill_empty(mask, count, rng)
        if self.exact:
            mask = self._top_up(mask, count, rng)
        return torch.from_numpy(mask.reshape(batch_size, self.height, self.width)).to(_device(generator))

    # -- the vectorised rounds --------------------------------------------------------------------------------

    def _paint_blocks(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """BEiT v1's rounds for every image at once; returns bool (batch, N) masks and their masked counts.

        Masks are bitsets, (words, images) uint64 with bit ``row * width + col`` set where masked. Each pass of the
        loop is one round of every image still growing: its 10 attempts are drawn at once, the new patches of each
        candidate block counted by a popcount against the mask, and the first valid attempt taken (the attempts are
        i.i.d. given the mask, so this is BEiT's choice). An image leaves when it reaches the target or a round adds
        nothing.
        """
        tables = self._block_tables()
        done_bits = np.zeros((tables.words, batch_size), dtype=np.uint64)
        ids = np.arange(batch_size)  # the images still growing, and their state:
        bits = np.zeros((tables.words, batch_size), dtype=np.uint64)
        missing = np.full(batch_size, self.num_masking_patches)  # patches still to mask
        attempts = self.num_attempts
        first_attempts = np.arange(0, batch_size * attempts, attempts)  # flat index of each image's attempt 0
        while ids.size:
            cap = np.minimum(missing, self.max_num_patches)  # the most one block may add, (b,)
            draws = rng.random((4, ids.size, attempts), dtype=np.float32)  # area, aspect, top, left
            spread = (cap - self.min_num_patches).astype(np.float32)[:, None]  # area ~ U(min_num_patches, cap)
            root_area = np.sqrt(self.min_num_patches + spread * draws[0])
            root_aspect = np.exp(tables.half_log_aspect[0] + tables.half_log_aspect[1] * draws[1])
            # (2, b, attempts) heights and widths, sqrt(area * aspect) and sqrt(area / aspect) rounded half to even
            # like round(); a side as long as the grid's does not fit, and its band in the tables is empty
            size = np.empty_like(draws[2:])
            np.multiply(root_area, root_aspect, out=size[0])
            np.divide(root_area, root_aspect, out=size[1])
            np.minimum(np.rint(size, out=size), tables.sides, out=size)
            index = (draws[2:] * (tables.positions - size)).astype(np.intp)  # top, left
            index *= tables.strides
            index += size.astype(np.intp)  # (2, b, attempts): the row band's and the column band's entries
            bands = tables.bands.take(tables.offsets + index[:, None])  # (2, words, b, attempts)
            blocks = bands[0] & bands[1]
            new = np.bitwise_count(blocks & ~bits[:, :, None]).sum(0, dtype=np.intp)  # (b, attempts)
            valid = (new > 0) & (new <= cap[:, None])
            pick = valid.argmax(1) + first_attempts[: ids.size]  # flat index of each first valid attempt
            accepted = valid.ravel()[pick]
            bits |= blocks.reshape(tables.words, -1)[:, pick] * accepted
            missing -= new.ravel()[pick] * accepted
            growing = accepted & (missing > 0)
            if not growing.all():
                done = ~growing
                done_bits[:, ids[done]] = bits[:, done]
                ids, bits, missing = ids[growing], bits[:, growing], missing[growing]
        words = np.ascontiguousarray(done_bits.T).astype("<u8").view(np.uint8)  # (batch, 8 * words), bit i = patch i
        mask = np.unpackbits(words, axis=1, count=self.num_patches, bitorder="little").view(bool)
        return mask, np.bitwise_count(done_bits).sum(0, dtype=np.intp)

    def _block_tables(self) -> "_BlockTables":
        if self._tables is None:
            self._tables = _BlockTables(self.height, self.width, self.log_aspect_ratio)
        return self._tables

    def _fill_empty(self, mask: np.ndarray, count: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """Give every empty mask one near-square block of at most the target, at a random position."""
        empty = np.flatnonzero(count == 0)
        if not empty.size:
            return mask, count
        block_h = min(math.isqrt(self.num_masking_patches), self.height)
        block_w = min(self.num_masking_patches // block_h, self.width)
        top = rng.integers(0, self.height - block_h + 1, size=empty.size)
        left = rng.integers(0, self.width - block_w + 1, size=empty.size)
        rows = np.arange(self.height)[:, None]
        cols = np.arange(self.width)[None, :]
        block = (
            (rows >= top[:, None, None])
            & (rows < top[:, None, None] + block_h)
            & (cols >= left[:, None, None])
            & (cols < left[:, None, None] + block_w)
        )
        mask[empty] = block.reshape(empty.size, -1)
        count[empty] = block_h * block_w
        return mask, count

    def _top_up(self, mask: np.ndarray, count: np.ndarray, rng) -> np.ndarray:
        """Mask random unmasked patches until each image has exactly the target (the rounds never overshoot)."""
        scores = rng.random(mask.shape)
        scores[mask] = 2.0
        rank = scores.argsort(1).argsort(1)  # unmasked patches first, in random order
        return mask | (rank < (self.num_masking_patches - count)[:, None])

    # -- the per-image reference ------------------------------------------------------------------------------

    def reference(self, rng: random.Random) -> torch.Tensor:
        """One mask by BEiT v1's per-image algorithm (microsoft/unilm beit/masking_generator.py), bool (H, W).

        The documented reference that tests and benchmarks compare `gen` against; it has no empty-mask fallback
        and no ``exact`` top-up. ``rng`` is a ``random.Random``, the official code's source of randomness.
        """
        mask = np.zeros((self.height, self.width), dtype=np.int64)
        count = 0
        while count < self.num_masking_patches:
            remaining = min(self.num_masking_patches - count, self.max_num_patches)
            delta = 0
            for _ in range(self.num_attempts):
                area = rng.uniform(self.min_num_patches, remaining)
                aspect = math.exp(rng.uniform(*self.log_aspect_ratio))
                block_h = int(round(math.sqrt(area * aspect)))
                block_w = int(round(math.sqrt(area / aspect)))
                if block_w < self.width and block_h < self.height:
                    top = rng.randint(0, self.height - block_h)
                    left = rng.randint(0, self.width - block_w)
                    num_masked = mask[top : top + block_h, left : left + block_w].sum()
                    if 0 < block_h * block_w - num_masked <= remaining:
                        for row in range(top, top + block_h):
                            for col in range(left, left + block_w):
                                if mask[row, col] == 0:
                                    mask[row, col] = 1
                                    delta += 1
                if delta > 0:
                    break
            if delta == 0:
                break
            count += delta
        return torch.from_numpy(mask.astype(bool))


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A numpy generator seeded by one draw from ``generator`` (the global torch RNG when None).

    Masks follow the torch seed; numpy's generator is about twice as fast as torch's at the many small draws of
    block masks. The PCG64 bit generator is reused (one per thread) and re-seeded by setting its 128-bit state,
    which costs a few microseconds where building a new one costs tens.
    """
    high, low = torch.randint(2**62, (2,), generator=generator, device=_device(generator)).tolist()
    bit_generator = getattr(_THREAD_LOCAL, "bit_generator", None)
    if bit_generator is None:
        # A fixed seed: only the state is set below, so the stream's increment must not come from OS entropy.
        bit_generator = _THREAD_LOCAL.bit_generator = np.random.PCG64(0)
    state = bit_generator.state
    state["state"] = {"state": high << 64 | low, "inc": state["state"]["inc"]}
    state["has_uint32"] = state["uinteger"] = 0
    bit_generator.state = state
    return np.random.Generator(bit_generator)


class _BlockTables:
    """Every block of a grid as the AND of a row band and a column band, stored as bitsets, and the constants of the
    candidate sampling.

    ``bands`` holds the bitsets of the row bands ``[top, top + h)`` (all columns), entry ``top * (H + 1) + h``, then
    those of the column bands ``[left, left + w)``, entry ``left * (W + 1) + w``, one block of entries per uint64
    word: ``bands.take(offsets + index)`` with ``index`` (2, ...) = (row band, column band) entries gives both
    bitsets, word by word. A band as long as the grid's side is left empty: such a block does not fit (BEiT's
    blocks are strictly smaller than the grid). Bit i of the words is patch i in row-major order, so the patches a
    block would add to a mask are ``popcount(block & ~mask)`` summed over the words.
    """

    def __init__(self, height: int, width: int, log_aspect_ratio: tuple[float, float]):
        low, high = log_aspect_ratio
        self.half_log_aspect = (np.float32(low / 2), np.float32((high - low) / 2))  # sqrt(aspect) = exp(a + b * u)
        self.sides = np.array([height, width], dtype=np.float32)[:, None, None]
        self.positions = self.sides + 1  # positions of a side-0 band along each axis
        self.strides = np.array([height + 1, width + 1])[:, None, None]
        rows = self._bands(height)[:, :, None].repeat(width, axis=2)  # ((H+1)^2, H, W)
        cols = self._bands(width)[:, None, :].repeat(height, axis=1)  # ((W+1)^2, H, W)
        row_bits = self._pack(rows.reshape(len(rows), -1))  # (words, (H+1)^2)
        col_bits = self._pack(cols.reshape(len(cols), -1))  # (words, (W+1)^2)
        self.words = len(row_bits)
        self.bands = np.concatenate([row_bits.ravel(), col_bits.ravel()])
        word = np.arange(self.words)[:, None, None]
        self.offsets = np.stack(
            [word * row_bits.shape[1], row_bits.size + word * col_bits.shape[1]]
        )  # (2, words, 1, 1)

    @staticmethod
    def _bands(side: int) -> np.ndarray:
        """Bool ((side + 1) ** 2, side): entry ``start * (side + 1) + length`` marks [start, start + length)."""
        cells = np.arange(side)
        start = np.arange(side + 1).repeat(side + 1)[:, None]
        length = np.tile(np.arange(side + 1), side + 1)[:, None]
        return (cells >= start) & (cells < start + length) & (length < side)

    @staticmethod
    def _pack(flags: np.ndarray) -> np.ndarray:
        """Bool (k, n) → (ceil(n / 64), k) uint64 bitsets, bit i of a set = flag i."""
        words = -(-flags.shape[1] // 64)
        padded = np.zeros((flags.shape[0], 64 * words), dtype=bool)
        padded[:, : flags.shape[1]] = flags
        packed = np.packbits(padded, axis=1, bitorder="little").view("<u8").astype(np.uint64)
        return np.ascontiguousarray(packed.T)


class RandomMaskGenerator:
    """Uniform random masks leaving exactly ``int(N * (1 - mask_ratio))`` of the N patches visible (ExtreMA's rule,
    `num_visible_patches`), ``num_masks`` per image.

    With several masks, the visible sets of one image are disjoint consecutive slices of one random permutation of
    its patches (ExtreMA's multi-masking: 80% x 5 masks leaves 39 of 196 patches visible in each mask, no patch
    visible twice; 90% leaves 19).

    Args:
        input_size: patch grid, ``int`` or ``(height, width)``.
        mask_ratio: share of patches to mask, in (0, 1); at least one patch must stay masked and one visible.
        num_masks: masks per image; ``num_masks * visible`` must not exceed the number of patches.
    """

    def __init__(self, input_size, mask_ratio: float, num_masks: int = 1):
        self.height, self.width = _grid_size(input_size)
        self.num_patches = self.height * self.width
        if not isinstance(mask_ratio, (int, float)) or isinstance(mask_ratio, bool) or not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be a number in (0, 1), got {mask_ratio!r}.")
        if not isinstance(num_masks, int) or isinstance(num_masks, bool) or num_masks < 1:
            raise ValueError(f"num_masks must be a positive int, got {num_masks!r}.")
        self.num_visible = num_visible_patches(self.num_patches, mask_ratio)
        if not 0 < self.num_visible < self.num_patches:
            raise ValueError(
                f"mask_ratio={mask_ratio} leaves {self.num_visible} of {self.num_patches} patches visible: it must "
                "mask at least one patch and leave at least one visible."
            )
        if num_masks * self.num_visible > self.num_patches:
            raise ValueError(
                f"num_masks={num_masks} masks with {self.num_visible} visible patches each need "
                f"{num_masks * self.num_visible} disjoint patches, more than the {self.num_patches} of the grid: "
                f"use at most {self.num_patches // self.num_visible} masks or a higher mask_ratio."
            )
        self.mask_ratio = mask_ratio
        self.num_masks = num_masks

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(input_size=({self.height}, {self.width}), mask_ratio={self.mask_ratio}, "
            f"num_masks={self.num_masks}, visible={self.num_visible})"
        )

    def gen(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Masks of ``batch_size`` images: bool (batch_size, num_masks, height * width), True = masked."""
        _check_batch_size(batch_size)
        device = _device(generator)
        noise = torch.rand(batch_size, self.num_patches, generator=generator, device=device)
        order = noise.argsort(dim=1)  # one random permutation of the patches per image
        visible = order[:, : self.num_masks * self.num_visible].view(batch_size, self.num_masks, self.num_visible)
        mask = torch.ones(batch_size, self.num_masks, self.num_patches, dtype=torch.bool, device=device)
        return mask.scatter_(2, visible, False)
