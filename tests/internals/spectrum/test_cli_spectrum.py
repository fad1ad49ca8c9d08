"""`llm-internals spectrum` as a user runs it: a real subprocess for the JSON contract; the table and bad
input through `main()` in this process (the same code path, without paying a torch import per case)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from internals.cli.main import main
from tests_helpers import DATA, run_cli

KEYS = {"name", "shape", "n", "m", "spectral_norm", "frobenius_norm", "stable_rank", "effective_rank",
        "eigenvalues_top", "esd_histogram", "powerlaw", "mp_bulk_edge", "num_spikes"}


def _assert_user_error(capsys, args: list[str], *words: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["spectrum", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]


def test_spectrum_json_contract_on_a_tiny_model(tiny_models):
    folder = tiny_models("llama")
    proc = run_cli("spectrum", str(folder), "--tensor", "model.layers.0.*", "--json")
    assert proc.returncode == 0, proc.stderr
    tensors = json.loads(proc.stdout)["tensors"]
    names = [t["name"] for t in tensors]
    assert len(names) == 7 and all(".layers.0." in n and n.endswith("_proj.weight") for n in names)  # no norms
    for t in tensors:
        assert KEYS <= set(t), KEYS - set(t)
        assert t["n"] >= t["m"] and sorted(t["shape"]) == [t["m"], t["n"]]
        top = t["eigenvalues_top"]
        assert top == sorted(top, reverse=True) and len(top) == min(32, t["m"])
        assert np.isclose(t["spectral_norm"] ** 2, top[0])
        assert set(t["esd_histogram"]) == {"log10_edges", "counts"}
        assert set(t["powerlaw"]) == {"alpha", "xmin", "ks_distance", "alpha_hat", "num_tail"}
        assert 1 <= t["stable_rank"] <= t["m"] and 1 <= t["effective_rank"] <= t["m"]


def test_spectrum_json_of_a_fused_expert_parameter_gives_one_item_per_expert(tiny_models):
    """A parameter fused at load time (no stored tensor has its name): one matrix per expert, `parameter[e]`,
    each the expert's stored tensors stacked along rows (w1 over w3 for gate_up_proj)."""
    folder = tiny_models("mixtral")
    proc = run_cli("spectrum", str(folder), "--tensor", "model.layers.0.mlp.experts.*", "--json")
    assert proc.returncode == 0, proc.stderr
    tensors = json.loads(proc.stdout)["tensors"]
    assert [t["name"] for t in tensors] == [f"model.layers.0.mlp.experts.{p}[{e}]" for p in ("gate_up_proj", "down_proj")
                                            for e in range(4)]
    prefix = "model.layers.0.block_sparse_moe.experts"
    for t in tensors[:4]:
        e = t["slice"]
        assert KEYS <= set(t) and t["shape"] == [192, 64]
        assert t["stored"] == [f"{prefix}.{e}.w1.weight", f"{prefix}.{e}.w3.weight"] and t["stored_name"] == t["stored"][0]
    assert [t["stored"] for t in tensors[4:]] == [[f"{prefix}.{e}.w2.weight"] for e in range(4)]


def test_spectrum_table_for_people(tiny_models, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["spectrum", str(tiny_models("llama")), "--tensor", "*.q_proj.weight"]) == 0
    out = capsys.readouterr().out
    assert "model.layers.1.self_attn.q_proj.weight" in out and "stable rank" in out


def test_spectrum_bad_input(tiny_models, tmp_path, capsys):
    folder = str(tiny_models("llama"))
    _assert_user_error(capsys, [folder, "--tensor", "nothing.*"], "nothing.*")
    _assert_user_error(capsys, [folder, "--tensor", "model.norm.weight"], "model.norm.weight", "matrix")
    _assert_user_error(capsys, [str(DATA / "deepseek-r1-distill-qwen-1.5b.config.json")], "no weights")
    only_vectors = tmp_path / "vectors.safetensors"
    save_file({"a": np.ones(8, np.float32)}, str(only_vectors))
    _assert_user_error(capsys, [str(only_vectors)], "no floating-point weight matrix")
