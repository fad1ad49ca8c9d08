"""The shipped MoE demo model (internals/demo_moe/): its card's specialisation claims are recomputed here from
the shipped files through the model's own router, and `--demo moe` opens it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internals.demo_model_training import moe_card
from internals.demo_path import demo_model_path, demo_path
from tests_helpers import run_cli

REQUIRED_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
                  "training_log.csv", "metrics.json", moe_card.SAMPLE_FILE, moe_card.SPEC_FILE]


@pytest.fixture(scope="module")
def folder() -> Path:
    path = demo_path("moe")
    assert (path / "model.safetensors").is_file(), (
        f"{path} is missing: run python -m internals.demo_model_training.train_moe --out {path}")
    return path


def test_shipped_files_and_shape(folder):
    for name in REQUIRED_FILES:
        assert (folder / name).is_file(), name
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert size < 20e6
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["MixtralForCausalLM"]
    assert (config["num_local_experts"], config["num_experts_per_tok"], config["num_hidden_layers"]) == (4, 2, 3)


def test_same_tokenizer_as_the_dense_demo(folder):
    from transformers import AutoTokenizer

    text = (folder / moe_card.SAMPLE_FILE).read_text(encoding="utf-8")
    moe = AutoTokenizer.from_pretrained(folder)
    dense = AutoTokenizer.from_pretrained(demo_model_path())
    assert moe(text)["input_ids"] == dense(text)["input_ids"]


def test_token_classes():
    assert [moe_card.token_class(t) for t in ["    ", "\n", " def", " self", "7", " ==", "('", " x1"]] == [
        "whitespace", "whitespace", "keyword", "identifier", "digits", "punctuation", "punctuation", "identifier"]
    assert moe_card.token_class("'s") == "other"


def test_specialisation_recomputed_from_the_shipped_files(folder):
    shipped = json.loads((folder / moe_card.SPEC_FILE).read_text())
    measured = moe_card.measure(folder)
    assert measured == shipped
    for entry in measured["layers"]:  # each token has exactly one first-choice expert per layer
        assert sum(sum(c.values()) for c in entry["first_choice"]) == measured["tokens"]
    card = (folder / "README.md").read_text(encoding="utf-8")
    for line in moe_card.claims(measured):
        assert line in card, line


def test_cli_demo_moe(folder):
    proc = run_cli("summary", "--demo", "moe", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert "Mixtral" in json.dumps(summary)
    proc = run_cli("summary", str(folder), "--demo", "moe")
    assert proc.returncode == 2 and proc.stderr.startswith("error: pass either MODEL")
    assert len(proc.stderr.strip().splitlines()) == 1
