import sys

from .training.cli import entry_point

sys.exit(entry_point())
