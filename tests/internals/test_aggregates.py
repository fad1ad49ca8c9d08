"""Group statistics (per layer, per component, per both) equal numpy over the concatenated values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests_helpers import run_cli


def test_stats_json_aggregates_match_numpy(tiny_models):
    from safetensors.numpy import load_file

    folder = tiny_models("qwen2")
    proc = run_cli("stats", str(folder), "--json")
    assert proc.returncode == 0, proc.stderr
    agg = json.loads(proc.stdout)["aggregates"]
    values = load_file(folder / "model.safetensors")
    layer1 = np.concatenate([v.ravel().astype(np.float64) for k, v in values.items() if ".layers.1." in k])
    got = agg["by_layer"][1]
    assert got["numel"] == layer1.size
    assert got["mean"] == pytest.approx(layer1.mean(), rel=1e-9, abs=1e-12)
    assert got["std"] == pytest.approx(layer1.std(), rel=1e-9)
    assert got["rms"] == pytest.approx(np.sqrt((layer1 ** 2).mean()), rel=1e-9)
    assert got["min"] == layer1.min() and got["max"] == layer1.max()
    q = np.concatenate([v.ravel().astype(np.float64) for k, v in values.items() if k.endswith("q_proj.weight")])
    assert agg["by_component"]["q"]["numel"] == q.size + 3 * 96  # weights and biases of every layer's q_proj
    cell = agg["by_component_and_layer"]["down"][2]
    down = values["model.layers.2.mlp.down_proj.weight"].astype(np.float64)
    assert cell["tensors"] == 1 and cell["std"] == pytest.approx(down.std(), rel=1e-9) and cell["kurtosis"] is not None
    assert len(agg["by_layer"]) == 3 and set(agg["by_component"]) >= {"embedding", "lm_head", "norm", "q", "down"}
