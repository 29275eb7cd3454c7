"""The benchmark suite in one command: every benchmark module, a table of the headline numbers against their goals,
and ``benchmarks/results/<device>.json`` = ``{"device": ..., "results": {headline keys}, "details": {module: all of
its results}}`` (``<device>-quick.json`` with ``--quick``, a fast pass with fewer repeats and smaller batches).

    python benchmarks/run.py                      # everything: ~15 min on one CPU thread, minutes on a GPU
    python benchmarks/run.py --quick              # a fast pass
    python benchmarks/run.py --only masking beit  # some modules, merged into the device's previous results

Each module (``benchmarks/<name>.py``) exposes ``run(quick) -> dict`` and measures its candidates side by side in one
process (`benchmarks/common.py`); ratios are therefore immune to the machine's drift between modules. Headline keys
(see `HEADLINES`): ``mask_speedup``, ``beit_step_vs_stock``, ``extrema_80x5_vs_beit_step``, ``data_images_per_s``,
each method's step images/s and peak memory, BEiT's step time by image size, ExtreMA's by mask ratio, startup on 2k vs
50k images and the SIGTERM exit (``startup``), and on a GPU ``mfu_beit_vitb_bf16`` / ``mfu_extrema_vitb_bf16`` /
``mfu_moby_swint_bf16``.
"""

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import RESULTS_DIR, device_name, device_slug  # noqa: E402

MODULES = ("masking", "data_check", "tokenizer", "beit", "extrema", "moby", "scaling", "pipeline", "mfu", "startup")

# headline key → (module, path into its results, goal as (">=" or "<=", value) or None, what it is)
HEADLINES: dict[str, tuple[str, tuple[str, ...], tuple[str, float] | None, str]] = {
    "mask_speedup": ("masking", ("mask_speedup",), (">=", 20), "vectorised vs per-image block masks (256, 14x14/75)"),
    "data_images_per_s": ("masking", ("data_images_per_s",), None, "BEiT collator, images/s, one process"),
    "data_crops_only_images_per_s": ("masking", ("data_crops_only_images_per_s",), None,
                                     "the same with --augment_on_device"),
    "tokenizer_images_per_s": ("tokenizer", ("channels_last", "images_per_second"), None,
                               "dVAE ids at 112 px, channels-last"),
    "beit_step_vs_stock": ("beit", ("beit_step_vs_stock",), (">=", 1.2), "ours vs BeitForMaskedImageModeling"),
    "beit_step_images_per_s": ("beit", ("images_per_second", "ours"), None, "BEiT step (ViT-Tiny/112 on CPU)"),
    "beit_peak_memory_mb": ("beit", ("peak_memory_mb", "ours"), None, "BEiT step peak memory"),
    "extrema_80x5_vs_beit_step": ("extrema", ("extrema_80x5_vs_beit_step",), (">=", 1.0),
                                  "BEiT step / ExtreMA 80%x5 step, same backbone"),
    "extrema_step_images_per_s": ("extrema", ("images_per_second", "extrema_80x5"), None, "ExtreMA 80%x5 step"),
    "extrema_peak_memory_mb": ("extrema", ("peak_memory_mb", "extrema_80x5"), None, "ExtreMA 80%x5 peak memory"),
    "extrema_step_seconds_by_mask_ratio": ("extrema", ("step_seconds_by_mask_ratio",), None,
                                           "ExtreMA step seconds, 4 masks"),
    "moby_step_images_per_s": ("moby", ("tiny_swin_32px", "concatenated", "images_per_second"), None,
                               "MoBY step (tiny Swin, 32 px)"),
    "moby_peak_memory_mb": ("moby", ("tiny_swin_32px", "concatenated", "first_step_peak_memory_mb"), None,
                            "MoBY first step peak memory"),
    "moby_swint_step_images_per_s": ("moby", ("swin_t_224px", "concatenated", "images_per_second"), None,
                                     "MoBY step (Swin-T, 224 px)"),
    "beit_step_seconds_by_image_size": ("scaling", ("step_seconds_by_image_size",), None,
                                        "BEiT step seconds at 112/224/448 px"),
    "mfu_beit_vitb_bf16": ("mfu", ("mfu_beit_vitb_bf16",), (">=", 0.45), "GPU only: model FLOP/s / bf16 matmul peak"),
    "mfu_extrema_vitb_bf16": ("mfu", ("mfu_extrema_vitb_bf16",), None, "GPU only"),
    "mfu_moby_swint_bf16": ("mfu", ("mfu_moby_swint_bf16",), None, "GPU only"),
    "startup_ratio_streaming": ("startup", ("first_step_seconds", "startup_ratio_50k_over_2k", "streaming"),
                                ("<=", 1.5), "time to first step, 50k / 2k CIFAR-10 images, --streaming true"),
    "startup_ratio_map_first_run": ("startup", ("first_step_seconds", "startup_ratio_50k_over_2k", "map_first_run"),
                                    None, "the same, map-style, fresh cache (every image checked)"),
    "stream_vs_map_data_images": ("startup", ("data_images_per_s", "streaming_vs_map_style"), None,
                                  "stream / map-style loader, images per CPU-second"),
    "sigterm_exit_seconds": ("startup", ("preemption", "sigterm", "exit_seconds"), ("<=", 60),
                             "pretrain sent SIGTERM: seconds to exit, checkpoint complete"),
    "mfu_beit_vitb_bf16_compiled": ("mfu", ("mfu_beit_vitb_bf16_compiled",), None, "GPU only, torch.compile"),
    "mfu_extrema_vitb_bf16_compiled": ("mfu", ("mfu_extrema_vitb_bf16_compiled",), None, "GPU only, torch.compile"),
    "mfu_moby_swint_bf16_compiled": ("mfu", ("mfu_moby_swint_bf16_compiled",), None, "GPU only, torch.compile"),
    "beit_loader_images_per_s": ("pipeline", ("beit_loader_images_per_s",), None,
                                 "BEiT 224 px views from JPEG photos, all workers"),
    "beit_tensor_images_per_s": ("pipeline", ("beit_tensor_images_per_s",), None,
                                 "BEiT 32 px views of images held on the device"),
}  # fmt: skip


def _lookup(results: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def headlines(details: dict[str, dict]) -> dict:
    """The headline keys out of the modules' results (None where a module did not run or has no such value)."""
    return {key: _lookup(details.get(module, {}), path) for key, (module, path, _, _) in HEADLINES.items()}


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return " ".join(f"{name}:{_format(number)}" for name, number in value.items())
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def table(results: dict) -> str:
    """A plain-text table: key, value, goal, whether the goal is met."""
    rows = [("key", "value", "goal", "met", "what")]
    for key, (_, _, goal, what) in HEADLINES.items():
        value = results.get(key)
        met = "-"
        if goal is not None and isinstance(value, (int, float)):
            met = "yes" if (value >= goal[1] if goal[0] == ">=" else value <= goal[1]) else "NO"
        rows.append((key, _format(value), "" if goal is None else f"{goal[0]} {goal[1]:g}", met, what))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def run_suite(modules: dict[str, Callable[[bool], dict]], quick: bool = False) -> dict:
    """Run each module's ``run(quick)`` in turn; returns ``{"device", "torch", "quick", "results", "details"}``."""
    details, seconds = {}, {}
    for name, run in modules.items():
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        details[name] = run(quick)
        seconds[name] = round(time.perf_counter() - start, 1)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return {
        "device": device_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": quick,
        "results": headlines(details),
        "details": details,
        "seconds": seconds,
    }


def suite_path(quick: bool) -> str:
    return os.path.join(RESULTS_DIR, f"{device_slug()}{'-quick' if quick else ''}.json")


def merge_into_previous(payload: dict) -> dict:
    """``payload`` (some modules) over the device's previous results file (same torch and threads), if any."""
    path = suite_path(payload["quick"])
    if not os.path.exists(path):
        return payload
    with open(path, encoding="utf-8") as handle:
        previous = json.load(handle)
    if (previous.get("torch"), previous.get("threads")) != (payload["torch"], payload["threads"]):
        return payload
    details = {**previous.get("details", {}), **payload["details"]}
    seconds = {**previous.get("seconds", {}), **payload["seconds"]}
    return {**payload, "results": headlines(details), "details": details, "seconds": seconds}


def write_suite(payload: dict) -> str:
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = suite_path(payload["quick"])
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller batches")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run only these modules")
    args = parser.parse_args(argv)
    names = args.only or MODULES
    modules = {name: importlib.import_module(f"benchmarks.{name}").run for name in names}
    payload = run_suite(modules, quick=args.quick)
    if args.only:  # the other modules' latest numbers stay in the device's file
        payload = merge_into_previous(payload)
    path = write_suite(payload)
    print(f"device: {payload['device']}   torch {payload['torch']}   quick: {payload['quick']}")
    print(table(payload["results"]))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
