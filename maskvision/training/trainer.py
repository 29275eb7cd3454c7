"""`maskvision.training.trainer`, the path from before `training/` was grouped: the module
`maskvision.training.loop.trainer` itself."""

import sys

from .loop import trainer

sys.modules[__name__] = trainer
