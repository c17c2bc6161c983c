"""`python -m bench.containers`: see bench.containers.cli."""

import sys

from bench.containers.cli import main

sys.exit(main())
