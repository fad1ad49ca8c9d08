"""The private folder for worker sockets and logs (0700, owned by this user). Torch-free."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from internals.errors import UserError


def private_runtime_dir() -> Path:
    """A folder only this user can enter: $XDG_RUNTIME_DIR/llm-internals, else <tmp>/llm-internals-<uid>."""
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR")
    root = (
        Path(base) / "llm-internals"
        if base and os.access(base, os.W_OK)
        else Path(tempfile.gettempdir()) / f"llm-internals-{os.getuid()}"
    )
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = root.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.chmod(root, 0o700)
        except OSError:
            raise UserError(f"{root} is not private to you: remove it or set XDG_RUNTIME_DIR") from None
        if root.stat().st_uid != os.getuid():
            raise UserError(f"{root} belongs to another user: set XDG_RUNTIME_DIR to a folder of yours")
    return root
