"""The methods a card names: each model module's ``METHOD_CARD`` (name, one-line summary, paper, BibTeX keys, tags)
and ``BIBTEX``, kept beside the method they describe and gathered here by the config's ``model_type``. A new method
or tokenizer adds both to its modeling module and its model class to `MODELS` (a test checks that every registered
maskvision model type has an entry)."""

import sys
from dataclasses import dataclass

from ..modeling.modeling_beit_mim import BeitMimForPreTraining
from ..modeling.modeling_dvae import DVAETokenizer
from ..modeling.modeling_extrema import ExtremaForPreTraining
from ..modeling.modeling_moby import MobyForPreTraining
from ..modeling.modeling_vqkd import VQKDTokenizer

MODELS = (BeitMimForPreTraining, ExtremaForPreTraining, MobyForPreTraining, DVAETokenizer, VQKDTokenizer)


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    paper: str
    citations: tuple[str, ...]
    tags: tuple[str, ...]


def _module(model_class):
    return sys.modules[model_class.__module__]


# model_type of the maskvision config → the method it trains; BibTeX key → entry.
METHODS = {model.config_class.model_type: Method(**_module(model).METHOD_CARD) for model in MODELS}
CITATIONS = {key: entry for model in MODELS for key, entry in _module(model).BIBTEX.items()}
