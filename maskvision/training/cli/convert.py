"""`maskvision convert`: the official releases as maskvision checkpoints and stock encoders (safetensors).

    maskvision convert {beit,vqkd,extrema,moby} FILE.pth --output-dir DIR [--tokenizer PATH] [--image-size N]
        [--num-attention-heads N] [--config-overrides KEY=VALUE,...]

The file is read without running any code from it (`maskvision.safe_pickle`); see `maskvision.official` for what
each kind becomes.
"""

import argparse

from ...official import KINDS


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="maskvision convert",
        description="Convert an official release (unilm BEiT v1/v2 pretraining or fine-tuned, BEiT v2's VQ-KD "
                    "tokenizer, ExtreMA, MoBY) into a maskvision checkpoint and a stock encoder, without running any "
                    "code from the pickle.",
    )
    parser.add_argument("kind", choices=KINDS, help="Which release the file is.")
    parser.add_argument("file", help="The official .pth / .pth.tar file.")
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", required=True)
    parser.add_argument("--tokenizer", help="BEiT pretraining: the visual tokenizer its targets came from (recorded "
                                            "in the config), e.g. a `maskvision convert vqkd` output.")
    parser.add_argument("--image-size", "--image_size", dest="image_size", type=int,
                        help="Only when the weights do not tell it (no position table).")
    parser.add_argument("--num-attention-heads", "--num_attention_heads", dest="num_attention_heads", type=int,
                        help="Only when the heads are not 64 wide and no relative position table gives them.")
    parser.add_argument("--config-overrides", "--config_overrides", dest="config_overrides",
                        help="Settings the weights do not hold, e.g. mask_ratio=0.9,num_masks=8 for ExtreMA's 90%% x 8 "
                             "release (the defaults are the official ones: 80%% x 5, BYOL...).")
    args = parser.parse_args(argv)

    from ...official import convert_release

    conversion = convert_release(args.kind, args.file, args.output_dir, tokenizer=args.tokenizer,
                                 image_size=args.image_size, num_attention_heads=args.num_attention_heads,
                                 config_overrides=args.config_overrides)
    print(conversion.summary())
    return 0
