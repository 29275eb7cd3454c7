"""`maskvision convert`: the official releases as maskvision checkpoints and stock encoders (safetensors).

    maskvision convert {beit,vqkd,extrema,moby} FILE.pth --output-dir DIR [--tokenizer PATH] [--image-size N]
        [--num-attention-heads N] [--config-overrides KEY=VALUE,...]

The file is read without running any code from it (`maskvision.safe_pickle`); see `maskvision.official` for what
each kind becomes.
"""

from dataclasses import dataclass, field
from functools import partial

from .args import dispatch, leading_arguments, parse_arguments
from .sources import check_source

# The kinds of release (`maskvision.official.KINDS`, which imports torch: listed here for a fast --help).
KINDS = ("beit", "vqkd", "extrema", "moby")


@dataclass
class ConvertArguments:
    output_dir: str = field(metadata={"help": "Folder the maskvision checkpoint (and its encoder/) is written to."})
    tokenizer: str | None = field(
        default=None,
        metadata={
            "help": "BEiT pretraining: the visual tokenizer its targets came from (recorded in the config), "
            "e.g. a `maskvision convert vqkd` output."
        },
    )
    image_size: int | None = field(default=None, metadata={"help": "Only when the weights do not tell it."})
    num_attention_heads: int | None = field(
        default=None,
        metadata={"help": "Only when the heads are not 64 wide and no relative position table gives them."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Settings the weights do not hold, e.g. mask_ratio=0.9,num_masks=8 for ExtreMA's "
            "release with 8 masks at ratio 0.9 (the defaults are the official ones: 5 masks at 0.8, "
            "BYOL...)."
        },
    )


def convert(kind: str, argv: list[str]) -> int:
    usage = f"usage: maskvision convert {kind} FILE.pth --output_dir DIR [flags]"
    (path,), rest = leading_arguments(argv, ("FILE",), usage)
    (args,) = parse_arguments((ConvertArguments,), rest, f"maskvision convert {kind}", __doc__.split("\n\n")[0], usage)
    check_source("FILE", path, "file")
    from ..official import convert_release

    conversion = convert_release(
        kind,
        path,
        args.output_dir,
        tokenizer=args.tokenizer,
        image_size=args.image_size,
        num_attention_heads=args.num_attention_heads,
        config_overrides=args.config_overrides,
    )
    print(conversion.summary())
    return 0


def main(argv: list[str]) -> int:
    usage = f"usage: maskvision convert {{{','.join(KINDS)}}} FILE.pth --output_dir DIR [flags]\n\n{__doc__}"
    return dispatch("maskvision convert", {kind: partial(convert, kind) for kind in KINDS}, argv, usage)
