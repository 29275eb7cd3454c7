"""Importing OpenAI's DALL-E dVAE pickles: module trees built here with DALL-E's structure and names (fake
``dall_e`` modules, gone before the import), parity with a functional DALL-E forward, and malicious pickles."""

import math
import os
import pickle
import subprocess
import sys
import types
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel

from maskvision import DVAETokenizer
from maskvision.cli import main as cli
from maskvision.dalle_weights import convert_dalle
from maskvision.safe_pickle import UnsafePickleError, load_pickled_module

GROUPS, BLOCKS, HIDDEN, VOCAB, N_INIT = 4, 2, 16, 32, 8


# ---------------------------------------------------------------- DALL-E's module structure (dall_e/*.py names)
class Conv2d(nn.Module):
    def __init__(self, n_in, n_out, kw):
        super().__init__()
        self.n_in, self.n_out, self.kw = n_in, n_out, kw
        self.use_float16, self.device, self.requires_grad = True, torch.device("cpu"), False
        self.w = nn.Parameter(torch.randn(n_out, n_in, kw, kw) / math.sqrt(n_in * kw**2))
        self.b = nn.Parameter(0.1 * torch.randn(n_out))

    def forward(self, x):
        return F.conv2d(x, self.w, self.b, padding=(self.kw - 1) // 2)


class _Block(nn.Module):
    kernels: tuple[int, ...] = ()

    def __init__(self, n_in, n_out, n_layers):
        super().__init__()
        self.n_in, self.n_out, self.n_layers, self.n_hid = n_in, n_out, n_layers, n_out // 4
        self.post_gain = 1 / n_layers**2
        self.id_path = Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        widths = [n_in, self.n_hid, self.n_hid, self.n_hid, n_out]
        layers = OrderedDict()
        for index, kernel in enumerate(self.kernels, start=1):
            layers[f"relu_{index}"] = nn.ReLU()
            layers[f"conv_{index}"] = Conv2d(widths[index - 1], widths[index], kernel)
        self.res_path = nn.Sequential(layers)


class EncoderBlock(_Block):
    kernels = (3, 3, 3, 1)


class DecoderBlock(_Block):
    kernels = (1, 3, 3, 3)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.group_count, self.n_hid, self.n_blk_per_group, self.vocab_size = GROUPS, HIDDEN, BLOCKS, VOCAB
        n_layers, widths = GROUPS * BLOCKS, [HIDDEN * 2**g for g in range(GROUPS)]
        blocks = OrderedDict(input=Conv2d(3, HIDDEN, 7))
        for g, width in enumerate(widths):
            group = OrderedDict(
                (f"block_{i + 1}", EncoderBlock(widths[max(g - 1, 0)] if i == 0 else width, width, n_layers))
                for i in range(BLOCKS)
            )
            if g < GROUPS - 1:
                group["pool"] = nn.MaxPool2d(kernel_size=2)
            blocks[f"group_{g + 1}"] = nn.Sequential(group)
        blocks["output"] = nn.Sequential(OrderedDict(relu=nn.ReLU(), conv=Conv2d(widths[-1], VOCAB, 1)))
        self.blocks = nn.Sequential(blocks)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.group_count, self.n_init, self.n_hid, self.vocab_size = GROUPS, N_INIT, HIDDEN, VOCAB
        n_layers, widths = GROUPS * BLOCKS, [HIDDEN * 2**g for g in reversed(range(GROUPS))]
        blocks = OrderedDict(input=Conv2d(VOCAB, N_INIT, 1))
        for g, width in enumerate(widths):
            group = OrderedDict(
                (
                    f"block_{i + 1}",
                    DecoderBlock((N_INIT if g == 0 else widths[g - 1]) if i == 0 else width, width, n_layers),
                )
                for i in range(BLOCKS)
            )
            if g < GROUPS - 1:
                group["upsample"] = nn.Upsample(scale_factor=2, mode="nearest")
            blocks[f"group_{g + 1}"] = nn.Sequential(group)
        blocks["output"] = nn.Sequential(OrderedDict(relu=nn.ReLU(), conv=Conv2d(widths[-1], 6, 1)))
        self.blocks = nn.Sequential(blocks)


FAKE_MODULES = {
    "dall_e.utils": [Conv2d],
    "dall_e.encoder": [EncoderBlock, Encoder],
    "dall_e.decoder": [DecoderBlock, Decoder],
}


@pytest.fixture(scope="module")
def dalle_files(tmp_path_factory):
    """encoder/decoder pickles (zip and legacy torch.save formats) and their raw parameters."""
    directory = tmp_path_factory.mktemp("dalle")
    torch.manual_seed(0)
    sys.modules["dall_e"] = types.ModuleType("dall_e")
    for module_name, classes in FAKE_MODULES.items():
        module = sys.modules[module_name] = types.ModuleType(module_name)
        for cls in classes:
            cls.__module__, cls.__qualname__ = module_name, cls.__name__
            setattr(module, cls.__name__, cls)
    try:
        encoder, decoder = Encoder(), Decoder()
        files = {}
        with warnings.catch_warnings():  # torch cannot find the fake classes' source code
            warnings.simplefilter("ignore", UserWarning)
            for name, module in (("encoder", encoder), ("decoder", decoder)):
                files[name] = str(directory / f"{name}.pkl")
                torch.save(module, files[name])
                files[f"{name}_legacy"] = str(directory / f"{name}_legacy.pkl")
                torch.save(module, files[f"{name}_legacy"], _use_new_zipfile_serialization=False)
    finally:
        for module_name in ("dall_e", *FAKE_MODULES):
            del sys.modules[module_name]
    params = {
        name: {k: v.detach().clone() for k, v in module.state_dict().items()}
        for name, module in (("encoder", encoder), ("decoder", decoder))
    }
    return files, params


# ------------------------------------------------------------------ DALL-E's forward, from the raw tensors
def _conv(params, name, x):
    weight = params[f"{name}.w"]
    return F.conv2d(x, weight, params[f"{name}.b"], padding=(weight.shape[-1] - 1) // 2)


def _groups(params, x, resample):
    for g in range(1, GROUPS + 1):
        for i in range(1, BLOCKS + 1):
            prefix = f"blocks.group_{g}.block_{i}"
            identity = _conv(params, f"{prefix}.id_path", x) if f"{prefix}.id_path.w" in params else x
            hidden = x
            for k in range(1, 5):
                hidden = _conv(params, f"{prefix}.res_path.conv_{k}", F.relu(hidden))
            x = identity + hidden / (GROUPS * BLOCKS) ** 2
        if g < GROUPS:
            x = resample(x)
    return x


def dalle_encoder(params, x):
    x = _groups(params, _conv(params, "blocks.input", x), lambda t: F.max_pool2d(t, 2))
    return _conv(params, "blocks.output.conv", F.relu(x))


def dalle_decoder(params, z):
    x = _groups(params, _conv(params, "blocks.input", z), lambda t: F.interpolate(t, scale_factor=2, mode="nearest"))
    return _conv(params, "blocks.output.conv", F.relu(x))


# ------------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("suffix", ["", "_legacy"])
def test_converted_model_matches_dalle_forward(dalle_files, suffix):
    files, params = dalle_files
    assert "dall_e" not in sys.modules  # the import needs no dall_e code
    model = convert_dalle(files[f"encoder{suffix}"], files[f"decoder{suffix}"], image_size=32)
    config = model.config
    assert (
        config.vocab_size,
        config.hidden_size,
        config.num_groups,
        config.blocks_per_group,
        config.code_embedding_size,
    ) == (VOCAB, HIDDEN, GROUPS, BLOCKS, N_INIT)
    pixels = torch.rand(2, 3, 32, 32)
    mapped = 0.8 * pixels + 0.1  # dall_e.utils.map_pixels
    expected = dalle_encoder(params["encoder"], mapped)
    assert torch.allclose(model.encoder(mapped), expected, atol=1e-5)
    assert torch.allclose(model.forward_encoder(pixels)[1], expected, atol=1e-5)
    assert torch.equal(model.get_codebook_indices(pixels), expected.argmax(dim=1))
    one_hot = F.one_hot(expected.argmax(dim=1), VOCAB).permute(0, 3, 1, 2).float()
    stats = dalle_decoder(params["decoder"], one_hot)
    assert torch.allclose(model.decoder(one_hot), stats, atol=1e-5)
    reconstruction = ((torch.sigmoid(stats[:, :3]) - 0.1) / 0.8).clamp(0, 1)  # unmap_pixels(sigmoid(x_stats))
    assert torch.allclose(model.decode(expected.argmax(dim=1)), reconstruction, atol=1e-5)


def test_import_dalle_command_writes_safetensors(dalle_files, tmp_path):
    files, params = dalle_files
    output = tmp_path / "dalle"
    assert (
        cli(["tokenizer", "import-dalle", files["encoder"], "--decoder", files["decoder"], "--output-dir", str(output)])
        == 0
    )
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(os.listdir(output))
    assert not [name for name in os.listdir(output) if name.endswith((".bin", ".pkl", ".pt"))]
    model = AutoModel.from_pretrained(output)
    assert isinstance(model, DVAETokenizer) and model.config.image_size == 112
    pixels = torch.rand(1, 3, 32, 32)
    assert torch.allclose(
        model.encoder(0.8 * pixels + 0.1), dalle_encoder(params["encoder"], 0.8 * pixels + 0.1), atol=1e-5
    )


def test_encoder_only_import_and_mismatched_files(dalle_files):
    files, params = dalle_files
    model = convert_dalle(files["encoder"])
    assert torch.equal(model.encoder.blocks.input.weight, params["encoder"]["blocks.input.w"])
    with pytest.raises(ValueError, match="expected a pickled dall_e Encoder, got dall_e.decoder.Decoder"):
        convert_dalle(files["decoder"])
    with pytest.raises(ValueError, match="expected a pickled dall_e Decoder, got dall_e.encoder.Encoder"):
        convert_dalle(files["encoder"], files["encoder"])


class Payload:
    """Unpickling calls ``function(*args)``."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("kind", ["os.system", "os.popen", "eval", "exec", "subprocess"])
@pytest.mark.parametrize("container", ["pickle", "torch.save"])
def test_malicious_pickles_run_nothing(tmp_path, kind, container):
    marker = tmp_path / "marker"
    code = f"open({str(marker)!r}, 'w').close()"
    payload = {
        "os.system": Payload(os.system, f"touch {marker}"),
        "eval": Payload(eval, code),
        "exec": Payload(exec, code),
        "subprocess": Payload(subprocess.call, ["touch", str(marker)]),
        "os.popen": Payload(os.popen, f"touch {marker}"),
    }[kind]
    path = tmp_path / "evil.pkl"
    if container == "pickle":
        with open(path, "wb") as handle:
            pickle.dump(payload, handle, protocol=2)
    else:
        torch.save({"weights": torch.zeros(2), "payload": payload}, path)
    with pytest.raises(UnsafePickleError, match="Refusing to load global .*nothing from it was executed"):
        load_pickled_module(path)
    with pytest.raises(UnsafePickleError):
        convert_dalle(path)
    assert not marker.exists()


def test_non_module_pickle_is_rejected(tmp_path):
    path = tmp_path / "tensors.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="does not hold a pickled module"):
        load_pickled_module(path)
    (tmp_path / "text.pkl").write_text("not a pickle")
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        load_pickled_module(tmp_path / "text.pkl")
