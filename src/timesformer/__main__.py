"""`python -m timesformer ...`: the `timesformer` command."""

import sys

from .cli import main

sys.exit(main())
