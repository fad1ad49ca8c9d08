"""The real command in a real terminal (tmux), as a user over SSH would run it; no process left behind."""

from __future__ import annotations

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


def keys(session: str, *sent: str) -> None:
    subprocess.run(["tmux", "send-keys", "-t", session, *sent], check=True)


def test_moe_demo_in_tmux():
    """`--demo moe`: a fused expert tensor opens with its histogram and each expert's spectrum, its spectrum
    tab steps through the experts with `.`, the experts view draws the routing heatmap, and `.` moves to the
    next layer."""
    session = f"llmi-{uuid.uuid4().hex[:8]}"
    cmd = f"cd {REPO} && TERM=xterm-256color {sys.executable} -m llm_internals --demo moe"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "130", "-y", "42", cmd], check=True)
    try:
        wait_for(session, "experts as in memory")
        keys(session, "/")
        wait_for(session, "search tensors", timeout=20)  # the search box has the focus
        keys(session, "gate_up_proj")
        wait_for(session, "▊  gate_up_proj", timeout=20)
        keys(session, "Enter")
        # the histogram, the per-expert table, and each expert's spectrum (asked for after the statistics; its
        # columns may be cut at 80 columns, the caption and the α plot say it arrived); one capture may be mid-redraw
        for text in ("0┤", "per expert", "kurtosis", "α! : α outside", "╭α 1.8"):
            wait_for(session, text, timeout=60)
        keys(session, "Escape")
        time.sleep(0.3)
        keys(session, "s")
        wait_for(session, "expert 0 of 4", timeout=30)
        wait_for(session, ". Expert +", timeout=20)  # the footer offers the keys once the view has the focus
        keys(session, ".")
        wait_for(session, "expert 1 of 4", timeout=20)
        keys(session, "9")
        screen = wait_for(session, "layer 0 load")
        assert "▀▀" in screen and "e3 █" in screen  # the routing heatmap and the load bars
        keys(session, ".")
        wait_for(session, "layer 1 load", timeout=20)
        keys(session, "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
