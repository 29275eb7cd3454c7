"""Training on streamed images (``--streaming true``): the rows a run trains on, and the streams' positions in
checkpoints (the data arguments every command shares: `maskvision.data.arguments.StreamingArguments`).

A streaming run reads `maskvision.data.ImageStream` rows: each rank reads its own part, the data-loader workers theirs,
epoch after epoch (so a run is as long as ``--max_steps`` says: a stream has no length to count epochs in).
`MaskVisionTrainer` keeps where every stream stands after the batches it trained on and writes it into each
checkpoint (``stream_state_rank<R>.json``, before the completeness marker), and a resumed run continues the streams
from there instead of replaying batches.
"""

import json
import logging
import os

from ...data.arguments import StreamingArguments
from ...data.streaming import ImageStream
from ...data.tensors import TensorImages
from .collators import IndexedRows

logger = logging.getLogger(__name__)

STREAM_STATE_NAME = "stream_state_rank{rank}.json"


def training_rows(dataset, data_args: StreamingArguments, training_args):
    """What a run trains on: a map-style dataset's rows with their ``sample_index`` (`IndexedRows`), or a stream as
    this rank trains on it (its part, repeating, shuffled by ``--seed``). With ``images_on_device`` the map-style rows
    are one uint8 tensor on the training device (`maskvision.data.TensorImages`)."""
    if not isinstance(dataset, ImageStream):
        if getattr(training_args, "images_on_device", False):  # one uint8 tensor of them on the training device
            dataset = TensorImages.from_dataset(dataset, device=training_args.device)
        return IndexedRows(dataset)
    if getattr(training_args, "images_on_device", False):
        raise ValueError(
            "--images_on_device holds a map-style dataset's images on the device; a stream is read as "
            "training goes: leave out one of --streaming and --images_on_device."
        )
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise ValueError("--streaming true needs --max_steps: a stream has no length to count epochs in.")
    return dataset.for_training(
        seed=training_args.seed,
        shuffle_buffer=data_args.shuffle_buffer,
        rank=training_args.process_index,
        world_size=training_args.world_size,
    )


def save_stream_state(stream: ImageStream, checkpoint: str, rank: int) -> None:
    """Write this rank's stream positions into ``checkpoint`` (every rank its own file)."""
    os.makedirs(checkpoint, exist_ok=True)
    with open(os.path.join(checkpoint, STREAM_STATE_NAME.format(rank=rank)), "w", encoding="utf-8") as handle:
        json.dump(stream.state_dict(), handle)


def load_stream_state(stream: ImageStream, checkpoint: str, rank: int) -> None:
    """Continue ``stream`` from the positions saved in ``checkpoint`` for ``rank`` (from its start when the checkpoint
    has none: a run that did not stream)."""
    path = os.path.join(checkpoint, STREAM_STATE_NAME.format(rank=rank))
    if not os.path.isfile(path):
        logger.warning(
            "%s holds no stream positions for rank %d: the stream starts from its beginning.", checkpoint, rank
        )
        return
    with open(path, encoding="utf-8") as handle:
        stream.load_state_dict(json.load(handle))
