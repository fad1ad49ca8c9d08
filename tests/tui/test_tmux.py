"""The real command in a real terminal (tmux), as a user over SSH would run it; no process left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests_helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait_for(session: str, text: str, timeout: float = 90) -> str:
    deadline = time.time() + timeout
    screen = ""
    while time.time() < deadline:
        screen = capture(session)
        if text in screen:
            return screen
        time.sleep(0.3)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


def worker_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", "llm_internals worker"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_explorer_in_tmux(tiny_models):
    folder = tiny_models("qwen2")
    session = f"llmi-{uuid.uuid4().hex[:8]}"
    before = worker_pids()
    cmd = f"cd {REPO} && TERM=xterm-256color {sys.executable} -m llm_internals {folder}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
    try:
        screen = wait_for(session, "Qwen2ForCausalLM")
        assert "Architecture" in wait_for(session, "Architecture")
        started = worker_pids() - before
        assert started, "the explorer did not start its own worker"
        subprocess.run(["tmux", "send-keys", "-t", session, "3"], check=True)
        screen = wait_for(session, "╭h1")  # the small multiples, one tile per head
        assert "h0" in screen and "KV head 0" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.time() + 20
        while time.time() < deadline and (worker_pids() & started):
            time.sleep(0.2)
        assert not (worker_pids() & started), "a worker outlived the explorer"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
