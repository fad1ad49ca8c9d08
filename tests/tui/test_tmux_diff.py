"""End to end, as a user: the LoRA demo's short mode saves an adapter of the demo model, then
`python -m llm_internals <adapter> --base internals/demo_model` in tmux shows the diff badges in the tree and,
on key 6, the diff tab of the tensor the demo trained."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid

import pytest

from test_tmux import capture, wait_for, worker_pids
from tests_helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def test_a_saved_adapter_against_the_demo_model_in_tmux(tmp_path):
    pytest.importorskip("peft")
    import torch

    from internals.demo_path import demo_model_path
    from internals.model import open_model
    from lessons.demos.registry import run_demo

    torch.set_num_threads(1)
    opened = open_model(str(demo_model_path()))
    try:
        result = run_demo("lora", opened, {"quick": True, "save_to": str(tmp_path / "lora")})
    finally:
        opened.close()
    saved = result["saved"]["path"]
    trained = result["module"]["name"] + ".weight"  # a q/k/v/o projection the demo trained
    session = f"llmi-{uuid.uuid4().hex[:8]}"
    before = worker_pids()
    # COLUMNS/LINES of the test process would pin the explorer to 80×24: the badges need a wide sidebar
    cmd = (f"cd {REPO} && unset COLUMNS LINES && TERM=xterm-256color LLM_INTERNALS_CACHE={tmp_path / 'cache'} OMP_NUM_THREADS=1 "
           f"{sys.executable} -m llm_internals {saved} --base internals/demo_model")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "45", cmd], check=True)
    try:
        screen = wait_for(session, "(adapter) vs base", timeout=180)
        screen = wait_for(session, "Δ", timeout=180)  # the whole-model diff has come: badges in the tree
        assert "embed_tokens" in screen and " =" in screen  # the embeddings: not adapted, drawn as unchanged
        for keys in (["/"], [trained.removeprefix("model."), "Enter"], ["Escape"], ["Enter"]):
            subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)
            time.sleep(0.6)  # an Escape followed at once by Enter would read as alt+enter
        wait_for(session, "kurtosis")  # the tensor view of the trained tensor
        subprocess.run(["tmux", "send-keys", "-t", session, "0"], check=True)
        screen = wait_for(session, "rel change %")
        assert trained in screen and "cosine" in screen and f"ΔW of {trained}" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "k"], check=True)
        screen = wait_for(session, "stable rank")
        assert "99% " in screen
        started = worker_pids() - before
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.time() + 20
        while time.time() < deadline and (worker_pids() & started):
            time.sleep(0.2)
        assert not (worker_pids() & started), "a worker outlived the explorer"
    except AssertionError:
        print(capture(session))
        raise
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
