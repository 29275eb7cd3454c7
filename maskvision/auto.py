"""maskvision's classes in transformers' Auto classes, without importing torch or a model when maskvision is imported.

Importing transformers' configuration machinery imports torch (seconds), and a model class its modeling stack, so
`import maskvision` registers nothing itself: it asks to be told when transformers loads its Auto modules
(`configuration_auto`, `modeling_auto`; at once if they are loaded already) and registers then:

- ``AutoConfig``: each ``model_type`` → a stand-in for the config class (`deferred`);
- ``AutoModel`` / ``AutoModelForPreTraining``: each config class → a stand-in for the model class, once both
  `modeling_auto` and the config's module are imported (the Auto mappings are keyed by the config class itself;
  ``AutoModel.from_pretrained`` resolves the config first, which imports its module).

A stand-in is a class whose attributes and calls are the real class's, imported at the first use
(``AutoModel.from_pretrained(run_dir)`` → ``stand_in.from_pretrained`` → the real ``from_pretrained``): what the
Auto classes return are the real objects.
"""

import importlib
import importlib.abc
import sys

# (config module, config class, model module, model class, a pretraining model?), modules relative to `maskvision`.
AUTO_CLASSES = (
    ("configuration.configuration_beit_mim", "BeitMimConfig", "modeling.modeling_beit_mim", "BeitMimForPreTraining",
     True),
    ("configuration.configuration_extrema", "ExtremaConfig", "modeling.modeling_extrema", "ExtremaForPreTraining",
     True),
    ("configuration.configuration_moby", "MobyConfig", "modeling.modeling_moby", "MobyForPreTraining", True),
    ("configuration.configuration_dvae", "DVAEConfig", "modeling.modeling_dvae", "DVAETokenizer", False),
    ("configuration.configuration_vqkd", "VQKDConfig", "modeling.modeling_vqkd", "VQKDTokenizer", False),
)  # fmt: skip
# Every config's model_type, as its class declares it (checked by tests/test_cli_startup.py).
MODEL_TYPES = {
    "BeitMimConfig": "maskvision_beit_mim", "ExtremaConfig": "maskvision_extrema", "MobyConfig": "maskvision_moby",
    "DVAEConfig": "maskvision_dvae", "VQKDConfig": "maskvision_vqkd",
}  # fmt: skip
_CONFIG_AUTO = "transformers.models.auto.configuration_auto"
_MODELING_AUTO = "transformers.models.auto.modeling_auto"


class _Deferred(type):
    """The metaclass of stand-ins: what a stand-in does not define itself is the real class's."""

    def resolve(cls) -> type:
        return getattr(importlib.import_module(cls.__module__), cls.__name__)

    def __getattr__(cls, name):
        return getattr(cls.resolve(), name)

    def __call__(cls, *args, **kwargs):
        return cls.resolve()(*args, **kwargs)


def deferred(module: str, name: str, **attributes) -> type:
    """A stand-in for the class ``name`` of ``module``, imported at its first use."""
    return _Deferred(name, (), {"__module__": module, **attributes})


def _module(relative: str) -> str:
    return f"{__package__}.{relative}"


def _loaded(name: str, just_run: str | None = None):
    """The module ``name`` if it is imported and has finished running (``just_run``: the one whose loader has just
    returned, still marked as initialising), else None."""
    module = sys.modules.get(name)
    if module is None or (name != just_run and getattr(module.__spec__, "_initializing", False)):
        return None
    return module


def register_configs(just_run: str | None = None) -> None:
    from transformers.models.auto.configuration_auto import AutoConfig

    for config_module, config_name, *_ in AUTO_CLASSES:
        stand_in = deferred(_module(config_module), config_name, model_type=MODEL_TYPES[config_name])
        AutoConfig.register(MODEL_TYPES[config_name], stand_in, exist_ok=True)


_models_registered: set[str] = set()  # the config classes whose models are registered


def register_models(just_run: str | None = None) -> None:
    """Register the models of every maskvision config module that has finished running, once transformers'
    `modeling_auto` has. Nothing is imported here: this runs inside imports (transformers' config modules load
    `modeling_auto` for their docstrings, possibly while a maskvision config module imports them), so a config
    imported later is registered when its own module finishes (`register_when_transformers_loads_its_auto_classes`)."""
    auto = _loaded(_MODELING_AUTO, just_run)
    if auto is None:
        return
    for config_module, config_name, model_module, model_name, pretraining in AUTO_CLASSES:
        module = _loaded(_module(config_module), just_run)
        if module is None or config_name in _models_registered:
            continue
        config_class = getattr(module, config_name)
        model = deferred(_module(model_module), model_name, config_class=config_class)
        for auto_class in (auto.AutoModel, auto.AutoModelForPreTraining) if pretraining else (auto.AutoModel,):
            auto_class.register(config_class, model, exist_ok=True)
        _models_registered.add(config_name)


class _Loader(importlib.abc.Loader):
    """Runs a module with its own loader, then ``after(its name)``; anything else is the wrapped loader's."""

    def __init__(self, loader, after):
        self.loader, self.after = loader, after

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.after(module.__name__)

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _WhenImported(importlib.abc.MetaPathFinder):
    """Wraps the loaders of the modules in ``actions`` (name → function): each action runs once its module ran."""

    def __init__(self, actions: dict):
        self.actions = dict(actions)

    def find_spec(self, name, path, target=None):
        if name not in self.actions:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _Loader(spec.loader, self.actions.pop(name))
                if not self.actions:
                    sys.meta_path.remove(self)
                return spec
        return None


def register_when_transformers_loads_its_auto_classes() -> None:
    """AutoConfig's stand-ins when `configuration_auto` has run; a config's models when both `modeling_auto` and the
    config's own module have run, whichever finishes last (now for those already imported)."""
    watched = [(_CONFIG_AUTO, register_configs), (_MODELING_AUTO, register_models)]
    watched += [(_module(config_module), register_models) for config_module, *_ in AUTO_CLASSES]
    actions = {}
    for name, register in watched:
        if name in sys.modules:
            register()
        else:
            actions[name] = register
    if actions:
        sys.meta_path.insert(0, _WhenImported(actions))
