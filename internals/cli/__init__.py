"""The `llm-internals` command line. See `llm-internals --help`.

Each subcommand's `--json` output is a contract (docs/contracts.md): scripts and tests depend on it.
Bad input exits with status 2 and one `error:` line; nothing the user has is written or deleted.
"""

from internals.cli.main import main

__all__ = ["main"]
