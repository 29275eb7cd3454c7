"""The flags of `maskvision eval knn|linear` (`FeatureArguments`, `KnnArguments`, `LinearArguments`) and the
protocols' defaults, apart from the evaluation (`maskvision.evaluation.run`): ``maskvision eval knn --help`` imports
these, not torch, the data loading or the models."""

from dataclasses import dataclass, field

from ..data.labelled import LabelledDataArguments

DEFAULT_KS = (20, 200)  # the weighted k-NN's neighbours (InstDisc / DINO)
DEFAULT_TEMPERATURE = 0.07
DEFAULT_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)  # the linear probe's sweep
PROTOCOLS = ("knn", "linear")


@dataclass
class FeatureArguments(LabelledDataArguments):
    """The encoder, its labelled data and how its features are taken."""

    model: str = field(
        kw_only=True, metadata={"help": "Encoder to evaluate: a local checkpoint directory or a Hub repo id."}
    )
    pooling: list[str] | None = field(
        default=None,
        metadata={
            "help": "One or more of cls, mean, class_attention (ExtreMA pretraining checkpoints). Default: the "
            "model's own pooling (mean for Beit with mean pooling and Swin, class_attention for ExtreMA, "
            "else cls)."
        },
    )
    layers: list[str] = field(
        default_factory=lambda: ["last"],
        metadata={
            "help": "Blocks whose features to evaluate: 'last', 'all' (every block, as BEiT's paper probes) or "
            "block numbers from 1 (negative: from the end)."
        },
    )
    batch_size: int = field(default=128, metadata={"help": "Images per forward pass of the encoder."})
    num_workers: int = field(default=0, metadata={"help": "Data-loader worker processes for image decoding."})
    image_size: int | None = field(default=None, metadata={"help": "Override the checkpoint's input size."})
    image_mean: list[float] | None = field(
        default=None, metadata={"help": "Override the normalisation mean (3 values)."}
    )
    image_std: list[float] | None = field(default=None, metadata={"help": "Override the normalisation std (3 values)."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Feature cache directory (default ~/.cache/maskvision/features)."}
    )
    no_cache: bool = field(default=False, metadata={"help": "Neither read nor write cached features."})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ... (default: cuda when available)."})
    output_file: str | None = field(
        default=None,
        metadata={
            "help": "JSON file the results are merged into (default: <model>/eval_results.json for a local "
            "model, else ./eval_results.json)."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the sample subsets and of the linear probe."})
    progress: bool = field(
        default=True, metadata={"help": "Progress bars on a terminal (never in logs or pipes); --no_progress: none."}
    )


@dataclass
class KnnArguments:
    k: list[int] = field(default_factory=lambda: list(DEFAULT_KS), metadata={"help": "Numbers of neighbours."})
    temperature: float = field(
        default=DEFAULT_TEMPERATURE, metadata={"help": "Temperature of the exp(similarity / T) vote weights."}
    )


@dataclass
class LinearArguments:
    learning_rates: list[float] = field(
        default_factory=lambda: list(DEFAULT_LEARNING_RATES),
        metadata={"help": "Learning rates swept (AdamW); the best on a held-out part of the training set is kept."},
    )
    epochs: int = field(default=100, metadata={"help": "Epochs over the cached training features."})
    probe_batch_size: int = field(default=1024, metadata={"help": "Mini-batch size of the probe."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay of the probe."})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of training images held out for the sweep."}
    )
