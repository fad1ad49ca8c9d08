"""On-disk cache of a model's summary and tree, so a second open of the explorer draws the tree at once.

Building the tree needs transformers (seconds of imports and a meta-device build); reading this JSON needs
neither. The key covers every file the tree depends on (config and weight headers: path, size, mtime,
inode) and the versions of llm-internals and transformers, so a changed model or library is rebuilt.
Torch-free: the explorer process reads it before its worker has started.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from internals import __version__
from internals.cache_paths import cache_root
from internals.sources import ModelSource


def _cache_dir() -> Path:
    return cache_root() / "info"


def _key(source: ModelSource) -> str | None:
    try:
        transformers_version = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        transformers_version = "?"
    parts = [f"v1|{__version__}|{transformers_version}|{source.kind}"]
    files = [p for p in [source.config_path, *source.weight_files, *source.pickle_files] if p is not None]
    try:
        for path in files:
            st = os.stat(path)
            parts.append(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}")
    except OSError:
        return None
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def load_model_info(source: ModelSource) -> dict[str, Any] | None:
    """{"summary": ..., "tree": [...]} from the cache, or None when absent or stale."""
    key = _key(source)
    if key is None:
        return None
    try:
        with open(_cache_dir() / f"{key}.json") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "summary" in data and "tree" in data else None


def save_model_info(source: ModelSource, summary: dict[str, Any], tree: list[dict[str, Any]]) -> None:
    """Write the cache entry atomically; a read-only home just means no cache."""
    key = _key(source)
    if key is None:
        return
    folder = _cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".partial")
        with os.fdopen(fd, "w") as fh:
            json.dump({"summary": summary, "tree": tree}, fh)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass
