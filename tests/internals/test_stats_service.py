"""StatisticsCache: one read per viewed tensor (stats -> clip -> re-bin), on-disk reuse, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from internals.stats import compute_tensor_stats, tensor_histogram
from internals.stats_service import StatisticsCache
from internals.weights import WeightStore


@pytest.fixture
def store(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {
        "w_bf16": (torch.randn(300, 200, generator=g) * 0.02).to(torch.bfloat16),
        "w_f16": (torch.randn(64, 50, generator=g)).to(torch.float16),
        "w_f32": torch.randn(128, 96, generator=g) * 3,
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    s = WeightStore([path])
    yield s
    s.close()


class ReadCounter:
    """Counts the reads of a store's tensors (every statistics read goes through `raw`)."""

    def __init__(self, store: WeightStore, monkeypatch) -> None:
        self.reads: dict[str, int] = {}
        original = store.raw

        def raw(name):
            self.reads[name] = self.reads.get(name, 0) + 1
            return original(name)

        monkeypatch.setattr(store, "raw", raw)
        monkeypatch.setattr(store, "tensor", lambda name: pytest.fail("statistics must not build torch tensors"))


@pytest.mark.parametrize("name", ["w_bf16", "w_f16", "w_f32"])
def test_stats_clip_rebin_read_the_tensor_once(store, monkeypatch, name):
    entry = store.entry(name)
    raw = np.array(store.raw(name))  # the reference reads before counting starts
    counter = ReadCounter(store, monkeypatch)
    cache = StatisticsCache()

    full = cache.stats(store, name, bins=64)
    clipped = cache.clipped(store, name, bins=64)
    rebinned = cache.stats(store, name, bins=17)
    rebinned_clip = cache.clipped(store, name, bins=17)
    assert counter.reads == {name: 1}

    # against the kernels run directly on the bytes
    assert full == compute_tensor_stats(raw, entry.dtype, entry.shape, bins=64, name=name).to_dict()
    assert rebinned == compute_tensor_stats(raw, entry.dtype, entry.shape, bins=17, name=name).to_dict()
    lo, hi = full["quantiles"]["p1"], full["quantiles"]["p99"]
    for got, bins in ((clipped, 64), (rebinned_clip, 17)):
        edges, hist = tensor_histogram(raw, entry.dtype, entry.shape, bins=bins, range=(lo, hi))
        assert got["histogram"] == {"edges": edges.tolist(), "counts": hist.tolist()}
        assert got["histogram_range"] == [lo, hi]
        assert sum(got["histogram"]["counts"]) < entry.numel  # the tails are left out
    # and against plain numpy on the decoded values
    vals = torch.frombuffer(bytearray(raw.tobytes()), dtype={"w_bf16": torch.bfloat16, "w_f16": torch.float16,
                                                             "w_f32": torch.float32}[name]).double().numpy()
    counts, _ = np.histogram(vals, bins=64, range=(lo, hi))
    assert clipped["histogram"]["counts"] == counts.tolist()


def test_disk_cache_survives_a_new_process_view(store, monkeypatch):
    counter = ReadCounter(store, monkeypatch)
    first = StatisticsCache().stats(store, "w_bf16")
    fresh = StatisticsCache()  # what a new process sees: the JSON on disk
    assert fresh.stats(store, "w_bf16") == first
    assert counter.reads == {"w_bf16": 1}
    fresh.clipped(store, "w_bf16")  # the clip needs the counts: one read in this "process"
    fresh.stats(store, "w_bf16", bins=9)
    assert counter.reads == {"w_bf16": 2}


def test_disabled_cache_writes_nothing(store, tmp_path):
    cache = StatisticsCache(enabled=False)
    cache.stats(store, "w_f32")
    cache.flush(store)
    assert not (tmp_path / "cache" / "stats").exists()


def test_memory_is_bounded(store, monkeypatch):
    sizes = [StatisticsCache(enabled=False).retained(store, n).nbytes for n in ("w_bf16", "w_f16")]
    counter = ReadCounter(store, monkeypatch)
    cache = StatisticsCache(enabled=False, memory_bytes=sum(sizes) - 1)  # holds one of the two, not both
    cache.stats(store, "w_bf16")
    cache.stats(store, "w_f16")  # evicts w_bf16
    cache.stats(store, "w_bf16")
    cache.stats(store, "w_bf16", bins=3)
    assert counter.reads == {"w_bf16": 2, "w_f16": 1}


def test_whole_model_pass_equals_one_by_one(store, monkeypatch):
    from internals.stats import count_patterns, count_patterns_many, set_threads

    names = store.names()
    one_by_one = [StatisticsCache(enabled=False).stats(store, n, bins=32) for n in names]
    counter = ReadCounter(store, monkeypatch)
    cache = StatisticsCache()
    monkeypatch.setattr("internals.stats_service.GROUP_BYTES", 1)  # one tensor per group, then all in one
    assert list(cache.stats_many(store, names, bins=32)) == one_by_one
    monkeypatch.setattr("internals.stats_service.GROUP_BYTES", 1 << 30)
    assert list(StatisticsCache(enabled=False).stats_many(store, names, bins=32)) == one_by_one
    assert counter.reads == {n: 2 for n in names}
    # the batched counter, many blocks per tensor and several threads, against count_patterns
    items = [(store.raw(n), store.entry(n).dtype, store.entry(n).shape, n) for n in names if n != "w_f32"]
    set_threads(3)
    try:
        for chunk in (7, 1000, None):
            for got, (raw, dt, shape, n) in zip(count_patterns_many(items, chunk_elements=chunk), items):
                np.testing.assert_array_equal(got.counts, count_patterns(raw, dt, shape).counts)
                assert got.name == n and got.shape == shape
    finally:
        set_threads(None)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_worker_ops_read_a_tensor_once(tiny_models, monkeypatch, dtype):
    """The explorer's sequence through the worker's own operations: statistics, clip, re-bin, matrix preview."""
    from internals.model import open_model
    from internals.worker.client import InProcessClient
    from internals.worker.service import ModelService

    service = ModelService(open_model(str(tiny_models("llama", dtype))))
    client = InProcessClient(service)  # the registered operations, through the wire codec
    counter = ReadCounter(service.opened.store, monkeypatch)
    name = "model.layers.1.mlp.down_proj.weight"
    full = client.tensor_stats(name, bins=64)
    clipped = client.tensor_stats(name, bins=64, clip=True)
    rebinned = client.tensor_stats(name, bins=20, clip=True)
    assert counter.reads == {name: 1}
    assert clipped["histogram_range"] == [full["quantiles"]["p1"], full["quantiles"]["p99"]]
    assert len(rebinned["histogram"]["counts"]) == 20 and "histogram_range" not in full
    preview = client.matrix_preview(name, rows=8, cols=8)  # its own pass over the same memory map
    assert preview["values"].shape == (8, 8) and counter.reads == {name: 2}
