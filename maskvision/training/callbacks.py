"""The path `maskvision.training.callbacks` had before `training/` was grouped: it is `maskvision.training.loop.callbacks`."""

import sys

from .loop import callbacks

sys.modules[__name__] = callbacks
