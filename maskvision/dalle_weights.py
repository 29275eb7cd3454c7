"""Import OpenAI's released DALL-E dVAE (``encoder.pkl``, ``decoder.pkl``) into a `DVAETokenizer`, safely.

The files are ``torch.save`` pickles of whole ``dall_e.encoder.Encoder`` / ``dall_e.decoder.Decoder`` modules:
``torch.load`` needs the ``dall_e`` package (and an ``attr`` version that still unpickles it), and, like any
pickle, would run whatever code the file names. `maskvision.safe_pickle.load_pickled_module` reads them with nothing
of the sort: the classes of the module tree (``dall_e.*``, ``torch.nn.modules.*``) become inert records of their
attributes, tensors are rebuilt from the raw storages, and anything else stops the load before it can be called.

The ``.w`` / ``.b`` parameters of DALL-E's ``Conv2d`` map one to one to our ``.weight`` / ``.bias`` (the module
trees have the same names), and the architecture (vocabulary, widths, groups, blocks) is read from their shapes.
"""

import logging

import torch

from .configuration.configuration_dvae import DVAEConfig
from .modeling.modeling_dvae import DVAETokenizer
from .safe_pickle import PickledObject, load_pickled_module

logger = logging.getLogger(__name__)


def _load_dalle_module(path, kind: str) -> PickledObject:
    module = load_pickled_module(path)
    if module.qualified_name.rsplit(".", 1)[-1] != kind:
        raise ValueError(f"{path}: expected a pickled dall_e {kind}, got {module.qualified_name}.")
    return module


def module_parameters(module: PickledObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """``name → tensor`` for every parameter of a pickled module tree, named like ``state_dict()``."""
    attributes = module.attributes
    tensors = {
        f"{prefix}{name}": value for name, value in (attributes.get("_parameters") or {}).items() if value is not None
    }
    for name, child in (attributes.get("_modules") or {}).items():
        if isinstance(child, PickledObject):
            tensors.update(module_parameters(child, f"{prefix}{name}."))
    return tensors


def _group_count(parameters: dict[str, torch.Tensor]) -> int:
    return len({name.split(".")[1] for name in parameters if name.startswith("blocks.group_")})


def dalle_config(encoder: dict[str, torch.Tensor], decoder: dict[str, torch.Tensor] | None, **overrides) -> DVAEConfig:
    """The `DVAEConfig` of DALL-E weights, read from the parameters' shapes."""
    try:
        hidden_size, num_channels = encoder["blocks.input.w"].shape[:2]
        vocab_size = encoder["blocks.output.conv.w"].shape[0]
    except KeyError as error:
        raise ValueError(f"Not a DALL-E encoder: parameter {error} is missing.") from None
    blocks = {name.split(".")[2] for name in encoder if name.startswith("blocks.group_1.block_")}
    kwargs = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_channels=num_channels,
        num_groups=_group_count(encoder),
        blocks_per_group=len(blocks),
    )
    if decoder is not None:
        if "blocks.input.w" not in decoder or "blocks.output.conv.w" not in decoder:
            raise ValueError("Not a DALL-E decoder: blocks.input.w / blocks.output.conv.w are missing.")
        code_embedding_size, decoder_vocab = decoder["blocks.input.w"].shape[:2]
        if decoder_vocab != vocab_size or _group_count(decoder) != kwargs["num_groups"]:
            raise ValueError(
                f"Encoder and decoder do not match: vocabularies {vocab_size} / {decoder_vocab}, groups "
                f"{kwargs['num_groups']} / {_group_count(decoder)}."
            )
        if decoder["blocks.output.conv.w"].shape[0] != 2 * num_channels:
            raise ValueError("The decoder does not predict logit-Laplace parameters (2 x channels outputs).")
        kwargs["code_embedding_size"] = code_embedding_size
    return DVAEConfig(**kwargs, **overrides)


def convert_dalle(encoder_path, decoder_path=None, image_size: int = 112) -> DVAETokenizer:
    """A `DVAETokenizer` holding OpenAI's DALL-E dVAE weights. Without a decoder, the decoder stays randomly
    initialised (``get_codebook_indices`` works; ``decode`` does not reconstruct)."""
    encoder = module_parameters(_load_dalle_module(encoder_path, "Encoder"))
    decoder = module_parameters(_load_dalle_module(decoder_path, "Decoder")) if decoder_path else None
    model = DVAETokenizer(dalle_config(encoder, decoder, image_size=image_size))
    state = {}
    for part, parameters in (("encoder", encoder), ("decoder", decoder or {})):
        for name, tensor in parameters.items():
            if not name.endswith((".w", ".b")):
                raise ValueError(f"Unexpected parameter {part}.{name}: DALL-E's convolutions hold only .w and .b.")
            state[f"{part}.{name[:-2]}.{'weight' if name.endswith('.w') else 'bias'}"] = tensor.float()
    expected = {name for name in model.state_dict() if decoder is not None or name.startswith("encoder.")}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"DALL-E weights do not fit: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    own = model.state_dict()
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"Shape of {name}: {tuple(tensor.shape)} in the file, {tuple(own[name].shape)} expected.")
    model.load_state_dict(state, strict=False)
    if decoder is None:
        logger.warning("No decoder given: the tokenizer's decoder is randomly initialised, decode() is meaningless.")
    return model.eval()
