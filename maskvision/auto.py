"""maskvision's classes in transformers' Auto classes, without importing torch or a model when maskvision is imported.

Importing transformers' configuration machinery imports torch (seconds), and a model class its modeling stack, so
`import maskvision` registers nothing itself: it asks to be told when transformers loads its Auto modules
(`configuration_auto`, `modeling_auto`; at once if they are loaded already) and registers then:

- ``AutoConfig``: each ``model_type`` → the config class, or a stand-in for it (`deferred`) while its module has
  not been imported;
- ``AutoModel`` / ``AutoModelForPreTraining``: each config class → the model class or a stand-in, once both
  `modeling_auto` and the config's module are imported (the Auto mappings are keyed by the config class itself;
  ``AutoModel.from_pretrained`` resolves the config first, which imports its module).

A stand-in is a class whose attributes and calls are the real class's, imported at the first use
(``AutoModel.from_pretrained(run_dir)`` → ``stand_in.from_pretrained`` → the real ``from_pretrained``): what the
Auto classes return are the real objects; each module that finishes replaces its stand-ins by its classes.
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


def _class_or_stand_in(relative_module: str, name: str, just_run: str | None, **attributes) -> type:
    """The class itself once its module has run (nothing then tells it from a class registered eagerly), else a
    stand-in that imports it at its first use."""
    module = _loaded(_module(relative_module), just_run)
    return getattr(module, name) if module is not None else deferred(_module(relative_module), name, **attributes)


def register(just_run: str | None = None) -> None:
    """Register what can be registered without importing anything (this runs inside imports: transformers' config
    modules load `modeling_auto` for their docstrings, possibly while a maskvision config module imports them):
    with `configuration_auto` loaded, every config (itself or a stand-in); with `modeling_auto` loaded, the models of
    every config whose module has run (a config's class is the key of the model mappings). Called again as each of
    these modules finishes, so stand-ins give way to the classes and late configs get their models."""
    config_auto, modeling_auto = _loaded(_CONFIG_AUTO, just_run), _loaded(_MODELING_AUTO, just_run)
    for config_module, config_name, model_module, model_name, pretraining in AUTO_CLASSES:
        model_type = MODEL_TYPES[config_name]
        if config_auto is not None:
            config = _class_or_stand_in(config_module, config_name, just_run, model_type=model_type)
            config_auto.AutoConfig.register(model_type, config, exist_ok=True)
        config_class = _loaded(_module(config_module), just_run)
        if modeling_auto is None or config_class is None:
            continue
        config_class = getattr(config_class, config_name)
        model = _class_or_stand_in(model_module, model_name, just_run, config_class=config_class)
        auto_classes = ("AutoModel", "AutoModelForPreTraining") if pretraining else ("AutoModel",)
        for auto_class in auto_classes:
            getattr(modeling_auto, auto_class).register(config_class, model, exist_ok=True)


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
    """`register` now, and again as each of transformers' Auto modules and maskvision's config and model modules
    finishes running."""
    ours = [(_module(config_module), _module(model_module)) for config_module, _, model_module, *_ in AUTO_CLASSES]
    watched = [_CONFIG_AUTO, _MODELING_AUTO, *(name for pair in ours for name in pair)]
    register()
    waiting = {name: register for name in watched if name not in sys.modules}
    if waiting:
        sys.meta_path.insert(0, _WhenImported(waiting))
