"""Public names of a package imported at their first use, as transformers' own `_LazyModule` does: the package root
(``maskvision --help`` without torch) and `maskvision.data` (a command's ``--help`` without datasets)."""

import importlib
import sys


def lazy_names(package: str, public: dict[str, str]):
    """The ``(__getattr__, __dir__)`` of ``package`` (its ``__name__``) whose names ``public`` maps to the submodule
    defining each (relative to the package); a name is imported once, then set on the package."""

    def __getattr__(name: str):
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{public[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(public))

    return __getattr__, __dir__
