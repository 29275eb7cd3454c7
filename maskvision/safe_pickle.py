"""Reading ``torch.save`` files (OpenAI's DALL-E pickles, the official ``.pth`` releases of BEiT, ExtreMA and MoBY)
without running any code from them.

A pickle names the globals it needs and calls them while it loads: ``torch.load`` (without ``weights_only``) would
import and call whatever the file names (``os.system``, ``eval``...), and the releases also name classes of code
bases one rarely has installed (``dall_e``, ``yacs``, ``argparse`` namespaces of the training arguments). Here a
restricted unpickler reads them with nothing of the sort:

- tensors are rebuilt from the archive's raw storages (zip format, and the legacy format of torch < 1.6);
- plain containers and dtypes are allowed as they are;
- the classes a caller names (``records``: module trees for DALL-E, training arguments and configs for checkpoints)
  become inert records of their attributes, never the real class;
- anything else (``os.system``, ``eval``, ``subprocess.Popen``...) stops the load with an `UnsafePickleError`
  before it can be called.
"""

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import torch

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    name: getattr(torch, name)
    for name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
}
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}  # fmt: skip

# The module trees of a pickled ``nn.Module`` (OpenAI's DALL-E files).
MODULE_TREE_RECORDS = ("dall_e.", "torch.nn.modules.")
# What the official training scripts save beside the weights: unilm's ``args`` (an argparse namespace), the
# Swin/MoBY ``config`` (a yacs CfgNode, a dict), numpy scalars and arrays in either. Read as records, never used.
CHECKPOINT_RECORDS = (
    "argparse.Namespace", "yacs.config.CfgNode", "numpy.core.multiarray.", "numpy._core.multiarray.", "numpy.dtype",
    "numpy.ndarray",
)  # fmt: skip


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for a global outside the allowed set: it may try to run code. Nothing was called."""


class PickledObject:
    """Inert stand-in for an object of a pickled class: its class name and attributes, nothing else."""

    qualified_name = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, (dict, type(None))) for s in state):
            state = {**(state[0] or {}), **(state[1] or {})}  # (instance dict, slots dict)
        self.__dict__["attributes"] = dict(state) if isinstance(state, dict) else {"state": state}

    def __repr__(self) -> str:
        return f"<pickled {self.qualified_name}>"


class PickledDict(dict):
    """Inert stand-in for a pickled dict subclass (yacs' CfgNode): its items, and its attributes apart."""

    qualified_name = "?"

    def __setstate__(self, state):
        self.attributes = dict(state or {})


def _stand_in(qualified_name: str) -> type:
    base = PickledDict if qualified_name == "yacs.config.CfgNode" else PickledObject
    return type(qualified_name.rsplit(".", 1)[-1], (base,), {"qualified_name": qualified_name})


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds a ``torch.save`` pickle from an allow-list of globals; ``load_storage(key, dtype, numel)`` returns the
    1-D tensor of a storage, and classes whose qualified name starts with one of ``records`` become inert records."""

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("__builtin__", "set"): set,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }

    def __init__(self, file, load_storage, records: tuple[str, ...] = ()):
        super().__init__(file)
        self.load_storage = load_storage
        self.records = records
        self._stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        qualified = f"{module}.{name}"
        if qualified.startswith(self.records) and name.isidentifier() and not name.startswith("__"):
            return self._stand_ins.setdefault(qualified, _stand_in(qualified))
        raise UnsafePickleError(
            f"Refusing to load global {qualified}: the file may try to run code; nothing from it was executed. "
            "Only tensors, plain containers and known training records are read."
        )

    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":  # legacy format: (module, class, ...)
            if not (isinstance(pid[1], type) and issubclass(pid[1], PickledObject)):
                raise UnsafePickleError(f"Unexpected module class {pid[1]!r} in the weight file.")
            return pid[1]
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafePickleError(f"Unexpected persistent id {pid!r} in the weight file.")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"Unexpected storage type {storage_type!r} in the weight file.")
        storage = self.load_storage(str(key), storage_type.dtype, int(numel))
        if len(pid) > 5 and pid[5] is not None:  # legacy view: (view key, offset, size)
            _view_key, offset, view_size = pid[5]
            storage = storage[offset : offset + view_size]
        return storage


def _load_zip(path: str, records: tuple[str, ...]):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path} is a zip file but not a torch.save archive (no single data.pkl).")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = f"{prefix}byteorder"
        if byteorder in names and archive.read(byteorder).decode().strip() != "little":
            raise ValueError(f"{path} stores big-endian tensors, which are not supported.")

        def load_storage(key, dtype, numel):
            data = bytearray(archive.read(f"{prefix}data/{key}"))
            return torch.frombuffer(data, dtype=dtype)[:numel] if numel else torch.empty(0, dtype=dtype)

        return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage, records).load()


def _load_legacy(path: str, records: tuple[str, ...]):
    # torch < 1.6: magic, protocol, system info, the object (persistent ids name storages), storage keys, storages.
    with open(path, "rb") as handle:
        header = RestrictedUnpickler(handle, None)
        if header.load() != _LEGACY_MAGIC:
            raise ValueError(f"{path} is neither a torch.save zip archive nor a legacy torch.save file.")
        header.load()  # protocol version
        system = header.load()
        if isinstance(system, dict) and not system.get("little_endian", True):
            raise ValueError(f"{path} stores big-endian tensors, which are not supported.")
        storages: dict[str, torch.Tensor] = {}

        def load_storage(key, dtype, numel):  # filled after the object: views see the data
            if key not in storages:
                storages[key] = torch.empty(numel, dtype=dtype)
            return storages[key]

        result = RestrictedUnpickler(handle, load_storage, records).load()
        keys = RestrictedUnpickler(handle, None).load()
        for key in keys:
            (numel,) = struct.unpack("<q", handle.read(8))
            storage = storages[str(key)]
            data = bytearray(handle.read(numel * storage.element_size()))
            storage[:numel] = torch.frombuffer(data, dtype=storage.dtype) if numel else storage[:0]
    return result


def load_torch_file(path: str | os.PathLike, records: tuple[str, ...] = ()):
    """The object ``torch.save`` wrote to ``path``, read without running any code from the file: tensors, plain
    containers, and inert `PickledObject` records of the classes named by ``records`` (qualified-name prefixes)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such weight file: {path}")
    return _load_zip(path, records) if zipfile.is_zipfile(path) else _load_legacy(path, records)


def load_pickled_module(path: str | os.PathLike) -> PickledObject:
    """The module tree of a torch.save'd DALL-E module, read without running any code from the file."""
    result = load_torch_file(path, MODULE_TREE_RECORDS)
    if not isinstance(result, PickledObject):
        raise ValueError(f"{os.fspath(path)} does not hold a pickled module (got {type(result).__name__}).")
    return result


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A training checkpoint of the official code (a dict: ``model`` / ``state_dict``, optimizer state, training
    arguments...), read without running any code from the file."""
    result = load_torch_file(path, CHECKPOINT_RECORDS)
    if not isinstance(result, dict):
        raise ValueError(f"{os.fspath(path)} does not hold a checkpoint dictionary (got {type(result).__name__}).")
    return result


__all__ = [
    "CHECKPOINT_RECORDS", "MODULE_TREE_RECORDS", "PickledObject", "RestrictedUnpickler", "UnsafePickleError",
    "load_checkpoint", "load_pickled_module", "load_torch_file",
]  # fmt: skip
