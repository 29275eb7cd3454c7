"""One GPU, one command: model FLOP utilisation, the data pipeline beside the steps, and the CIFAR-10 reference at a
GPU budget, from a bare machine (about 9 minutes on one H200 at the default budget).

    python3 benchmarks/gpu.py --prepare           # here, once: wheels of what the GPU machine lacks, CIFAR-10 copied
    python3 benchmarks/gpu.py --estimate          # here: what the CIFAR-10 part will take, from FLOPs counted on CPU
    python3 benchmarks/gpu.py                     # on the GPU machine, from the repository root
    SMOKE=1 python3 benchmarks/gpu.py             # every step for a few iterations, on a CPU (the test suite's)

Parts, in order (``PARTS``, comma-separated, default all):

1. ``mfu``: `benchmarks/mfu.py`, eager and compiled (``--torch_compile``): ``mfu_beit_vitb_bf16``,
   ``mfu_extrema_vitb_bf16``, ``mfu_moby_swint_bf16`` and their ``_compiled`` twins, with each step's images/s;
2. ``pipeline``: `benchmarks/pipeline.py`, the data path's images/s (loader workers, on-device augmentation, images
   held on the device);
3. ``cifar10``: `examples/reference/cifar10.py` with ``PROFILE=gpu`` (ViT-Tiny at 32 px; its variables set the
   budget: EPOCHS, EPOCHS_<METHOD>, BATCH, FT_EPOCHS, CURVE_EVERY, TOKENIZER_STEPS ...).

Every figure goes, as soon as it is measured, to ``RESULTS_DIR/<device>.json`` (the suite's format: ``details`` per
part, headline keys in ``results``) and the tables to ``RESULTS_DIR/<device>.md``; a run cut short keeps what it
finished. RESULTS_DIR defaults to benchmarks/results (runs/gpu-smoke with SMOKE).

Installation: the requirements of setup.cfg that are missing or too old are installed first by pip, from the wheels in
``WHEELS`` (default ``.whl``) without an index when that folder exists (``--prepare`` fills it, and copies CIFAR-10 to
``.data/cifar10``, the default DATA when present); maskvision runs from the checkout.
"""

import argparse
import configparser
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("mfu", "pipeline", "cifar10")
# Wheels a GPU machine without an index needs beside its PyTorch image (this workplace's H200s: torch 2.11,
# transformers 5.17, no datasets, evaluate or kornia), at the versions maskvision's tests run with, for Python 3.12
# on x86-64 Linux; ``--prepare`` downloads them.
WHEELS = ("transformers==5.24.0", "datasets==5.2.0", "evaluate==0.4.6", "kornia==0.9.0", "kornia_rs==0.2.0",
          "dill==0.4.1", "multiprocess==0.70.19", "fsspec==2026.9.0")  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DATA_COPY = os.path.join(ROOT, ".data", "cifar10")


def requirements() -> list[str]:
    """The package's requirements, as setup.cfg lists them."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    return [line.strip() for line in parser["options"]["install_requires"].splitlines() if line.strip()]


def missing_requirements() -> list[str]:
    """setup.cfg's requirements not installed, or installed at a version they exclude (an image's older
    transformers, say)."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    missing = []
    for spec in requirements():
        requirement = Requirement(spec)
        try:
            if requirement.specifier.contains(version(requirement.name), prereleases=True):
                continue
        except PackageNotFoundError:
            pass
        missing.append(spec)
    return missing


def install() -> None:
    """pip installs the requirements that are missing (from the wheels folder, without an index, when there is one);
    maskvision itself runs from this checkout."""
    missing = missing_requirements()
    if not missing:
        return
    wheels = os.environ.get("WHEELS", os.path.join(ROOT, ".whl"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", *missing]
    if os.path.isdir(wheels):
        command += ["--no-index", "--find-links", wheels]
    print(f"[gpu] missing {missing}: {' '.join(command)}", file=sys.stderr, flush=True)
    subprocess.run(command, check=True)
    importlib.invalidate_caches()


def prepare(data: str) -> None:
    """Here, with an index: the wheels a bare GPU machine lacks into .whl, CIFAR-10's parquet files into .data,
    rewritten with zstd (the same PNG bytes, a third of the size: the working tree that travels to the GPU machine is
    limited, 64 MiB on this workplace's)."""
    import pyarrow.parquet as pq

    wheels = os.path.join(ROOT, ".whl")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "-d", wheels, *WHEELS]  # fmt: skip
    for platform in PLATFORMS:
        command[-len(WHEELS) : -len(WHEELS)] = ["--platform", platform]
    subprocess.run(command, check=True)
    os.makedirs(DATA_COPY, exist_ok=True)
    for name in ("train.parquet", "test.parquet"):
        table = pq.read_table(os.path.join(data, name))
        pq.write_table(table, os.path.join(DATA_COPY, name), compression="zstd", compression_level=19)
    print(f"wheels in {wheels}, CIFAR-10 in {DATA_COPY} (both git-ignored: carry them, .whl and .data)")


class Report:
    """The device's results file (`benchmarks/run.py`'s format) and its Markdown, rewritten after every figure."""

    def __init__(self, results_dir: str, smoke: bool):
        import torch

        from benchmarks.common import device_name, device_slug

        os.makedirs(results_dir, exist_ok=True)
        base = os.path.join(results_dir, device_slug())
        self.json_path, self.markdown_path = base + ".json", base + ".md"
        self.payload = {"device": device_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                        "quick": False, "smoke": smoke, "results": {}, "details": {}, "seconds": {}}  # fmt: skip
        if os.path.exists(self.json_path):  # the suite's other modules stay (same torch and threads)
            with open(self.json_path, encoding="utf-8") as handle:
                previous = json.load(handle)
            if (previous.get("torch"), previous.get("threads")) == (self.payload["torch"], self.payload["threads"]):
                self.payload["details"] = previous.get("details", {})
                self.payload["seconds"] = previous.get("seconds", {})
        self.started = time.perf_counter()

    def update(self, part: str, details: dict, seconds: float | None = None) -> None:
        from benchmarks.run import headlines

        self.payload["details"][part] = details
        if seconds is not None:
            self.payload["seconds"][part] = round(seconds, 1)
        self.payload["results"] = headlines(self.payload["details"])
        self.payload["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        _write(self.json_path, json.dumps(self.payload, indent=2))
        _write(self.markdown_path, self.markdown())

    def markdown(self) -> str:
        details = self.payload["details"]
        lines = [
            f"{self.payload['device']}, torch {self.payload['torch']}: {self.payload['wall_seconds']:.0f} s"
            + (" (SMOKE: tiny models, the figures mean nothing)" if self.payload["smoke"] else ""),
            "",
        ]
        mfu, pipeline = details.get("mfu", {}), details.get("pipeline", {})
        if mfu or pipeline:
            lines += [
                f"| step (bf16, batch {mfu.get('batch_size', '?')}) | MFU eager | MFU compiled | "
                "step images/s eager · compiled | "
                f"loader images/s ({pipeline.get('workers', '?')} workers) | device augmentation images/s |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for name, method in (("beit_vitb", "beit"), ("extrema_vitb", "extrema"), ("moby_swint", "moby")):
                speeds = " · ".join(
                    str(mfu.get(name + suffix, {}).get("images_per_second", "—")) for suffix in ("", "_compiled")
                )
                lines.append(
                    f"| {name} | {mfu.get(f'mfu_{name}_bf16', '—')} | "
                    f"{mfu.get(f'mfu_{name}_bf16_compiled', '—')} | {speeds} | {pipeline.get(f'{method}_loader_images_per_s', '—')} | "
                    f"{pipeline.get(f'{method}_device_augment_images_per_s', '—')} |"
                )
            lines.append("")
        if "cifar10" in details:
            lines += [details["cifar10"].get("markdown", ""), ""]
        return "\n".join(lines)


def _write(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(path + ".tmp", path)


def run_part(report: Report, name: str, function) -> None:
    """One part; its error is recorded and the next part runs."""
    print(f"[gpu] {name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        details = function()
    except Exception as error:  # noqa: BLE001 - recorded; the other parts still run
        import traceback

        traceback.print_exc()
        details = {"error": f"{type(error).__name__}: {error}"[:500]}
    report.update(name, details, time.perf_counter() - start)


def load_reference():
    """`examples/reference/cifar10.py` as a module."""
    spec = importlib.util.spec_from_file_location(
        "cifar10_reference", os.path.join(ROOT, "examples", "reference", "cifar10.py")
    )
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference


def cifar10(report: Report, smoke: bool) -> dict:
    """The reference at the GPU budget; its figures enter the report after each of its steps."""
    reference = load_reference()
    os.environ.setdefault("PROFILE", "gpu")
    if os.path.isdir(DATA_COPY):
        os.environ.setdefault("DATA", DATA_COPY)
    if smoke:
        os.environ.setdefault("DATA", "demo")
    start = time.perf_counter()

    def publish(results) -> None:
        report.update("cifar10", {**results.data, "markdown": results.markdown()}, time.perf_counter() - start)

    results = reference.run(reference.settings(), on_write=publish)
    return {**results.data, "markdown": results.markdown()}


H200_BF16_FLOPS = 790e12  # a dense bf16 matmul measured on this workplace's H200s (KINDS.md: 769-798 TFLOP/s)


def flops_per_image(method: str, flags: list[str], batch: int = 8) -> dict:
    """FLOPs per image of ``method``'s pretraining step (forward + backward) as the reference builds its model and
    batch from ``flags``, of a fine-tuning step and of a forward of its exported encoder, counted on the CPU by
    `benchmarks.mfu.step_flops` (BEiT with the tiny dVAE the reference trains)."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import AutoModelForImageClassification

    from benchmarks.mfu import step_flops
    from maskvision import BeitMimForPreTraining, DVAEConfig, DVAETokenizer
    from maskvision.cli.args import parse_arguments
    from maskvision.cli.pretrain import load_recipe
    from maskvision.training.runs.pretrain import DataArguments
    from maskvision.training.runs.tokenizer_presets import dvae_preset

    recipe = load_recipe("moby" if method == "moby" else "extrema" if method == "extrema" else "beit")
    _, model_args, _ = parse_arguments((DataArguments, recipe.model_arguments, recipe.training_arguments), [
        *flags, "--output_dir", "unused", *({"beit": ["--target", "tokens"], "beit-pixels": ["--target", "pixels"]}
                                             .get(method, []))], prog="estimate")  # fmt: skip
    if method == "beit":  # the recipe loads its tokenizer from a path: attach a fresh tiny dVAE instead
        model = BeitMimForPreTraining(model_args.config(vocab_size=512))
        model.set_tokenizer(DVAETokenizer(DVAEConfig(**dvae_preset("tiny"))))
    else:
        model = recipe.build_model(model_args)
    rng = np.random.default_rng(0)
    rows = [{"image": Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))} for _ in range(batch)]
    inputs = recipe.build_collator(model, model_args, seed=0)(rows)
    model.train()
    counts = {"pretrain": step_flops(lambda: model(**inputs).loss.backward()) / batch}
    config = model.encoder_for_export().config
    config.num_labels = 10
    classifier = AutoModelForImageClassification.from_config(config)
    pixels, labels = inputs["pixel_values"], torch.zeros(batch, dtype=torch.long)
    counts["finetune"] = step_flops(lambda: classifier(pixel_values=pixels, labels=labels).loss.backward()) / batch
    with torch.no_grad():
        counts["forward"] = step_flops(lambda: classifier(pixel_values=pixels)) / batch
    return counts


def estimate(mfu: float, overhead_ms: float) -> dict:
    """Seconds the GPU budget's CIFAR-10 part needs on an H200, from FLOPs counted here: each method's pretraining
    (50,000 images per epoch), the fine-tuning of every encoder and from scratch, and the features of 60,000 images
    per encoder and k-NN checkpoint, at ``mfu`` of `H200_BF16_FLOPS` plus ``overhead_ms`` per optimizer step (the
    Trainer, collating and augmenting in the training process). An estimate, not a measurement."""
    plan = load_reference().settings("gpu")
    speed = H200_BF16_FLOPS * mfu
    rows, totals = {}, {"pretrain": 0.0, "finetune": 0.0, "features": 0.0}
    for method in plan["methods"]:
        counts = flops_per_image(method, plan["method_flags"][method])
        steps = 50_000 // plan["batch"]
        epoch = 50_000 * counts["pretrain"] / speed + steps * overhead_ms / 1e3
        finetune = plan["ft_epochs"] * (
            50_000 * counts["finetune"] / speed + 50_000 // plan["ft_batch"] * overhead_ms / 1e3
        )
        points = 1 + (int(plan["epochs"][method] // plan["curve_every"]) if plan["curve_every"] else 0)
        rows[method] = {
            "gflop_per_image": {key: round(value / 1e9, 3) for key, value in counts.items()},
            "epochs": plan["epochs"][method],
            "seconds_per_epoch": round(epoch, 2),
            "pretrain_seconds": round(plan["epochs"][method] * epoch, 1),
            "finetune_seconds": round(finetune, 1),
        }
        totals["pretrain"] += plan["epochs"][method] * epoch
        totals["finetune"] += finetune * (2 if method == plan["methods"][0] else 1)  # + from scratch, once
        totals["features"] += points * 60_000 * counts["forward"] / speed
    return {
        "assumed_mfu": mfu,
        "overhead_ms_per_step": overhead_ms,
        "peak_flops": H200_BF16_FLOPS,
        "batch": plan["batch"],
        "methods": rows,
        "totals_seconds": {k: round(v, 1) for k, v in totals.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--prepare",
        metavar="DATA",
        nargs="?",
        const=os.path.join(ROOT, "..", "shared", "data", "cifar10"),
        help="download the wheels into .whl and copy CIFAR-10 from DATA into .data (here, online)",
    )
    parser.add_argument("--estimate", action="store_true", help="the GPU budget's seconds from FLOPs counted here")
    parser.add_argument("--mfu", type=float, default=0.15, help="--estimate: the MFU assumed")
    parser.add_argument("--overhead-ms", type=float, default=15.0, help="--estimate: milliseconds per step beside")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare(args.prepare)
        return 0
    if args.estimate:
        sys.path.insert(0, ROOT)
        print(json.dumps(estimate(args.mfu, args.overhead_ms), indent=2))
        return 0
    install()
    sys.path.insert(0, ROOT)
    smoke = os.environ.get("SMOKE", "") not in ("", "0")
    parts = [part for part in os.environ.get("PARTS", ",".join(PARTS)).split(",") if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"PARTS: unknown {unknown}; choose among {list(PARTS)}.", file=sys.stderr)
        return 2
    report = Report(
        os.environ.get(
            "RESULTS_DIR",
            os.path.join(ROOT, "runs", "gpu-smoke") if smoke else os.path.join(ROOT, "benchmarks", "results"),
        ),
        smoke,
    )
    if smoke:
        os.environ.setdefault("RUNS", os.path.join(os.path.dirname(report.json_path), "cifar10"))
    if "mfu" in parts:
        from benchmarks import mfu

        run_part(report, "mfu", lambda: mfu.run(batch_size=4 if smoke else 64, smoke=smoke))
    if "pipeline" in parts:
        from benchmarks import pipeline

        run_part(report, "pipeline", lambda: pipeline.run(smoke=smoke))
    if "cifar10" in parts:
        run_part(report, "cifar10", lambda: cifar10(report, smoke))
    print(report.markdown())
    print(f"written to {report.json_path} and {report.markdown_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
