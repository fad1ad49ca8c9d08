"""Helpers shared by tests. (Not in conftest.py: several conftest modules exist, and `import conftest`
would get whichever was loaded last.)"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run_cli(*args: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "llm_internals", *args], capture_output=True, text=True,
                          cwd=REPO, env=full_env, timeout=timeout)


def run_cli_in_process(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`run_cli` without a new process (seconds of imports saved per call): `llm_internals.main(args)` with
    stdout and stderr captured and `env` set around it; its exit status as the returncode. For many bad-input
    cases of one command; keep one `run_cli` case to cover the real process."""
    import io
    from contextlib import redirect_stderr, redirect_stdout
    from unittest import mock

    import llm_internals

    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, env or {}), redirect_stdout(out), redirect_stderr(err):
        try:
            code = llm_internals.main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess(list(args), int(code or 0), out.getvalue(), err.getvalue())


class Cancelled(Exception):
    """What a `CancelAfter` check raises."""


class CancelAfter:
    """A `check()` for the engine's cancellable work: counts its calls (`calls`) and raises `Cancelled` on the
    `n`-th, so a test can see that the work checks between steps and stops there."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise Cancelled


@contextmanager
def running_worker(model: str) -> Iterator[Any]:
    """`with running_worker(folder) as w:` — a real worker process (`ManagedWorker`) for `model`, started,
    and closed after the block."""
    from internals.worker.spawn import ManagedWorker, WorkerOptions

    worker = ManagedWorker(WorkerOptions(model=model))
    worker.start()
    try:
        yield worker
    finally:
        worker.close()
