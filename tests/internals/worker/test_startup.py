"""The worker's background start (internals/worker/startup.py): weight questions answered before torch is
imported, the exact tree and forward passes after the background import."""

from __future__ import annotations

import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from internals.model import open_model
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService
from internals.worker.spawn import ManagedWorker, WorkerOptions
from internals.worker.startup import Background, open_for_worker


def _numpy_reference(folder, name: str) -> np.ndarray:
    return load_file(str(folder / "model.safetensors"))[name].astype(np.float64)


def test_a_real_worker_answers_statistics_before_importing_torch_then_runs_forward_passes(tiny_models):
    folder = tiny_models("llama")
    # a long delay: only the first answer starts the background import (no race with the checks below)
    worker = ManagedWorker(WorkerOptions(model=str(folder), extra_env={"LLM_INTERNALS_IMPORT_DELAY_S": "60"}))
    worker.start()
    try:
        before = worker.call("status")
        assert before["torch_imported"] is False and before["exact_tree"] is False
        name = "model.layers.1.mlp.down_proj.weight"
        stats = worker.tensor_stats(name)
        ref = _numpy_reference(folder, name)
        assert stats["numel"] == ref.size
        assert stats["mean"] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-12)
        assert stats["std"] == pytest.approx(ref.std(), rel=1e-9)
        assert stats["max"] == pytest.approx(ref.max())
        preview = worker.call("matrix_preview", {"name": name, "rows": 4, "cols": 4})
        assert preview["values"].shape == (4, 4)
        assert worker.call("status")["torch_imported_at_first_answer"] is False
        # the first answer started the import in the background: a forward pass works once it is done
        attention = worker.attention("hello world", 0)
        assert attention["weights"].shape[0] > 0
        after = worker.call("status")
        assert after["torch_imported"] and after["exact_tree"] and after["loaded"]
        # the tree is transformers' exact one (module classes), as an in-process exact open gives it
        assert worker.tree() == open_model(str(folder)).tree()
    finally:
        worker.close()


def test_stored_tensors_are_answered_while_transformers_still_builds_a_converted_tree(tiny_models):
    """mixtral's experts are stored one by one and fused at load time: the headers cannot give the exact
    tree, but each stored tensor's statistics can be answered at once; the tree waits for transformers."""
    folder = tiny_models("mixtral")
    fast, pending = open_for_worker(str(folder))
    assert pending and fast.tree_source == "provisional"
    background = Background(fast, pending, delay=60)  # not started: the exact build has not begun
    service = ModelService(fast, background=background)
    client = InProcessClient(service)
    exact = open_model(str(folder))
    stored = next(n for n in fast.tensor_names() if ".experts." in n)
    assert stored not in exact.structure.params  # a stored name only, fused in the model
    assert client.tensor_stats(stored) == exact.tensor_stats(stored)
    assert not background.ready
    started = time.monotonic()
    background.start()
    assert client.tree() == exact.tree()  # waits for the background build (started by the first answer)
    assert background.ready and time.monotonic() - started < 60
    assert client.summary() == exact.summary()
    service.close()


def test_sources_without_a_cheap_way_open_as_before(tiny_models):
    config_only = tiny_models("llama") / "config.json"
    opened, pending = open_for_worker(str(config_only))
    assert not pending and opened.tree_source == "transformers"


@pytest.fixture
def slow_warm_up(monkeypatch) -> list[str]:
    """The kernels' warm-up made slow (0.3 s), and what happens in order: "warmed" when it ends, "frozen"
    for each freeze of the start-up objects (recorded, not done: the test process keeps its collector)."""
    import internals.worker.startup as startup

    events: list[str] = []

    def slow_warm(_opened):
        time.sleep(0.3)
        events.append("warmed")

    monkeypatch.setattr(startup, "warm_statistics", slow_warm)
    monkeypatch.setattr(startup, "freeze_long_lived", lambda: events.append("frozen"))
    return events


def test_weight_questions_wait_for_the_warm_up_and_only_the_worker_freezes(tiny_models, slow_warm_up):
    """A weight question asked while the kernels warm up starts after the warm-up (not alongside it); the
    warm-up's objects are frozen out of full collections only where the worker asked for it."""
    folder = tiny_models("llama")
    events = slow_warm_up
    for freeze in (False, True):
        events.clear()
        fast, pending = open_for_worker(str(folder))
        background = Background(fast, pending, delay=60, freeze_gc=freeze)
        with background.answering():  # not started: nothing to wait for
            events.append("answered")
        background.start()
        with background.answering():
            events.append("answered")
        answers = [i for i, e in enumerate(events) if e == "answered"]
        assert answers[0] == 0 and events.index("warmed") < answers[1]  # the second one waited
        background.imported()  # the first answer started the import: frozen after it too, with freeze_gc
        assert events.count("frozen") == (2 if freeze else 0)
        if freeze:
            assert events.index("frozen", events.index("warmed")) < answers[1]  # frozen before it was answered


def test_a_real_worker_freezes_its_start_up_objects(tiny_models):
    folder = tiny_models("llama")
    worker = ManagedWorker(WorkerOptions(model=str(folder), extra_env={"LLM_INTERNALS_IMPORT_DELAY_S": "60"}))
    worker.start()
    try:
        worker.tensor_stats("model.layers.1.mlp.down_proj.weight")  # after the warm-up
        log = open(worker.log_path).read()
        line = next(text for text in log.splitlines() if "statistics kernels warmed" in text)
        assert int(line.split("; ")[1].split()[0]) > 10_000  # numba's registries among them
    finally:
        worker.close()


def test_closing_the_service_waits_for_the_warm_up_that_reads_the_files(tiny_models, monkeypatch, slow_warm_up):
    """The warm-up reads the weight files through their maps: a service closed while it runs (a test, a
    worker stopped at once) closes the files after it, never under it (which crashed the process)."""
    folder = tiny_models("llama")
    events = slow_warm_up
    fast, pending = open_for_worker(str(folder))
    store_close = fast.store.close
    monkeypatch.setattr(fast.store, "close", lambda: events.append("files closed") or store_close())
    background = Background(fast, pending, delay=60)
    service = ModelService(fast, background=background)
    background.start()
    service.close()
    assert events == ["warmed", "files closed"]
