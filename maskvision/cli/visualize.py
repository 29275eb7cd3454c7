"""`maskvision visualize beit|attention|pca|curves PATH [options]`: pictures of what a model learned, as PNGs.

    maskvision visualize beit runs/beit --dataset path/to/images        # predictions behind BEiT's masks
    maskvision visualize attention runs/extrema/encoder --dataset D      # last layer's [CLS] attention per head
    maskvision visualize pca facebook/dinov2-small --dataset D           # patch features, 3 components as RGB
    maskvision visualize curves runs/moby                                # the run's logged scalars

beit: a BEiT pretraining run (`maskvision pretrain beit` output_dir): original view, masked view, the tokenizer's
decoding of the true tokens and of the model's predictions at the masked patches (``--target pixels``: the predicted
pixels). attention, pca: any ViT-like encoder, a maskvision ``<run>/encoder``, a pretraining run or a stock
transformers checkpoint (ViT, DeiT, BEiT, DINOv2; Swin for pca). curves: a run's ``trainer_state.json`` (every run
also writes it as training_curves.png when it ends). Default output: beit_predictions.png / attention.png /
pca.png / training_curves.png, in PATH when PATH is a local folder.
"""

import os
import sys
from dataclasses import dataclass, field
from functools import partial

from ..run_files import TRAINING_CURVES
from .args import dispatch, leading_arguments, parse_arguments
from .sources import check_source

PICTURES = ("beit", "attention", "pca", "curves")
DEFAULT_NAMES = {"beit": "beit_predictions.png", "attention": "attention.png", "pca": "pca.png",
                 "curves": TRAINING_CURVES}  # fmt: skip


@dataclass
class PictureArguments:
    dataset: str = field(metadata={"help": "Images: an image folder, a parquet file or glob, a Hub dataset or 'demo'."})
    split: str = field(default="train", metadata={"help": "Dataset split."})
    output: str | None = field(default=None, metadata={"help": "PNG to write (default: see the command's help)."})
    num_images: int = field(default=4, metadata={"help": "Images shown, one row each, spread through the dataset."})
    tile: int = field(default=96, metadata={"help": "Side in pixels of each picture in the grid."})
    seed: int = field(default=0, metadata={"help": "Seed of the masks and views (beit)."})
    device: str | None = field(default=None, metadata={"help": "cuda, cpu, ... (default: cuda when available)."})


@dataclass
class BeitPictureArguments:
    tokenizer: str | None = field(
        default=None, metadata={"help": "Visual tokenizer replacing the path recorded in the run (moved folders)."}
    )


@dataclass
class CurvesArguments:
    output: str | None = field(default=None, metadata={"help": "PNG to write (default: DIR/training_curves.png)."})


def _default_output(path: str, picture: str) -> str:
    folder = path if os.path.isdir(path) and not path.endswith(".json") else "."
    return os.path.join(folder, DEFAULT_NAMES[picture])


USAGE = "usage: maskvision visualize {picture} PATH [--dataset SOURCE] [--output PNG] [flags]"


def curves(argv: list[str]) -> int:
    from ..visualization.curves import PlotsExtraMissing, plot_training_curves, read_log_history

    usage = USAGE.format(picture="curves")
    (path,), rest = leading_arguments(argv, ("PATH",), usage)
    (args,) = parse_arguments((CurvesArguments,), rest, "maskvision visualize curves", __doc__.split("\n")[0], usage)
    check_source("PATH", path, "file")
    output = args.output or _default_output(os.path.dirname(path) if path.endswith(".json") else path, "curves")
    try:
        drawn = plot_training_curves(read_log_history(path), output, title=os.path.basename(os.path.normpath(path)))
    except PlotsExtraMissing as error:
        print(f"maskvision visualize curves: {error}", file=sys.stderr)
        return 1
    print(f"curves: {output} ({', '.join(drawn)})")
    return 0


def picture_of(picture: str, argv: list[str]) -> int:
    """A picture of a model (beit, attention, pca) on a few images of a dataset."""
    usage = USAGE.format(picture=picture)
    (path,), rest = leading_arguments(argv, ("PATH",), usage)
    prog, description = f"maskvision visualize {picture}", __doc__.split("\n")[0]
    from ..data import load_image_dataset

    if picture == "beit":
        from ..visualization.beit import load_beit_run, write_beit_predictions

        args, beit_args = parse_arguments((PictureArguments, BeitPictureArguments), rest, prog, description, usage)
        check_source("PATH", path, "file")
        model = load_beit_run(path, tokenizer=beit_args.tokenizer)
        if args.device:
            model = model.to(args.device)
        output = args.output or _default_output(path, picture)
        report = write_beit_predictions(
            model, load_image_dataset(args.dataset, split=args.split), output, args.num_images, args.seed, args.tile
        )
        print(f"beit: {report['path']} ({report['caption']})")
        return 0

    from ..visualization.encoder import load_visual_encoder, write_encoder_picture

    (args,) = parse_arguments((PictureArguments,), rest, prog, description, usage)
    check_source("PATH", path, "model")
    encoder = load_visual_encoder(path, device=args.device)
    output = args.output or _default_output(path, picture)
    report = write_encoder_picture(
        picture, encoder, load_image_dataset(args.dataset, split=args.split), output, args.num_images, args.tile
    )
    print(f"{picture}: {report['path']} ({report['images']} images: {', '.join(report['columns'][:4])}...)")
    return 0


def main(argv: list[str]) -> int:
    handlers = {picture: partial(picture_of, picture) for picture in PICTURES if picture != "curves"}
    usage = f"{USAGE.format(picture='{' + ','.join(PICTURES) + '}')}\n\n{__doc__}"
    return dispatch("maskvision visualize", handlers | {"curves": curves}, argv, usage)
