"""How fast the command line starts: ``maskvision --help`` against ``python -c "import transformers"`` (goal: at most
1.5x) and ``maskvision pretrain beit --help`` against ``python -c "from transformers import TrainingArguments"``
(goal: at most 1.3x), with ``import torch`` and ``import maskvision`` beside them.

Each is a fresh Python process, the candidates' repeats interleaved (A B C A B C ...); the median wall seconds and
the median CPU seconds of the child processes (user + system: on a shared machine, other processes inflate wall time
but not these) are reported, and the ratios of both. ``import_maskvision_top`` lists the modules that cost most in
``python -X importtime -c "import maskvision"`` (cumulative microseconds).

    python benchmarks/cli_startup.py [--quick] [--root CHECKOUT] [--name cli_startup]

``--root`` measures the maskvision of another checkout (e.g. an older commit extracted with ``git archive``) with this
checkout's Python; ``--name`` names the results file (``benchmarks/results/<name>-<device>.json``).
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import write_results  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANDIDATES = {
    "import_torch": ["-c", "import torch"],
    "import_transformers": ["-c", "import transformers"],
    "import_training_arguments": ["-c", "from transformers import TrainingArguments"],
    "import_maskvision": ["-c", "import maskvision"],
    "maskvision_help": ["-m", "maskvision", "--help"],
    "pretrain_beit_help": ["-m", "maskvision", "pretrain", "beit", "--help"],
}
RATIOS = {  # name → (candidate, reference, goal)
    "help_over_import_transformers": ("maskvision_help", "import_transformers", 1.5),
    "pretrain_beit_help_over_training_arguments": ("pretrain_beit_help", "import_training_arguments", 1.3),
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _environment(root: str) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": root}


def measure(root: str, repeats: int) -> dict:
    import time

    environment = _environment(root)
    wall: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    cpu: dict[str, list[float]] = {name: [] for name in CANDIDATES}
    for repeat in range(repeats + 1):  # the first round warms the file cache and is not counted
        for name, arguments in CANDIDATES.items():
            start, cpu_start = time.perf_counter(), _children_cpu()
            subprocess.run(
                [sys.executable, *arguments],
                env=environment,
                cwd=root,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if repeat:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(_children_cpu() - cpu_start)
    results = {
        "wall_s": {name: round(statistics.median(values), 3) for name, values in wall.items()},
        "cpu_s": {name: round(statistics.median(values), 3) for name, values in cpu.items()},
    }
    for ratio, (candidate, reference, goal) in RATIOS.items():
        results[ratio] = {
            clock: round(results[clock][candidate] / results[clock][reference], 2) for clock in ("wall_s", "cpu_s")
        } | {"goal": goal}
    return results


def import_costs(root: str, top: int = 12) -> list[str]:
    """The ``top`` modules with the largest cumulative import time under ``import maskvision``."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", "import maskvision"], env=_environment(root),
                            cwd=root, capture_output=True, text=True, check=True)  # fmt: skip
    rows = []
    for line in result.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].strip()))
    return [f"{name}: {microseconds} us" for microseconds, name in sorted(rows, reverse=True)[:top]]


def run(quick: bool = False, root: str = ROOT) -> dict:
    commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    results = {"root": root, "commit": commit.stdout.strip() or None, "repeats": 2 if quick else 5}
    results.update(measure(root, results["repeats"]))
    results["import_maskvision_top"] = import_costs(root)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    parser.add_argument("--root", default=ROOT, help="the checkout whose maskvision is measured")
    parser.add_argument("--name", default="cli_startup", help="results file name")
    args = parser.parse_args()
    write_results(args.name, run(args.quick, os.path.abspath(args.root)))
