"""`maskvision.training.callbacks`, the path from before `training/` was grouped: the module
`maskvision.training.loop.callbacks` itself."""

import sys

from .loop import callbacks

sys.modules[__name__] = callbacks
