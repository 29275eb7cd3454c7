"""`maskvision.training.masking`, the path from before `training/` was grouped: the module
`maskvision.training.inputs.masking` itself."""

import sys

from .inputs import masking

sys.modules[__name__] = masking
