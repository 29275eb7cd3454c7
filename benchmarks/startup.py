"""Data at scale: how long a run takes to its first optimizer step on 2,000 and on 50,000 CIFAR-10 images, map-style
and streaming; how fast the data pipeline feeds a run, streaming vs map-style; and what a preempted run does.

- ``first_step_seconds``: wall seconds from starting ``python -m maskvision pretrain moby`` (a tiny model, batch 64,
  one data-loader worker) until its first optimizer step is logged, per data size and mode: ``map_first_run`` (a
  fresh datasets cache: the parquet file is prepared and every image checked, in parallel), ``map_cached`` (the same
  again: both read back from the cache) and ``streaming`` (``--streaming true``). ``startup_ratio_50k_over_2k`` is
  each mode's 50k time over its 2k time (goal with streaming: <= 1.5). The processes' CPU seconds are given beside.
- ``data_images_per_s``: MoBY's collator (two 32 px views) fed by a map-style dataset (random sampler) and by the
  stream (shuffle window 1000), in this process, side by side; process CPU seconds (other processes on a shared
  machine slow neither), so images per CPU-second.
- ``preemption``: a ``maskvision pretrain beit --target pixels --streaming true`` run of the reference backbone
  (ViT-Tiny, 32 px, patch 4, batch 64) is sent SIGTERM after its first logged step: the seconds until it exits
  (goal <= 60), its status, whether its checkpoint is complete; then ``--resume_from_checkpoint last`` is started,
  sent SIGTERM after its first logged step too, and its checkpoint must be further on.

    python benchmarks/startup.py [--quick] [--data PATH_TO/cifar10/train.parquet]
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import time_side_by_side, write_results  # noqa: E402
from maskvision.data import load_image_dataset, random_subset  # noqa: E402
from maskvision.training.inputs.collators import IndexedRows, TwoViewCollator  # noqa: E402
from maskvision.training.loop.checkpoints import incomplete_reason, last_complete_checkpoint  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# CIFAR-10's training set beside the repository (the main checkout's ../shared, or a worktree's ../../shared).
CANDIDATES = [os.path.join(ROOT, *[".."] * up, "shared", "data", "cifar10", "train.parquet") for up in (1, 2)]
DEFAULT_DATA = next((path for path in CANDIDATES if os.path.isfile(path)), CANDIDATES[0])
SIZES = (2_000, 50_000)
TINY_MOBY = ["pretrain", "moby", "--image_size", "32", "--patch_size", "4", "--window_size", "4", "--embed_dim", "16",
             "--depths", "1", "1", "--num_heads", "1", "2", "--projector_hidden_size", "32", "--predictor_hidden_size",
             "32", "--projection_dim", "16", "--queue_size", "128", "--per_device_train_batch_size", "64",
             "--max_steps", "1", "--logging_steps", "1", "--save_strategy", "no", "--dataloader_num_workers", "1",
             "--report_to", "none", "--disable_tqdm", "true"]  # fmt: skip
VIT_TINY_BEIT = ["pretrain", "beit", "--target", "pixels", "--image_size", "32", "--patch_size", "4", "--hidden_size",
                 "192", "--num_hidden_layers", "12", "--num_attention_heads", "3", "--per_device_train_batch_size",
                 "64", "--max_steps", "1000", "--save_steps", "500", "--logging_steps", "1", "--report_to", "none",
                 "--disable_tqdm", "true", "--min_crop_scale", "0.35"]  # fmt: skip


class Run:
    """``python -m maskvision ARGV`` in a session of its own, its output read line by line."""

    def __init__(self, argv: list[str], env: dict | None = None):
        self.start = time.perf_counter()
        self.cpu_start = _children_cpu()
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {}),
                       "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "maskvision", *argv],
            env=environment,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output: list[str] = []

    def wait_for(self, text: str, timeout: float = 1800) -> float:
        """Seconds from the start until a line holding ``text`` (raises if the process ends first)."""
        deadline = time.perf_counter() + timeout
        for line in self.process.stdout:
            self.output.append(line)
            if text in line:
                return time.perf_counter() - self.start
            if time.perf_counter() > deadline:
                break
        raise RuntimeError(f"{text!r} never appeared:\n{''.join(self.output[-40:])}")

    def finish(self, timeout: float = 600) -> tuple[int, float]:
        """(status, seconds until it ended)."""
        started = time.perf_counter()
        rest, _ = self.process.communicate(timeout=timeout)
        self.output.append(rest)
        return self.process.returncode, time.perf_counter() - started

    def kill(self) -> float:
        """Kill the whole session; the CPU seconds the process used."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.communicate()
        return _children_cpu() - self.cpu_start


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def first_step(data: str, streaming: bool, cache_dir: str, output_dir: str) -> dict:
    argv = [*TINY_MOBY, "--dataset", data, "--streaming", str(streaming).lower(), "--output_dir", output_dir]
    run = Run(argv, env={"HF_DATASETS_CACHE": cache_dir})
    seconds = run.wait_for("'loss'")
    return {"seconds": round(seconds, 2), "cpu_seconds": round(run.kill(), 2)}


def first_step_seconds(sources: dict[int, str], repeats: int, workdir: str) -> dict:
    results = {size: {mode: [] for mode in ("map_first_run", "map_cached", "streaming")} for size in sources}
    for repeat in range(repeats):  # sizes and modes interleaved: the machine's drift hits all alike
        for size, data in sources.items():
            cache = os.path.join(workdir, f"cache-{size}-{repeat}")
            output = os.path.join(workdir, "runs")
            results[size]["map_first_run"].append(first_step(data, False, cache, output))
            results[size]["map_cached"].append(first_step(data, False, cache, output))
            results[size]["streaming"].append(first_step(data, True, cache, output))
    median = {
        size: {mode: sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2] for mode, runs in modes.items()}
        for size, modes in results.items()
    }
    small, large = SIZES
    ratios = {mode: round(median[large][mode]["seconds"] / median[small][mode]["seconds"], 3) for mode in median[large]}
    return {
        "by_images": {str(size): modes for size, modes in median.items()},
        "startup_ratio_50k_over_2k": ratios,
        "repeats": repeats,
    }


def data_images_per_second(data: str, cache_dir: str, batches: int, repeats: int) -> dict:
    collator = TwoViewCollator(image_size=32, image_mean=(0.5,) * 3, image_std=(0.5,) * 3, min_crop_scale=0.35)
    prepared = IndexedRows(load_image_dataset(data, cache_dir=cache_dir))
    sampler = torch.utils.data.RandomSampler(prepared, generator=torch.Generator().manual_seed(0))
    map_style = iter(torch.utils.data.DataLoader(prepared, batch_size=64, sampler=sampler, collate_fn=collator))
    stream = load_image_dataset(data, streaming=True).for_training(seed=0, shuffle_buffer=1000)
    streamed = iter(stream.data_loader(collator, batch_size=64))

    def pull(iterator):
        return lambda: [next(iterator) for _ in range(batches)]

    seconds = time_side_by_side(
        {"map_style": pull(map_style), "streaming": pull(streamed)}, repeats=repeats, warmup=1, clock=time.process_time
    )
    images_per_s = {name: round(batches * 64 / value, 1) for name, value in seconds.items()}
    return {
        "images_per_cpu_second": images_per_s,
        "streaming_vs_map_style": round(images_per_s["streaming"] / images_per_s["map_style"], 3),
    }


def _sigterm_after_first_step(argv: list[str]) -> dict:
    run = Run(argv)
    run.wait_for("'loss'")
    run.process.send_signal(signal.SIGTERM)
    status, seconds = run.finish()
    output = "".join(run.output)
    stopped = next((line for line in output.splitlines() if line.startswith("Stopped by")), None)
    return {"exit_seconds": round(seconds, 2), "status": status, "message": stopped, "cpu_seconds":
            round(_children_cpu() - run.cpu_start, 2)}  # fmt: skip


def preemption(data: str, workdir: str) -> dict:
    output = os.path.join(workdir, "preempted")
    argv = [*VIT_TINY_BEIT, "--dataset", data, "--streaming", "true", "--output_dir", output]
    first = _sigterm_after_first_step(argv)
    checkpoint = last_complete_checkpoint(output)
    first["checkpoint"] = os.path.basename(checkpoint) if checkpoint else None
    first["checkpoint_complete"] = checkpoint is not None and incomplete_reason(checkpoint) is None
    resumed = _sigterm_after_first_step([*argv, "--resume_from_checkpoint", "last"])
    later = last_complete_checkpoint(output)
    resumed["checkpoint"] = os.path.basename(later) if later else None
    with open(os.path.join(later, "trainer_state.json"), encoding="utf-8") as handle:
        steps = [entry["step"] for entry in json.load(handle)["log_history"] if "loss" in entry]
    resumed["logged_steps"] = steps
    first_step_number = int(first["checkpoint"].rsplit("-", 1)[1])
    return {
        "sigterm": first,
        "resumed_then_sigterm": resumed,
        "exits_within_60_s": first["exit_seconds"] <= 60 and resumed["exit_seconds"] <= 60,
        "resume_continues": first["checkpoint_complete"] and min(steps) == 1 and max(steps) > first_step_number,
    }


def run(quick: bool = False, data: str = DEFAULT_DATA) -> dict:
    data = os.path.abspath(data)
    with tempfile.TemporaryDirectory() as workdir:
        small = os.path.join(workdir, "train-2000.parquet")
        random_subset(
            load_image_dataset(data, cache_dir=os.path.join(workdir, "subset-cache")), SIZES[0], seed=0
        ).to_parquet(small)
        sources = {SIZES[0]: small, SIZES[1]: data}
        results = {
            "data": data,
            "load_average_at_start": os.getloadavg(),
            "first_step_seconds": first_step_seconds(sources, repeats=1 if quick else 2, workdir=workdir),
            "data_images_per_s": data_images_per_second(
                data, os.path.join(workdir, "subset-cache"), batches=5 if quick else 20, repeats=2 if quick else 5
            ),
            "preemption": preemption(data, workdir),
            "load_average_at_end": os.getloadavg(),
        }
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat, fewer batches")
    parser.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10's train.parquet (50,000 images)")
    args = parser.parse_args(argv)
    write_results("startup", run(quick=args.quick, data=args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
