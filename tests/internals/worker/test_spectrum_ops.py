"""The `spectrum` and `spectra` operations through an in-process client (the same codec as the socket) equal the
engine; progress is reported; a parameter name, a stored name and a bad name are handled as the CLI does."""

from __future__ import annotations

import numpy as np
import pytest

from internals.errors import UserError
from internals.model import open_model
from internals.spectrum import cache, iter_spectra, matrices_of, spectrum_of
from internals.spectrum.model import SPECTRAL_METRICS, is_flagged
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService

pytestmark = pytest.mark.usefixtures("fresh_spectrum_cache")


def _same(a, b) -> None:
    """Equal up to the wire: lists stay lists, floats exact, nested dicts alike."""
    if isinstance(a, dict):
        assert set(a) == set(b), set(a) ^ set(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-300), (a, b)
    else:
        assert a == b


def test_spectrum_op_equals_the_engine(tiny_models):
    opened = open_model(str(tiny_models("llama")))
    client = InProcessClient(ModelService(opened))
    name = "model.layers.1.mlp.down_proj.weight"
    seen: list[tuple[float, str]] = []
    got = client.spectrum(name, on_progress=lambda f, m: seen.append((f, m)))
    cache.use_cache(False)
    try:
        expected = spectrum_of(opened.store, name)
    finally:
        cache.use_cache(True)
    _same(dict(expected), got)
    assert seen and all(m == name for _, m in seen)
    again = client.call("spectrum", {"name": name})  # from the cache now
    _same(got, again)
    with pytest.raises(UserError, match="no tensor named"):
        client.spectrum("model.layers.1.mlp.nothing.weight")
    with pytest.raises(UserError, match="matrix"):
        client.spectrum("model.norm.weight")


def test_spectra_op_equals_the_engine_and_lays_out_the_layers(tiny_models):
    opened = open_model(str(tiny_models("llama")))
    client = InProcessClient(ModelService(opened))
    seen: list[float] = []
    got = client.spectra(on_progress=lambda f, m: seen.append(f))
    assert seen and seen == sorted(seen)
    store = opened.store
    cache.use_cache(False)
    try:
        expected = list(iter_spectra(store, [r.name for r in matrices_of(store, store.names())]))
    finally:
        cache.use_cache(True)
    assert [b["name"] for b in got["matrices"]] == [s["name"] for s in expected]
    for b, s in zip(got["matrices"], expected):
        assert b["alpha"] == (s["powerlaw"] or {}).get("alpha") and b["num_spikes"] == s["num_spikes"]
        assert b["stable_rank"] == s["stable_rank"] and b["flagged"] == is_flagged(s)
        assert b["alpha_reading"] == s["alpha_reading"]
    by_name = {s["name"]: s for s in expected}
    layers = opened.summary()["num_layers"]
    assert got["num_layers"] == layers and set(got["metrics"]) == set(SPECTRAL_METRICS)
    assert got["components"] == ["q", "k", "v", "o", "gate", "up", "down"]
    for c in got["components"]:
        for layer in range(layers):
            name = got["names"][c][layer]
            assert name == f"model.layers.{layer}.{'self_attn' if c in 'qkvo' else 'mlp'}.{c}_proj.weight"
            s = by_name[name]
            assert got["metrics"]["stable_rank"][c][layer] == s["stable_rank"]
            assert got["metrics"]["spikes"][c][layer] == s["num_spikes"]
            assert got["metrics"]["alpha"][c][layer] == (None if s["powerlaw"] is None else s["powerlaw"]["alpha"])
    assert np.isfinite([b["stable_rank"] for b in got["matrices"]]).all()
