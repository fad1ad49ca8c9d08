"""A hub id is read from the local Hugging Face cache, with no network (HF_HUB_OFFLINE=1 in tests)."""

from __future__ import annotations

import json
import shutil

from tests_helpers import run_cli


def fake_hub_cache(hf_home, repo_id: str, folder, revision: str = "main", commit: str = "0" * 40):
    """Lay out files the way huggingface_hub's cache does: blobs, snapshots/<commit>/, refs/<revision>."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(commit)
    for f in folder.iterdir():
        shutil.copy(f, snapshot / f.name)
    return snapshot


# huggingface_hub reads HF_HOME when it is imported, so each case runs in a fresh process.

def test_hub_id_resolves_from_the_cache(tiny_models, tmp_path):
    hf_home = tmp_path / "hf"
    snapshot = fake_hub_cache(hf_home, "someone/tiny-llama", tiny_models("llama"))
    proc = run_cli("summary", "someone/tiny-llama", "--json", env={"HF_HOME": str(hf_home)})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["source_kind"] == "hub" and summary["path"] == str(snapshot)
    assert summary["architecture"] == "LlamaForCausalLM"
    stats = run_cli("stats", "someone/tiny-llama", "--tensor", "model.norm.weight", "--json", env={"HF_HOME": str(hf_home)})
    assert stats.returncode == 0 and json.loads(stats.stdout)["tensors"][0]["numel"] == 64


def test_revision_selects_a_cached_snapshot(tiny_models, tmp_path):
    hf_home = tmp_path / "hf"
    fake_hub_cache(hf_home, "someone/tiny", tiny_models("qwen2"), revision="v2", commit="1" * 40)
    proc = run_cli("summary", "someone/tiny", "--revision", "v2", "--json", env={"HF_HOME": str(hf_home)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["path"].endswith("1" * 40)
    proc = run_cli("summary", "someone/tiny", "--revision", "v3", env={"HF_HOME": str(hf_home)})
    assert proc.returncode == 2 and proc.stderr.startswith("error: someone/tiny is not in the local Hugging Face cache")
