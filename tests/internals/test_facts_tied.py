"""The tied-weights check: chunked byte comparison, and no read at all when two names share their bytes."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from internals.facts import bytes_equal
from internals.weights import WeightStore


@pytest.mark.parametrize("where", [0, 1, 4095, 4096, 9999])
def test_bytes_equal_finds_any_difference(where):
    a = np.arange(10000, dtype=np.uint8)
    b = a.copy()
    assert bytes_equal(a, b, chunk=4096)
    b[where] ^= 1
    assert not bytes_equal(a, b, chunk=4096)
    assert not bytes_equal(a, a[:-1], chunk=4096)


def test_bytes_equal_stops_at_the_first_differing_chunk():
    class Chunks(np.ndarray):
        touched: list = []

        def __getitem__(self, key):
            if isinstance(key, slice):
                Chunks.touched.append(key.start)
            return super().__getitem__(key)

    a = np.zeros(1 << 16, np.uint8).view(Chunks)
    b = np.ones(1 << 16, np.uint8).view(Chunks)
    assert not bytes_equal(a, b, chunk=1024)
    assert Chunks.touched == [0, 0]  # one chunk of each, not 64


def _write(path, header: dict, data: bytes) -> None:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


def test_same_bytes(tmp_path):
    # A valid safetensors file never aliases two names (the reader rejects overlapping spans), so
    # `same_bytes` is True only for one name; the tied-weights check asks it before reading anything.
    data = np.arange(64, dtype=np.float32).tobytes()
    path = tmp_path / "two.safetensors"
    _write(path, {"a": {"dtype": "F32", "shape": [4, 8], "data_offsets": [0, 128]},
                  "b": {"dtype": "F32", "shape": [4, 8], "data_offsets": [128, 256]}}, data)
    store = WeightStore([path])
    assert store.same_bytes("a", "a") and not store.same_bytes("a", "b")
    store.close()


def test_untied_copies_are_compared(tmp_path):
    from internals.facts import embeddings_shared
    from internals.structure import structure_from_names

    for head, expected in ((np.arange(32), True), (np.arange(32)[::-1], False)):
        data = np.arange(32, dtype=np.float32).tobytes() + head.astype(np.float32).tobytes()
        path = tmp_path / f"copy{expected}.safetensors"
        _write(path, {"model.embed_tokens.weight": {"dtype": "F32", "shape": [4, 8], "data_offsets": [0, 128]},
                      "lm_head.weight": {"dtype": "F32", "shape": [4, 8], "data_offsets": [128, 256]}}, data)
        store = WeightStore([path])
        assert embeddings_shared(structure_from_names(store), store) is expected
        store.close()
