"""The data arguments every command shares: how the images are read (prepared and checked before a run, or
streamed). Pretraining's `DataArguments` and the labelled `LabelledDataArguments` extend them."""

from dataclasses import dataclass, field

from .streaming import DEFAULT_SHUFFLE_BUFFER


@dataclass
class StreamingArguments:
    """How the images are read: prepared and checked before the run, or streamed."""

    streaming: bool = field(
        default=False,
        kw_only=True,
        metadata={"help": "Read the images as they are needed (a Hub dataset, parquet or WebDataset .tar shards, a "
                          "folder): no pass over the data before the first step. Training then needs --max_steps."},
    )
    shuffle_buffer: int = field(
        default=DEFAULT_SHUFFLE_BUFFER,
        kw_only=True,
        metadata={"help": "With --streaming: images of each stream (process x data-loader worker) shuffled together, "
                          "reseeded every epoch; 0 keeps the stream's order."},
    )
