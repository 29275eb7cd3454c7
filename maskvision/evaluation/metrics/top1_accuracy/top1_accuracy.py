"""Top-1 accuracy: the fraction of examples whose predicted class is the reference class."""

import datasets
import evaluate

_DESCRIPTION = """
Top-1 accuracy, the share of examples whose predicted class id equals the reference class id, in [0, 1].
Shipped inside maskvision and loaded by path, so it works offline:
`evaluate.load(maskvision.evaluation.metrics.metric_path("top1_accuracy"))`.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids (for example `logits.argmax(-1)`).
    references (`list` of `int`): true class ids.
Returns:
    top1_accuracy (`float`): fraction of correct predictions, in [0, 1].
Examples:
    >>> metric = evaluate.load(metric_path("top1_accuracy"))
    >>> metric.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    {'top1_accuracy': 0.75}
"""

_CITATION = ""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Top1Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        if len(predictions) == 0:
            raise ValueError("top1_accuracy needs at least one prediction.")
        correct = sum(int(prediction == reference) for prediction, reference in zip(predictions, references))
        return {"top1_accuracy": correct / len(references)}
