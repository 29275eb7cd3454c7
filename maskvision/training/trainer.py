"""The path `maskvision.training.trainer` had before `training/` was grouped: it is `maskvision.training.loop.trainer`."""

import sys

from .loop import trainer

sys.modules[__name__] = trainer
