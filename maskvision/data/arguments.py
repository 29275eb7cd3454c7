"""The data arguments every command shares: how the images are read (prepared and checked before a run, or
streamed). Pretraining's `DataArguments` and the labelled `LabelledDataArguments` extend them. Here with the values
they offer and nothing heavier than dataclasses: a command's ``--help`` imports this module, not the data loading."""

from dataclasses import dataclass, field

ON_BAD_IMAGE = ("skip", "raise")  # what `maskvision.data.bad_images` does with an image that does not decode
DEFAULT_SHUFFLE_BUFFER = 1000  # datasets' default buffer
DEMO_SOURCE = "demo"  # the --dataset naming the embedded demo set (`maskvision.data.loading`)
GLOB_CHARACTERS = ("*", "?", "[")  # a --dataset holding one of these is a glob of files


@dataclass
class StreamingArguments:
    """How the images are read: prepared and checked before the run, or streamed."""

    streaming: bool = field(
        default=False,
        kw_only=True,
        metadata={
            "help": "Read the images as they are needed (a Hub dataset, parquet or WebDataset .tar shards, a "
            "folder): no pass over the data before the first step. Training then needs --max_steps."
        },
    )
    shuffle_buffer: int = field(
        default=DEFAULT_SHUFFLE_BUFFER,
        kw_only=True,
        metadata={
            "help": "With --streaming: images of each stream (process x data-loader worker) shuffled together, "
            "reseeded every epoch; 0 keeps the stream's order."
        },
    )
