"""``python -m reprsim``: the same command line as the ``reprsim`` script."""

import sys

from reprsim.cli import main

sys.exit(main())
