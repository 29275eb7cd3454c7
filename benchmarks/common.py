"""What every benchmark shares: the device's name, side-by-side timing, peak memory, and the results file.

Each benchmark module exposes ``run(quick: bool = False) -> dict`` and, run as a script, prints its results as
JSON and writes them to ``benchmarks/results/<benchmark>-<device>.json``. Ratios are measured side by side in
one process: the candidates' repeats are interleaved, so drift of the machine hits all of them alike.
"""

import ctypes
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable

import torch

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu-{torch.get_num_threads()}threads-{cpu}"


def device_slug() -> str:
    return re.sub(r"[^a-z0-9]+", "-", device_name().lower()).strip("-")[:80]


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_side_by_side(
    candidates: dict[str, Callable[[], object]],
    repeats: int = 10,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict:
    """Median seconds per call of each candidate, repeats interleaved (A B A B ...).

    ``clock=time.process_time`` measures the process's CPU seconds instead of wall-clock ones: on a shared CPU
    machine, other processes then inflate neither candidate."""
    for function in candidates.values():
        for _ in range(warmup):
            function()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, function in candidates.items():
            synchronize()
            start = clock()
            function()
            synchronize()
            samples[name].append(clock() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith(field))


def _release_free_heap() -> None:
    # Memory freed by earlier calls stays in glibc's heap (and in the resident set) and is reused without raising
    # the high-water mark: give it back to the OS first, or a warmed-up function measures ~0 MB.
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory_mb(function: Callable[[], object]) -> float:
    """Peak memory one call adds: the CUDA allocator's peak on a GPU; on CPU (Linux) the resident-set
    high-water mark, reset before the call through /proc/self/clear_refs (after returning freed heap memory to the
    OS), minus the resident set before it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        function()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    _release_free_heap()
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
        handle.write("5")  # resets VmHWM to the current VmRSS
    base = _proc_status_mb("VmRSS")
    function()
    return _proc_status_mb("VmHWM") - base


def write_results(benchmark: str, results: dict) -> str:
    """Print ``{"device": ..., "benchmark": ..., "results": ...}`` as JSON and write it under results/."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    payload = {"device": device_name(), "benchmark": benchmark, "torch": torch.__version__, "results": results}
    path = os.path.join(RESULTS_DIR, f"{benchmark}-{device_slug()}.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
    print(json.dumps(payload, indent=2))
    return path
