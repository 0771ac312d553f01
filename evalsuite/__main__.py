"""``python -m evalsuite``: the same command line as the ``evalsuite`` script."""

import sys

from evalsuite.cli import main

sys.exit(main())
