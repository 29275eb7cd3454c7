"""Where the model cards were first imported from: they live in `maskvision.cards` (gathering, describing,
rendering, and the methods' descriptions beside their models)."""

from .cards import *  # noqa: F403
from .cards import __all__  # noqa: F401
