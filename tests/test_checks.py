"""The project's static checks, run by the test suite so that CI runs them too: the import contracts
(import-linter, configured in pyproject.toml), ruff, and mypy on the engine, the UI and the composition root.

The import contracts are shown to bite: a deliberate violation (an `import textual` inside a function of the
engine, in a temporary copy of the packages) breaks them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests_helpers import REPO

BIN = Path(sys.executable).parent


def _run(tool: str, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = BIN / tool
    if not exe.exists():
        pytest.fail(f"{tool} is not installed in the test environment: `pip install -e '.[dev]'` (scripts/setup-env does)")
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_import_contracts_are_kept():
    proc = _run("lint-imports", "--no-cache")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_a_deliberate_violation_breaks_the_import_contracts(tmp_path):
    for package in ("internals", "tui", "lessons"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "demo_model", "demo_moe", "*.safetensors"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "internals" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _planted():\n    import textual  # a UI import inside the engine\n")
    proc = _run("lint-imports", "--no-cache", cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode != 0
    assert "internals.errors -> textual" in proc.stdout


def test_ruff():
    proc = _run("ruff", "check", "--no-cache", "internals", "tui", "lessons", "tests", "benchmarks", "llm_internals.py")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


@pytest.mark.slow
def test_mypy():
    proc = _run("mypy", "internals", "tui", "llm_internals.py")
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
