"""`ImageStream`: images read as they are needed, for data too large to prepare before training (ImageNet-22k, a Hub
dataset, a folder of millions of files): nothing reads the data before the first batch.

A stream wraps a `datasets.IterableDataset` (`load_image_dataset(..., streaming=True)`: a Hub dataset, parquet
shards, WebDataset ``.tar`` shards, an image folder) and yields rows ``{"image": PIL image, "label"?: int,
"sample_index": int}``, like the map-style path's `IndexedRows`:

- Sharding. Every process (rank) and every data-loader worker reads its own part, one *stream* per (rank, worker):
  `datasets.distributed.split_dataset_by_node` over ``world_size x num_workers`` streams gives each whole shards when
  their number is a multiple of the streams' (else every stream reads all shards and keeps one image in S). The
  streams' parts are disjoint and together hold every image: each image is seen once per epoch across the job.
- Epochs and shuffling. A training stream (`for_training`) repeats: each stream starts its next epoch when its part
  is done (ranks never run out of batches at different times, so data parallelism cannot hang), with the shard order
  reshuffled (`IterableDataset.set_epoch`) and a seeded shuffle buffer: windows of ``shuffle_buffer`` consecutive
  images of the stream are permuted by a generator of (seed, epoch, stream, window), so every epoch draws a new order.
- Bad images are handled as in the map-style path, but as they are met: each image is decoded once, whole, with the
  map-style check's errors (`bad_images.decode_image`); one that cannot be decoded is skipped and counted
  (`skipped_images` in the training logs) or, with ``on_bad_image="raise"``, stops the run naming it.
- Resuming. A batch built by `data_loader` carries its worker's position (``STREAM_POSITION``, taken off the batch
  by `MaskVisionTrainer`, which reports it to `consume`); `state_dict` is then where every stream of this rank
  stands after the batches the trainer used, and a stream given it by `load_state_dict` continues from there.

  Exact, with the same number of processes and data-loader workers: every stream continues with the image after the
  last one trained on, in the same order (its shuffle window is re-read from the window's start, a `datasets`
  ``state_dict``, and re-permuted by the same generator), with the same ``sample_index`` (so the same views and
  masks), and the loader takes the workers' batches in the same turn: the resumed run trains on the batches of the
  uninterrupted one (the tests compare the weights bit for bit). Resuming re-reads at most one window per stream (a
  WebDataset shard is read again up to that point: tar files cannot be entered in the middle).
  Approximate: with another number of processes or workers the streams are cut differently, so each restarts at the
  beginning of the epoch it was in (a warning says so) and sees some images of that epoch twice; data that changed
  between the runs (a Hub dataset without a pinned ``revision``, files rewritten) is read as it is now.
"""

import copy
import logging

import numpy as np
import torch
from datasets import Dataset
from datasets import Image as ImageFeature
from datasets.distributed import split_dataset_by_node
from PIL import Image

from .bad_images import BadImageError, check_on_bad_image, decode_image, image_error

logger = logging.getLogger(__name__)

SAMPLE_INDEX = "sample_index"  # each row's key to the collators' random streams (`IndexedRows` adds it too)
STREAM_POSITION = "stream_position"  # the batch key of the worker's position after the batch
# sample_index = ((epoch * streams + stream) << POSITION_BITS) + the image's place in its stream's epoch: unique in
# the job, and the same in a resumed run.
POSITION_BITS = 32
UNSHUFFLED_WINDOW = 64  # images per read of a stream that keeps its order


def _fresh_position(epoch: int, skipped: int = 0) -> dict:
    # window: the datasets state at the start of the current window (None: the start of the epoch); taken: images of
    # the window handed on or skipped; count: images handed on in this epoch; skipped: bad images met so far.
    return {"epoch": epoch, "window": None, "window_index": 0, "taken": 0, "count": 0, "skipped": skipped}


class ImageStream(torch.utils.data.IterableDataset):
    """Rows ``{"image", "label"?, "sample_index"}`` streamed from ``dataset`` (a `datasets.IterableDataset` with an
    ``image`` column): see the module's docstring. ``load_image_dataset(..., streaming=True)`` makes one: one pass
    over the data in stream order; `for_training` gives the repeating, shuffled, rank-split stream a run trains on."""

    def __init__(
        self,
        dataset,
        source: str = "the stream",
        on_bad_image: str = "skip",
        *,
        seed: int = 0,
        shuffle_buffer: int = 0,
        rank: int = 0,
        world_size: int = 1,
        repeat: bool = False,
        transform=None,
    ):
        check_on_bad_image(on_bad_image)
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0 (0: stream order), got {shuffle_buffer}.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}.")
        self.features = dataset.features.copy()
        self.features["image"] = ImageFeature()  # what the rows hold: PIL images
        self.dataset = dataset.cast_column("image", ImageFeature(decode=False))  # bytes or a path: checked first
        self.source, self.on_bad_image = source, on_bad_image
        self.seed, self.shuffle_buffer, self.rank, self.world_size = seed, shuffle_buffer, rank, world_size
        self.repeat, self.transform = repeat, transform
        self.num_workers = None  # set by `data_loader`
        self._resume = None  # a `state_dict`, from `load_state_dict`
        self._position = None  # in the process iterating: where its stream stands after the last row yielded
        self._worker = None  # ... and which worker's stream it is
        self._consumed = {}  # in the training process: worker → its position after the last batch used
        self._last_worker = None

    @property
    def column_names(self) -> list[str]:
        return list(self.features)

    @property
    def num_shards(self) -> int:
        return self.dataset.num_shards

    def for_training(self, seed: int, shuffle_buffer: int, rank: int = 0, world_size: int = 1) -> "ImageStream":
        """This stream as a run trains on it: this rank's part, repeating epoch after epoch, shuffled."""
        return ImageStream(
            self.dataset,
            self.source,
            self.on_bad_image,
            seed=seed,
            shuffle_buffer=shuffle_buffer,
            rank=rank,
            world_size=world_size,
            repeat=True,
            transform=self.transform,
        )

    def with_transform(self, transform) -> "ImageStream":
        """This stream with ``transform`` applied to each row, given as a batch of one (``{"image": [...],
        "label": [...]}`` → a dict of lists), like `datasets.Dataset.with_transform`."""
        stream = copy.copy(self)
        stream.transform = transform
        return stream

    def head(self, count: int) -> Dataset:
        """The stream's first ``count`` images that decode (fewer if it holds fewer), as a map-style
        `datasets.Dataset` with the same columns: a sample to report on, read without a pass over the data."""
        rows = []
        for row in self.dataset:
            if len(rows) == count:
                break
            if image_error(row["image"], Image.MAX_IMAGE_PIXELS) is None:
                rows.append(row)
        return Dataset.from_list(rows, features=self.dataset.features).cast_column("image", ImageFeature())

    # ------------------------------------------------------------------------------------------------- loading
    def data_loader(self, collate_fn, batch_size: int, num_workers: int = 0, **loader_kwargs):
        """A `torch.utils.data.DataLoader` over this stream whose batches carry the worker's position
        (``STREAM_POSITION``; pass each to `consume` once the batch is used). The stream is already this rank's part:
        the loader must not be split again (``accelerator.prepare`` would)."""
        self.num_workers = max(1, num_workers)
        self._check_resume_state()
        streams = self.world_size * self.num_workers
        if self.num_shards % streams and self.rank == 0:
            logger.info(
                "%s has %d shard(s) for %d streams (processes x data-loader workers): every stream reads all of them "
                "and keeps one image in %d. Store the data in a multiple of %d shards to spread the reading.",
                self.source,
                self.num_shards,
                streams,
                streams,
                streams,
            )
        # The workers' seeds come from a generator of the loader's own, not from torch's global one: a resumed run
        # restores that one before it starts the loader, and a draw from it would shift every later random number.
        return torch.utils.data.DataLoader(
            self,
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=PositionedCollator(collate_fn, self),
            generator=torch.Generator().manual_seed(self.seed),
            **loader_kwargs,
        )

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        num_workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        if self.num_workers not in (None, num_workers):
            raise RuntimeError(f"The stream was set up for {self.num_workers} workers, iterated by {num_workers}.")
        resume = self._resume or {}
        # The loader takes batches from its workers in turn from worker 0: a resumed run gives worker 0 the stream
        # whose batch came next.
        logical = (worker_id + resume.get("next_worker", 0)) % num_workers
        streams, stream = self.world_size * num_workers, self.rank * num_workers + logical
        position = copy.deepcopy(resume.get("workers", {}).get(str(logical)))
        if position is None:
            position = _fresh_position(resume.get("restart_epoch", 0))
        while True:
            yield from self._epoch(position, stream, streams, logical)
            if not self.repeat:
                return
            position = _fresh_position(position["epoch"] + 1, position["skipped"])

    def _epoch(self, position: dict, stream: int, streams: int, logical: int):
        epoch = position["epoch"]
        part = split_dataset_by_node(self.dataset, rank=stream, world_size=streams)
        part.set_epoch(epoch)  # a new shard order every epoch
        if position["window"] is not None:
            part.load_state_dict(position["window"])
        shuffled = self.shuffle_buffer > 1
        window_size = self.shuffle_buffer if shuffled else UNSHUFFLED_WINDOW
        read_any = position["window"] is not None or position["taken"] > 0
        self._position, self._worker = position, logical
        # A window is one read of the stream: iter() (no second split by data-loader worker) in batches of a window,
        # the state after each one the start of the next.
        for window in part.iter(batch_size=window_size):
            read_any = True
            values, size = window["image"], len(window["image"])
            order = np.arange(size)
            if shuffled:
                entropy = [self.seed, epoch, stream, streams, position["window_index"]]
                order = np.random.default_rng(entropy).permutation(size)
            for taken in range(position["taken"], size):
                item = int(order[taken])
                position["taken"] = taken + 1
                image, reason = decode_image(values[item])
                if image is None:
                    read = position["window_index"] * window_size + item
                    self._bad_image(values[item], reason, position, f"image {read} of stream {stream} of {streams}")
                    continue
                index = ((epoch * streams + stream) << POSITION_BITS) + position["count"]
                position["count"] += 1
                yield self._row({key: column[item] for key, column in window.items()}, image, index)
            position.update(window=part.state_dict(), window_index=position["window_index"] + 1, taken=0)
        if not read_any:
            raise ValueError(
                f"Stream {stream} of {streams} (processes x data-loader workers) of {self.source} holds no images in "
                f"epoch {epoch}: the data has fewer images than streams. Use fewer processes or data-loader workers."
            )
        if position["count"] == 0:
            raise BadImageError(f"None of the images of stream {stream} of {streams} of {self.source} can be decoded.")

    def _bad_image(self, value: dict, reason: str, position: dict, place: str) -> None:
        """Count an image that cannot be decoded, or raise; ``place`` names it when it has no file."""
        path = value.get("path")
        where = path or place
        if self.on_bad_image == "raise":
            raise BadImageError(
                f"Cannot decode {where} of {self.source} (epoch {position['epoch']}): {reason}. Fix or remove it, or "
                "pass on_bad_image='skip' to skip such images.",
                path=path,
                reason=reason,
            )
        if position["skipped"] == 0:
            logger.warning(
                "Skipping images of %s that cannot be decoded (first: %s: %s); the training logs count "
                "them (skipped_images).",
                self.source,
                where,
                reason,
            )
        position["skipped"] += 1

    def _row(self, row: dict, image: Image.Image, index: int) -> dict:
        row = {**row, "image": image, SAMPLE_INDEX: index}
        if self.transform is None:
            return row
        return _unbatch(self.transform({key: [value] for key, value in row.items()}))

    # ---------------------------------------------------------------------------------------------- resuming
    def position(self) -> dict | None:
        """This process's stream position after the last row it yielded (a data-loader worker's own)."""
        return None if self._position is None else {"worker": self._worker, **copy.deepcopy(self._position)}

    def consume(self, position: dict | None) -> None:
        """Record that the batch that carried ``position`` was used (the training process calls it per batch)."""
        if position is not None:
            position = dict(position)
            self._last_worker = position.pop("worker")
            self._consumed[self._last_worker] = position

    def skipped_images(self) -> int:
        """Bad images this rank's streams skipped before the batches used so far."""
        return sum(position["skipped"] for position in self._consumed.values())

    def state_dict(self) -> dict:
        """Where this rank's streams stand after the batches used (`consume`), for `load_state_dict` (JSON)."""
        next_worker = 0 if self._last_worker is None else (self._last_worker + 1) % (self.num_workers or 1)
        return {
            "rank": self.rank, "world_size": self.world_size, "num_workers": self.num_workers or 1,
            "next_worker": next_worker, "workers": {str(worker): pos for worker, pos in self._consumed.items()},
        }  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (`state_dict` of the same rank): see the module's docstring for what is exact."""
        self._resume = copy.deepcopy(state)
        self._consumed = {int(worker): position for worker, position in self._resume["workers"].items()}
        self._last_worker = (self._resume["next_worker"] - 1) % self._resume["num_workers"] if self._consumed else None

    def _check_resume_state(self) -> None:
        state = self._resume
        if state is None or "restart_epoch" in state:
            return
        saved = (state["rank"], state["world_size"], state["num_workers"])
        if saved != (self.rank, self.world_size, self.num_workers):
            epoch = min((position["epoch"] for position in state["workers"].values()), default=0)
            logger.warning(
                "The stream positions were saved by rank %d of %d processes with %d data-loader worker(s); this is "
                "rank %d of %d with %d: the streams are cut differently, so they restart at the beginning of epoch %d "
                "(some of its images are seen twice). Resume with the same processes and --dataloader_num_workers to "
                "continue exactly.",
                *saved,
                self.rank,
                self.world_size,
                self.num_workers,
                epoch,
            )
            self._resume, self._consumed, self._last_worker = {"restart_epoch": epoch}, {}, None


class PositionedCollator:
    """A DataLoader's ``collate_fn`` over an `ImageStream`: ``collator``'s batch with the worker's stream position
    after its last row under ``STREAM_POSITION``."""

    def __init__(self, collator, stream: ImageStream):
        self.collator, self.stream = collator, stream

    def __call__(self, rows: list[dict]) -> dict:
        batch = self.collator(rows)
        worker = torch.utils.data.get_worker_info()
        stream = worker.dataset if worker is not None else self.stream  # a worker iterates a copy of its own
        return {**batch, STREAM_POSITION: stream.position()}


def _unbatch(batch: dict) -> dict:
    return {key: values[0] for key, values in batch.items()}
