"""What the Hub tests share (test_remote_code.py, test_hub.py, test_cards.py): a tiny model of every kind maskvision
pushes with a batch for it, a local stand-in of the Hub that records commits, and the isolated-interpreter runner."""

import functools
import inspect
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import torch
from hub_isolated import call_model
from huggingface_hub import CommitInfo, HfApi, RepoUrl
from PIL import Image
from safetensors.torch import save_file
from transformers import BeitConfig, BeitForImageClassification, BeitModel, PreTrainedModel

from maskvision import (
    BeitMimConfig,
    BeitMimForPreTraining,
    DVAEConfig,
    DVAETokenizer,
    ExtremaConfig,
    ExtremaForPreTraining,
    MobyConfig,
    MobyForPreTraining,
    VQKDConfig,
    VQKDTokenizer,
)
from maskvision.configuration.backbones import swin_backbone_config, vit_backbone_config
from maskvision.configuration.configuration_extrema import extrema_backbone_config
from maskvision.configuration.configuration_moby import moby_vit_backbone_config
from maskvision.configuration.configuration_vqkd import VQKD_VIT_DEFAULTS
from maskvision.evaluation.features import build_image_processor
from maskvision.training.inputs.masking import RandomMaskGenerator

WORKER = os.path.join(os.path.dirname(__file__), "hub_isolated.py")


@dataclass
class Case:
    """A maskvision model, the call that shows what it computes and the batch to call it on."""

    name: str
    kind: str
    model: PreTrainedModel
    call: str  # "forward" or "get_codebook_indices"
    inputs: dict
    outputs: tuple[str, ...]  # fields of the forward output compared (tensor results are "ids")

    def expected(self, model: PreTrainedModel | None = None) -> dict:
        """The outputs of ``model`` (default: the case's own) on the case's inputs."""
        return call_model(model or self.model, self.call, self.inputs, list(self.outputs))

    def save_io(self, directory: str) -> tuple[str, str]:
        """Inputs and expected outputs as safetensors files in ``directory`` → their paths."""
        os.makedirs(directory, exist_ok=True)
        inputs = os.path.join(directory, "inputs.safetensors")
        expected = os.path.join(directory, "expected.safetensors")
        save_file({name: value.contiguous() for name, value in self.inputs.items()}, inputs)
        save_file({name: value.contiguous() for name, value in self.expected().items()}, expected)
        return inputs, expected


def _views(batch: int = 4, size: int = 32) -> dict:
    generator = torch.Generator().manual_seed(0)
    return {name: torch.randn(batch, 3, size, size, generator=generator) for name in ("pixel_values", "pixel_values_2")}


def _moby(backbone) -> MobyForPreTraining:
    config = MobyConfig(
        backbone_config=backbone, projection_dim=16, projector_hidden_size=32, predictor_hidden_size=32, queue_size=32
    )
    torch.manual_seed(0)
    model = MobyForPreTraining(config).eval()
    for queue in (model.queue_1, model.queue_2):  # queues in use, as in a checkpoint
        queue.copy_(torch.nn.functional.normalize(torch.randn_like(queue), dim=1))
    return model


def _beit(target: str) -> tuple[BeitMimForPreTraining, dict]:
    config = BeitMimConfig.from_size(
        "tiny",
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=64,
        target=target,
    )
    torch.manual_seed(0)
    model = BeitMimForPreTraining(config).eval()
    generator = torch.Generator().manual_seed(0)
    batch = {
        "pixel_values": torch.randn(4, 3, 32, 32, generator=generator),
        "bool_masked_pos": torch.rand(4, 16, generator=generator).argsort(dim=1) < 6,
    }
    if target == "tokens":  # the tokens of every patch, as a tokenizer would give them
        batch["labels"] = torch.randint(0, 64, (4, 16), generator=generator)
    return model, batch


def _extrema() -> tuple[ExtremaForPreTraining, dict]:
    backbone = extrema_backbone_config(
        "tiny",
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    config = ExtremaConfig(
        backbone_config=backbone, num_masks=2, projector_hidden_size=32, predictor_hidden_size=32, projection_size=16
    )
    torch.manual_seed(0)
    model = ExtremaForPreTraining(config).eval()
    generator = torch.Generator().manual_seed(0)
    batch = {
        "pixel_values": torch.randn(4, 3, 32, 32, generator=generator),
        "teacher_pixel_values": torch.randn(4, 3, 32, 32, generator=generator),
        "bool_masked_pos": RandomMaskGenerator(4, config.mask_ratio, config.num_masks).gen(4, generator=generator),
    }
    return model, batch


def _tokenizers() -> list[Case]:
    """A tiny dVAE and a tiny VQ-KD (teacher-free: the Hub gets the tokenizer alone), called for their codes."""
    torch.manual_seed(0)
    dvae = DVAETokenizer(
        DVAEConfig(
            vocab_size=64, hidden_size=16, num_groups=3, blocks_per_group=1, code_embedding_size=16, image_size=32
        )
    ).eval()
    vit = dict(hidden_size=32, num_attention_heads=2, intermediate_size=64, **VQKD_VIT_DEFAULTS)
    vqkd_config = VQKDConfig(
        vocab_size=32,
        codebook_dim=8,
        image_size=16,
        patch_size=4,
        teacher_hidden_size=24,
        encoder_config=vit_backbone_config("tiny", num_hidden_layers=2, **vit),
        decoder_config=vit_backbone_config("tiny", num_hidden_layers=1, **vit),
    )
    torch.manual_seed(0)
    vqkd = VQKDTokenizer(vqkd_config).eval()
    generator = torch.Generator().manual_seed(0)
    return [
        Case(
            "dvae",
            "tokenizer",
            dvae,
            "get_codebook_indices",
            {"pixel_values": torch.rand(2, 3, 32, 32, generator=generator)},
            ("ids",),
        ),
        Case(
            "vqkd",
            "tokenizer",
            vqkd,
            "get_codebook_indices",
            {"pixel_values": torch.rand(2, 3, 16, 16, generator=generator)},
            ("ids",),
        ),
    ]


def maskvision_cases() -> list[Case]:
    """One tiny model per maskvision class (and backbone family) that gets remote code on the Hub."""
    swin = swin_backbone_config(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4
    )
    vit = moby_vit_backbone_config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    extrema, extrema_batch = _extrema()
    (beit, beit_batch), (beit_pixels, beit_pixels_batch) = _beit("tokens"), _beit("pixels")
    return [  # MoBY on Swin first: the tests' default case
        Case("moby-swin", "pretraining", _moby(swin), "forward", _views(), ("loss", "predictions", "target_keys")),
        Case("moby-vit", "pretraining", _moby(vit), "forward", _views(), ("loss", "predictions", "target_keys")),
        Case("extrema", "pretraining", extrema, "forward", extrema_batch, ("loss", "predictions", "targets")),
        Case("beit", "pretraining", beit, "forward", beit_batch, ("loss", "accuracy", "logits")),
        Case("beit-pixels", "pretraining", beit_pixels, "forward", beit_pixels_batch, ("loss", "logits")),
        *_tokenizers(),
    ]


def tiny_vit_config(**overrides) -> BeitConfig:
    values = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        use_mean_pooling=True,
    )
    return BeitConfig(**{**values, **overrides})


def stock_encoder():
    torch.manual_seed(0)
    return BeitModel(tiny_vit_config()).eval(), build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def stock_classifier():
    labels = ["airplane", "automobile", "bird"]
    config = tiny_vit_config(id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    torch.manual_seed(0)
    return BeitForImageClassification(config).eval(), build_image_processor(32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def save_image(path: str, size: int = 40) -> str:
    generator = torch.Generator().manual_seed(1)
    pixels = (torch.rand(size, size, 3, generator=generator) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    return path


# ------------------------------------------------------------------------------------------ the Hub stand-in
class RecordingHub:
    """A local stand-in of the Hub, installed over `HfApi`: repos are folders under ``root``; a commit writes all of
    its files at once when it completes (the Hub's commits are atomic), while `upload_file` / `upload_folder` write
    file by file, as their many commits would. ``fail_after`` makes the next commit read that many files, then fail
    as a dropped connection would."""

    def __init__(self, root: str):
        self.root = root
        self.calls: list[tuple[str, dict]] = []
        self.fail_after: int | None = None

    def repo_path(self, repo_id: str, revision: str | None = None) -> str:
        return os.path.join(self.root, repo_id, revision or "main")

    def files(self, repo_id: str, revision: str | None = None) -> list[str]:
        folder = self.repo_path(repo_id, revision)
        return sorted(
            os.path.relpath(os.path.join(root, name), folder) for root, _, names in os.walk(folder) for name in names
        )

    def install(self, monkeypatch) -> "RecordingHub":
        hub = self

        def create_repo(api, repo_id, *, private=None, exist_ok=False, repo_type=None, **kwargs):
            hub.calls.append(("create_repo", {"repo_id": repo_id, "private": private, "exist_ok": exist_ok}))
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def create_branch(api, repo_id, *, branch, exist_ok=False, **kwargs):
            hub.calls.append(("create_branch", {"repo_id": repo_id, "branch": branch}))

        def create_commit(api, repo_id, operations, *, commit_message, revision=None, **kwargs):
            contents = {}
            for index, operation in enumerate(operations):
                if hub.fail_after is not None and index == hub.fail_after:
                    hub.calls.append(("failed_commit", {"repo_id": repo_id, "files_read": index}))
                    raise ConnectionError("Connection to the Hub lost while uploading (simulated).")
                with open(operation.path_or_fileobj, "rb") as handle:
                    contents[operation.path_in_repo] = handle.read()
            for path, content in contents.items():
                target = os.path.join(hub.repo_path(repo_id, revision), path)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as handle:
                    handle.write(content)
            hub.calls.append(
                (
                    "create_commit",
                    {
                        "repo_id": repo_id,
                        "message": commit_message,
                        "revision": revision,
                        "paths": sorted(contents),
                        **kwargs,
                    },
                )
            )
            url = f"https://huggingface.co/{repo_id}/commit/{len(hub.calls):040d}"
            return CommitInfo(commit_url=url, commit_message=commit_message, commit_description="", oid=url[-40:])

        def upload_file(api, *, path_or_fileobj, path_in_repo, repo_id, revision=None, **kwargs):
            hub.calls.append(("upload_file", {"repo_id": repo_id, "path": path_in_repo}))
            target = os.path.join(hub.repo_path(repo_id, revision), path_in_repo)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(path_or_fileobj, "rb") as source, open(target, "wb") as handle:
                handle.write(source.read())

        def upload_folder(api, *, folder_path, repo_id, revision=None, **kwargs):
            for root, _, names in os.walk(folder_path):
                for name in names:
                    path = os.path.join(root, name)
                    upload_file(
                        api,
                        path_or_fileobj=path,
                        path_in_repo=os.path.relpath(path, folder_path),
                        repo_id=repo_id,
                        revision=revision,
                    )

        for name, function in [("create_repo", create_repo), ("create_branch", create_branch),
                               ("create_commit", create_commit), ("upload_file", upload_file),
                               ("upload_folder", upload_folder)]:  # fmt: skip
            monkeypatch.setattr(HfApi, name, _checked(getattr(HfApi, name), function))
        return self


def _checked(original, stand_in):
    """``stand_in``, refusing calls that the real `HfApi` method would refuse (unknown or missing arguments)."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def method(api, *args, **kwargs):
        signature.bind(api, *args, **kwargs)
        return stand_in(api, *args, **kwargs)

    return method


# ----------------------------------------------------------------------------------- the isolated interpreter
def run_isolated(checks: list[dict], workdir: str, timeout: int = 300) -> dict:
    """Run `hub_isolated.py` on ``checks`` in a clean interpreter (no maskvision, no network, no PYTHONPATH)."""
    spec, results = os.path.join(workdir, "isolated_spec.json"), os.path.join(workdir, "isolated_results.json")
    with open(spec, "w", encoding="utf-8") as handle:
        json.dump({"checks": checks}, handle)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_MODULES_CACHE=os.path.join(workdir, "hf_modules"),
        HF_HOME=os.path.join(workdir, "hf_home"),
        OMP_NUM_THREADS="1",
        TRANSFORMERS_VERBOSITY="error",
    )
    process = subprocess.run(
        [sys.executable, WORKER, spec, results],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert process.returncode == 0, f"isolated interpreter failed:\n{process.stdout[-3000:]}\n{process.stderr[-5000:]}"
    with open(results, encoding="utf-8") as handle:
        return json.load(handle)
