"""`LabelledDataArguments`: the labelled images that `maskvision eval` and `maskvision finetune` train and evaluate
on, with their optional seeded random subsets or streamed, and the guarantee that an evaluation never scores its
training rows.

When both sides would read the same rows — no ``--eval_dataset`` on a one-split source (a parquet file or glob:
every split name reads the whole file), or the same source and split named twice — a seeded random share
(``--holdout_fraction``, 15%) of those rows is held out for evaluation and the rest trained on: the two sides are
disjoint, and each side's split says so in every results record and card (``train minus held-out 15% (seed 0)`` /
``held-out 15% of train (seed 0)``). ``--holdout_fraction 0`` refuses instead, naming ``--eval_dataset``, and so
does a stream (it cannot hold rows out). Slices a
user writes (``--split 'train[:90%]' --eval_split 'train[90%:]'``) are taken as given.
"""

import os
from dataclasses import dataclass, field

from .arguments import DEMO_SOURCE, GLOB_CHARACTERS, ON_BAD_IMAGE, StreamingArguments


@dataclass
class LabelledData:
    """The two sides' rows and what each is, as results records and cards state it."""

    train: object  # datasets.Dataset
    evaluation: object
    train_split: str
    eval_split: str


@dataclass
class LabelledDataArguments(StreamingArguments):
    dataset: str = field(
        metadata={
            "help": "Labelled training images (fine-tuning set, k-NN memory bank, probe training set): 'demo', "
            "an image folder, a parquet file or glob, WebDataset .tar shards, or a Hub dataset."
        }
    )
    split: str = field(default="train", metadata={"help": "Split of --dataset to train on."})
    eval_dataset: str | None = field(default=None, metadata={"help": "Images to evaluate on (default: --dataset)."})
    eval_split: str = field(default="test", metadata={"help": "Split of the evaluation dataset."})
    holdout_fraction: float = field(
        default=0.15,
        metadata={
            "help": "When the evaluation images would be the training images (no --eval_dataset on a parquet "
            "file, or the same source and split twice): the share of them held out for evaluation, drawn by "
            "--seed, disjoint from the training rows. 0: refuse instead."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use N training images drawn at random (fixed by --seed)."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Use N evaluation images drawn at random (fixed by --seed)."}
    )
    on_bad_image: str = field(
        default="skip", metadata={"help": "What to do with a corrupt image.", "choices": ON_BAD_IMAGE}
    )
    image_column: str | None = field(default=None, metadata={"help": "Image column (default: found by type)."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: found by type)."})

    def __post_init__(self):
        if not 0 <= self.holdout_fraction < 1:
            raise ValueError(f"--holdout_fraction must be in [0, 1), got {self.holdout_fraction}.")
        if self.shares_rows() and self.holdout_fraction == 0:
            raise ValueError(
                f"The evaluation images would be the training images ({self.dataset!r}, split {self.split!r}): pass "
                "--eval_dataset (or --eval_split) naming other images, or --holdout_fraction > 0."
            )
        if self.shares_rows() and self.streaming:
            raise ValueError(
                f"The evaluation images would be the training images ({self.dataset!r}, split {self.split!r}), and a "
                "stream cannot hold a share of them out: pass --eval_dataset (or --eval_split) naming other images."
            )

    @property
    def eval_source(self) -> str:
        return self.eval_dataset or self.dataset

    def shares_rows(self) -> bool:
        """Whether both sides would read the same rows: the same source, and the same split (for a one-split source,
        a parquet file or glob whatever the split is named: the same slice of it)."""
        if _source_key(self.eval_source) != _source_key(self.dataset):
            return False
        if _one_split(self.dataset):
            return _slice(self.split) == _slice(self.eval_split)
        return self.split.replace(" ", "") == self.eval_split.replace(" ", "")

    def load(self, seed: int = 0) -> LabelledData:
        """Both sides as `datasets.Dataset`s with ``image`` and ``label`` columns: when they share their rows, a
        ``holdout_fraction`` drawn by ``seed`` is held out for evaluation; then each is cut to its ``max_*_samples``
        by a random draw fixed by ``seed`` (`maskvision.data.random_subset`); with ``streaming``, `ImageStream`s of them
        (one pass each, in stream order)."""
        from .loading import load_image_dataset, random_subset  # datasets: not for --help

        options = dict(
            on_bad_image=self.on_bad_image,
            image_column=self.image_column,
            label_column=self.label_column,
            streaming=self.streaming,
        )
        train = load_image_dataset(self.dataset, split=self.split, **options)
        if self.shares_rows():
            parts = train.train_test_split(test_size=self.holdout_fraction, seed=seed)
            train, evaluation = parts["train"], parts["test"]
            held_out = f"held-out {100 * self.holdout_fraction:g}%"
            train_split = f"{self.split} minus {held_out} (seed {seed})"
            eval_split = f"{held_out} of {self.split} (seed {seed})"
        else:
            evaluation = load_image_dataset(self.eval_source, split=self.eval_split, **options)
            train_split, eval_split = self.split, self.eval_split
        return LabelledData(
            train=random_subset(train, self.max_train_samples, seed),
            evaluation=random_subset(evaluation, self.max_eval_samples, seed),
            train_split=train_split,
            eval_split=eval_split,
        )


def _source_key(source: str) -> str:
    """Local paths resolved (``./a.parquet`` and ``a.parquet`` are one source); other names as they are."""
    path = os.path.expanduser(source)
    return os.path.realpath(path) if source != DEMO_SOURCE and os.path.exists(path) else source


def _one_split(source: str) -> bool:
    """A parquet file or glob is one split, returned whatever split is asked (`maskvision.data.load_image_dataset`)."""
    path = os.path.expanduser(source)
    return os.path.isfile(path) or any(character in path for character in GLOB_CHARACTERS)


def _slice(split: str) -> str:
    """The slice part of a split ("train[:10%]" → "[:10%]"), which is all that selects rows of a one-split source."""
    return split.replace(" ", "").partition("[")[2]
