"""Where llm-internals keeps its caches: `$LLM_INTERNALS_CACHE`, else `$XDG_CACHE_HOME/llm-internals`,
else `~/.cache/llm-internals`. Torch-free."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("LLM_INTERNALS_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "llm-internals"


def file_identity(path: str | os.PathLike) -> str:
    """A string that changes whenever the file at `path` changes: resolved path, size, mtime and inode.
    Caches key their entries by it so that a rewritten checkpoint never shows stale numbers."""
    st = os.stat(path)
    return f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
