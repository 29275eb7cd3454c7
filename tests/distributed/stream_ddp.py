"""Launched by test_streaming_ddp.py under `torchrun --nproc_per_node 2` (gloo, CPU): the user's `maskvision pretrain
... --streaming true` (the arguments after the summary path), then, in the same processes, the images that each
rank's two data-loader workers stream in the first epoch of that data. Rank 0 writes a summary to the JSON path."""

import sys

import torch
import torch.distributed as dist
from workers import write_summary

from maskvision.cli import main as cli
from maskvision.data import load_image_dataset
from maskvision.data.streaming import POSITION_BITS, STREAM_POSITION


def first_epoch_ids(source: str, rank: int, world_size: int, num_workers: int, rows_per_stream: int) -> list[int]:
    stream = load_image_dataset(source, streaming=True).for_training(0, 4, rank=rank, world_size=world_size)
    loader = stream.data_loader(lambda rows: {"rows": rows}, batch_size=1, num_workers=num_workers)
    ids = []
    for count, batch in enumerate(loader, start=1):
        batch.pop(STREAM_POSITION)
        row = batch["rows"][0]
        if (row["sample_index"] >> POSITION_BITS) // (world_size * num_workers) == 0:  # epoch 0
            ids.append(row["image"].getpixel((0, 0))[0])
        if count == num_workers * (rows_per_stream + 1):  # every worker's epoch, and the first image of the next
            return ids
    return ids


def main(summary_path: str, argv: list[str]) -> None:
    torch.set_num_threads(1)
    status = cli(argv)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    ids = first_epoch_ids(argv[argv.index("--dataset") + 1], rank, world_size, num_workers=2, rows_per_stream=6)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, {"status": status, "ids": ids})
    write_summary(summary_path, {"ranks": gathered})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
