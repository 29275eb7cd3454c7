"""The path `maskvision.training.masking` had before `training/` was grouped: it is `maskvision.training.inputs.masking`."""

import sys

from .inputs import masking

sys.modules[__name__] = masking
