"""Top-5 accuracy: the fraction of examples whose reference class is among the five best-ranked classes."""

import datasets
import evaluate

_DESCRIPTION = """
Top-5 accuracy, the share of examples whose reference class id is among their five highest-scoring predicted
class ids, in [0, 1]. Predictions are ranked class ids (for example `logits.topk(5).indices`), which keeps the
inputs small for any number of classes. Shipped inside maskvision and loaded by path, so it works offline:
`evaluate.load(maskvision.evaluation.metrics.metric_path("top5_accuracy"))`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `int`): for each example, at least 5 class ids, best first; only the first
        5 count.
    references (`list` of `int`): true class ids.
Returns:
    top5_accuracy (`float`): fraction of examples whose true class is among their first 5 ranked ids, in [0, 1].
Examples:
    >>> metric = evaluate.load(metric_path("top5_accuracy"))
    >>> metric.compute(predictions=[[3, 1, 4, 0, 5], [9, 2, 6, 5, 3]], references=[0, 7])
    {'top5_accuracy': 0.5}
"""

_CITATION = ""

TOP_K = 5


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Top5Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Sequence(datasets.Value("int64")), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        if len(predictions) == 0:
            raise ValueError("top5_accuracy needs at least one prediction.")
        short = [index for index, ranked in enumerate(predictions) if len(ranked) < TOP_K]
        if short:
            raise ValueError(
                f"top5_accuracy needs at least {TOP_K} ranked class ids per example; example {short[0]} has "
                f"{len(predictions[short[0]])}."
            )
        hits = sum(int(reference in ranked[:TOP_K]) for ranked, reference in zip(predictions, references))
        return {"top5_accuracy": hits / len(references)}
