"""`benchmarks/gpu.py` and `examples/reference/cifar10.py`: ``SMOKE=1`` runs every step for a few iterations and
writes every figure (JSON and Markdown, model cards); a failing step is recorded and the others run; a bare machine
installs the package from its wheels folder."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(relative: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(relative)[:-3], os.path.join(ROOT, relative))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smoke_env(tmp_path, **extra) -> dict:
    return {**os.environ, "SMOKE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "PYTHONPATH": ROOT, **extra}  # fmt: skip


def test_gpu_script_smoke_run_writes_every_part(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu.py"],
        cwd=ROOT,
        env=smoke_env(tmp_path, RESULTS_DIR=str(tmp_path / "results"), RUNS=str(tmp_path / "runs")),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [json_file] = [name for name in os.listdir(tmp_path / "results") if name.endswith(".json")]
    payload = json.loads((tmp_path / "results" / json_file).read_text())
    details = payload["details"]
    assert {"mfu", "pipeline", "cifar10"} <= set(details) and payload["smoke"] is True
    for method in ("beit_vitb", "extrema_vitb", "moby_swint"):
        for suffix in ("", "_compiled"):  # eager and compiled (the "eager" backend on a CPU)
            assert details["mfu"][f"mfu_{method}_bf16{suffix}"] > 0
            assert details["mfu"][method + suffix]["images_per_second"] > 0
    assert all(
        details["pipeline"][f"{m}_{path}_images_per_s"] > 0
        for m in ("beit", "extrema", "moby")
        for path in ("loader", "device_augment", "tensor")
    )
    assert payload["results"]["mfu_beit_vitb_bf16_compiled"] == details["mfu"]["mfu_beit_vitb_bf16_compiled"]

    cifar = details["cifar10"]
    assert cifar["profile"] == "gpu" and all(step["status"] == "done" for step in cifar["steps"].values())
    assert set(cifar["encoders"]) == {"random-init", "beit", "beit-pixels", "extrema", "moby"}
    for row in cifar["encoders"].values():  # (k = 200 needs more than SMOKE's 128 training images)
        assert "knn_top1_k200" in row
        for key in ("knn_top1", "linear_top1", "finetune_top1"):
            assert 0 <= row[key] <= 1, key
    assert {m: sorted(points) for m, points in cifar["curve"].items()} == {
        m: ["0", "1"] for m in ("beit", "beit-pixels", "extrema", "moby")
    }
    assert "used_fraction" in cifar["tokenizer"]
    markdown = (tmp_path / "results" / json_file.replace(".json", ".md")).read_text()
    assert "| moby_swint |" in markdown and "| beit-pixels | ViT 32x2, patch 4 | 1 epochs" in markdown
    assert sorted(os.listdir(tmp_path / "runs" / "cards")) == sorted(
        f"cifar10-{name}-vit-32x2-encoder.md" for name in ("beit", "beit-pixels", "extrema", "moby", "random-init")
    )


def test_reference_cpu_profile_compares_swin_with_its_own_random_init(tmp_path):
    env = smoke_env(tmp_path, DATA="demo", RUNS=str(tmp_path), METHODS="moby", CURVE_EVERY="0")
    result = subprocess.run(
        [sys.executable, "examples/reference/cifar10.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["profile"] == "cpu" and set(data["encoders"]) == {"random-init-swin", "moby"}
    assert data["encoders"]["random-init-swin"]["backbone"] == data["encoders"]["moby"]["backbone"]
    assert data["encoders"]["moby"]["backbone"] == "Swin 16, depths 1-1, patch 4"
    assert data["curve"] == {} and data["encoders"]["moby"]["finetune_top1"] is not None
    assert "| random-init-swin | Swin 16" in (tmp_path / "results.md").read_text()
    assert os.path.exists(tmp_path / "cards" / "cifar10-moby-swin-16-encoder.md")


def test_a_failing_step_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    reference = load("examples/reference/cifar10.py")
    monkeypatch.setenv("RUNS", str(tmp_path))
    plan = reference.settings()
    written = []
    results = reference.Results(plan, on_write=lambda r: written.append(dict(r.data["steps"])))

    def broken():
        raise RuntimeError("out of memory")

    assert results.step("pretrain beit", broken) is None
    assert results.step("evaluate", lambda: 42) == 42
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["steps"]["pretrain beit"]["status"] == "failed"
    assert data["steps"]["pretrain beit"]["error"] == "RuntimeError: out of memory"
    assert data["steps"]["evaluate"]["status"] == "done" and len(written) == 2
    assert "Failed steps: pretrain beit: RuntimeError: out of memory" in (tmp_path / "results.md").read_text()


def test_requirements_are_missing_when_absent_or_too_old(monkeypatch):
    from importlib import metadata

    gpu = load("benchmarks/gpu.py")
    assert "transformers>=5.21" in gpu.requirements() and gpu.missing_requirements() == []
    installed = {"transformers": "5.17.0", "torch": "2.11.0+cu130"}  # an H200 image's

    def version(name):
        if name == "kornia":
            raise metadata.PackageNotFoundError(name)
        return installed.get(name, "99")

    monkeypatch.setattr(metadata, "version", version)
    assert gpu.missing_requirements() == ["transformers>=5.21", "kornia>=0.7"]


@pytest.mark.parametrize("wheels_folder", [True, False])
def test_bare_machine_installs_the_package_from_its_wheels(tmp_path, monkeypatch, wheels_folder):
    gpu = load("benchmarks/gpu.py")
    calls = []
    monkeypatch.setattr(gpu, "missing_requirements", lambda: ["kornia>=0.7"])
    monkeypatch.setattr(gpu.subprocess, "run", lambda command, check: calls.append(command))
    wheels = tmp_path / "wheels"
    if wheels_folder:
        wheels.mkdir()
    monkeypatch.setenv("WHEELS", str(wheels))
    gpu.install()
    [command] = calls
    assert command[1:6] == ["-m", "pip", "install", "--quiet", "kornia>=0.7"]
    assert command[-3:] == ["--no-index", "--find-links", str(wheels)] if wheels_folder else "--no-index" not in command
    monkeypatch.setattr(gpu, "missing_requirements", lambda: [])
    gpu.install()
    assert len(calls) == 1  # nothing missing: nothing installed


def test_estimate_counts_each_methods_flops(monkeypatch):
    gpu = load("benchmarks/gpu.py")
    monkeypatch.setenv("SMOKE", "1")  # tiny encoders: the counting, not the figures
    result = gpu.estimate(mfu=0.2, overhead_ms=10.0)
    methods = result["methods"]
    assert list(methods) == ["beit", "beit-pixels", "extrema", "moby"]
    for row in methods.values():
        assert row["pretrain_seconds"] == pytest.approx(row["epochs"] * row["seconds_per_epoch"], abs=0.1)
        assert 0 < row["gflop_per_image"]["forward"] < row["gflop_per_image"]["finetune"]
    # MoBY runs two views through an online and a target encoder: more per image than BEiT's one masked view
    assert methods["moby"]["gflop_per_image"]["pretrain"] > methods["beit-pixels"]["gflop_per_image"]["pretrain"]
    # BEiT's step includes its tokenizer's forward
    assert methods["beit"]["gflop_per_image"]["pretrain"] > methods["beit-pixels"]["gflop_per_image"]["pretrain"]
