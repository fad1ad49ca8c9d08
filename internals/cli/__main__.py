"""`python -m internals.cli` runs the command line (used by tests and when no console script exists)."""

import sys

from internals.cli.main import main

sys.exit(main())
