"""Safety: nothing in the package unpickles (safetensors; `torch.load(..., weights_only=True)`; the one pickle reader
is the restricted unpickler of safe_pickle.py, for DALL-E and the official checkpoints), nothing opts into remote
code on the user's behalf, and a run's checkpoint holds only safetensors, JSON and tensors that
`torch.load(weights_only=True)` reads.

Also covered elsewhere: malicious DALL-E pickles and checkpoints run nothing (test_dalle_import.py,
test_convert.py); remote code loads only with trust_remote_code=True and has no network or file-system side effects
on import (test_remote_code.py); a push that fails midway publishes nothing (test_hub.py)."""

import ast
import pathlib

import torch
from transformers.trainer_pt_utils import safe_globals

import maskvision
from maskvision.cli import main as cli
from maskvision.training.loop.checkpoints import CHECKPOINT_COMPLETE

PACKAGE = pathlib.Path(maskvision.__file__).parent
PICKLE_READER = PACKAGE / "safe_pickle.py"  # RestrictedUnpickler: an allow-list of classes, no code runs


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loading(source: str, where: str = "<source>", pickle_reader: bool = False) -> list[str]:
    """Pickle imports, torch.load without weights_only=True, pickle/numpy loads that unpickle, and calls that opt
    into remote code (trust_remote_code=True) in ``source``."""
    tree = ast.parse(source)
    offences = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        pickling = any(name.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib") for name in names)
        if pickling and not pickle_reader:
            offences.append(f"{where}:{node.lineno} imports {names}")
    for call, name in _calls(tree):
        keywords = {keyword.arg: keyword.value for keyword in call.keywords}
        torch_load = name.split(".")[-1] == "load" and name.split(".")[0] in ("torch", "load")
        if torch_load and not _is_true(keywords.get("weights_only")):
            offences.append(f"{where}:{call.lineno} {name}(...) without weights_only=True")
        if name in ("pickle.load", "pickle.loads") and not pickle_reader:
            offences.append(f"{where}:{call.lineno} {name}")
        numpy_load = name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy")
        if numpy_load and _is_true(keywords.get("allow_pickle")):
            offences.append(f"{where}:{call.lineno} {name}(allow_pickle=True)")
        if _is_true(keywords.get("trust_remote_code")):
            offences.append(f"{where}:{call.lineno} {name}(trust_remote_code=True)")
    return offences


def test_the_checker_flags_each_unsafe_pattern():
    bad = (
        "import pickle\nfrom joblib import load\nimport torch, numpy as np\n"
        "torch.load(path)\ntorch.load(path, weights_only=False)\nnp.load(path, allow_pickle=True)\n"
        "AutoModel.from_pretrained(name, trust_remote_code=True)\n"
    )
    assert len(unsafe_loading(bad)) == 6
    good = "import torch, json\ntorch.load(path, weights_only=True)\njson.load(handle)\nnp.load(path)\n"
    assert unsafe_loading(good) == []


def test_no_pickle_loading_anywhere_in_the_package():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        offences += unsafe_loading(
            path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)), pickle_reader=path == PICKLE_READER
        )
    assert not offences, offences


def test_the_pickle_reader_restricts_classes():
    from maskvision.safe_pickle import RestrictedUnpickler

    assert RestrictedUnpickler.find_class is not __import__("pickle").Unpickler.find_class


def test_every_artefact_of_a_run_is_safetensors_json_or_a_weights_only_tensor_file(tmp_path):
    output_dir = tmp_path / "run"
    argv = ["pretrain", "moby", "--dataset", "demo", "--max_train_samples", "16", "--image_size", "32",
            "--patch_size", "4", "--window_size", "4", "--embed_dim", "16", "--depths", "1", "1", "--num_heads", "1",
            "2", "--projector_hidden_size", "32", "--predictor_hidden_size", "32", "--projection_dim", "16",
            "--queue_size", "16", "--per_device_train_batch_size", "8", "--max_steps", "2", "--save_steps", "2",
            "--use_cpu", "true", "--dataloader_num_workers", "0", "--disable_tqdm", "true",
            "--output_dir", str(output_dir)]  # fmt: skip
    assert cli(argv) == 0
    files = sorted(path for path in output_dir.rglob("*") if path.is_file())
    assert any(path.name == CHECKPOINT_COMPLETE for path in files)
    tensor_files = []
    for path in files:
        assert path.name != "training_args.bin", path
        if path.suffix in (".pt", ".pth"):  # Trainer's optimizer, scheduler and RNG states
            with safe_globals():  # as Trainer reads them: numpy's RNG state arrays allowed, nothing else
                torch.load(path, weights_only=True)  # raises on any other class or callable
            tensor_files.append(path.name)
        else:
            assert path.suffix in (".safetensors", ".json", ".md"), path
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth"} <= set(tensor_files)
