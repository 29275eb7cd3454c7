"""maskvision: self-supervised pretraining of vision transformers by masked image modeling, on transformers.

Importing maskvision registers its configs and models with the transformers Auto classes: every config with
`AutoConfig`, every model with `AutoModel`, and the pretraining models with `AutoModelForPreTraining` too.
"""

__version__ = "0.1.0"

from transformers import AutoConfig, AutoModel, AutoModelForPreTraining

# Public names and Auto-class registration, one block per model:
#     from .configuration.configuration_x import XConfig
#     from .modeling.modeling_x import XForPreTraining
#     AutoConfig.register(XConfig.model_type, XConfig)
#     AutoModel.register(XConfig, XForPreTraining)
#     AutoModelForPreTraining.register(XConfig, XForPreTraining)   (pretraining models)

from .configuration.configuration_beit_mim import BeitMimConfig
from .modeling.modeling_beit_mim import BeitMimForPreTraining

AutoConfig.register(BeitMimConfig.model_type, BeitMimConfig)
AutoModel.register(BeitMimConfig, BeitMimForPreTraining)
AutoModelForPreTraining.register(BeitMimConfig, BeitMimForPreTraining)

from .configuration.configuration_extrema import ExtremaConfig
from .modeling.modeling_extrema import ExtremaForPreTraining

AutoConfig.register(ExtremaConfig.model_type, ExtremaConfig)
AutoModel.register(ExtremaConfig, ExtremaForPreTraining)
AutoModelForPreTraining.register(ExtremaConfig, ExtremaForPreTraining)

from .configuration.configuration_moby import MobyConfig
from .modeling.modeling_moby import MobyForPreTraining

AutoConfig.register(MobyConfig.model_type, MobyConfig)
AutoModel.register(MobyConfig, MobyForPreTraining)
AutoModelForPreTraining.register(MobyConfig, MobyForPreTraining)

from .configuration.configuration_dvae import DVAEConfig
from .modeling.modeling_dvae import DVAETokenizer

AutoConfig.register(DVAEConfig.model_type, DVAEConfig)
AutoModel.register(DVAEConfig, DVAETokenizer)

from .configuration.configuration_vqkd import VQKDConfig
from .modeling.modeling_vqkd import VQKDTokenizer

AutoConfig.register(VQKDConfig.model_type, VQKDConfig)
AutoModel.register(VQKDConfig, VQKDTokenizer)
