"""Device and dtype choices, and accelerate's offload folder: never left behind, even by a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from internals.inference import loading
from internals.inference.loading import OFFLOAD_PREFIX, _pick_dtype, remove_stale_offload_folders


def test_default_dtype_is_never_float16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a pre-Ampere GPU
    assert _pick_dtype(None, torch.device("cuda")) == torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert _pick_dtype(None, torch.device("cuda")) == torch.bfloat16
    assert _pick_dtype(None, None, {"cpu": "64GiB", "disk": "1TB"}) == torch.float32  # CPU-only --max-memory
    assert _pick_dtype(None, None, {0: "20GiB", "cpu": "64GiB"}) == torch.bfloat16
    assert _pick_dtype("float16", torch.device("cuda")) == torch.float16  # asked for: given


def test_device_auto_without_a_gpu_is_the_cpu(tiny_models):
    from internals.sources import resolve_source

    assert loading._one_gpu_that_fits(resolve_source(str(tiny_models("llama")))) == "cpu"


def test_stale_offload_folders_of_dead_workers_are_removed():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"{OFFLOAD_PREFIX}{dead.pid}-"))
    (stale / "weights.dat").write_bytes(b"x" * 1000)
    alive = Path(tempfile.mkdtemp(prefix=f"{OFFLOAD_PREFIX}{os.getpid()}-"))
    try:
        removed = remove_stale_offload_folders()
        assert stale in removed and not stale.exists()
        assert alive.exists() and alive not in removed
    finally:
        import shutil

        shutil.rmtree(alive, ignore_errors=True)
        shutil.rmtree(stale, ignore_errors=True)


def test_sigterm_removes_the_offload_folder(tiny_models):
    from internals.worker.spawn import ManagedWorker, WorkerOptions

    worker = ManagedWorker(WorkerOptions(model=str(tiny_models("llama")), device="cpu", max_memory="cpu=20KB"))
    worker.start()
    try:
        worker.load()
        folders = list(Path(tempfile.gettempdir()).glob(f"{OFFLOAD_PREFIX}{worker.proc.pid}-*"))
        assert len(folders) == 1  # (transformers may offload safetensors weights by reference: it can be empty)
        os.kill(worker.proc.pid, signal.SIGTERM)
        worker.proc.wait(timeout=30)
        deadline = time.time() + 5
        while folders[0].exists() and time.time() < deadline:
            time.sleep(0.1)
        assert not folders[0].exists(), "the offload folder outlived the worker"
    finally:
        worker.close()
