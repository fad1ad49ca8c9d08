"""Errors that a user can act on.

Every failure caused by input (a path, a model id, a prompt) is raised as a `UserError`; the command line
prints it as one `error: ...` line and exits with status 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the message says what was wrong and what to do about it (one line)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message.strip().splitlines()[0] if message.strip() else "unknown error")


class ModelSourceError(UserError):
    """MODEL could not be resolved or read (missing path, not cached, corrupt safetensors...)."""


class WeightsRequiredError(UserError):
    """The operation needs tensor values but the source has none (a bare config.json)."""
