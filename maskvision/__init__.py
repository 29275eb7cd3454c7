"""maskvision: self-supervised pretraining of vision transformers by masked image modeling, on transformers.

Importing maskvision registers its configs and models with the transformers Auto classes.
"""

__version__ = "0.1.0"

from transformers import AutoConfig, AutoModel

# Public names and Auto-class registration, one block per model:
#     from .configuration.configuration_x import XConfig
#     from .modeling.modeling_x import XForPreTraining
#     AutoConfig.register(XConfig.model_type, XConfig)
#     AutoModel.register(XConfig, XForPreTraining)

from .configuration.configuration_beit_mim import BeitMimConfig
from .modeling.modeling_beit_mim import BeitMimForPreTraining

AutoConfig.register(BeitMimConfig.model_type, BeitMimConfig)
AutoModel.register(BeitMimConfig, BeitMimForPreTraining)

from .configuration.configuration_extrema import ExtremaConfig
from .modeling.modeling_extrema import ExtremaForPreTraining

AutoConfig.register(ExtremaConfig.model_type, ExtremaConfig)
AutoModel.register(ExtremaConfig, ExtremaForPreTraining)

from .configuration.configuration_moby import MobyConfig
from .modeling.modeling_moby import MobyForPreTraining

AutoConfig.register(MobyConfig.model_type, MobyConfig)
AutoModel.register(MobyConfig, MobyForPreTraining)
