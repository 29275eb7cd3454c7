"""`maskvision.training.transforms`, the path from before `training/` was grouped: the module
`maskvision.training.inputs.transforms` itself."""

import sys

from .inputs import transforms

sys.modules[__name__] = transforms
