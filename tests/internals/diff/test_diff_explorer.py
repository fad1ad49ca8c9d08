"""The explorer with a base (`llm-internals TUNED --base BASE`): the diff operations through an in-process
client equal the engine; mismatched models are one error line and exit 2; the LoRA demo's saved adapter,
diffed against the demo model, changed exactly the tensors it trained."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from internals.demo_path import demo_model_path
from internals.diff import diff_weights, open_compared, open_sides
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory):
    """The `lora` demo (short mode) on the shipped demo model, its adapter saved to a folder of this test."""
    pytest.importorskip("peft")
    import torch

    from internals.model import open_model
    from lessons.demos.registry import run_demo

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("saved") / "lora"
    opened = open_model(str(demo_model_path()))
    try:
        result = run_demo("lora", opened, {"quick": True, "save_to": str(folder)})
    finally:
        opened.close()
    return folder, result


def _client(tuned: str, base: str) -> InProcessClient:
    opened, sides = open_compared(tuned, base)
    service = ModelService(opened)
    service.diff_sides = sides
    return InProcessClient(service)


def test_the_lora_demo_saves_an_adapter_that_changed_exactly_what_it_trained(lora_adapter):
    folder, result = lora_adapter
    saved = result["saved"]
    assert saved["kind"] == "adapter" and Path(saved["path"]) == folder
    assert (folder / "adapter_config.json").is_file() and (folder / "adapter_model.safetensors").is_file()
    assert saved["command"].startswith(f"llm-internals {folder} --base ")
    sides = open_sides(str(demo_model_path()), str(folder))
    try:
        diff = diff_weights(sides, use_cache=False)
    finally:
        sides.close()
    changed = {t["name"] for t in diff["tensors"] if t["delta_norm"] > 0}
    trained = {f"{m}.weight" for m in result["target_modules"]}
    assert changed == trained and diff["kind"] == "adapter"
    # the demo's own merged update of its chosen module, against the engine's figure of that tensor
    chosen = next(t for t in diff["tensors"] if t["name"] == result["module"]["name"] + ".weight")
    assert math.isclose(chosen["rel_change"], result["delta_w"]["relative_norm"], rel_tol=1e-4)


def test_operations_through_a_client_equal_the_engine(lora_adapter):
    folder, result = lora_adapter
    base = str(demo_model_path())
    sides = open_sides(base, str(folder))
    try:
        engine = diff_weights(sides, rank=True, use_cache=False)
    finally:
        sides.close()
    by_name = {t["name"]: t for t in engine["tensors"]}
    client = _client(str(folder), base)
    try:
        assert client.summary()["architecture"] == "Qwen2ForCausalLM"  # the adapter's tree is its base's
        progress: list[float] = []
        summary = client.diff_summary(on_progress=lambda f, m: progress.append(f))
        assert summary["tensors"] == [{**t, "rank": None} for t in engine["tensors"]]
        assert summary["aggregates"] == engine["aggregates"]
        assert progress and progress[-1] == 1.0
        name = result["module"]["name"] + ".weight"
        one = client.diff_tensor(name)
        assert one == {**by_name[name], "rank": None}
        assert client.diff_rank(name) == by_name[name]["rank"]
        assert client.diff_rank(name)["effective_rank_99"] <= 8  # LoRA r=8
        cross = client.cross_layer()  # the cross-layer view's data gains each weight's relative change
        for comp, names in cross["names"].items():
            for layer, n in enumerate(names):
                assert cross["metrics"]["rel_change"][comp][layer] == (None if n is None else by_name[n]["rel_change"])
        assert any(v for v in cross["metrics"]["rel_change"]["q"]) and not any(cross["metrics"]["rel_change"]["down"])
        behaviour = client.diff_behaviour("def greet(name):\n", top=3)
        assert len(behaviour["kl"]) == len(behaviour["tokens"]) and len(behaviour["rose"]) == 3
        assert all(c == pytest.approx(1.0) for c in behaviour["residual_cosine"][0])  # embeddings are not adapted
        assert max(behaviour["kl"]) > 0
    finally:
        client.close()


def test_without_a_base_the_diff_operations_say_how(tiny_models):
    from internals.errors import UserError
    from internals.model import open_model

    client = InProcessClient(ModelService(open_model(str(tiny_models("qwen2")))))
    try:
        with pytest.raises(UserError, match="--base"):
            client.diff_tensor("model.norm.weight")
    finally:
        client.close()


def test_explorer_with_a_mismatched_base_is_one_error_line(tiny_models):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLM_INTERNALS_FORCE_TUI": "1"}
    proc = subprocess.run([sys.executable, "-m", "llm_internals", str(tiny_models("qwen2")), "--base",
                           str(tiny_models("llama"))], capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "TUNED" in lines[0], proc.stderr
    assert proc.stdout == ""


def test_the_before_after_demo_saves_a_fine_tuned_copy_that_changed_exactly_its_layer(tmp_path):
    import torch

    from internals.model import open_model
    from lessons.demos.registry import run_demo

    torch.set_num_threads(1)
    opened = open_model(str(demo_model_path()))
    try:
        result = run_demo("before-after", opened, {"quick": True, "completions": False, "save_to": str(tmp_path / "ft")})
    finally:
        opened.close()
    ft = result["finetune"]
    assert ft["saved"]["kind"] == "model" and ft["steps"] == 3 and ft["final_loss"] < ft["initial_loss"]
    assert (tmp_path / "ft" / "tokenizer.json").is_file()
    assert ft["saved"]["command"] == f"llm-internals {tmp_path / 'ft'} --base {demo_model_path()}"
    sides = open_sides(str(demo_model_path()), str(tmp_path / "ft"))
    try:
        diff = diff_weights(sides, use_cache=False)
    finally:
        sides.close()
    assert not diff["only_in_base"] and not diff["only_in_tuned"] and diff["kind"] == "full"
    changed = sorted(t["name"] for t in diff["tensors"] if t["delta_norm"] > 0)
    assert changed == sorted(ft["trained"]) and all(f"layers.{ft['layer']}." in n for n in changed)
    assert len(changed) == len([t for t in diff["tensors"] if f"layers.{ft['layer']}." in t["name"]])
