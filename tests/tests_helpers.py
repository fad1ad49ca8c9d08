"""Helpers shared by tests (importable because tests/ is on sys.path via conftest's rootdir)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO


def run_cli(*args: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "internals.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=timeout)
