"""Helpers shared by tests. (Not in conftest.py: several conftest modules exist, and `import conftest`
would get whichever was loaded last.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run_cli(*args: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "llm_internals", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=timeout)
