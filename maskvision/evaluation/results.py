"""Evaluation results as JSON records that model cards are built from.

Every protocol (``knn``, ``linear``, ``finetune``) writes the same record: what was measured (protocol, metric,
value as a fraction in [0, 1]), on what (dataset, split, the training data used by the protocol), with which
settings (pooling, layer, k, learning rate, ...), on which model, and the command that reproduces it. A model
directory's ``eval_results.json`` accumulates them: a new record replaces the one with the same protocol,
metric, data and settings.
"""

import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field

from ..run_files import EVAL_RESULTS

RESULTS_FILE = EVAL_RESULTS
PROTOCOLS = ("knn", "linear", "finetune")


@dataclass
class EvalResult:
    protocol: str  # knn | linear | finetune
    metric: str  # top1_accuracy | top5_accuracy
    value: float  # fraction in [0, 1]
    dataset: str  # the evaluated dataset's source (a path, "demo" or a Hub id)
    split: str
    train_dataset: str  # the data the protocol trains on / retrieves from
    train_split: str
    model: str
    settings: dict = field(default_factory=dict)
    command: str = ""
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}.")
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"value must be a fraction in [0, 1], got {self.value}.")

    def identity(self) -> str:
        keys = ("protocol", "metric", "dataset", "split", "train_dataset", "train_split", "settings")
        return json.dumps({key: getattr(self, key) for key in keys}, sort_keys=True)


def result_records(
    protocol: str, metrics: dict, settings: dict, *, data_args, data, model: str, command: str = ""
) -> list[EvalResult]:
    """The records of one measurement, one per metric (``None`` values left out), every protocol alike: the data
    named as the run read it (``data_args``: `LabelledDataArguments`, ``data``: the `LabelledData` it loaded, whose
    splits say what was held out)."""
    record = dict(
        protocol=protocol,
        dataset=data_args.eval_source,
        split=data.eval_split,
        train_dataset=data_args.dataset,
        train_split=data.train_split,
        model=model,
        settings=settings,
        command=command,
    )
    return [
        EvalResult(metric=metric, value=float(value), **record)
        for metric, value in metrics.items()
        if value is not None
    ]


def command_line(prog: str, argv: list[str]) -> str:
    """The shell command that reproduces a run: ``maskvision <command> <argv...>``, quoted."""
    return " ".join(shlex.quote(part) for part in [*prog.split(), *argv])


def read_results(path: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get("results", [])


def write_results(path: str, results: list[EvalResult]) -> str:
    """Merge ``results`` into the JSON file at ``path`` (a file, or a directory that gets ``eval_results.json``)."""
    if os.path.isdir(path) or not path.endswith(".json"):
        path = os.path.join(path, RESULTS_FILE)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    records = {EvalResult(**record).identity(): record for record in read_results(path)}
    for result in results:
        records[result.identity()] = asdict(result)
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump({"results": list(records.values())}, handle, indent=2)
    os.replace(partial, path)
    return path


def side_by_side(records: list[dict], row_of) -> list[dict]:
    """One row per measurement: ``row_of(record)`` names the row a record belongs to (the same dict for the records
    of one setting), and each record adds its metric's value to it, so top-1 and top-5 stand side by side. The rows
    of the CLI's table (`results_table`) and of the model card's."""
    rows: dict[str, dict] = {}
    for record in records:
        row = row_of(record)
        rows.setdefault(json.dumps(row, sort_keys=True, default=str), row)[record["metric"]] = record["value"]
    return list(rows.values())


def results_table(results: list[EvalResult]) -> tuple[list[dict], list[str]]:
    """The rows and columns ``maskvision eval`` prints: one row per setting (the sample counts left out), top-1 and
    top-5 side by side."""

    def row_of(record: dict) -> dict:
        settings = {key: value for key, value in record["settings"].items() if not key.endswith("_samples")}
        return {"protocol": record["protocol"], **settings}

    rows = side_by_side([asdict(result) for result in results], row_of)
    columns = list(dict.fromkeys(key for row in rows for key in row if not key.endswith("_accuracy")))
    return rows, columns + ["top1_accuracy", "top5_accuracy"]


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table; floats in [0, 1] under accuracy columns are shown as percentages."""

    def cell(column, value):
        if value is None:
            return ""
        if isinstance(value, float) and "accuracy" in column:
            return f"{100 * value:.2f}"
        return str(value)

    header = [column.replace("_accuracy", " (%)") for column in columns]
    body = [[cell(column, row.get(column)) for column in columns] for row in rows]
    widths = [max(len(line[index]) for line in [header, *body]) for index in range(len(columns))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def print_table(rows: list[dict], columns: list[str]) -> None:
    print(format_table(rows, columns), file=sys.stdout, flush=True)
