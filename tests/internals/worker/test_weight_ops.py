"""The whole-model weight operation: `cross_layer` counts every tensor in one pass (StatisticsCache.stats_many)
and gives exactly what the statistics of each tensor asked for one by one give."""

from __future__ import annotations

from internals.model import open_model
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService


def test_cross_layer_in_one_pass_equals_the_tensors_one_by_one(tiny_models, tmp_path, monkeypatch):
    folder = str(tiny_models("qwen2"))
    one_pass = InProcessClient(ModelService(open_model(folder)))
    reports: list[float] = []
    whole = one_pass.cross_layer(on_progress=lambda fraction, message: reports.append(fraction))
    one_pass.close()
    assert reports and reports == sorted(reports) and reports[-1] <= 1.0

    monkeypatch.setenv("LLM_INTERNALS_CACHE", str(tmp_path / "another-cache"))
    opened = open_model(folder)
    by_tensor = InProcessClient(ModelService(opened))
    for name in opened.store.names():  # each tensor alone first: the operation then reads these answers
        by_tensor.tensor_stats(name)
    assert by_tensor.cross_layer() == whole
    by_tensor.close()
