"""Checkpoints that a crash cannot leave half-used: `MaskVisionTrainer` writes ``checkpoint-N/`` as the Trainer does,
then a completeness marker (``checkpoint_complete.json``: the step and the size of every file, written to a
temporary file and renamed atomically). Resuming picks the newest checkpoint whose marker is there and whose files
all have their recorded sizes, so a checkpoint being written when the process was killed, or one truncated
afterwards (a full disk, a partial copy), is never loaded.
"""

import json
import logging
import os
import re

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger(__name__)

CHECKPOINT_COMPLETE = "checkpoint_complete.json"


class IncompleteCheckpointError(ValueError):
    """A checkpoint named to resume from that a crash or a partial copy left incomplete (the message names why)."""


_CHECKPOINT_DIR = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def _file_sizes(checkpoint: str) -> dict[str, int]:
    sizes = {}
    for root, _, names in os.walk(checkpoint):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, checkpoint)
            if relative != CHECKPOINT_COMPLETE and not name.startswith("."):
                sizes[relative.replace(os.sep, "/")] = os.path.getsize(path)
    return sizes


def mark_complete(checkpoint: str, global_step: int) -> None:
    """Write ``checkpoint``'s marker, once every file of it is written (by every process)."""
    marker = os.path.join(checkpoint, CHECKPOINT_COMPLETE)
    temporary = os.path.join(checkpoint, f".{CHECKPOINT_COMPLETE}.tmp")  # dot files are not listed
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({"global_step": global_step, "files": _file_sizes(checkpoint)}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, marker)


def incomplete_reason(checkpoint: str) -> str | None:
    """None for a complete checkpoint, else why it is not (no marker, a missing or truncated file)."""
    try:
        with open(os.path.join(checkpoint, CHECKPOINT_COMPLETE), encoding="utf-8") as handle:
            files = json.load(handle)["files"]
    except FileNotFoundError:
        return f"no {CHECKPOINT_COMPLETE} (it was being written when the run stopped)"
    except (ValueError, KeyError, TypeError):
        return f"an unreadable {CHECKPOINT_COMPLETE}"
    for name, size in files.items():
        path = os.path.join(checkpoint, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        if os.path.getsize(path) != size:
            return f"{name} has {os.path.getsize(path)} bytes instead of {size}"
    return None


def checkpoint_dirs(output_dir: str) -> list[tuple[int, str]]:
    """(step, path) of the ``checkpoint-N`` folders in ``output_dir``, newest first."""
    if not os.path.isdir(output_dir):
        return []
    found = [
        (int(match.group(1)), os.path.join(output_dir, name))
        for name in os.listdir(output_dir)
        if (match := _CHECKPOINT_DIR.match(name))
    ]
    return sorted((entry for entry in found if os.path.isdir(entry[1])), reverse=True)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint in ``output_dir`` (None if there is none); skipped ones are logged."""
    for _, path in checkpoint_dirs(output_dir):
        reason = incomplete_reason(path)
        if reason is None:
            return path
        logger.warning("Not resuming from %s: %s.", path, reason)
    return None


def resolve_checkpoint(resume_from_checkpoint: str | None, output_dir: str) -> str | None:
    """A checkpoint path, or 'last' for the newest complete checkpoint in ``output_dir`` (see above):
    a checkpoint being written when a run was killed is never picked, nor loaded when named."""
    if resume_from_checkpoint in (None, ""):
        return None
    if resume_from_checkpoint == "last":
        checkpoint = last_complete_checkpoint(output_dir)
        if checkpoint is None:
            logger.warning("No complete checkpoint in %s to resume from: starting from scratch.", output_dir)
        return checkpoint
    if not os.path.isdir(resume_from_checkpoint):
        raise FileNotFoundError(f"--resume_from_checkpoint {resume_from_checkpoint!r} is not a directory.")
    reason = incomplete_reason(resume_from_checkpoint)
    if reason is not None:
        raise IncompleteCheckpointError(
            f"--resume_from_checkpoint {resume_from_checkpoint!r} is incomplete: {reason}. Name an earlier "
            "checkpoint, or pass 'last' for the newest complete one."
        )
    return resume_from_checkpoint
