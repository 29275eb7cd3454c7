"""Self-contained remote code: a maskvision model that loads with ``trust_remote_code=True`` where maskvision is not
installed.

`write_remote_code(model_class, folder)` copies the import closure of the model's and its config's modules — the
files of ``maskvision.configuration`` and ``maskvision.modeling`` they import, transitively — flat into ``folder``,
rewrites their relative imports for the flat layout (``from ..configuration.configuration_moby import MobyConfig``
→ ``from .configuration_moby import MobyConfig``), and adds ``auto_map`` to the folder's ``config.json`` (AutoConfig,
AutoModel and every other Auto class the model is registered for). transformers then loads the folder, or the Hub
repo holding it, with ``AutoModel.from_pretrained(path, trust_remote_code=True)``, and refuses to without
``trust_remote_code=True``.

The bundle imports only the standard library, torch, transformers, huggingface_hub and safetensors; importing it
defines classes and constants and does nothing else (no network, no files). `import_closure` enforces the first
rule for every file it copies: an import of anything else is an error naming the file, the line and the module.
An import inside ``try: ... except ImportError:`` is an optional dependency (transformers' own rule when it checks
remote code's requirements) and is left alone.
"""

import ast
import importlib.util
import json
import os
import re
import sys

from . import __version__

ALLOWED_PACKAGES = ("torch", "transformers", "huggingface_hub", "safetensors")
# Packages whose modules are bundled; anything else a bundled file imports must be an allowed package.
SOURCE_PACKAGES = ("maskvision.configuration", "maskvision.modeling")
CONFIG_FILE = "config.json"

_IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")
_RELATIVE_FROM = re.compile(r"from\s+\.+[\w.]*")
_HEADER_START, _HEADER_LINES = "# Remote code bundled by maskvision", 2


class RemoteCodeError(ValueError):
    """A module cannot be bundled as self-contained remote code."""


def _source_packages(module_name: str) -> tuple[str, ...]:
    # A maskvision module bundles its configuration/modeling siblings; a module that is already a flat bundle
    # (loaded from the Hub with trust_remote_code) bundles the files of its own folder.
    if module_name.split(".")[0] == "maskvision":
        return SOURCE_PACKAGES
    return (module_name.rpartition(".")[0],)


def _module_file(module_name: str) -> str:
    spec = importlib.util.find_spec(module_name)
    if spec is None or not (spec.origin or "").endswith(".py"):
        raise RemoteCodeError(f"Cannot find the Python source of module {module_name!r}.")
    if spec.submodule_search_locations is not None:
        raise RemoteCodeError(
            f"{module_name!r} is a package: remote code imports modules (`from .module import Name`), not packages."
        )
    return spec.origin


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        caught = handler.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        if any(isinstance(name, ast.Name) and name.id in _IMPORT_ERRORS for name in names):
            return True
    return False


def _imports(tree: ast.AST, optional: bool = False):
    """Every import statement as ``(node, optional)``: optional inside ``try: ... except ImportError:``."""
    if isinstance(tree, (ast.Import, ast.ImportFrom)):
        yield tree, optional
        return
    if isinstance(tree, ast.Try) and _catches_import_error(tree):
        for child in tree.body + tree.handlers:
            yield from _imports(child, True)
        for child in tree.orelse + tree.finalbody:
            yield from _imports(child, optional)
        return
    for child in ast.iter_child_nodes(tree):
        yield from _imports(child, optional)


def _relative_target(node: ast.ImportFrom, module_name: str, path: str) -> str:
    if node.module is None:
        raise RemoteCodeError(
            f"{path}:{node.lineno}: `from {'.' * node.level} import ...` cannot be bundled; import from the module: "
            "`from .module import Name`."
        )
    package = module_name.rpartition(".")[0]
    try:
        return importlib.util.resolve_name("." * node.level + node.module, package)
    except ImportError as error:
        raise RemoteCodeError(f"{path}:{node.lineno}: {error}.") from None


def _check_absolute(names: list[str], path: str, lineno: int) -> None:
    for name in names:
        top = name.split(".")[0]
        if top not in ALLOWED_PACKAGES and top not in sys.stdlib_module_names:
            raise RemoteCodeError(
                f"{path}:{lineno} imports {name!r}: remote code may import only the standard library, "
                f"{', '.join(ALLOWED_PACKAGES)} and the modules it bundles (relative imports within "
                f"{' / '.join(SOURCE_PACKAGES)}). Move the import into the code that needs it, or make it optional "
                "(`try: ... except ImportError:`)."
            )


def _local_imports(module_name: str) -> list[str]:
    """The bundled modules ``module_name`` imports (absolute names), after checking all its other imports."""
    path = _module_file(module_name)
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), filename=path)
    packages = _source_packages(module_name)
    local = []
    for node, optional in _imports(tree):
        if isinstance(node, ast.Import):
            if not optional:
                _check_absolute([alias.name for alias in node.names], path, node.lineno)
        elif node.level == 0:
            if not optional:
                _check_absolute([node.module], path, node.lineno)
        else:  # relative, optional or not: transformers copies every relatively imported file along
            target = _relative_target(node, module_name, path)
            if not target.startswith(tuple(f"{package}." for package in packages)):
                raise RemoteCodeError(
                    f"{path}:{node.lineno} imports {target!r}, outside the bundled packages {list(packages)}: "
                    f"remote code may import only the standard library, {', '.join(ALLOWED_PACKAGES)} and modules "
                    "of those packages."
                )
            local.append(target)
    return local


def import_closure(module_name: str) -> list[str]:
    """``module_name`` and every bundled module it imports, transitively (absolute names, first seen first).

    Raises `RemoteCodeError` naming the file and line of an import that remote code cannot carry.
    """
    closure, pending = [], [module_name]
    while pending:
        name = pending.pop(0)
        if name in closure:
            continue
        closure.append(name)
        pending.extend(_local_imports(name))
    return closure


def flat_name(module_name: str) -> str:
    """The module's name in the flat bundle: its last component (``maskvision.modeling.heads`` → ``heads``)."""
    return module_name.rpartition(".")[2]


def flatten_source(module_name: str) -> str:
    """The source of ``module_name`` with its relative imports rewritten for the flat bundle."""
    path = _module_file(module_name)
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source, filename=path)):
        if not (isinstance(node, ast.ImportFrom) and node.level > 0):
            continue
        target = flat_name(_relative_target(node, module_name, path))
        # `from <dots><module>` is on the statement's first line, after its (ASCII) indentation.
        line, column = lines[node.lineno - 1], node.col_offset
        rewritten, count = _RELATIVE_FROM.subn(f"from .{target}", line[column:], count=1)
        if not count:
            raise RemoteCodeError(f"{path}:{node.lineno}: cannot rewrite the relative import {line.strip()!r}.")
        lines[node.lineno - 1] = line[:column] + rewritten
    if lines and lines[0].startswith(_HEADER_START):  # a file of a bundle, bundled again: one header
        lines = lines[_HEADER_LINES:]
    relative_path = os.path.join(*module_name.split(".")) + ".py"
    header = (
        f"{_HEADER_START} {__version__} from {relative_path}: load it with\n"
        "# `AutoModel.from_pretrained(repo, trust_remote_code=True)`. Edit the maskvision source, not this copy.\n"
    )
    return header + "".join(lines)


def _registered_auto_classes(config_class: type, model_class: type) -> list[str]:
    """Names of the transformers Auto model classes that map ``config_class`` to ``model_class``."""
    from transformers.models.auto import modeling_auto
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    names = {"AutoModel"}
    if getattr(model_class, "_auto_class", None):  # a class loaded as remote code knows its own Auto class
        names.add(model_class._auto_class)
    for name, auto_class in vars(modeling_auto).items():
        if not (isinstance(auto_class, type) and issubclass(auto_class, _BaseAutoModelClass)):
            continue
        mapping = getattr(auto_class, "_model_mapping", None)
        # By model type and class name: a class loaded as remote code is registered under its maskvision twin's.
        registered = [] if mapping is None else mapping._extra_content.items()
        if any(
            config.model_type == config_class.model_type and model.__name__ == model_class.__name__
            for config, model in registered
        ):
            names.add(name)
    return sorted(names)


def auto_map(model_class: type) -> dict[str, str]:
    """config.json's ``auto_map`` for a model class bundled flat: Auto class → ``"module.ClassName"``."""
    config_class = model_class.config_class
    entries = {"AutoConfig": f"{flat_name(config_class.__module__)}.{config_class.__name__}"}
    model_reference = f"{flat_name(model_class.__module__)}.{model_class.__name__}"
    for name in _registered_auto_classes(config_class, model_class):
        entries[name] = model_reference
    return entries


def remote_code_files(model_class: type) -> dict[str, str]:
    """File name → flattened source of every module the remote code of ``model_class`` needs."""
    modules = []
    for root in (model_class.config_class.__module__, model_class.__module__):
        modules += [name for name in import_closure(root) if name not in modules]
    files = {}
    for name in modules:
        file_name = f"{flat_name(name)}.py"
        if file_name in files:
            raise RemoteCodeError(
                f"Two bundled modules are both named {file_name!r}; the flat bundle needs distinct module names."
            )
        files[file_name] = flatten_source(name)
    return files


def write_remote_code(model_class: type, save_directory: str | os.PathLike) -> list[str]:
    """Write the remote code of ``model_class`` into ``save_directory`` (which holds the model's ``config.json``)
    and add ``auto_map`` to that config. Returns the names of the files written, config.json last."""
    save_directory = os.fspath(save_directory)
    config_path = os.path.join(save_directory, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"{save_directory!r} has no {CONFIG_FILE}: save the model (save_pretrained) before its remote code."
        )
    files = remote_code_files(model_class)
    for file_name, source in files.items():
        with open(os.path.join(save_directory, file_name), "w", encoding="utf-8") as handle:
            handle.write(source)
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    config["auto_map"] = auto_map(model_class)
    with open(config_path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return [*files, CONFIG_FILE]


__all__ = [
    "ALLOWED_PACKAGES",
    "RemoteCodeError",
    "auto_map",
    "import_closure",
    "remote_code_files",
    "write_remote_code",
]
