"""`maskvision demo --output-dir DIR`: the whole pipeline on the embedded demo data, on CPU in minutes.

Each stage is a function ``stage(context) -> dict`` in the module that owns it, listed in `STAGES` in pipeline
order. A stage runs the same code a user's command runs (with demo-sized settings), writes under
``context.output_dir`` and returns results that end up in ``DIR/results.json``.
"""

import argparse
import importlib
import json
import os
import time
from dataclasses import dataclass, field

# (name, "module:function") in pipeline order.
STAGES: list[tuple[str, str]] = [
    ("preview", "maskvision.training.preview:demo_stage"),
    ("beit", "maskvision.training.recipes.beit:demo_stage"),  # after "tokenizer": loads its output
    ("extrema", "maskvision.training.recipes.extrema:demo_stage"),
    ("moby", "maskvision.training.recipes.moby:demo_stage"),  # after "extrema"
    ("evaluate", "maskvision.training.cli.evaluate:demo_stage"),  # keep last: k-NN of every exported encoder
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="maskvision demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", default="demo_output")
    parser.add_argument("--stages", nargs="+", choices=[name for name, _ in STAGES], help="Run only these stages.")
    parser.add_argument("--quick", action="store_true", help="A few steps per stage: checks the wiring only.")
    args = parser.parse_args(argv)

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
    """A plain-text table: one row per stage, one column per reported value."""
    columns = sorted({key for values in results.values() for key in values if key != "seconds"}) + ["seconds"]
    rows = [["stage", *columns]]
    for name, values in results.items():
        rows.append([name, *(str(values.get(column, "")) for column in columns)])
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows]
    return "\n" + "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])
