"""`llm-internals experts`: its JSON contract on the MoE demo (one subprocess), and a dense model refused."""

from __future__ import annotations

import json

from test_cli import assert_user_error

from tests_helpers import run_cli

PROMPT = "def add(a, b): return a + b"


def test_experts_json_contract_on_the_moe_demo():
    proc = run_cli("experts", "--demo", "moe", "--prompt", PROMPT, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"tokens", "token_ids", "num_experts", "top_k", "layers"}
    T, E, k = len(out["token_ids"]), out["num_experts"], out["top_k"]
    assert len(out["tokens"]) == T > 0 and (E, k) == (4, 2)
    assert [layer["layer"] for layer in out["layers"]] == [0, 1, 2]
    for layer in out["layers"]:
        assert {"layer", "experts", "weights", "load", "weight_share", "unused"} <= set(layer)
        assert len(layer["experts"]) == len(layer["weights"]) == T
        assert all(len(row) == k and len(set(row)) == k and all(0 <= e < E for e in row) for row in layer["experts"])
        # Mixtral renormalises its top-k softmax: each token's weights sum to 1, largest first
        assert all(abs(sum(w) - 1) < 1e-5 and w == sorted(w, reverse=True) for w in layer["weights"])
        counted = [sum(row.count(e) for row in layer["experts"]) for e in range(E)]
        assert layer["load"] == counted and sum(layer["load"]) == T * k
        assert abs(sum(layer["weight_share"]) - 1) < 1e-6
        assert layer["unused"] == [e for e in range(E) if counted[e] == 0]


def test_a_dense_model_has_no_experts():
    assert_user_error(run_cli("experts", "--prompt", "hi", "--json"), "no experts")
