"""The Part 3 demos run in a real worker process (the way the lessons pane runs them) on the shipped demo model:
live points stream first, then the result."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from internals.demo_path import demo_model_path  # noqa: E402
from internals.worker.spawn import ManagedWorker, WorkerOptions  # noqa: E402


@pytest.fixture(scope="module")
def worker():
    w = ManagedWorker(WorkerOptions(model=str(demo_model_path()), entry_module="llm_internals"))  # demos registered
    w.start()
    yield w
    w.close()


@pytest.mark.parametrize("name, series", [("one-head", {"query", "score", "weight"}),
                                          ("sampling", {"T=0.5", "T=1", "T=2"}),
                                          ("pass-at-k", {"pass@1", "majority"})])
def test_demo_streams_points_then_its_result_through_the_worker(worker, name, series):
    items = list(worker.run_demo(name, {"quick": True}))
    points, final = items[:-1], items[-1]
    assert {p["series"] for p in points} == series
    result = final["result"]
    assert result["demo"] == name and result["stopped"] is False
    if name == "one-head":
        assert result["matches"] and len([p for p in points if p["series"] == "weight"]) == len(result["keys"])
    if name == "sampling":
        assert [e["temperature"] for e in result["per_temperature"]] == [0.5, 1.0, 2.0]
    if name == "pass-at-k":
        assert len(result["prompts"]) == 3 and 0 <= result["majority_accuracy"] <= 1
