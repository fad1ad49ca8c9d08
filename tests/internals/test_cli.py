"""The command line as a user runs it: real subprocesses, JSON contracts, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

from tests_helpers import DATA, run_cli

REFERENCE_CONFIG = DATA / "deepseek-r1-distill-qwen-1.5b.config.json"




def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_summary_json_reference_config():
    proc = run_cli("summary", str(REFERENCE_CONFIG), "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    for key in ("path", "architecture", "model_type", "num_layers", "hidden_size", "num_attention_heads",
                "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size", "tie_word_embeddings",
                "embeddings_shared", "num_experts", "total_parameters", "parameters_by_component", "layers"):
        assert key in s
    assert s["total_parameters"] == 1_777_088_000
    assert s["architecture"] == "Qwen2ForCausalLM"


def test_summary_table_for_people(tiny_models):
    proc = run_cli("summary", str(tiny_models("qwen2")))
    assert proc.returncode == 0, proc.stderr
    assert "Qwen2ForCausalLM" in proc.stdout and "SwiGLU" in proc.stdout and "Parameters by component" in proc.stdout


def test_stats_json_contract(tiny_models):
    folder = tiny_models("llama", "bfloat16")
    proc = run_cli("stats", str(folder), "--tensor", "model.layers.0.*", "--bins", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    tensors = json.loads(proc.stdout)["tensors"]
    assert tensors and all(t["name"].startswith("model.layers.0.") for t in tensors)
    for t in tensors:
        assert len(t["histogram"]["edges"]) == 17 and len(t["histogram"]["counts"]) == 16
        assert sum(t["histogram"]["counts"]) == t["numel"] - t["nan"] - t["inf"]
        assert set(t["quantiles"]) == {"p1", "p5", "p25", "p50", "p75", "p95", "p99"}
        assert t["dtype"] == "bfloat16"


def test_stats_all_tensors_and_cache(tiny_models, tmp_path):
    folder = tiny_models("qwen2")
    env = {"LLM_INTERNALS_CACHE": str(tmp_path / "c")}
    first = run_cli("stats", str(folder), "--json", env=env)
    assert first.returncode == 0, first.stderr
    tensors = json.loads(first.stdout)["tensors"]
    from internals.model import open_model

    assert len(tensors) == len(open_model(str(folder)).store)
    assert list((tmp_path / "c" / "stats").glob("*.json"))
    second = run_cli("stats", str(folder), "--json", env=env)
    assert json.loads(second.stdout) == json.loads(first.stdout)


def test_default_command_without_explorer_args_is_not_an_error(tiny_models):
    proc = run_cli("--help")
    assert proc.returncode == 0 and "summary" in proc.stdout


# --- bad input -------------------------------------------------------------------------------------------

def test_missing_path():
    assert_user_error(run_cli("summary", "./no/such/folder"), "no such file")


def test_hub_id_not_cached(tmp_path):
    proc = run_cli("summary", "someone/not-a-cached-model", env={"HF_HOME": str(tmp_path / "hf")})
    assert_user_error(proc, "not in the local Hugging Face cache", "hf download")


def test_config_without_weights_where_weights_are_needed():
    assert_user_error(run_cli("stats", str(REFERENCE_CONFIG)), "no weights")


def test_truncated_safetensors(tiny_models, tmp_path):
    src = tiny_models("llama") / "model.safetensors"
    bad = tmp_path / "truncated.safetensors"
    data = src.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    before = bad.read_bytes()
    assert_user_error(run_cli("stats", str(bad)), "truncated")
    assert bad.read_bytes() == before  # nothing written


def test_corrupt_header(tmp_path):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(struct.pack("<Q", 12) + b"not json!!!!" + b"\0" * 16)
    assert_user_error(run_cli("summary", str(bad)), "corrupt")


def test_header_offsets_out_of_range(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                         "x": {"dtype": "F32", "shape": [1000], "data_offsets": [16, 4016]}}).encode()
    bad = tmp_path / "offsets.safetensors"
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    assert_user_error(run_cli("stats", str(bad)), "truncated")


def test_unreadable_dtype(tmp_path):
    header = json.dumps({"w": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}}).encode()
    bad = tmp_path / "dtype.safetensors"
    bad.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    assert_user_error(run_cli("stats", str(bad)), "C64")


def test_unknown_architecture(tmp_path):
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-arch-xyz", "architectures": ["NoSuch"]}))
    assert_user_error(run_cli("summary", str(folder)), "unknown architecture")


def test_remote_code_needs_opt_in(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "custom-thing", "architectures": ["CustomLM"],
        "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    (folder / "configuration_custom.py").write_text("raise SystemExit('model code must not run')\n")
    proc = run_cli("summary", str(folder))
    assert_user_error(proc, "--trust-remote-code")


def test_pickle_checkpoint_refused(tmp_path):
    import pickle

    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(DATA / "deepseek-r1-distill-qwen-1.5b.config.json", folder / "config.json")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"x": Evil()}, fh)
    proc = run_cli("stats", str(folder))
    assert_user_error(proc, "refusing to unpickle")
    assert not (tmp_path / "pwned").exists()


def test_weights_only_pickle_is_read(tiny_models, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "legacy"
    folder.mkdir()
    shutil.copy(tiny_models("llama") / "config.json", folder / "config.json")
    state = load_file(tiny_models("llama") / "model.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    proc = run_cli("stats", str(folder), "--tensor", "model.norm.weight", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tensors"][0]["numel"] == 64


def test_bad_arguments_are_one_line():
    assert_user_error(run_cli("stats", "--bins", "0"), "--bins")
    assert_user_error(run_cli("stats", "--nonsense"), "unrecognized")


def test_glob_matching_nothing(tiny_models):
    assert_user_error(run_cli("stats", str(tiny_models("llama")), "--tensor", "nothing.*"), "no stored tensor matches")


def test_explorer_reports_a_model_its_worker_cannot_open(tmp_path):
    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-arch-xyz"}))
    proc = run_cli(str(folder), env={"LLM_INTERNALS_FORCE_TUI": "1"})
    assert_user_error(proc, "unknown architecture")


def test_explorer_closes_with_the_error_when_its_worker_refuses_a_provisional_tree(tmp_path):
    """Headers and config look fine (so the tree is drawn at once), but transformers cannot build a causal LM."""
    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path / "vit"
    folder.mkdir()
    save_file({"embeddings.patch_embeddings.projection.weight": np.zeros((8, 3, 4, 4), np.float32)}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 8,  # no "architectures"
                                                    "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir())
    # the worker builds the exact tree at once (it would otherwise wait IMPORT_DELAY_S for a first weight question)
    proc = run_cli(str(folder), env={"LLM_INTERNALS_FORCE_TUI": "1", "LLM_INTERNALS_IMPORT_DELAY_S": "0"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    after_screen = proc.stderr.rsplit("\x1b[", 1)[-1].split("l", 1)[-1]  # after the last restore sequence
    assert after_screen.startswith("error: ") and after_screen.count("\n") <= 1, proc.stderr[-300:]
    assert "not a causal language model" in after_screen
    assert sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir()) == before


def test_explorer_without_a_terminal_says_what_to_use():
    assert_user_error(run_cli(str(DATA / "deepseek-r1-distill-qwen-1.5b.config.json")), "needs a terminal")
