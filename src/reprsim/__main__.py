import sys

from reprsim.cli import main

sys.exit(main())
