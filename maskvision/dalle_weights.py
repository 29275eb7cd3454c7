"""Import OpenAI's released DALL-E dVAE (``encoder.pkl``, ``decoder.pkl``) into a `DVAETokenizer`, safely.

The files are ``torch.save`` pickles of whole ``dall_e.encoder.Encoder`` / ``dall_e.decoder.Decoder`` modules:
``torch.load`` needs the ``dall_e`` package (and an ``attr`` version that still unpickles it), and, like any
pickle, would run whatever code the file names. Here a restricted unpickler reads them with nothing of the sort:

- the classes of the module tree (``dall_e.*``, ``torch.nn.modules.*``) become inert records of their attributes;
- tensors are rebuilt from the archive's raw storages (zip format, and the legacy format of torch < 1.6);
- the only other globals allowed are plain containers and dtypes. Anything else (``os.system``, ``eval``,
  ``subprocess.Popen``...) stops the load with an `UnsafePickleError` before it can be called.

The ``.w`` / ``.b`` parameters of DALL-E's ``Conv2d`` map one to one to our ``.weight`` / ``.bias`` (the module
trees have the same names), and the architecture (vocabulary, widths, groups, blocks) is read from their shapes.
"""

import io
import logging
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import torch

from .configuration.configuration_dvae import DVAEConfig
from .modeling.modeling_dvae import DVAETokenizer

logger = logging.getLogger(__name__)

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# Module-tree classes become inert records; these modules may contribute them.
_MODULE_TREE_PREFIXES = ("dall_e.", "torch.nn.modules.")
_DTYPES = {
    name: getattr(torch, name)
    for name in ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
}
_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks for a global outside the allowed set: it may try to run code. Nothing was called."""


class PickledObject:
    """Inert stand-in for an object of the pickled module tree: its class name and attributes, nothing else."""

    qualified_name = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (instance dict, slots dict)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__["attributes"] = dict(state or {})

    def __repr__(self) -> str:
        return f"<pickled {self.qualified_name}>"


def _stand_in(qualified_name: str) -> type:
    return type(qualified_name.rsplit(".", 1)[-1], (PickledObject,), {"qualified_name": qualified_name})


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return torch.as_strided(storage, tuple(size), tuple(stride), storage_offset)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds a torch.save'd module tree from an allow-list of globals; ``load_storage(key, dtype, numel)``
    returns the 1-D tensor of a storage."""

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

    def __init__(self, file, load_storage):
        super().__init__(file)
        self.load_storage = load_storage
        self._stand_ins: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module.startswith(_MODULE_TREE_PREFIXES) and name.isidentifier() and not name.startswith("_"):
            qualified = f"{module}.{name}"
            return self._stand_ins.setdefault(qualified, _stand_in(qualified))
        raise UnsafePickleError(
            f"Refusing to load global {module}.{name}: a DALL-E weight file only holds dall_e / torch.nn modules "
            "and tensors. The file may try to run code; nothing from it was executed."
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


def _load_zip(path: str):
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

        return RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _load_legacy(path: str):
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

        result = RestrictedUnpickler(handle, load_storage).load()
        keys = RestrictedUnpickler(handle, None).load()
        for key in keys:
            (numel,) = struct.unpack("<q", handle.read(8))
            storage = storages[str(key)]
            data = bytearray(handle.read(numel * storage.element_size()))
            storage[:numel] = torch.frombuffer(data, dtype=storage.dtype) if numel else storage[:0]
    return result


def load_pickled_module(path: str | os.PathLike) -> PickledObject:
    """The module tree of a torch.save'd module, read without running any code from the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such weight file: {path}")
    result = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    if not isinstance(result, PickledObject):
        raise ValueError(f"{path} does not hold a pickled module (got {type(result).__name__}).")
    return result


def _load_dalle_module(path, kind: str) -> PickledObject:
    module = load_pickled_module(path)
    if module.qualified_name.rsplit(".", 1)[-1] != kind:
        raise ValueError(f"{path}: expected a pickled dall_e {kind}, got {module.qualified_name}.")
    return module


def module_parameters(module: PickledObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """``name → tensor`` for every parameter of a pickled module tree, named like ``state_dict()``."""
    attributes = module.attributes
    tensors = {f"{prefix}{name}": value for name, value in (attributes.get("_parameters") or {}).items()
               if value is not None}
    for name, child in (attributes.get("_modules") or {}).items():
        if isinstance(child, PickledObject):
            tensors.update(module_parameters(child, f"{prefix}{name}."))
    return tensors


def _group_count(parameters: dict[str, torch.Tensor]) -> int:
    return len({name.split(".")[1] for name in parameters if name.startswith("blocks.group_")})


def dalle_config(encoder: dict[str, torch.Tensor], decoder: dict[str, torch.Tensor] | None, **overrides) -> DVAEConfig:
    """The `DVAEConfig` of DALL-E weights, read from the parameters' shapes."""
    try:
        hidden_size, num_channels = encoder["blocks.input.w"].shape[:2]
        vocab_size = encoder["blocks.output.conv.w"].shape[0]
    except KeyError as error:
        raise ValueError(f"Not a DALL-E encoder: parameter {error} is missing.") from None
    blocks = {name.split(".")[2] for name in encoder if name.startswith("blocks.group_1.block_")}
    kwargs = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_channels=num_channels,
                  num_groups=_group_count(encoder), blocks_per_group=len(blocks))
    if decoder is not None:
        if "blocks.input.w" not in decoder or "blocks.output.conv.w" not in decoder:
            raise ValueError("Not a DALL-E decoder: blocks.input.w / blocks.output.conv.w are missing.")
        code_embedding_size, decoder_vocab = decoder["blocks.input.w"].shape[:2]
        if decoder_vocab != vocab_size or _group_count(decoder) != kwargs["num_groups"]:
            raise ValueError(
                f"Encoder and decoder do not match: vocabularies {vocab_size} / {decoder_vocab}, groups "
                f"{kwargs['num_groups']} / {_group_count(decoder)}."
            )
        if decoder["blocks.output.conv.w"].shape[0] != 2 * num_channels:
            raise ValueError("The decoder does not predict logit-Laplace parameters (2 x channels outputs).")
        kwargs["code_embedding_size"] = code_embedding_size
    return DVAEConfig(**kwargs, **overrides)


def convert_dalle(encoder_path, decoder_path=None, image_size: int = 112) -> DVAETokenizer:
    """A `DVAETokenizer` holding OpenAI's DALL-E dVAE weights. Without a decoder, the decoder stays randomly
    initialised (``get_codebook_indices`` works; ``decode`` does not reconstruct)."""
    encoder = module_parameters(_load_dalle_module(encoder_path, "Encoder"))
    decoder = module_parameters(_load_dalle_module(decoder_path, "Decoder")) if decoder_path else None
    model = DVAETokenizer(dalle_config(encoder, decoder, image_size=image_size))
    state = {}
    for part, parameters in (("encoder", encoder), ("decoder", decoder or {})):
        for name, tensor in parameters.items():
            if not name.endswith((".w", ".b")):
                raise ValueError(f"Unexpected parameter {part}.{name}: DALL-E's convolutions hold only .w and .b.")
            state[f"{part}.{name[:-2]}.{'weight' if name.endswith('.w') else 'bias'}"] = tensor.float()
    expected = {name for name in model.state_dict() if decoder is not None or name.startswith("encoder.")}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise ValueError(
            f"DALL-E weights do not fit: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}."
        )
    own = model.state_dict()
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[name].shape):
            raise ValueError(f"Shape of {name}: {tuple(tensor.shape)} in the file, {tuple(own[name].shape)} expected.")
    model.load_state_dict(state, strict=False)
    if decoder is None:
        logger.warning("No decoder given: the tokenizer's decoder is randomly initialised, decode() is meaningless.")
    return model.eval()
