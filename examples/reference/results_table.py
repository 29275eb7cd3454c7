"""The README's results table from a reference run: ``python examples/reference/results_table.py runs/cifar10``.

Reads ``<run>/<method>/encoder/eval_results.json`` (k-NN, linear probe) and
``<run>/<method>/finetuned/eval_results.json`` (fine-tuning) and prints top-1 accuracy in percent as Markdown.
"""

import json
import os
import sys

METHODS = ("random-init", "beit", "beit-pixels", "extrema", "moby")


def best_top1(path: str, protocol: str) -> str:
    if not os.path.isfile(path):
        return "—"
    with open(path, encoding="utf-8") as handle:
        records = json.load(handle)["results"]
    values = [
        r["value"]
        for r in records
        if r["protocol"] == protocol and r["metric"] == "top1_accuracy"
    ]
    if protocol == "knn":  # k = 20, the first setting the README reports
        values = [r["value"] for r in records if r["protocol"] == "knn" and r["metric"] == "top1_accuracy"
                  and r["settings"].get("k") == 20] or values  # fmt: skip
    return f"{100 * max(values):.1f}" if values else "—"


def main(run: str) -> None:
    print("| encoder | k-NN top-1 (k=20) | linear top-1 | fine-tune top-1 |")
    print("|---|---|---|---|")
    for method in METHODS:
        encoder, finetuned = (
            os.path.join(run, method, name, "eval_results.json")
            for name in ("encoder", "finetuned")
        )
        print(f"| {method} | {best_top1(encoder, 'knn')} | {best_top1(encoder, 'linear')} | "
              f"{best_top1(finetuned, 'finetune')} |")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1])
