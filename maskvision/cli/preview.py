"""`maskvision preview --dataset SOURCE --method beit|extrema|moby [method flags]`: a PNG of the views and masks a
method will train on, made by the collator `maskvision pretrain <method>` builds from the same flags.

    maskvision preview --dataset path/to/images --method extrema --image_size 96 --patch_size 8 --mask_ratio 0.9
    maskvision preview --dataset demo --method beit --tokenizer runs/tokenizer --image_size 32 --patch_size 4

The method's model flags are those of `maskvision pretrain <method>` (image and patch size, masking, crop scale...;
`maskvision preview --method M --help` lists them); the picture goes to ``--output`` (default preview_<method>.png).
"""

from dataclasses import dataclass, field

from ..training.runs.pretrain import DataArguments
from ..visualization.preview import write_preview
from .args import ANY_HELP_FLAG, CommandParser, UsageError, normalise_flags, parse_arguments
from .pretrain import RECIPES, load_recipe


@dataclass
class PreviewArguments:
    output: str | None = field(default=None, metadata={"help": "PNG to write (default: preview_<method>.png)."})
    num_images: int = field(default=8, metadata={"help": "Images shown, one row each, spread through the dataset."})
    tile: int = field(default=96, metadata={"help": "Side in pixels of each picture in the grid."})
    seed: int = field(default=0, metadata={"help": "Seed of the views and masks (as --seed of a run)."})


def main(argv: list[str]) -> int:
    method_parser = CommandParser(prog="maskvision preview", add_help=False)
    method_parser.add_argument("--method", choices=list(RECIPES))
    known, rest = method_parser.parse_known_args(normalise_flags(argv))
    if known.method is None:
        if any(flag in argv for flag in ANY_HELP_FLAG):
            print(
                f"usage: maskvision preview --dataset SOURCE --method METHOD [method flags]  "
                f"(METHOD: {', '.join(RECIPES)})\n"
            )
            print(__doc__)
            return 0
        raise UsageError(f"--method is required: one of {', '.join(RECIPES)}", "maskvision preview")
    recipe = load_recipe(known.method)
    prog = f"maskvision preview --method {recipe.name}"
    data_args, preview_args, model_args = parse_arguments(
        (DataArguments, PreviewArguments, recipe.model_arguments), rest, prog=prog, description=__doc__.split("\n")[0]
    )
    path = preview_args.output or f"preview_{recipe.name}.png"
    report = write_preview(
        recipe,
        data_args.load(preview_args.seed),
        model_args,
        path,
        preview_args.num_images,
        preview_args.seed,
        preview_args.tile,
    )
    print(f"preview: {report['path']} ({report['images']} images: {', '.join(report['columns'])})")
    return 0
