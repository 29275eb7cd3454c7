"""`maskvision demo --output-dir DIR`: the whole pipeline on the embedded demo data, on CPU in minutes.

Each stage is a function ``stage(context) -> dict`` in the module that owns it, listed in `STAGES` in pipeline
order. A stage runs the same code a user's command runs (with demo-sized settings), writes under
``context.output_dir`` and returns results that end up in ``DIR/results.json``.
"""

import importlib
import json
import os
import time
from dataclasses import dataclass, field

from .args import parse_arguments

# (name, "module:function") in pipeline order.
STAGES: list[tuple[str, str]] = [
    ("preview", "maskvision.visualization.preview:demo_stage"),
    ("tokenizer", "maskvision.training.runs.tokenizer:demo_stage"),  # after "preview"; the BEiT stage loads its output
    ("beit", "maskvision.training.recipes.beit:demo_stage"),  # after "tokenizer": loads its output
    ("extrema", "maskvision.training.recipes.extrema:demo_stage"),
    ("moby", "maskvision.training.recipes.moby:demo_stage"),  # after "extrema"
    ("evaluate", "maskvision.cli.evaluate:demo_stage"),  # keep last: k-NN of every exported encoder
]


@dataclass
class DemoContext:
    output_dir: str
    dataset: str = "demo"
    seed: int = 0
    quick: bool = False  # the tests' setting: a few steps per stage, to check the wiring
    results: dict = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.output_dir, *parts)


def _load_stage(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


@dataclass
class DemoArguments:
    output_dir: str = field(default="demo_output", metadata={"help": "Folder every stage writes under."})
    stages: list[str] | None = field(
        default=None, metadata={"help": "Run only these stages.", "choices": [name for name, _ in STAGES]}
    )
    quick: bool = field(default=False, metadata={"help": "A few steps per stage: checks the wiring only."})


def main(argv: list[str]) -> int:
    (args,) = parse_arguments((DemoArguments,), argv, prog="maskvision demo", description=__doc__.splitlines()[0])

    context = DemoContext(output_dir=args.output_dir, quick=args.quick)
    os.makedirs(context.output_dir, exist_ok=True)
    for name, target in STAGES:
        if args.stages and name not in args.stages:
            continue
        print(f"\n=== maskvision demo: {name} ===", flush=True)
        start = time.perf_counter()
        context.results[name] = _load_stage(target)(context) or {}
        context.results[name]["seconds"] = round(time.perf_counter() - start, 1)

    with open(context.path("results.json"), "w", encoding="utf-8") as handle:
        json.dump(context.results, handle, indent=2)
    print(format_results(context.results))
    print(f"\nresults: {context.path('results.json')}")
    return 0


def format_results(results: dict) -> str:
    """A plain-text table, one row per stage (its seconds and what it reported), then the k-NN scores by encoder."""
    rows = [["stage", "seconds", "results"]]
    for name, values in results.items():
        reported = ", ".join(f"{key}={value}" for key, value in values.items() if key not in ("seconds", "encoder"))
        rows.append([name, str(values.get("seconds", "")), reported])
    width = [max(len(row[index]) for row in rows) for index in range(2)]
    lines = [f"{row[0].ljust(width[0])}  {row[1].rjust(width[1])}  {row[2]}" for row in rows]
    lines.insert(1, f"{'-' * width[0]}  {'-' * width[1]}  {'-' * 7}")
    knn = {
        key.removeprefix("knn_top1_"): value
        for key, value in results.get("evaluate", {}).items()
        if key.startswith("knn_top1_")
    }
    if knn:
        lines += ["", "k-NN top-1 on the demo test split (k = 20):"]
        lines += [f"  {name.ljust(max(map(len, knn)))}  {100 * value:5.1f}%" for name, value in knn.items()]
    return "\n" + "\n".join(lines)
