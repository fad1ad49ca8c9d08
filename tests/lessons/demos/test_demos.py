"""The lesson demos, each in quick mode on tiny models (and on the real demo model where it is installed).

A "fake demo model" folder stands in for internals/demo_model: a tiny Qwen2 built by the demo model's own
`build_initial_model` with an init.json, then "trained" (every weight moved; the LM head scaled up so the
teacher's next-token distributions are peaked), with a training_log.csv and a tokenizer.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest

from tests_helpers import REPO

torch = pytest.importorskip("torch")

from internals.errors import UserError  # noqa: E402
from internals.model import open_model  # noqa: E402
from lessons.demos import DEMOS, TRAIN_EXTRA_HINT, MissingExtraError, demo_params, run_demo  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread: on a shared, busy 2-core machine several threads only spin against each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_qwen2(tiny_models):
    return open_model(str(tiny_models("qwen2")))


@pytest.fixture(scope="module")
def fake_demo(tiny_models, tmp_path_factory):
    from transformers import AutoConfig

    from internals.demo_model_training.init_weights import build_initial_model, checksums

    source = tiny_models("qwen2")
    folder = tmp_path_factory.mktemp("fake-demo-model")
    config = AutoConfig.from_pretrained(source)
    model = build_initial_model(config, seed=7)
    (folder / "init.json").write_text(json.dumps({"seed": 7, **checksums(model)}))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5).add_(torch.randn(p.shape, generator=gen) * 0.01)
        model.lm_head.weight.mul_(15.0)
    model.save_pretrained(folder)
    for f in source.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens")):
            shutil.copy(f, folder / f.name)
    rows = ["step,loss,lr,tokens_seen,heldout_loss"] + [
        f"{s},{6.0 - s / 100:.3f},0.001,{s * 512},{'' if s % 200 else f'{6.1 - s / 100:.3f}'}" for s in range(100, 501, 100)]
    (folder / "training_log.csv").write_text("\n".join(rows) + "\n")
    return open_model(str(folder))


class Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.points: list[dict] = []
        self.progress: list[tuple[float, str]] = []
        self.polls = 0
        self.stop_after = stop_after

    def emit(self, point: dict) -> None:
        self.points.append(point)

    def on_progress(self, fraction: float, message: str) -> None:
        self.progress.append((fraction, message))

    def should_stop(self) -> bool:
        self.polls += 1
        return self.stop_after is not None and self.polls > self.stop_after

    def run(self, name: str, opened, **params):
        result = run_demo(name, opened, {"quick": True, **params}, emit=self.emit, progress=self.on_progress,
                          should_stop=self.should_stop)
        json.dumps(result)  # the worker sends it as JSON
        for point in self.points:
            assert set(point) == {"series", "x", "y"} and isinstance(point["series"], str)
            assert isinstance(point["y"], float) and math.isfinite(point["y"])
        assert all(0.0 <= f <= 1.0 for f, _ in self.progress)
        return result

    def series(self, name: str) -> list[float]:
        return [p["y"] for p in self.points if p["series"] == name]


# --- registry ---------------------------------------------------------------------------------------------
def test_importing_demos_does_not_import_torch():
    code = "import sys, lessons.demos; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_registry_matches_the_lessons_demo_ids():
    assert list(DEMOS) == ["pretrain", "before-after", "lora", "dpo", "grpo", "distill", "teacher-sft", "one-head",
                           "sampling", "pass-at-k"]
    catalog = pytest.importorskip("lessons.catalog")
    if hasattr(catalog, "DEMO_IDS"):
        assert set(DEMOS) == set(catalog.DEMO_IDS)
    for info in DEMOS.values():
        assert info.title and info.description and isinstance(info.requires, list)
    assert DEMOS["lora"].requires == ["peft"] and DEMOS["dpo"].optional == ["trl"]


def test_unknown_demo_and_bad_parameters_are_user_errors(tiny_qwen2):
    with pytest.raises(UserError, match="unknown demo 'sft'"):
        run_demo("sft", tiny_qwen2, {})
    with pytest.raises(UserError, match="no parameter 'stepz'"):
        run_demo("pretrain", tiny_qwen2, {"stepz": 3})
    with pytest.raises(UserError, match="must be a int"):
        demo_params("pretrain", {"steps": "many"})
    assert demo_params("pretrain", {"quick": True, "steps": "7"})["steps"] == 7


# --- pretrain ---------------------------------------------------------------------------------------------
def test_pretrain_loss_goes_down_and_ships_the_training_log(fake_demo):
    rec = Recorder()
    result = rec.run("pretrain", fake_demo)
    assert result["steps"] == DEMOS["pretrain"].quick["steps"] and not result["stopped"]
    assert abs(result["initial_loss"] - result["ln_vocab"]) < 0.5  # starts near ln V
    assert result["final_loss"] < result["initial_loss"] - 0.5
    assert result["heldout_loss"][-1][1] < result["heldout_loss"][0][1]
    assert rec.series("loss") == [loss for _, loss in result["loss"]]
    assert "init.json" in result["model"]["init"] and not result["model"]["shrunk"]
    log = result["shipped_log"]
    assert log["columns"] == ["step", "loss", "lr", "tokens_seen", "heldout_loss"]
    assert log["rows"][0] == {"step": 100, "loss": 5.0, "lr": 0.001, "tokens_seen": 51200, "heldout_loss": None}
    assert log["rows"][1]["heldout_loss"] == pytest.approx(4.1)
    assert [s["step"] for s in result["samples"]] == [0, result["steps"] // 2, result["steps"]]


def test_pretrain_shrinks_big_models_and_has_no_log_elsewhere(tiny_qwen2):
    result = Recorder().run("pretrain", tiny_qwen2, steps=2, max_params=10_000)
    assert result["model"]["shrunk"] and result["model"]["layers"] == 2 and "shrunk copy" in result["notes"][0]
    assert result["shipped_log"] is None


def test_the_real_demo_models_training_log_is_read():
    from types import SimpleNamespace

    from lessons.demos.pretrain import read_training_log

    log = read_training_log(SimpleNamespace(source=SimpleNamespace(path=REPO / "internals" / "demo_model")))
    assert {"step", "loss"} <= set(log["columns"]) and log["rows"]
    assert all(isinstance(row["step"], int) and isinstance(row["loss"], float) for row in log["rows"])


# --- before-after -----------------------------------------------------------------------------------------
def _check_histograms(result):
    hist = result["histogram"]
    assert len(hist["edges"]) == len(hist["init"]) + 1 == len(hist["trained"]) + 1
    numel = math.prod(result["shape"])
    assert sum(hist["init"]) == numel == sum(hist["trained"])
    assert result["init"]["numel"] == result["trained"]["numel"] == numel
    for side in ("init", "trained"):
        assert result[side]["std"] > 0 and result[side]["kurtosis"] is not None


def test_before_after_rebuilds_the_demo_models_initial_weights(fake_demo):
    rec = Recorder()
    result = rec.run("before-after", fake_demo)
    assert result["tensor"] == "model.layers.1.mlp.down_proj.weight" and result["init_source"] == "init.json"
    assert result["init_check"]["ok"]
    _check_histograms(result)
    assert result["init"]["std"] == pytest.approx(0.02, rel=0.1)
    assert result["trained"]["std"] > result["init"]["std"] * 1.3
    assert set(result["completions"]) == {"prompt", "initial", "trained"}
    assert any(t["name"] == "lm_head.weight" and t["trained_std"] > 10 * t["init_std"] for t in result["tensors"])
    assert sum(rec.series("init")) == sum(rec.series("trained")) == math.prod(result["shape"])


def test_before_after_uses_init_weights_for_other_models(tiny_qwen2):
    result = Recorder().run("before-after", tiny_qwen2)
    assert result["init_source"] == "_init_weights" and "_init_weights" in result["notes"][0]
    _check_histograms(result)
    assert result["init"]["std"] == pytest.approx(tiny_qwen2.config.initializer_range, rel=0.1)
    norm = Recorder().run("before-after", tiny_qwen2, tensor="model.layers.0.input_layernorm.weight")
    assert norm["init"]["min"] == norm["init"]["max"] == 1.0 and sum(norm["histogram"]["init"]) == 96
    with pytest.raises(UserError, match="no tensor named"):
        run_demo("before-after", tiny_qwen2, {"tensor": "model.nothing.weight"})


def test_before_after_on_the_real_demo_model():
    result = Recorder().run("before-after", open_model(None), completions=False)
    assert result["init_source"] == "init.json" and result["init_check"]["ok"]
    _check_histograms(result)


# --- lora -------------------------------------------------------------------------------------------------
def test_lora_counts_init_training_and_merged_update(tiny_qwen2):
    pytest.importorskip("peft")
    rec = Recorder()
    result = rec.run("lora", tiny_qwen2)
    counts = result["counts"]
    assert counts["formula_matches_peft"] and counts["frozen_matches_base"]
    # r*(in+out) per q, k, v, o: hidden 96, 6 heads of 16, 2 KV heads -> k/v out 32; 3 layers
    assert counts["trainable"] == 3 * 8 * ((96 + 96) + 2 * (96 + 32) + (96 + 96)) == counts["formula"]
    assert counts["total"] - counts["trainable"] == counts["base_parameters"]
    module = result["module"]
    assert module["A_shape"] == [8, module["weight_shape"][1]] and module["B_shape"] == [module["weight_shape"][0], 8]
    assert module["B_zero_at_init"] and result["identical_at_init"]
    assert module["B_nonzero_after"] > 0
    training = result["training"]
    assert training["final_loss"] < training["initial_loss"]
    assert result["completion"]["changed"] or training["final_loss"] < training["initial_loss"]
    delta = result["delta_w"]
    assert delta["rank"] <= 8 and delta["max_abs_diff_vs_peft"] < 1e-6
    assert sum(delta["histogram"]["counts"]) == math.prod(delta["shape"])
    assert rec.series("loss") == [loss for _, loss in training["loss"]]


def test_lora_on_all_linear_projections(tiny_qwen2):
    pytest.importorskip("peft")
    result = Recorder().run("lora", tiny_qwen2, targets="all", steps=1)
    per_layer = 8 * ((96 + 96) + 2 * (96 + 32) + (96 + 96) + 2 * (96 + 160) + (160 + 96))
    assert result["counts"]["trainable"] == 3 * per_layer == result["counts"]["formula"]
    assert len(result["target_modules"]) == 3 * 7


def test_lora_without_peft_says_how_to_install(tiny_qwen2, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(MissingExtraError) as info:
        run_demo("lora", tiny_qwen2, {"quick": True})
    assert TRAIN_EXTRA_HINT in str(info.value) and "pip install 'llm-internals[train]'" in str(info.value)
    assert isinstance(info.value, UserError)


# --- dpo --------------------------------------------------------------------------------------------------
def test_dpo_by_hand_matches_trl(tiny_qwen2):
    rec = Recorder()
    result = rec.run("dpo", tiny_qwen2)
    beta = result["beta"]
    assert result["initial_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert result["history"][-1]["loss"] < result["initial_loss"]
    losses = []
    for pair in result["final"]["per_pair"]:  # the formula, recomputed from the reported log-probabilities
        chosen = pair["policy_chosen"] - pair["ref_chosen"]
        rejected = pair["policy_rejected"] - pair["ref_rejected"]
        assert pair["reward_chosen"] == pytest.approx(beta * chosen, abs=1e-5)
        assert pair["reward_rejected"] == pytest.approx(beta * rejected, abs=1e-5)
        losses.append(-math.log(1 / (1 + math.exp(-beta * (chosen - rejected)))))
    assert result["final"]["loss"] == pytest.approx(sum(losses) / len(losses), abs=1e-5)
    trl = result["trl"]
    if trl["available"] is False:
        pytest.skip("trl is not installed")
    assert trl["same_batch"] and trl["agree"]
    assert abs(trl["loss"] - result["final"]["loss"]) <= 1e-5
    assert rec.series("loss")[0] == pytest.approx(math.log(2), abs=1e-6)


def test_dpo_without_trl_still_computes_by_hand(tiny_qwen2, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)
    result = Recorder().run("dpo", tiny_qwen2, steps=0)
    assert result["trl"]["available"] is False and TRAIN_EXTRA_HINT in result["trl"]["message"]
    assert result["final"]["loss"] == pytest.approx(math.log(2), abs=1e-6)


# --- grpo -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_model():
    return open_model(None)  # the shipped demo model: it can copy a repeated line, so rewards differ


def test_grpo_verifiable_rewards_advantages_and_update_direction(demo_model):
    from lessons.demos.grpo import make_task

    rec = Recorder()
    result = rec.run("grpo", demo_model)
    completions = result["completions"]
    assert len(completions) == DEMOS["grpo"].quick["group"] and not result["std_zero"]
    prompt, answer = make_task("copy", DEMOS["grpo"].params["text"], 0)
    assert (result["prompt"], result["answer"]) == (prompt, answer)
    for c in completions:  # the reward is an exact check of the answer, recomputed here
        assert c["reward"] == (1.0 if c["text"].startswith(answer) else 0.0) and c["correct"] == (c["reward"] == 1.0)
    advantages = [c["advantage"] for c in completions]
    assert sum(advantages) / len(advantages) == pytest.approx(0.0, abs=1e-9)
    rewards = [c["reward"] for c in completions]
    mean = sum(rewards) / len(rewards)
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
    assert advantages == pytest.approx([(r - mean) / std for r in rewards])
    assert result["objective"][0] == pytest.approx(0.0, abs=1e-6)  # ratio = 1 at the first step
    # with beta > 0 a reference is loaded; KL is 0 at the first update (policy = reference), positive after
    assert result["beta"] > 0 and result["reference_loaded"] and len(result["kl"]) == result["updates"] == 2
    assert result["kl"][0] == pytest.approx(0.0, abs=1e-9) and result["kl"][1] > 0
    best = max(completions, key=lambda c: c["advantage"])
    worst = min(completions, key=lambda c: c["advantage"])
    assert best["change"] > 0 > worst["change"]
    assert result["weighted_change"] > 0 and result["agreement"] >= 0.5
    assert rec.series("advantage") == pytest.approx(advantages)


def test_grpo_beta_zero_loads_no_reference_and_add_task(demo_model):
    result = Recorder().run("grpo", demo_model, beta=0.0, task="add", updates=1)
    assert result["reference_loaded"] is False and result["kl"] == []
    assert any("no reference model" in n for n in result["notes"])
    lines = result["prompt"].splitlines()
    for line in lines[:-1]:
        a, b, c = (int(x) for x in line.replace("+", " ").replace("=", " ").split())
        assert a + b == c
    a, b = (int(x) for x in lines[-1].rstrip("=").split("+"))
    assert result["answer"] == f" {a + b}"


def test_grpo_equal_rewards_give_zero_advantages_and_kl_estimator():
    from lessons.demos.grpo import advantages, kl_estimate, reward

    adv, zero = advantages(torch.tensor([1.0, 1.0, 1.0]))
    assert zero and adv.tolist() == [0.0, 0.0, 0.0]
    assert reward(" 12\n", " 12") == 1.0 and reward(" 1", " 12") == 0.0 and reward("", " 1") == 0.0
    logp, ref = torch.log(torch.tensor([0.2, 0.5])), torch.log(torch.tensor([0.4, 0.5]))
    expected = [0.4 / 0.2 - math.log(0.4 / 0.2) - 1, 0.0]
    assert kl_estimate(logp, ref).tolist() == pytest.approx(expected)
    with pytest.raises(UserError, match="beta"):
        run_demo("grpo", open_model(None), {"quick": True, "beta": -1})


# --- distill ----------------------------------------------------------------------------------------------
def test_distillation_kl_decreases(fake_demo):
    rec = Recorder()
    result = rec.run("distill", fake_demo)
    assert result["student"]["parameters"] < result["teacher"]["parameters"]
    assert result["student"]["layers"] < result["teacher"]["layers"]
    heldout = [v for _, v in result["heldout_kl"]]
    assert heldout[-1] < 0.95 * heldout[0] and min(heldout) < heldout[0]
    kl = [v for _, v in result["kl"]]
    assert sum(kl[-3:]) / 3 < sum(kl[:3]) / 3
    assert rec.series("kl") == kl


# --- teacher-sft ------------------------------------------------------------------------------------------
def test_teacher_sft_student_learns_the_teachers_samples(demo_model):
    rec = Recorder()
    result = rec.run("teacher-sft", demo_model)
    assert result["teacher"]["role"].startswith("teacher: the open model")
    assert result["student"]["role"].startswith("student: a 1-layer copy")
    assert result["student"]["layers"] == 1 < result["teacher"]["layers"]
    assert result["student"]["hidden_size"] == result["teacher"]["hidden_size"]
    assert result["student"]["parameters"] < result["teacher"]["parameters"]
    held = [v for _, v in result["heldout_loss"]]
    assert held[-1] < held[0] - 0.3  # it learns the teacher's texts
    assert result["teacher_heldout_loss"] < held[-1]  # and the teacher still predicts them better
    assert rec.series("loss") == [v for _, v in result["loss"]]
    assert result["samples"]["examples"] and all(e["completion"] for e in result["samples"]["examples"])


def test_teacher_sft_loss_masks_the_prompt():
    from lessons.demos.teacher_sft import sft_loss

    class Uniform(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None):
            logits = torch.zeros(*input_ids.shape, 10)
            logits[..., 3] = 5.0
            return type("Out", (), {"logits": logits})()

    ids = torch.tensor([[1, 2, 3, 3]])
    only_completion = torch.tensor([[0, 0, 1, 1]])
    p3 = math.exp(5) / (math.exp(5) + 9)
    assert float(sft_loss(Uniform(), ids, only_completion)) == pytest.approx(-math.log(p3), rel=1e-5)


# --- one-head ---------------------------------------------------------------------------------------------
def _eager(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()


@pytest.mark.parametrize("which, layer, head, position", [("demo", 0, 0, -1), ("demo", 2, 5, 4), ("llama", 1, 3, -2)])
def test_one_head_numbers_match_transformers_attentions(demo_model, tiny_models, which, layer, head, position):
    from internals.demo_path import demo_model_path

    folder = demo_model_path() if which == "demo" else tiny_models("llama")
    opened = demo_model if which == "demo" else open_model(str(folder))
    rec = Recorder()
    result = rec.run("one-head", opened, layer=layer, head=head, position=position)
    assert result["matches"] and result["max_abs_diff_output"] <= 1e-5 and result["max_abs_diff_weights"] <= 1e-5
    model = _eager(folder)
    ids = torch.tensor([_encode(opened, result["prompt"])])
    with torch.no_grad():
        attentions = model(input_ids=ids, output_attentions=True).attentions
    t = result["position"]
    assert t == (position + ids.shape[1] if position < 0 else position)
    expected = attentions[layer][0, head, t, : t + 1]
    weights = torch.tensor([k["weight"] for k in result["keys"]])
    assert torch.allclose(weights, expected, atol=1e-5) and abs(float(weights.sum()) - 1) < 1e-5
    assert float(attentions[layer][0, head, t, t + 1:].abs().sum()) == 0.0  # nothing after the query position
    # softmax of the reported scores gives the reported weights; GQA: head h reads KV head h // group
    scores = torch.tensor([k["score"] for k in result["keys"]], dtype=torch.float64)
    assert torch.allclose(torch.softmax(scores, 0).float(), weights, atol=1e-6)
    cfg = model.config
    assert result["kv_head"] == head // (cfg.num_attention_heads // cfg.num_key_value_heads)
    assert result["argmax_position"] == int(expected.argmax())
    assert rec.series("weight") == pytest.approx(weights.tolist()) and len(rec.series("query")) == 8


def _encode(opened, text):
    """The ids the demos use for `text` (no special tokens), from the model's own tokenizer."""
    from internals.inference.loading import load_tokenizer
    from lessons.demos._common import encode

    return encode(load_tokenizer(opened.source), text)


def test_one_head_rejects_bad_head_position_and_fused_attention(demo_model, tiny_models):
    with pytest.raises(UserError, match="no separate q_proj"):  # GPT-2's fused c_attn
        run_demo("one-head", open_model(str(tiny_models("gpt2"))), {"prompt": "def add(a, b): return a"})
    with pytest.raises(UserError, match="head 99 is out of range"):
        run_demo("one-head", demo_model, {"head": 99})
    with pytest.raises(UserError, match="position 500 is out of range"):
        run_demo("one-head", demo_model, {"position": 500})


# --- sampling ---------------------------------------------------------------------------------------------
def test_sampling_distributions_match_the_models_logits(demo_model):
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    from internals.demo_path import demo_model_path

    rec = Recorder()
    result = rec.run("sampling", demo_model)
    model = _eager(demo_model_path())
    ids = torch.tensor([_encode(demo_model, result["prompt"])])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    assert [t["id"] for t in result["tokens"]] == torch.argsort(logits, descending=True)[:len(result["tokens"])].tolist()
    entropies = []
    for entry in result["per_temperature"]:
        T = entry["temperature"]
        probs = torch.softmax(logits / T, dim=-1)
        for tok in result["tokens"]:
            assert tok["probs"][f"{T:g}"] == pytest.approx(float(probs[tok["id"]]), rel=1e-4, abs=1e-7)
        kept_p = torch.isfinite(TopPLogitsWarper(top_p=result["top_p"])(None, (logits / T).float()[None]))[0]
        assert sorted(entry["top_p_ids"]) == kept_p.nonzero().flatten().tolist()
        kept_k = torch.isfinite(TopKLogitsWarper(top_k=result["top_k"])(None, (logits / T).float()[None]))[0]
        assert sorted(entry["top_k_ids"]) == kept_k.nonzero().flatten().tolist()
        assert entry["top_p_mass"] >= result["top_p"] - 1e-9
        assert entry["entropy"] == pytest.approx(float(-(probs * probs.clamp_min(1e-300).log()).sum()), rel=1e-4)
        entropies.append(entry["entropy"])
        assert rec.series(f"T={T:g}") == pytest.approx([t["probs"][f"{T:g}"] for t in result["tokens"]])
    assert entropies == sorted(entropies)  # temperatures given in increasing order: flatter and flatter
    with pytest.raises(UserError, match="temperatures must be positive"):
        run_demo("sampling", demo_model, {"temperatures": "0,1"})


# --- pass-at-k --------------------------------------------------------------------------------------------
def test_pass_at_k_scores_recomputed_from_the_samples(demo_model):
    from collections import Counter

    rec = Recorder()
    result = rec.run("pass-at-k", demo_model)
    k = result["samples"]
    assert (result["temperature"], result["top_p"]) == (0.6, 0.95)
    majority = []
    for prompt in result["prompts"]:
        samples = prompt["samples"]
        assert len(samples) == k
        for s in samples:
            assert s["correct"] == s["text"].startswith(prompt["answer"])
        c = sum(s["correct"] for s in samples)
        assert prompt["pass_at_1"] == c / k and prompt["pass_at_k"] == (1.0 if c else 0.0)
        counts = Counter(s["answer"] for s in samples)
        top = max(counts.values())
        voted = next(s["answer"] for s in samples if counts[s["answer"]] == top)
        assert prompt["voted"] == voted and prompt["voted_correct"] == (voted == prompt["answer"])
        majority.append(prompt["voted_correct"])
    assert result["pass_at_1"] == pytest.approx(sum(p["pass_at_1"] for p in result["prompts"]) / len(result["prompts"]))
    assert result["majority_accuracy"] == pytest.approx(sum(majority) / len(majority))
    assert 0 < result["pass_at_1"] and rec.series("pass@1") == [p["pass_at_1"] for p in result["prompts"]]


def test_top_p_filter_matches_transformers():
    from transformers.generation.logits_process import TopPLogitsWarper

    from lessons.demos.pass_at_k import top_p_filter

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 50, generator=gen) * 3
    for p in (0.5, 0.9, 0.95):
        kept = top_p_filter(torch.softmax(logits, -1), p) > 0
        assert torch.equal(kept, torch.isfinite(TopPLogitsWarper(top_p=p)(None, logits.clone())))


# --- cancellation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pretrain", "distill", "lora", "dpo", "teacher-sft"])
def test_should_stop_ends_a_demo_early(name, fake_demo):
    if name == "lora":
        pytest.importorskip("peft")
    rec = Recorder(stop_after=2)
    result = rec.run(name, fake_demo, steps=50)
    assert result["stopped"] is True
    assert result["steps"] < 50
