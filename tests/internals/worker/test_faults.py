"""Faults: a worker killed (SIGKILL) while it writes the statistics cache leaves no corrupt cache (every cache
file is whole, the next worker reads the same numbers) and the explorer's worker restarts; an unwritable cache
folder costs one warning, never an answer. (A worker killed during a generation is
tests/internals/worker/test_transport.py::test_worker_killed_mid_request_is_reported_and_restarted.)"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from internals.errors import WorkerCrashed
from internals.worker.spawn import ManagedWorker, WorkerOptions

pytestmark = pytest.mark.slow


def _tensor_names(folder) -> list[str]:
    from internals.model import open_model

    return [e.name for e in open_model(str(folder)).store]


def test_a_worker_killed_during_cache_writes_leaves_a_valid_cache(tiny_models, tmp_path):
    folder, cache = tiny_models("qwen2"), tmp_path / "cache"
    names = _tensor_names(folder)
    worker = ManagedWorker(WorkerOptions(model=str(folder), extra_env={"LLM_INTERNALS_CACHE": str(cache)}))
    worker.start()
    rng = random.Random(0)
    try:
        for _kill in range(2):
            answered = threading.Event()
            done = {}

            # every answer writes a cache file (one per bins value), rewritten as it grows; the kill waits
            # for an answer of the second bins value, so that two files exist however slow the machine is
            def hammer(answered=answered, done=done):
                try:
                    for bins in range(8, 400):
                        for name in names:
                            worker.tensor_stats(name, bins=bins)
                            if bins > 8:
                                answered.set()
                except WorkerCrashed as exc:
                    done["crashed"] = str(exc)

            thread = threading.Thread(target=hammer, daemon=True)
            thread.start()
            assert answered.wait(60)
            time.sleep(rng.uniform(0.3, 1.5))
            os.kill(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait(timeout=10)
            thread.join(30)
            assert "crashed" in done, "the request in flight was not told that the worker died"
            worker.restart()  # what the explorer's `r` does
        files = sorted((cache / "stats").glob("*.json"))
        assert len(files) >= 2
        for path in files:
            assert isinstance(json.loads(path.read_text()), dict), path  # never half a file
        from internals.model import open_model
        from internals.stats_service import StatisticsCache

        store = open_model(str(folder)).store
        uncached = StatisticsCache(enabled=False)
        for bins in (8, 9):  # written before the first kill: read back from the cache by the new worker
            for name in names[:3]:
                expected = json.loads(json.dumps(uncached.compute(store, name, bins)))
                assert worker.tensor_stats(name, bins=bins) == expected
    finally:
        worker.close()


def test_an_unwritable_cache_folder_costs_one_warning_not_an_answer(tiny_models, tmp_path):
    folder = tiny_models("qwen2")
    names = _tensor_names(folder)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # the cache root is a file: nothing can be written (even as root)
    worker = ManagedWorker(WorkerOptions(model=str(folder), extra_env={"LLM_INTERNALS_CACHE": str(blocker)}))
    worker.start()
    try:
        for bins in (16, 32):
            for name in names:
                assert worker.tensor_stats(name, bins=bins)["numel"] > 0
        log = Path(worker.log_path).read_text()
        assert log.count("statistics are not cached") == 1, log
    finally:
        worker.close()
