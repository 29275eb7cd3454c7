"""Checks run in a clean interpreter where maskvision cannot be imported (a `sys.meta_path` blocker) and the network
is off (an audit hook refuses every socket), as a user of a Hub repo without maskvision would load it.

    python hub_isolated.py SPEC.json RESULTS.json  →  RESULTS.json: {check name: result}

SPEC holds a list of checks:
- ``load``: ``AutoModel.from_pretrained(folder)`` must refuse without ``trust_remote_code=True``; with it, the model
  must be remote code and give, on the saved inputs, the saved outputs of the original model; saved again with
  ``save_pretrained`` here, it must load again to the same outputs.
- ``import``: import every module of the folder as a package, recording any network or file-system side effect,
  and hash the folder before and after.
- ``snippet``: run a code snippet in a directory.

Imports only the standard library, torch, transformers and safetensors (test_*.py import `call_model` from here).
"""

import ast
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import traceback

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FILE_EVENTS = {
    "os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.chown", "os.link", "os.symlink",
    "os.utime", "os.putenv", "os.unsetenv", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.startfile", "shutil.copyfile", "shutil.copytree", "shutil.move", "shutil.rmtree", "shutil.make_archive",
    "shutil.unpack_archive", "subprocess.Popen", "tempfile.mkstemp", "tempfile.mkdtemp",
}  # fmt: skip
_recording: list | None = None  # events seen while an import is being watched


class _BlockMaskvision:
    def find_spec(self, name, path=None, target=None):
        if name == "maskvision" or name.startswith("maskvision."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: this interpreter stands for one without it)")


def _audit(event: str, args) -> None:
    network = event.startswith(("socket.", "http.", "urllib.", "ftplib.", "smtplib.", "webbrowser."))
    writes = event in _FILE_EVENTS
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        writes = bool(mode and any(char in str(mode) for char in "wax+")) or bool(
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
    if _recording is not None and (network or writes):
        _recording.append(f"{event} {args!r}"[:300])
    if network and event in ("socket.connect", "socket.getaddrinfo", "socket.bind", "socket.gethostbyname"):
        raise OSError(f"network access blocked in this test interpreter ({event})")


def call_model(model, call: str, inputs: dict, outputs: list[str]) -> dict:
    """Run ``model.<call>(**inputs)`` without gradients → the named output tensors (``ids`` for a tensor result)."""
    import torch

    with torch.no_grad():
        result = getattr(model, call)(**inputs)
    if torch.is_tensor(result):
        return {"ids": result}
    return {name: getattr(result, name) for name in outputs}


def folder_digest(folder: str) -> dict[str, str]:
    digest = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                digest[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return digest


def _load(check: dict) -> dict:
    from safetensors.torch import load_file
    from transformers import AutoModel

    result = {}
    try:
        AutoModel.from_pretrained(check["folder"])
        result["refused_without_trust"] = False
    except ValueError as error:
        result["refused_without_trust"] = "trust_remote_code=True" in str(error)
    model = AutoModel.from_pretrained(check["folder"], trust_remote_code=True).eval()
    result["module"] = type(model).__module__
    inputs, expected = load_file(check["inputs"]), load_file(check["expected"])
    outputs = call_model(model, check["call"], inputs, check["outputs"])
    result["max_difference"] = {
        name: float((outputs[name].double() - expected[name].double()).abs().max()) for name in expected
    }
    result["dtypes_match"] = all(outputs[name].dtype == expected[name].dtype for name in expected)
    result["shapes_match"] = all(outputs[name].shape == expected[name].shape for name in expected)
    # The remote-code model re-saved here (no maskvision) must load again, to the same outputs.
    resaved = os.path.join(os.getcwd(), f"resaved-{check['name']}")
    model.save_pretrained(resaved)
    model = AutoModel.from_pretrained(resaved, trust_remote_code=True).eval()
    outputs = call_model(model, check["call"], inputs, check["outputs"])
    result["resaved_max_difference"] = max(
        float((outputs[name].double() - expected[name].double()).abs().max()) for name in expected
    )
    return result


def _import_dependencies(folder: str) -> None:
    """Import what the bundle imports from other packages (transformers' lazy attributes included), so that their
    own first-import work (torch creating its caches, ...) is not mistaken for the bundle's."""
    for name in os.listdir(folder):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            try:  # optional imports (maskvision's own, inside `try: ... except ImportError:`) may fail
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        importlib.import_module(alias.name)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    module = importlib.import_module(node.module)
                    for alias in node.names:
                        getattr(module, alias.name, None)
            except ImportError:
                pass


def _import(check: dict) -> dict:
    global _recording
    folder, package = check["folder"], f"bundle_{check['name'].replace('-', '_')}"
    _import_dependencies(folder)
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [folder]
    sys.modules[package] = module
    names = sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".py"))
    _recording = []
    try:
        for name in names:
            importlib.import_module(f"{package}.{name}")
    finally:
        events, _recording = _recording, None
    return {"modules": names, "side_effects": events}


def _snippet(check: dict) -> dict:
    cwd = os.getcwd()
    os.chdir(check["cwd"])
    try:
        exec(compile(check["code"], f"<snippet {check['name']}>", "exec"), {"__name__": "__main__"})
    finally:
        os.chdir(cwd)
    return {"ran": True, "files": sorted(os.listdir(check["cwd"]))}


def main(spec_path: str, results_path: str) -> int:
    sys.dont_write_bytecode = True  # Python's own .pyc caches are no side effect of the code under test
    sys.meta_path.insert(0, _BlockMaskvision())
    sys.addaudithook(_audit)
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    try:
        importlib.import_module("maskvision")
        blocked = False
    except ModuleNotFoundError:
        blocked = True
    import torch
    import transformers  # noqa: F401  (imported before any watched import: its own start-up is not under test)

    torch.manual_seed(0)
    results = {"_maskvision_blocked": blocked}
    before = {check["folder"]: folder_digest(check["folder"]) for check in spec["checks"] if "folder" in check}
    runners = {"load": _load, "import": _import, "snippet": _snippet}
    for check in spec["checks"]:
        try:
            results[check["name"]] = runners[check["type"]](check)
        except Exception:  # reported to the test, which shows it
            results[check["name"]] = {"error": traceback.format_exc()[-3000:]}
    results["_unchanged_folders"] = {folder: folder_digest(folder) == digest for folder, digest in before.items()}
    with open(results_path, "w", encoding="utf-8") as handle:
        json.dump(results, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
