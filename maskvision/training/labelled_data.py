"""`LabelledDataArguments`: the labelled images that `maskvision eval` and `maskvision finetune` train and evaluate
on, with their optional seeded random subsets, or streamed."""

from dataclasses import dataclass, field

from ..data import load_image_dataset, random_subset
from .streaming import StreamingArguments


@dataclass
class LabelledDataArguments(StreamingArguments):
    dataset: str = field(
        metadata={"help": "Labelled training images (fine-tuning set, k-NN memory bank, probe training set): 'demo', "
                  "an image folder, a parquet file or glob, WebDataset .tar shards, or a Hub dataset."}
    )
    split: str = field(default="train", metadata={"help": "Split of --dataset to train on."})
    eval_dataset: str | None = field(default=None, metadata={"help": "Images to evaluate on (default: --dataset)."})
    eval_split: str = field(default="test", metadata={"help": "Split of the evaluation dataset."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use N training images drawn at random (fixed by --seed)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use N evaluation images drawn at random (fixed by --seed)."}
    )
    on_bad_image: str = field(default="skip", metadata={"help": "'skip' or 'raise' on a corrupt image."})
    image_column: str | None = field(default=None, metadata={"help": "Image column (default: found by type)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: found by type)."})

    @property
    def eval_source(self) -> str:
        return self.eval_dataset or self.dataset

    def load(self, seed: int = 0) -> tuple:
        """(training, evaluation) `datasets.Dataset`s with ``image`` and ``label`` columns, each cut to its
        ``max_*_samples`` by a random draw fixed by ``seed`` (`maskvision.data.random_subset`); with ``streaming``,
        `ImageStream`s of them (one pass each, in stream order)."""
        splits = []
        for source, split, limit in (
            (self.dataset, self.split, self.max_train_samples),
            (self.eval_source, self.eval_split, self.max_eval_samples),
        ):
            dataset = load_image_dataset(
                source,
                split=split,
                on_bad_image=self.on_bad_image,
                image_column=self.image_column,
                label_column=self.label_column,
                streaming=self.streaming,
            )
            splits.append(random_subset(dataset, limit, seed))
        return tuple(splits)
