"""The path `maskvision.training.collators` had before `training/` was grouped: it is `maskvision.training.inputs.collators`."""

import sys

from .inputs import collators

sys.modules[__name__] = collators
