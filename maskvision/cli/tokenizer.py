"""`maskvision tokenizer train|inspect|import-dalle`: BEiT's visual tokenizers.

maskvision tokenizer train --dataset SOURCE --output_dir DIR [--model_size tiny] [--tokenizer_type vqkd
    --teacher PATH] [...]                      (or a YAML/JSON file of the same arguments, then flags)
maskvision tokenizer inspect DIR --dataset SOURCE [--split test] [--max-images N]
maskvision tokenizer import-dalle ENCODER_PKL [--decoder DECODER_PKL] --output-dir DIR
"""

import json
import os
from dataclasses import dataclass, field

from .args import dispatch, exit_status, leading_arguments, parse_arguments
from .sources import check_source

USAGE = "usage:\n" + __doc__.split("\n\n", 1)[1].rstrip()


@dataclass
class InspectArguments:
    dataset: str = field(metadata={"help": "Images: an image folder, a parquet file or glob, a Hub dataset or 'demo'."})
    split: str = field(default="train", metadata={"help": "Dataset split."})
    max_images: int = field(default=10000, metadata={"help": "Images the codebook health is measured on."})
    batch_size: int = field(default=256, metadata={"help": "Images per forward pass."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Where inspect.json and inspect_reconstructions.png go (default: DIR)."}
    )
    progress: bool = field(default=True, metadata={"help": "Progress bar on a terminal; --no_progress: none."})


@dataclass
class ImportDalleArguments:
    output_dir: str = field(metadata={"help": "Folder the DVAETokenizer (safetensors) is saved to."})
    decoder: str | None = field(default=None, metadata={"help": "decoder.pkl (torch.save of dall_e.decoder.Decoder)."})
    image_size: int = field(
        default=112, metadata={"help": "Resolution the image processor resizes to (112: BEiT's 14 x 14 grid)."}
    )


def train(argv: list[str]) -> int:
    from ..training.runs.arguments import DataArguments
    from ..training.runs.tokenizer_arguments import TokenizerArguments, TokenizerTrainingArguments

    data_args, model_args, training_args = parse_arguments(
        (DataArguments, TokenizerArguments, TokenizerTrainingArguments),
        argv,
        prog="maskvision tokenizer train",
        description="Train a visual tokenizer (DALL-E's dVAE or BEiT v2's VQ-KD) for BEiT.",
    )
    from ..training.runs.tokenizer import train_tokenizer  # the models and the Trainer: after --help

    trainer, report = train_tokenizer(data_args, model_args, training_args)
    if report:
        print(json.dumps(report, indent=2))
    return exit_status(trainer, training_args)


def inspect(argv: list[str]) -> int:
    """Codebook health (perplexity, used fraction, dead codes) of a trained tokenizer on a dataset, its reconstruction
    error and a PNG of originals beside reconstructions."""
    usage = "usage: maskvision tokenizer inspect DIR --dataset SOURCE [flags]"
    (path,), rest = leading_arguments(argv, ("DIR",), usage)
    (args,) = parse_arguments((InspectArguments,), rest, "maskvision tokenizer inspect", inspect.__doc__, usage)
    check_source("DIR", path, "model")

    import torch
    from transformers import AutoModel

    from ..training.runs.arguments import DataArguments
    from ..training.runs.tokenizer import write_report

    model = AutoModel.from_pretrained(path)
    if not hasattr(model, "get_codebook_indices"):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a maskvision visual tokenizer.")
    if torch.cuda.is_available():
        model = model.cuda()
    dataset = DataArguments(dataset=args.dataset, split=args.split).load()
    output_dir = args.output_dir or path
    os.makedirs(output_dir, exist_ok=True)
    report = write_report(
        model,
        dataset,
        os.path.join(output_dir, "inspect.json"),
        os.path.join(output_dir, "inspect_reconstructions.png"),
        max_images=args.max_images,
        batch_size=args.batch_size,
        progress=args.progress,
    )
    print(json.dumps(report, indent=2))
    return 0


def import_dalle(argv: list[str]) -> int:
    """Convert OpenAI's DALL-E dVAE pickles to a DVAETokenizer (safetensors), without running any code from the
    pickles. ENCODER_PKL: encoder.pkl (torch.save of dall_e.encoder.Encoder)."""
    usage = "usage: maskvision tokenizer import-dalle ENCODER_PKL [--decoder DECODER_PKL] --output_dir DIR"
    (encoder,), rest = leading_arguments(argv, ("ENCODER_PKL",), usage)
    (args,) = parse_arguments(
        (ImportDalleArguments,), rest, "maskvision tokenizer import-dalle", import_dalle.__doc__, usage
    )
    check_source("ENCODER_PKL", encoder, "file")

    from ..dalle_weights import convert_dalle

    model = convert_dalle(encoder, args.decoder, image_size=args.image_size)
    model.save_pretrained(args.output_dir)
    model.image_processor().save_pretrained(args.output_dir)
    print(
        f"DALL-E dVAE (vocabulary {model.config.vocab_size}, {'with' if args.decoder else 'without'} decoder) "
        f"saved to {args.output_dir}"
    )
    return 0


def main(argv: list[str]) -> int:
    return dispatch(
        "maskvision tokenizer", {"train": train, "inspect": inspect, "import-dalle": import_dalle}, argv, USAGE
    )
