"""Imports point one way through the package's layers (CONTRIBUTING.md, "Layers"):

    leaves → configuration → modeling → data → evaluation → training → cards → hub → cli

A module imports only modules of its own layer or lower ones, at module level and inside functions alike; the few
imports that must point up are listed in `ALLOWED` with the reason. Read with `ast`, without importing anything."""

import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "maskvision")
LAYERS = ("leaves", "configuration", "modeling", "data", "evaluation", "training", "cards", "hub", "cli")
# Module (or package) prefix → layer; the longest matching prefix wins.
LAYER_OF = {
    "maskvision.progress": "leaves",  # progress bars: any layer's long loops draw them
    "maskvision.lazy_names": "leaves",  # packages whose names are imported at first use (the root, data)
    "maskvision.run_files": "leaves",  # the names of a run's files: written by training, read by cards and the Hub
    "maskvision.safe_pickle": "leaves",  # the one reader of pickles (DALL-E, official releases)
    "maskvision.configuration": "configuration",
    "maskvision.modeling": "modeling",
    "maskvision.dalle_weights": "modeling",  # DALL-E's pickled weights into the dVAE
    "maskvision.official": "modeling",  # the official releases, key by key, into the models
    "maskvision.data": "data",
    "maskvision.evaluation": "evaluation",
    "maskvision.training": "training",
    "maskvision.visualization": "training",  # the pictures of what a run trains on and learned
    "maskvision.model_card": "cards",
    "maskvision.cards": "cards",
    "maskvision.hub": "hub",
    "maskvision.remote_code": "hub",  # what a Hub repo holds besides the weights
    "maskvision.cli": "cli",
    "maskvision.__main__": "cli",
    "maskvision": "cli",  # the package root registers every model with the Auto classes: the top
}
# (importing module, imported module): why it may point up.
ALLOWED = {
    ("maskvision.modeling.modeling_utils", "maskvision.hub"): (
        "the models' push_to_hub goes through the Hub staging (one commit with remote code and card), imported "
        "inside push_to_hub only, and absent from remote code (then transformers' own upload)"
    ),
}
# Names of the package root any layer may import: set before anything else is imported.
ROOT_NAMES = {"__version__"}


def _modules() -> dict[str, str]:
    modules = {}
    for root, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE))[: -len(".py")].split(os.sep)
                modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def layer(module: str) -> str:
    prefix = max((p for p in LAYER_OF if module == p or module.startswith(p + ".")), key=len)
    return LAYER_OF[prefix]


def imports(module: str, path: str, module_level: bool = False) -> list[tuple[str, int]]:
    """The maskvision modules ``module`` imports anywhere in its file (``module_level``: outside functions and
    classes only), with the line: ``from x import name`` counts as ``x.name`` where that is a module."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    found = []
    for node in tree.body if module_level else ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == "maskvision"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] != "maskvision":
                continue
            for alias in node.names:
                if base == "maskvision" and alias.name in ROOT_NAMES:
                    continue
                target = f"{base}.{alias.name}"
                found.append((target if target in MODULES else base, node.lineno))
    return found


def test_every_module_has_a_layer():
    assert all(layer(module) in LAYERS for module in MODULES)
    assert layer("maskvision.cli.evaluate") == "cli" and layer("maskvision.training.loop.trainer") == "training"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    upward = [
        f"line {line}: {target} ({layer(target)})"
        for target, line in imports(module, MODULES[module])
        if LAYERS.index(layer(target)) > LAYERS.index(layer(module)) and (module, target) not in ALLOWED
    ]
    assert not upward, f"{module} ({layer(module)}) imports from a higher layer: {upward}"


def test_models_and_configs_import_no_training_hub_or_cards_at_module_level():
    """The bar of the import circle (issue 19): models load without the training, Hub or card layers."""
    above = ("maskvision.training", "maskvision.hub", "maskvision.model_card", "maskvision.cards")
    for module, path in MODULES.items():
        if layer(module) in ("configuration", "modeling"):
            assert not [target for target, _ in imports(module, path, module_level=True) if target.startswith(above)]


def test_allowed_exceptions_are_still_needed():
    for module, target in ALLOWED:
        assert target in [found for found, _ in imports(module, MODULES[module])], (module, target)


def test_an_upward_import_is_found(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ..training.trainer import MaskVisionTrainer\n")
    ((target, line),) = imports("maskvision.modeling.probe", str(path))
    assert (target, line, layer(target)) == ("maskvision.training.trainer", 2, "training")
