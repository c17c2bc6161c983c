"""`python -m bench.broker`: see bench/broker/cli.py."""

import sys

from bench.broker.cli import main

sys.exit(main())
