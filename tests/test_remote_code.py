"""Self-contained remote code: the import closure, the flat rewrite, auto_map, and — in a clean interpreter that
cannot import maskvision and has no network — loading with trust_remote_code (and only with it) to the same outputs,
with no side effect on import."""

import ast
import os
import sys

import pytest
from hub_kinds import maskvision_cases, run_isolated
from transformers import AutoModel, AutoModelForImageClassification, dynamic_module_utils
from transformers.dynamic_module_utils import get_imports

from maskvision import MobyConfig, MobyForPreTraining
from maskvision.remote_code import (
    ALLOWED_PACKAGES,
    RemoteCodeError,
    auto_map,
    import_closure,
    remote_code_files,
    write_remote_code,
)

MOBY_FILES = {
    "configuration_moby.py", "backbones.py", "choices.py", "modeling_moby.py", "distributed.py", "heads.py",
    "losses.py", "modeling_utils.py", "momentum.py", "pretrained_backbone.py", "resolution.py",
}  # fmt: skip


def registered_maskvision_models() -> list[type]:
    mapping = AutoModel._model_mapping._extra_content
    return [model for config, model in mapping.items() if config.model_type.startswith("maskvision_")]


@pytest.mark.parametrize("model_class", registered_maskvision_models(), ids=lambda cls: cls.__name__)
def test_every_registered_model_bundles_into_a_self_contained_flat_folder(model_class):
    files = remote_code_files(model_class)
    assert f"{model_class.__module__.rsplit('.', 1)[1]}.py" in files
    assert f"{model_class.config_class.__module__.rsplit('.', 1)[1]}.py" in files
    for name, source in files.items():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 and f"{node.module}.py" in files, f"{name}: from {'.' * node.level}{node.module}"
    for name, source in files.items():  # transformers' own check of what remote code needs installed
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"check_{os.getpid()}_{name}")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(source)
        try:
            needed = set(get_imports(path))
        finally:
            os.remove(path)
        assert needed <= set(ALLOWED_PACKAGES) | set(sys.stdlib_module_names), (name, needed)
    entries = auto_map(model_class)
    assert entries["AutoConfig"].endswith(f".{model_class.config_class.__name__}")
    assert entries["AutoModel"].endswith(f".{model_class.__name__}")


def test_moby_bundle_is_exactly_its_import_closure():
    assert set(remote_code_files(MobyForPreTraining)) == MOBY_FILES
    closure = import_closure("maskvision.modeling.modeling_moby")
    assert closure[0] == "maskvision.modeling.modeling_moby"
    assert "maskvision.configuration.configuration_moby" in closure and "maskvision.modeling.losses" in closure
    assert "maskvision.modeling.pos_embed" not in closure  # not imported by MoBY: not bundled


def test_flat_rewrite_changes_only_relative_imports():
    with open(sys.modules["maskvision.modeling.modeling_moby"].__file__, encoding="utf-8") as handle:
        original = handle.read().splitlines()
    bundled = remote_code_files(MobyForPreTraining)["modeling_moby.py"].splitlines()
    header, body = bundled[:2], bundled[2:]
    assert all(line.startswith("# ") for line in header) and "trust_remote_code=True" in "".join(header)
    assert len(body) == len(original)
    changed = {(old, new) for old, new in zip(original, body) if old != new}
    rewritten = (
        "from ..configuration.configuration_moby import DROP_PATH_RATE, MobyConfig",
        "from .configuration_moby import DROP_PATH_RATE, MobyConfig",
    )
    assert rewritten in changed
    assert all(old.startswith("from .") and new.startswith("from .") for old, new in changed)
    assert not any(line.startswith("from ..") for line in body)


def test_a_class_loaded_as_remote_code_bundles_again_into_the_same_files(tmp_path, monkeypatch):
    monkeypatch.setattr(dynamic_module_utils, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    # Only this test's module cache: one an earlier test imported from would shadow it.
    monkeypatch.setattr(
        sys, "path", [path for path in sys.path if not os.path.isdir(os.path.join(path, "transformers_modules"))]
    )
    for name in [name for name in sys.modules if name.split(".")[0] == "transformers_modules"]:
        monkeypatch.delitem(sys.modules, name)
    model = maskvision_cases()[0].model
    model.save_pretrained(tmp_path / "repo")
    write_remote_code(type(model), tmp_path / "repo")
    remote_class = dynamic_module_utils.get_class_from_dynamic_module(
        "modeling_moby.MobyForPreTraining", str(tmp_path / "repo")
    )
    assert remote_class.__module__.startswith("transformers_modules.")
    original, again = remote_code_files(MobyForPreTraining), remote_code_files(remote_class)
    assert set(again) == set(original)
    for name, source in again.items():  # the same code under one header naming the copy it came from
        assert source.splitlines()[2:] == original[name].splitlines()[2:]
        assert source.count("# Remote code bundled by maskvision") == 1
    assert auto_map(remote_class) == auto_map(MobyForPreTraining)


def test_auto_map_names_every_auto_class_the_model_is_registered_for(monkeypatch):
    assert auto_map(MobyForPreTraining) == {
        "AutoConfig": "configuration_moby.MobyConfig",
        "AutoModel": "modeling_moby.MobyForPreTraining",
        "AutoModelForPreTraining": "modeling_moby.MobyForPreTraining",
    }
    monkeypatch.setitem(AutoModelForImageClassification._model_mapping._extra_content, MobyConfig, MobyForPreTraining)
    assert auto_map(MobyForPreTraining)["AutoModelForImageClassification"] == "modeling_moby.MobyForPreTraining"


def _package(root, files: dict[str, str]) -> None:
    """The files in package ``bundlecheck.modeling``."""
    package = root / "bundlecheck" / "modeling"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    for name, source in files.items():
        (package / name).write_text(source)


def test_refuses_imports_that_remote_code_cannot_carry_naming_file_and_line(tmp_path, monkeypatch):
    _package(tmp_path, {
        "modeling_numpy.py": "import torch\nimport numpy as np\n",
        "modeling_outside.py": "from ..data import helper\n",
        "modeling_beyond.py": "from ...elsewhere import helper\n",
        "modeling_package.py": "from . import modeling_numpy\n",
        "modeling_optional.py": "try:\n    import numpy\nexcept ImportError:\n    numpy = None\nimport json\n",
    })  # fmt: skip
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RemoteCodeError, match=r"modeling_numpy\.py:2 imports 'numpy'.*standard library, torch"):
        import_closure("bundlecheck.modeling.modeling_numpy")
    with pytest.raises(RemoteCodeError, match="modeling_outside.py:1 imports 'bundlecheck.data', outside"):
        import_closure("bundlecheck.modeling.modeling_outside")
    with pytest.raises(RemoteCodeError, match="modeling_beyond.py:1: attempted relative import beyond"):
        import_closure("bundlecheck.modeling.modeling_beyond")
    with pytest.raises(RemoteCodeError, match=r"from \. import"):
        import_closure("bundlecheck.modeling.modeling_package")
    assert import_closure("bundlecheck.modeling.modeling_optional") == ["bundlecheck.modeling.modeling_optional"]


def test_write_remote_code_needs_the_saved_config_and_adds_auto_map(tmp_path):
    with pytest.raises(FileNotFoundError, match="save the model"):
        write_remote_code(MobyForPreTraining, tmp_path)
    model = maskvision_cases()[0].model
    model.save_pretrained(tmp_path)
    written = write_remote_code(type(model), tmp_path)
    assert set(written) == MOBY_FILES | {"config.json"}
    assert set(os.listdir(tmp_path)) == MOBY_FILES | {"config.json", "model.safetensors"}
    reloaded = AutoModel.from_pretrained(tmp_path)  # maskvision installed: its own class, no remote code needed
    assert type(reloaded) is MobyForPreTraining and reloaded.config.auto_map == auto_map(MobyForPreTraining)


# ----------------------------------------------------------------------------------- the clean interpreter
CASES = maskvision_cases()


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote_code")
    checks = []
    for case in CASES:
        folder = str(root / case.name)
        case.model.save_pretrained(folder)
        write_remote_code(type(case.model), folder)
        inputs, expected = case.save_io(str(root / f"{case.name}-io"))
        checks += [
            {"type": "import", "name": f"import-{case.name}", "folder": folder},
            {
                "type": "load",
                "name": f"load-{case.name}",
                "folder": folder,
                "inputs": inputs,
                "expected": expected,
                "call": case.call,
                "outputs": list(case.outputs),
            },
        ]
    noisy = root / "noisy"  # a bundle that misbehaves on import: the checks must catch it
    noisy.mkdir()
    (noisy / "modeling_noisy.py").write_text(NOISY_MODULE)
    checks.append({"type": "import", "name": "import-noisy", "folder": str(noisy)})
    return run_isolated(checks, str(root))


NOISY_MODULE = """import os
import socket

with open(os.path.join(os.path.dirname(__file__), "downloaded.bin"), "w") as handle:
    handle.write("weights")
try:
    socket.create_connection(("huggingface.co", 443), timeout=1)
except OSError:
    pass
"""


def _result(isolated, name):
    result = isolated[name]
    assert "error" not in result, result.get("error")
    return result


def test_isolated_interpreter_cannot_import_maskvision(isolated):
    assert isolated["_maskvision_blocked"]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_loads_without_maskvision_only_with_trust_remote_code_to_the_same_outputs(isolated, case):
    result = _result(isolated, f"load-{case.name}")
    assert result["refused_without_trust"]
    assert result["module"].startswith("transformers_modules.")  # the bundled code, not an installed package
    assert result["shapes_match"] and result["dtypes_match"]
    assert set(result["max_difference"]) == set(case.outputs)
    assert max(result["max_difference"].values()) <= 1e-5, result["max_difference"]
    assert result["resaved_max_difference"] <= 1e-5


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_importing_the_bundle_has_no_network_or_file_system_side_effects(isolated, case):
    result = _result(isolated, f"import-{case.name}")
    assert set(result["modules"]) == {name[:-3] for name in remote_code_files(type(case.model))}
    assert result["side_effects"] == []
    assert isolated["_unchanged_folders"][next(p for p in isolated["_unchanged_folders"] if p.endswith(case.name))]


def test_the_side_effect_checks_catch_a_bundle_that_writes_or_connects_on_import(isolated):
    events = " ".join(_result(isolated, "import-noisy")["side_effects"])
    assert "downloaded.bin" in events and "socket.getaddrinfo" in events
    assert not isolated["_unchanged_folders"][next(p for p in isolated["_unchanged_folders"] if p.endswith("noisy"))]
