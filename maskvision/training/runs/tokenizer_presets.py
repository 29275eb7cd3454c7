"""The visual tokenizers' size presets: each type's config and model classes and the config fields of each size (what
`maskvision.training.runs.tokenizer.build_tokenizer` builds). Apart from the arguments (`tokenizer_arguments`): these
import the models, which ``maskvision tokenizer train --help`` does not need."""

from ...configuration.backbones import vit_backbone_config
from ...configuration.configuration_dvae import DVAEConfig
from ...configuration.configuration_vqkd import VQKD_VIT_DEFAULTS, VQKDConfig
from ...modeling.modeling_dvae import DVAETokenizer
from ...modeling.modeling_vqkd import VQKDTokenizer

# Size presets: "base" is the official model (DALL-E's dVAE; BEiT v2's VQ-KD with a ViT-B/16 encoder and a
# 3-layer decoder, the config defaults); "tiny" trains on CPU in minutes: 32 px and an 8 x 8 grid of codes, the grid
# of a ViT with 4-pixel patches.
TINY_VIT = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=2, intermediate_size=256)


def dvae_preset(size: str) -> dict:
    if size == "tiny":
        return dict(vocab_size=512, hidden_size=64, num_groups=3, blocks_per_group=1, code_embedding_size=64,
                    image_size=32)
    return {}


def vqkd_preset(size: str) -> dict:
    if size == "tiny":
        return dict(
            vocab_size=512,
            image_size=32,
            patch_size=4,
            encoder_config=vit_backbone_config("tiny", **TINY_VIT, **VQKD_VIT_DEFAULTS),
            decoder_config=vit_backbone_config("tiny", **{**TINY_VIT, "num_hidden_layers": 1}, **VQKD_VIT_DEFAULTS),
        )
    return {}


TOKENIZERS = {"dvae": (DVAEConfig, DVAETokenizer, dvae_preset), "vqkd": (VQKDConfig, VQKDTokenizer, vqkd_preset)}
