"""Where `LabelledDataArguments` was first imported from: it lives in `maskvision.data.labelled` (the data layer,
so that the evaluation flow uses it without importing training)."""

from ..data.labelled import LabelledData, LabelledDataArguments

__all__ = ["LabelledData", "LabelledDataArguments"]
