"""The path `maskvision.training.transforms` had before `training/` was grouped: it is `maskvision.training.inputs.transforms`."""

import sys

from .inputs import transforms

sys.modules[__name__] = transforms
