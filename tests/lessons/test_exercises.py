"""Predict-then-check exercises: the format, every answer computed live on real model folders and checked
against an independent computation (safetensors headers, real modules, a real peft model, the demos' own runs),
checking typed guesses, and the progress file."""

from __future__ import annotations

import json
import math
import struct
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lessons import lesson_facts, lesson_links, load_lessons, parse_link, render_lesson, resolve_link
from lessons.catalog import Exercise, LessonError, all_exercises, lesson_exercises, parse_exercises
from lessons.exercises import ANSWERS, AnswerUnavailable, LiveAnswer, check_answer, compute_answer
from lessons.progress import Progress, ProgressWarning, load_progress, progress_path, save_progress

MODELS = ("demo", "llama", "mixtral")


# --- format ---------------------------------------------------------------------------------------------------------
def test_every_lesson_has_an_exercise_with_a_registered_answer():
    exercises = all_exercises()
    for lesson in load_lessons():
        assert lesson_exercises(lesson), f"{lesson.path}: no exercise"
    assert {ex.answer for ex in exercises} <= set(ANSWERS)
    assert len({ex.id for ex in exercises}) == len(exercises)


def test_parse_exercise_block_and_errors():
    md = ("text\n```exercise\nid: a-b\nanswer: rope_pairs\nkind: choice\nchoices: x, y\ngiven: k=1; j=two\n"
          "Which one?\nSecond line.\n```\n")
    (ex,) = parse_exercises(md, "les")
    assert ex == Exercise(id="a-b", lesson="les", answer="rope_pairs", kind="choice", question="Which one? Second line.",
                          choices=("x", "y"), given=(("k", "1"), ("j", "two")))
    rendered = render_lesson(md, {}, strict=True)
    assert "```exercise" not in rendered and "**Predict, then check** (`a-b`): Which one? Second line." in rendered
    for bad in ("```exercise\nanswer: x\nkind: number\nQ\n```\n", "```exercise\nid: a\nanswer: x\nkind: guess\nQ\n```\n",
                "```exercise\nid: a\nanswer: x\nkind: choice\nQ\n```\n", "```exercise\nid: a\nanswer: x\nkind: number\n```\n"):
        with pytest.raises(LessonError):
            parse_exercises(bad)


# --- real model folders ---------------------------------------------------------------------------------------------
def _header(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes straight from the safetensors header (8-byte length, then JSON)."""
    shapes = {}
    for file in sorted(folder.glob("*.safetensors")):
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            head = json.loads(fh.read(n))
        shapes.update({k: v["shape"] for k, v in head.items() if k != "__metadata__"})
    return shapes


@pytest.fixture(scope="module")
def folders(tiny_models):
    from internals.demo_path import demo_model_path

    return {"demo": Path(demo_model_path()), "llama": Path(tiny_models("llama")), "mixtral": Path(tiny_models("mixtral"))}


@pytest.fixture(scope="module")
def opened_models(folders):
    from internals.model import open_model

    out = {}
    for which, folder in folders.items():
        opened = open_model(str(folder))
        summary, tree = opened.summary(), opened.tree()
        out[which] = (opened, summary, tree, lesson_facts(summary, tree))
    return out


@pytest.fixture(scope="module")
def hf_models(folders):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    return {w: AutoModelForCausalLM.from_pretrained(f, attn_implementation="eager").eval() for w, f in folders.items()}


def _answers(opened_models, which, with_model=False):
    opened, _, tree, facts = opened_models[which]
    out = {}
    for ex in all_exercises():
        if ANSWERS[ex.answer].needs == "model" and not with_model:
            with pytest.raises(AnswerUnavailable):
                compute_answer(ex, facts, tree)
            continue
        out[ex.answer] = (ex, compute_answer(ex, facts, tree, opened if with_model else None))
    return out


@pytest.mark.parametrize("which", MODELS)
def test_links_placeholders_and_questions_resolve(opened_models, which):
    _, _, tree, facts = opened_models[which]
    names = {n["name"] for n in tree}
    for lesson in load_lessons():
        text = render_lesson(lesson, facts, strict=True)
        for target in lesson_links(text):
            assert resolve_link(parse_link(target), names, facts) is None, (lesson.path, target, which)
        for ex in lesson_exercises(lesson):
            assert "n/a" not in render_lesson(ex.question, facts, strict=True), (ex.id, which)


@pytest.mark.parametrize("which", MODELS)
def test_facts_answers_match_headers_and_modules(opened_models, folders, hf_models, which):
    import torch

    answers = _answers(opened_models, which)
    header = _header(folders[which])
    model = hf_models[which]
    cfg = model.config
    facts = opened_models[which][3]
    value = {key: live.value for key, (ex, live) in answers.items()}
    assert value["q_proj_shape_first"] == header["model.layers.0.self_attn.q_proj.weight"]
    assert value["k_proj_shape_first"] == header["model.layers.0.self_attn.k_proj.weight"]
    assert value["embed_rows"] == header["model.embed_tokens.weight"][0] == cfg.vocab_size
    assert value["lm_head_shape"] == header["lm_head.weight"]
    assert value["teacher_probs_per_position"] == cfg.vocab_size
    assert value["final_norm_params"] == math.prod(header["model.norm.weight"])
    assert value["params_per_layer"] == sum(math.prod(s) for k, s in header.items() if k.startswith("model.layers.0."))
    # the MLP block of the loaded module (Mixtral's file keeps legacy per-expert names, the module fuses them)
    mlp = model.get_submodule(facts["mlp_node_first"])
    assert value["mlp_params_first"] == sum(p.numel() for p in mlp.parameters())
    assert value["rope_pairs"] == model.model.rotary_emb.inv_freq.numel()
    assert value["residual_writes"] == 2 * len(model.model.layers)
    # KV cache: bytes of the real cache after one token, in bf16
    with torch.no_grad():
        cache = model(input_ids=torch.tensor([[1]]), use_cache=True).past_key_values
    kv = sum(layer.keys.numel() + layer.values.numel() for layer in cache.layers) * 2
    assert value["kv_cache_bytes_per_token_bf16"] == kv
    total = sum(p.numel() for p in model.parameters())
    assert value["full_ft_adam_gb"] == pytest.approx(16 * total / 1e9)
    assert value["ppo_four_models_gb"] == pytest.approx(8 * total / 1e9)
    groups = Counter()
    for name, p in model.named_parameters():
        groups["embedding" if "embed" in name else "lm_head" if "lm_head" in name else "norm" if "norm" in name
               else "attention" if "self_attn" in name else "mlp"] += p.numel()
    assert value["largest_component"] == groups.most_common(1)[0][0]
    # QLoRA: bitsandbytes swaps the nn.Linear modules inside the layers; everything else stays 16-bit
    linear = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    if which == "mixtral":  # router Linears: facts leave them 16-bit (a small difference, documented)
        linear -= sum(m.weight.numel() for n, m in model.model.layers.named_modules()
                      if isinstance(m, torch.nn.Linear) and n.endswith(".gate"))
    expected = (linear * (4 + 8 / 64 + 32 / (64 * 256)) / 8 + (total - linear) * 2) / 2**30
    assert value["qlora_base_gib"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("which", ["demo", "llama"])
def test_lora_answers_match_a_real_peft_model(opened_models, folders, which):
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    answers = _answers(opened_models, which)
    model = AutoModelForCausalLM.from_pretrained(folders[which])
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    assert answers["lora_r16_all"][1].value == trainable
    t, everything = wrapped.get_nb_trainable_parameters()
    ex, live = answers["lora_r16_all_peft_pct"]
    assert check_answer(ex, f"{100 * t / everything:.4f}", live).correct


def test_pure_answers_against_other_implementations(opened_models):
    torch = pytest.importorskip("torch")
    from lessons.demos.grpo import advantages

    answers = _answers(opened_models, "demo")
    ex, live = answers["grpo_advantage"]
    rewards = torch.tensor([float(x) for x in ex.given_dict["rewards"].split(",")])
    assert live.value == pytest.approx(float(advantages(rewards)[0][int(ex.given_dict["index"])]))
    ex, live = answers["bpe_merge"]
    # an independent BPE: rebuild the words as strings with spaces between symbols and count with Counter
    words = [" ".join(w) for w in ex.given_dict["corpus"].split()]
    merge = None
    for _ in range(int(ex.given_dict["merge"])):
        pairs = Counter()
        order = []
        for w in words:
            sym = w.split(" ")
            for pair in zip(sym, sym[1:]):
                pairs[pair] += 1
                if pair not in order:
                    order.append(pair)
        top = max(pairs.values())
        merge = next(p for p in order if pairs[p] == top)
        words = [(" " + w + " ").replace(f" {merge[0]} {merge[1]} ", f" {merge[0]}{merge[1]} ").strip() for w in words]
    assert live.value == f"{merge[0]}+{merge[1]}"


def test_demo_answers_match_the_demos_runs(opened_models):
    pytest.importorskip("torch")
    from lessons.demos import run_demo

    opened = opened_models["demo"][0]
    answers = _answers(opened_models, "demo")
    ex, live = answers["pretrain_initial_loss"]
    first = run_demo("pretrain", opened, {"quick": True, "steps": 1})["initial_loss"]
    assert check_answer(ex, f"{first:.3f}", live).correct, (first, live.value)
    ex, live = answers["dpo_initial_loss"]
    first = run_demo("dpo", opened, {"quick": True, "steps": 1})["initial_loss"]
    assert check_answer(ex, f"{first:.4f}", live).correct


def test_previous_token_layer_matches_transformers_attentions(opened_models, hf_models):
    import torch
    from transformers import AutoTokenizer

    from internals.demo_path import demo_model_path
    from lessons.exercises import PREVIOUS_TOKEN_TEXT

    answers = _answers(opened_models, "demo", with_model=True)
    ex, live = answers["best_previous_token_layer"]
    tok = AutoTokenizer.from_pretrained(demo_model_path())
    ids = torch.tensor([tok(PREVIOUS_TOKEN_TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        att = hf_models["demo"](input_ids=ids, output_attentions=True).attentions
    scores = torch.stack([a[0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1) for a in att])  # [layers, heads]
    assert live.value == int(scores.max(dim=1).values.argmax())
    assert check_answer(ex, str(live.value), live).correct


# --- checking a guess -----------------------------------------------------------------------------------------------
def test_check_answer_kinds():
    num = Exercise(id="n", lesson="l", answer="x", kind="number", question="q")
    assert check_answer(num, "1,536", LiveAnswer(1536, "why")).correct
    assert not check_answer(num, "1537", LiveAnswer(1536, "why")).correct
    assert check_answer(num, "8.0 nats", LiveAnswer(8.3, "", tolerance=0.05)).correct
    assert not check_answer(num, "7.5", LiveAnswer(8.3, "", tolerance=0.05)).correct
    bad = check_answer(num, "many", LiveAnswer(3, "why"))
    assert not bad.correct and bad.problem and bad.answer == "3" and bad.explanation == "why"
    shape = Exercise(id="s", lesson="l", answer="x", kind="shape", question="q")
    for typed in ("[256, 1536]", "256x1536", "(256 1536)"):
        assert check_answer(shape, typed, LiveAnswer([256, 1536], "")).correct
    assert not check_answer(shape, "[1536, 256]", LiveAnswer([256, 1536], "")).correct
    choice = Exercise(id="c", lesson="l", answer="x", kind="choice", question="q", choices=("mlp", "attention"))
    assert check_answer(choice, "MLP", LiveAnswer("mlp", "")).correct and check_answer(choice, "1", LiveAnswer("mlp", "")).correct
    assert check_answer(choice, "bananas", LiveAnswer("mlp", "")).problem
    text = Exercise(id="t", lesson="l", answer="x", kind="text", question="q")
    assert check_answer(text, " u + n ", LiveAnswer("u+n", "")).correct


# --- progress -------------------------------------------------------------------------------------------------------
def test_progress_round_trip_atomic_and_broken_file(tmp_path, monkeypatch):
    monkeypatch.delenv("LLM_INTERNALS_PROGRESS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert progress_path() == tmp_path / "data" / "llm-internals" / "progress.json"
    p = load_progress()
    assert p == Progress()
    p.mark_opened("gqa", read=True)
    p.record_attempt("gqa-k-shape", "[1, 2]", False)
    p.record_attempt("gqa-k-shape", "[256, 1536]", True)
    p.record_attempt("gqa-k-shape", "oops", False)  # once solved, stays solved
    written = save_progress(p)
    assert [f.name for f in written.parent.iterdir()] == ["progress.json"]  # no temporary file left
    again = load_progress()
    assert again.solved("gqa-k-shape") and again.exercises["gqa-k-shape"]["attempts"] == 3
    assert again.lessons["gqa"]["read"] is True
    written.write_text("{not json")
    with pytest.warns(ProgressWarning):
        assert load_progress() == Progress()
    written.write_text("[1, 2]")
    with pytest.warns(ProgressWarning):
        assert load_progress() == Progress()
    monkeypatch.setenv("LLM_INTERNALS_PROGRESS", str(tmp_path / "elsewhere.json"))
    assert progress_path() == tmp_path / "elsewhere.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_progress() == Progress()


# --- Part 3: inference, quantization, mixture of experts, reasoning, one head ----------------------------------------
def _exercise(answer_key: str) -> Exercise:
    return next(ex for ex in all_exercises() if ex.answer == answer_key)


@pytest.mark.parametrize("which", MODELS)
def test_part3_facts_answers_against_real_modules(opened_models, hf_models, which):
    import torch

    _, _, tree, facts = opened_models[which]
    model = hf_models[which]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[1, 2]]), use_cache=True, output_hidden_states=True)
    two_tokens_bf16 = sum(layer.keys.numel() + layer.values.numel() for layer in out.past_key_values.layers) * 2
    per_token = two_tokens_bf16 // 2
    live = compute_answer(_exercise("kv_cache_32k_mib"), facts, tree)
    assert live.value == pytest.approx(per_token * 32768 / 2**20)
    assert compute_answer(_exercise("lens_rows"), facts, tree).value == len(out.hidden_states)
    experts = compute_answer(_exercise("experts_per_mlp"), facts, tree).value
    cfg_experts = getattr(model.config, "num_local_experts", None)
    assert experts == (cfg_experts or 1)
    if cfg_experts:  # the router's output width is the number of experts
        router = model.model.layers[0].mlp.gate
        assert router.weight.shape[0] == experts
    else:
        assert not any("expert" in n for n, _ in model.named_modules())


def test_part3_given_answers_against_other_implementations(opened_models):
    import itertools

    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    _, _, tree, facts = opened_models["demo"]
    ex = _exercise("pass_at_k")
    n, c, k = (int(ex.given_dict[x]) for x in ("n", "c", "k"))
    outcomes = [True] * c + [False] * (n - c)  # brute force: every subset of k samples, passes if any is right
    subsets = list(itertools.combinations(range(n), k))
    expected = sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)
    assert compute_answer(ex, facts, tree).value == pytest.approx(expected)

    ex = _exercise("temperature_prob")
    logits = torch.tensor([float(x) for x in ex.given_dict["logits"].split(",")])
    probs = torch.softmax(logits / float(ex.given_dict["T"]), dim=-1)
    live = compute_answer(ex, facts, tree)
    assert live.value == pytest.approx(float(probs[int(ex.given_dict["index"])]))
    assert check_answer(ex, f"{float(probs[0]):.3f}", live).correct

    ex = _exercise("top_p_size")
    logits = torch.tensor([[float(x) for x in ex.given_dict["logits"].split(",")]])
    warped = TopPLogitsWarper(top_p=float(ex.given_dict["p"]), min_tokens_to_keep=1)(None, logits)
    assert compute_answer(ex, facts, tree).value == int(torch.isfinite(warped).sum())

    ex = _exercise("absmax_int8")
    values = torch.tensor([float(x) for x in ex.given_dict["values"].split(",")])
    scale = float(values.abs().max()) / 127
    with warnings.catch_warnings():  # torch's quantized tensors are deprecated, but still an independent reference
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_tensor(values, scale, 0, torch.qint8).int_repr()
    assert compute_answer(ex, facts, tree).value == int(q[int(ex.given_dict["index"])])


def _excess_kurtosis(w):
    x = w.double().reshape(-1)
    c = x - x.mean()
    return float((c ** 4).mean() / (c ** 2).mean() ** 2 - 3)


@pytest.mark.parametrize("which", ["demo", "llama"])
def test_largest_kurtosis_matches_the_safetensors_weights(opened_models, folders, which):
    from safetensors.torch import load_file

    from lessons.exercises import layer0_kurtosis

    opened, _, tree, facts = opened_models[which]
    weights = {}
    for file in folders[which].glob("*.safetensors"):
        weights.update(load_file(file))
    comps = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
             "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
    expected = {c: _excess_kurtosis(weights[f"model.layers.0.{m}.weight"]) for c, m in comps.items()}
    engine = layer0_kurtosis(opened, facts)
    assert engine.keys() == expected.keys()
    for c in expected:
        assert engine[c] == pytest.approx(expected[c], rel=1e-3, abs=1e-3)
    ex = _exercise("largest_kurtosis_first")
    with pytest.raises(AnswerUnavailable):
        compute_answer(ex, facts, tree)
    live = compute_answer(ex, facts, tree, opened)
    assert live.value == max(expected, key=expected.get)
    assert check_answer(ex, live.value.upper(), live).correct


def test_head_argmax_matches_transformers_attentions(opened_models, hf_models):
    import torch
    from transformers import AutoTokenizer

    from internals.demo_path import demo_model_path
    from lessons.exercises import ONE_HEAD_TEXT

    opened, _, tree, facts = opened_models["demo"]
    ex = _exercise("head_argmax_position")
    live = compute_answer(ex, facts, tree, opened)
    tok = AutoTokenizer.from_pretrained(demo_model_path())
    ids = torch.tensor([tok(ONE_HEAD_TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        att = hf_models["demo"](input_ids=ids, output_attentions=True).attentions
    layer, head = int(ex.given_dict["layer"]), int(ex.given_dict["head"])
    assert live.value == int(att[layer][0, head, -1].argmax())
    assert check_answer(ex, str(live.value), live).correct


# --- interpretability in practice: patching and sinks, against hand-written hooks on transformers' modules ---------
def _last_logit_diff(model, ids, hooks, target, other):
    """logit[target] - logit[other] at the last position with `hooks` ((module, kind, fn) triples) installed."""
    import torch

    handles = [m.register_forward_pre_hook(fn) if kind == "pre" else m.register_forward_hook(fn) for m, kind, fn in hooks]
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1].double()
    finally:
        for h in handles:
            h.remove()
    return float(logits[target] - logits[other]), logits


def test_patching_exercises_match_a_hand_written_patch(opened_models, hf_models):
    """The engine's answers (activation_patching) against an unbatched patch written here: one hook on each layer's
    attention module (its output is what the block adds) or on o_proj's input (one head's slice)."""
    import numpy as np
    import torch

    opened, _, tree, facts = opened_models["demo"]
    model = hf_models["demo"]
    layer_ex, head_ex = _exercise("patching_best_attention_layer"), _exercise("patching_best_head_share")
    assert layer_ex.given_dict == head_ex.given_dict
    n, seed = int(layer_ex.given_dict["tokens"]), int(layer_ex.given_dict["seed"])
    rng = np.random.default_rng(seed)  # the prompt the lesson states: n random ids, repeated; first copy corrupted
    vocab = model.config.vocab_size
    first, other_ids = rng.integers(100, vocab, n).tolist(), rng.integers(100, vocab, n).tolist()
    clean, corrupt = torch.tensor([first + first[:-1]]), torch.tensor([other_ids + first[:-1]])
    layers = model.model.layers
    saved_attn, saved_heads = {}, {}

    def keep(i):
        def hook(module, args, output):
            saved_attn[i] = output[0][0].clone()
        return hook

    def keep_in(i):
        def hook(module, args):
            saved_heads[i] = args[0][0].clone()
        return hook

    hooks = [(layer.self_attn, "post", keep(i)) for i, layer in enumerate(layers)]
    hooks += [(layer.self_attn.o_proj, "pre", keep_in(i)) for i, layer in enumerate(layers)]
    _, clean_logits = _last_logit_diff(model, clean, hooks, 0, 0)
    target = int(clean_logits.argmax())
    assert target == first[-1]  # the model continues the repeat
    _, corrupt_logits = _last_logit_diff(model, corrupt, [], 0, 0)
    top2 = corrupt_logits.topk(2).indices.tolist()
    other = top2[0] if top2[0] != target else top2[1]
    clean_diff = float(clean_logits[target] - clean_logits[other])
    corrupt_diff = float(corrupt_logits[target] - corrupt_logits[other])

    def put_last(i):
        def hook(module, args, output):
            output[0][0, -1] = saved_attn[i][-1]
        return hook

    layer_scores = [(_last_logit_diff(model, corrupt, [(layers[i].self_attn, "post", put_last(i))], target, other)[0]
                     - corrupt_diff) / (clean_diff - corrupt_diff) for i in range(len(layers))]
    live = compute_answer(layer_ex, facts, tree, opened)
    assert live.value == int(np.argmax(layer_scores))
    assert check_answer(layer_ex, str(live.value), live).correct

    best = int(np.argmax(layer_scores))
    heads = model.config.num_attention_heads
    width = layers[best].self_attn.o_proj.in_features // heads

    def put_head(h):
        def hook(module, args):
            x = args[0].clone()
            x[0, :, h * width:(h + 1) * width] = saved_heads[best][:, h * width:(h + 1) * width]
            return (x, *args[1:])
        return hook

    head_scores = [(_last_logit_diff(model, corrupt, [(layers[best].self_attn.o_proj, "pre", put_head(h))], target,
                                     other)[0] - corrupt_diff) / (clean_diff - corrupt_diff) for h in range(heads)]
    share = max(head_scores)
    expected = "under 25%" if share < 0.25 else "25-50%" if share < 0.5 else "50-75%" if share < 0.75 else "over 75%"
    live = compute_answer(head_ex, facts, tree, opened)
    assert live.value == expected and expected in head_ex.choices
    assert check_answer(head_ex, expected, live).correct
    # the finding the lesson asks the student to check: the layer's heads are redundant on the demo model
    assert layer_scores[best] > 0.5 and share < layer_scores[best] / 2, (layer_scores, head_scores)


def test_sink_head_matches_transformers_output_attentions(opened_models, hf_models):
    import torch
    from transformers import AutoTokenizer

    from internals.demo_path import demo_model_path
    from lessons.exercises import SINK_TEXT

    opened, _, tree, facts = opened_models["demo"]
    ex = _exercise("sink_head")
    with pytest.raises(AnswerUnavailable):
        compute_answer(ex, facts, tree)
    live = compute_answer(ex, facts, tree, opened)
    tok = AutoTokenizer.from_pretrained(demo_model_path())
    ids = torch.tensor([tok(SINK_TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        att = hf_models["demo"](input_ids=ids, output_attentions=True).attentions  # eager: the real weights
    share = att[int(ex.given_dict["layer"])][0, :, 1:, 0].mean(dim=-1)  # [heads]: weight on position 0, queries >= 1
    assert live.value == int(share.argmax())
    assert check_answer(ex, str(live.value), live).correct
    # the lesson's attention link shows the student the same snippet
    lesson = render_lesson(next(x for x in load_lessons() if x.id == ex.lesson), facts, strict=True)
    prompts = [parse_link(t).prompt for t in lesson_links(lesson) if t.startswith("llm:attention")]
    assert SINK_TEXT in prompts


def _spikes_by_svd(w: np.ndarray) -> int:
    """Spikes counted independently: numpy's SVD, the MP edge σ²N(1+√(M/N))² plus 4 Tracy–Widom units."""
    w = np.asarray(w, dtype=np.float64)
    lam = np.linalg.svd(w, compute_uv=False) ** 2
    n, m = max(w.shape), min(w.shape)
    s2 = w.var()
    edge = s2 * n * (1 + math.sqrt(m / n)) ** 2
    tw = s2 * (math.sqrt(n) + math.sqrt(m)) * (1 / math.sqrt(n) + 1 / math.sqrt(m)) ** (1 / 3)
    return int(np.sum(lam > edge + 4 * tw))


def test_spike_answers_match_numpy_svd_of_the_trained_and_initial_weights(opened_models, folders):
    from safetensors.numpy import load_file

    from internals.demo_model_training.init_weights import read_init
    from lessons.exercises import initial_matrix

    opened, _, tree, facts = opened_models["demo"]
    name = facts["q_weight_first"]
    trained = load_file(next(folders["demo"].glob("*.safetensors")))[name]
    initial = initial_matrix(opened.source, name)
    recorded = read_init(folders["demo"])["tensors"][name]  # the shipped checksums of the real initial weights
    assert list(initial.shape) == recorded["shape"]
    assert initial.sum() == pytest.approx(recorded["sum"], rel=1e-6, abs=1e-6)
    assert np.abs(initial).sum() == pytest.approx(recorded["abs_sum"], rel=1e-9)
    before, after = _exercise("spikes_initial_q_first"), _exercise("spikes_trained_q_first")
    for ex in (before, after):
        with pytest.raises(AnswerUnavailable):
            compute_answer(ex, facts, tree)
    live_before = compute_answer(before, facts, tree, opened)
    live_after = compute_answer(after, facts, tree, opened)
    assert live_before.value == _spikes_by_svd(initial) == 0  # random: inside the bulk
    assert live_after.value == _spikes_by_svd(trained) > 0  # trained: directions out of the noise
    assert check_answer(before, "0", live_before).correct and not check_answer(before, "5", live_before).correct
    assert check_answer(after, str(live_after.value), live_after).correct


def test_spike_answers_need_the_demo_models_init(opened_models):
    opened, _, tree, facts = opened_models["llama"]
    with pytest.raises(AnswerUnavailable, match="init.json"):
        compute_answer(_exercise("spikes_initial_q_first"), facts, tree, opened)
