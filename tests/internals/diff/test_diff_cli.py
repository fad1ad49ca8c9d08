"""`llm-internals diff` as a user runs it: the JSON contract, the table, and every bad input."""

from __future__ import annotations

import json
import shutil

import pytest
from diff_support import plant

from tests_helpers import run_cli, run_cli_in_process


def assert_user_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def snapshot(*folders):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for f in folders for p in sorted(f.rglob("*"))}


@pytest.fixture
def planted(tiny_models, tmp_path):
    base = tiny_models("llama")
    tuned = tmp_path / "tuned"
    plant(base, tuned, {"model.layers.0.self_attn.v_proj.weight": (2, 0.4)})
    return base, tuned


def test_json_contract(planted, tmp_path):
    base, tuned = planted
    env = {"LLM_INTERNALS_CACHE": str(tmp_path / "cache")}
    proc = run_cli("diff", str(base), str(tuned), "--rank", "--json", "--bins", "8", "--prompt", "hello world",
                   "--top", "3", "--device", "cpu", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"base", "tuned", "kind", "tensors", "only_in_base", "only_in_tuned", "aggregates", "behaviour"}
    assert out["kind"] == "full" and out["base"] == str(base) and out["tuned"] == str(tuned)
    for t in out["tensors"]:
        assert set(t) == {"name", "shape", "base_norm", "delta_norm", "rel_change", "cosine", "max_abs_change",
                          "histogram", "rank"}
        assert len(t["histogram"]["edges"]) == 9 and len(t["histogram"]["counts"]) == 8
        if len(t["shape"]) == 2:
            assert set(t["rank"]) == {"singular_values", "stable_rank", "effective_rank_90", "effective_rank_99"}
        else:
            assert t["rank"] is None
    v = next(t for t in out["tensors"] if t["name"] == "model.layers.0.self_attn.v_proj.weight")
    assert v["rel_change"] == pytest.approx(0.4, rel=1e-5) and v["rank"]["effective_rank_99"] == 2
    agg = out["aggregates"]
    assert len(agg["by_layer"]) == 2 and set(agg["by_layer"][0]) == {"tensors", "base_norm", "delta_norm", "rel_change"}
    assert agg["by_component"]["v"]["delta_norm"] == pytest.approx(v["delta_norm"])
    b = out["behaviour"]
    assert set(b) == {"tokens", "kl", "rose", "fell", "residual_cosine"}
    assert len(b["kl"]) == len(b["tokens"]) and len(b["rose"]) == len(b["fell"]) == 3
    assert {"token", "delta_logprob"} <= set(b["rose"][0])
    assert len(b["residual_cosine"]) == 3 and all(len(r) == len(b["tokens"]) for r in b["residual_cosine"])
    assert (tmp_path / "cache" / "diff").is_dir()


def test_adapter_json_and_glob(tiny_models, tmp_path):
    from test_diff_adapter import make_adapter

    base = tiny_models("llama")
    adapter, _, _ = make_adapter(base, tmp_path, r=2, lora_alpha=4, target_modules=["q_proj"])
    proc = run_cli("diff", str(base), str(adapter), "--json", "--rank", "--tensor", "model.layers.1.*")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kind"] == "adapter"
    assert all(t["name"].startswith("model.layers.1.") for t in out["tensors"])
    changed = [t for t in out["tensors"] if t["delta_norm"] > 0]
    assert [t["name"] for t in changed] == ["model.layers.1.self_attn.q_proj.weight"]
    assert changed[0]["rank"]["effective_rank_99"] <= 2


def test_table_for_people(planted):
    base, tuned = planted
    proc = run_cli("diff", str(base), str(tuned), "--rank", env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "1 of 21 tensors changed" in proc.stdout and "By component" in proc.stdout
    first_row = next(line for line in lines if "model." in line or "lm_head" in line)
    assert "v_proj" in first_row  # largest relative change first


def bad_inputs(tiny_models, tmp_path):
    from test_diff_adapter import make_adapter

    llama = tiny_models("llama")
    small = tiny_models("llama-long")  # same architecture, other sizes
    adapter, _, _ = make_adapter(llama, tmp_path, r=2, lora_alpha=4, target_modules=["q_proj"])
    return llama, small, adapter


def test_bad_inputs_exit_2_and_write_nothing(tiny_models, tmp_path):
    llama, small, adapter = bad_inputs(tiny_models, tmp_path)
    gpt2, qwen2 = tiny_models("gpt2"), tiny_models("qwen2")
    cache = tmp_path / "cache"
    env = {"LLM_INTERNALS_CACHE": str(cache)}
    before = snapshot(llama, small, adapter, gpt2, qwen2)
    cases = [
        (("diff", str(llama), str(gpt2)), ("llama", "gpt2")),  # architectures
        (("diff", str(llama / "model.safetensors"), str(gpt2 / "model.safetensors")), ("no tensor in common",)),
        (("diff", str(llama), str(small)), ("shape [256, 64] in BASE but [256, 32]",)),  # sizes
        (("diff", str(gpt2), str(adapter)), ("q_proj", "BASE does not have")),  # adapter for another base
        (("diff", str(qwen2), str(adapter)), ("shape",)),  # same module names, other sizes
        (("diff", str(llama), str(tmp_path / "nowhere")), ("nowhere",)),  # a missing side
        (("diff", str(tmp_path / "nowhere"), str(llama)), ("nowhere",)),
        (("diff", str(llama)), ("TUNED",)),
        (("diff", str(llama), str(llama), "--tensor", "nothing.*"), ("nothing.*",)),
    ]
    assert_user_error(run_cli(*cases[0][0], env=env), *cases[0][1])  # a real process: its exit status
    for args, words in cases[1:]:  # the rest in this process (the same main, seconds of imports saved each)
        assert_user_error(run_cli_in_process(*args, env=env), *words)
    assert not cache.exists() or not any(cache.rglob("*.json"))
    assert snapshot(llama, small, adapter, gpt2, qwen2) == before


def test_prompt_errors_are_one_line(planted, tmp_path):
    base, tuned = planted
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(base / "config.json", bare / "config.json")
    assert_user_error(run_cli_in_process("diff", str(base), str(bare)), "no weights")
    assert_user_error(run_cli("diff", str(base), str(tuned), "--prompt", "hi", "--dtype", "float7"), "float7")
