"""`python -m harness` is `dino-harness`."""

import sys

from .cli import main

sys.exit(main())
