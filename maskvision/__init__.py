"""maskvision: self-supervised pretraining of vision transformers by masked image modeling, on transformers.

Importing maskvision registers its configs and models with the transformers Auto classes: every config with
`AutoConfig`, every model with `AutoModel`, and the pretraining models with `AutoModelForPreTraining` too
(`maskvision.auto`: done when transformers loads its Auto classes, so that importing maskvision imports neither
torch nor a model). The public names below are imported at their first use, as transformers' own `_LazyModule`
does: ``maskvision --help`` starts in the time Python takes to start.
"""

from .auto import AUTO_CLASSES, register_when_transformers_loads_its_auto_classes
from .lazy_names import lazy_names

__version__ = "0.1.0"

# public name → the module defining it
_PUBLIC = {
    name: module
    for config_module, config, model_module, model, _ in AUTO_CLASSES
    for name, module in ((config, config_module), (model, model_module))
}
__all__ = sorted(_PUBLIC)
__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)


register_when_transformers_loads_its_auto_classes()
