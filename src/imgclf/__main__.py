"""`python -m imgclf` is the `imgclf` command."""

import sys

from .cli import main

sys.exit(main())
