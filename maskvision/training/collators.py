"""`maskvision.training.collators`, the path from before `training/` was grouped: the module
`maskvision.training.inputs.collators` itself."""

import sys

from .inputs import collators

sys.modules[__name__] = collators
