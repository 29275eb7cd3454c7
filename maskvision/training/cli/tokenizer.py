"""`maskvision tokenizer train|inspect|import-dalle`: BEiT's visual tokenizers.

    maskvision tokenizer train --dataset SOURCE --output_dir DIR [--model_size tiny] [--tokenizer_type vqkd
        --teacher PATH] [...]                      (or a YAML/JSON file of the same arguments, then flags)
    maskvision tokenizer inspect DIR --dataset SOURCE [--split test] [--max-images N]
    maskvision tokenizer import-dalle ENCODER_PKL [--decoder DECODER_PKL] --output-dir DIR
"""

import argparse
import json
import os
import sys

USAGE = "usage:\n" + __doc__.split("\n\n", 1)[1].rstrip()


def train(argv: list[str]) -> int:
    from ..pretrain import DataArguments
    from ..tokenizer import TokenizerArguments, TokenizerTrainingArguments, train_tokenizer
    from .args import exit_status, parse_arguments

    data_args, model_args, training_args = parse_arguments(
        (DataArguments, TokenizerArguments, TokenizerTrainingArguments), argv, prog="maskvision tokenizer train",
        description="Train a visual tokenizer (DALL-E's dVAE or BEiT v2's VQ-KD) for BEiT.",
    )
    trainer, report = train_tokenizer(data_args, model_args, training_args)
    if report:
        print(json.dumps(report, indent=2))
    return exit_status(trainer, training_args)


def inspect(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="maskvision tokenizer inspect",
        description="Codebook health (perplexity, used fraction, dead codes) of a trained tokenizer on a dataset, "
                    "its reconstruction error and a PNG of originals above reconstructions.",
    )
    parser.add_argument("path", help="Directory of a trained or imported tokenizer.")
    parser.add_argument("--dataset", required=True, help="Images: an image folder, a parquet file or folder, ...")
    parser.add_argument("--split", default="train")
    parser.add_argument("--max-images", "--max_images", dest="max_images", type=int, default=10000)
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=256)
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir",
                        help="Where inspect.json and inspect_reconstructions.png go (default: the tokenizer's).")
    parser.add_argument("--no-progress", "--no_progress", dest="progress", action="store_false",
                        help="No progress bar (it is drawn on a terminal only).")
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModel

    from ..pretrain import DataArguments
    from ..tokenizer import write_report

    model = AutoModel.from_pretrained(args.path)
    if not hasattr(model, "get_codebook_indices"):
        raise ValueError(f"{args.path} holds a {type(model).__name__}, not a maskvision visual tokenizer.")
    if torch.cuda.is_available():
        model = model.cuda()
    dataset = DataArguments(dataset=args.dataset, split=args.split).load()
    output_dir = args.output_dir or args.path
    os.makedirs(output_dir, exist_ok=True)
    report = write_report(
        model, dataset, os.path.join(output_dir, "inspect.json"),
        os.path.join(output_dir, "inspect_reconstructions.png"), max_images=args.max_images,
        batch_size=args.batch_size, progress=args.progress,
    )
    print(json.dumps(report, indent=2))
    return 0


def import_dalle(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="maskvision tokenizer import-dalle",
        description="Convert OpenAI's DALL-E dVAE pickles to a DVAETokenizer (safetensors), without running any "
                    "code from the pickles.",
    )
    parser.add_argument("encoder", help="encoder.pkl (torch.save of dall_e.encoder.Encoder).")
    parser.add_argument("--decoder", help="decoder.pkl (torch.save of dall_e.decoder.Decoder).")
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", required=True)
    parser.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=112,
                        help="Resolution the image processor resizes to (112: BEiT's 14 x 14 grid).")
    args = parser.parse_args(argv)

    from ...dalle_weights import convert_dalle

    model = convert_dalle(args.encoder, args.decoder, image_size=args.image_size)
    model.save_pretrained(args.output_dir)
    model.image_processor().save_pretrained(args.output_dir)
    print(f"DALL-E dVAE (vocabulary {model.config.vocab_size}, {'with' if args.decoder else 'without'} decoder) "
          f"saved to {args.output_dir}")
    return 0


SUBCOMMANDS = {"train": train, "inspect": inspect, "import-dalle": import_dalle}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] not in SUBCOMMANDS:
        print(f"maskvision tokenizer: unknown subcommand {argv[0]!r}; choose one of {sorted(SUBCOMMANDS)}.\n\n{USAGE}",
              file=sys.stderr)
        return 2
    return SUBCOMMANDS[argv[0]](argv[1:])
