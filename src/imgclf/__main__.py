"""`python -m imgclf` is the `imgclf` command."""

import sys

from .cli import entry

sys.exit(entry())
