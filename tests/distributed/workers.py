"""What the torchrun worker scripts of tests/distributed/ share: comparing tensors across ranks, precomputed rows
(identical inputs for a one-process reference run), and writing rank 0's summary."""

import json
import os
import sys

import torch
import torch.distributed as dist

from maskvision.modeling.distributed import all_gather_no_grad


def flat(tensors) -> torch.Tensor:
    return torch.cat([tensor.detach().reshape(-1).float() for tensor in tensors])


def identical_across_ranks(tensors) -> bool:
    """True when every rank holds exactly the same values (a collective call: every rank must make it)."""
    gathered = all_gather_no_grad(flat(tensors).unsqueeze(0))
    return all(torch.equal(gathered[0], row) for row in gathered[1:])


def differs_across_ranks(tensors) -> bool:
    """True when no two ranks hold the same values (a collective call)."""
    gathered = all_gather_no_grad(flat(tensors).unsqueeze(0))
    return all(not torch.equal(gathered[i], gathered[j]) for i in range(len(gathered)) for j in range(i))


class Rows(torch.utils.data.Dataset):
    """A list of dicts of tensors as a dataset: batches that do not depend on the rank or on any random stream, so
    that a run on N processes and a run on one see the same global batches."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        return self.rows[index]


def logged_losses(trainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def write_summary(path: str, summary: dict) -> None:
    """Rank 0 writes the summary; launched as several processes, every rank then waits for the others and leaves at
    once. A normal interpreter exit would tear down the gloo process group held by DDP's reducer after a peer has
    gone, and that blocks or aborts ("terminate called without an active exception") in the gloo thread's join."""
    if not dist.is_initialized() or dist.get_rank() == 0:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(summary, handle)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
