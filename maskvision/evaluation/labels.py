"""The labels the supervised protocols (k-NN, linear probe, fine-tuning) need: one check that they are there, and
the class names a training and an evaluation dataset share."""

import datasets

from ..data.streaming import ImageStream


def missing_labels(protocol: str, role: str = "") -> ValueError:
    """The error for images without labels given to ``protocol``; ``role`` names the side (training, evaluation)."""
    dataset = f"the {role} dataset" if role else "this dataset"
    return ValueError(
        f"The {protocol} protocol needs labels, and {dataset} has no label column: use labelled images (an image "
        "folder with one sub-folder per class, or a dataset with a ClassLabel column)."
    )


def class_names(train, evaluation, protocol: str) -> list[str] | None:
    """The class names shared by a training and an evaluation dataset (ClassLabel names, else the label ids);
    raises when either has no ``label`` column or when they name their classes differently. None for a stream with
    integer labels: its classes are known once it is read."""
    names = []
    for dataset, role in ((train, "training"), (evaluation, "evaluation")):
        if "label" not in dataset.column_names:
            raise missing_labels(protocol, role)
        feature = dataset.features["label"]
        if isinstance(feature, datasets.ClassLabel):
            names.append(list(feature.names))
        elif isinstance(dataset, ImageStream):
            return None
        else:
            names.append([str(index) for index in range(max(dataset["label"]) + 1)])
    if names[0] != names[1]:
        if all(name.isdigit() for name in names[0] + names[1]):  # integer labels: the union of the ids
            return max(names, key=len)
        raise ValueError(
            f"The training and evaluation datasets name their classes differently: {names[0]} vs {names[1]}."
        )
    return names[0]
