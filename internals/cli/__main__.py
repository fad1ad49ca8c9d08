"""`python -m internals.cli` runs the command line (used by tests and when no console script exists)."""

from internals.cli.main import main, run_and_exit

run_and_exit(main)
