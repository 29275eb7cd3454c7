"""Where `LabelledDataArguments` was first imported from: it lives in `maskvision.data.labelled` (the data layer,
so that the evaluation flow uses it without importing training)."""

import sys

from ..data import labelled

sys.modules[__name__] = labelled
