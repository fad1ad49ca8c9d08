"""Lessons: catalog, facts, rendering and `llm:` links, on three models (no weights: meta-device trees)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import lessons as lessons_api

ROOT = Path(__file__).resolve().parents[2]
REF_CONFIG = ROOT / "tests" / "data" / "deepseek-r1-distill-qwen-1.5b.config.json"

EXPECTED_IDS = [
    "parameters", "tokenization", "embeddings", "attention", "gqa", "rope", "swiglu", "rmsnorm",
    "residual-stream", "lm-head", "parameter-stats", "attention-patterns", "one-head", "interpretability", "weight-spectra",
    "pretraining", "distillation", "sft", "rlhf-ppo", "grpo", "dpo", "peft", "tools",
    "inference", "quantization", "mixture-of-experts", "reasoning",
]


# --------------------------------------------------------------------------------------------------------------
# three models as (summary, tree), built on the meta device: no weights, no network

def _config(which: str):
    from transformers import AutoConfig

    if which == "r1-1.5b":
        return AutoConfig.from_pretrained(REF_CONFIG)
    if which == "tiny-llama":
        return AutoConfig.for_model("llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
    return AutoConfig.for_model("qwen2", hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                                num_attention_heads=4, num_key_value_heads=2, vocab_size=4096,
                                tie_word_embeddings=False)


def _meta_tree(cfg) -> tuple[object, list[dict]]:
    """The model on the meta device and its tree nodes (modules and parameters, depth-first)."""
    import accelerate
    from transformers import AutoModelForCausalLM

    with accelerate.init_empty_weights():
        model = AutoModelForCausalLM.from_config(cfg)
    tree, first_name = [], {}
    for name, module in model.named_modules():
        parent = None if not name else (name.rsplit(".", 1)[0] if "." in name else "")
        tree.append({"name": name, "parent": parent, "kind": "module", "class": type(module).__name__})
        for pname, p in module.named_parameters(recurse=False, remove_duplicate=False):
            full = f"{name}.{pname}" if name else pname
            tree.append({"name": full, "parent": name, "kind": "parameter", "shape": list(p.shape),
                         "numel": p.numel(), "tied_to": first_name.get(id(p))})
            first_name.setdefault(id(p), full)
    return model, tree


def _summary_and_tree(cfg) -> tuple[dict, list[dict]]:
    """A small stand-in for the engine: a summary of config values only, and the meta-device tree.

    Everything else (breakdowns, KV cache, memory) is left for `lesson_facts` to derive from the tree.
    """
    model, tree = _meta_tree(cfg)
    rope = getattr(cfg, "rope_parameters", None) or {}
    summary = {
        "architecture": type(model).__name__, "model_type": cfg.model_type,
        "num_layers": cfg.num_hidden_layers, "hidden_size": cfg.hidden_size,
        "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.max_position_embeddings, "activation": cfg.hidden_act,
        "mlp_kind": "SwiGLU", "norm": {"kind": "RMSNorm", "eps": cfg.rms_norm_eps},
        "rope": {"theta": rope.get("rope_theta", getattr(cfg, "rope_theta", None)), "scaling": None},
        "tie_word_embeddings": bool(cfg.tie_word_embeddings), "stored_dtype": "bfloat16",
    }
    return summary, tree


MODELS = ("r1-1.5b", "tiny-llama", "tiny-qwen2")


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[dict, list[dict], dict]]:
    out = {}
    for which in MODELS:
        summary, tree = _summary_and_tree(_config(which))
        out[which] = (summary, tree, lessons_api.lesson_facts(summary, tree))
    return out


@pytest.fixture(scope="module")
def lessons() -> list[lessons_api.Lesson]:
    return lessons_api.load_lessons()


# --------------------------------------------------------------------------------------------------------------
# catalog

def test_catalog_order_ids_and_front_matter(lessons):
    assert [x.id for x in lessons] == EXPECTED_IDS
    assert len({x.id for x in lessons}) == len(lessons)
    for part in lessons_api.PARTS:
        orders = [x.order for x in lessons if x.part == part]
        assert orders == list(range(1, len(orders) + 1)), part
    for lesson in lessons:
        assert lesson.path.name == f"{lesson.order:02d}-{lesson.id}.md"
        assert lesson.path.parent.name == lesson.part
        assert lesson.demo is None or lesson.demo in lessons_api.DEMO_IDS
        first_line = lesson.raw.lstrip().splitlines()[0]
        assert first_line == f"# {lesson.title}", lesson.path
        assert "## Try it" in lesson.raw, lesson.path
        lines = len(lesson.path.read_text(encoding="utf-8").splitlines())
        assert 60 <= lines <= 150, f"{lesson.path}: {lines} lines"
    demos = {x.id: x.demo for x in lessons if x.demo}
    assert demos == {"pretraining": "pretrain", "distillation": "distill", "sft": "before-after", "grpo": "grpo",
                     "dpo": "dpo", "peft": "lora", "one-head": "one-head", "inference": "sampling",
                     "reasoning": "pass-at-k"}
    assert next(x for x in lessons if x.id == "peft").requires == ("peft",)


def test_catalog_rejects_bad_files(tmp_path):
    arch = tmp_path / "architecture"
    arch.mkdir()
    good = "---\nid: a\ntitle: A\npart: architecture\n---\n# A\n"
    (arch / "01-a.md").write_text(good)
    assert [x.id for x in lessons_api.load_lessons(tmp_path)] == ["a"]
    cases = {
        "02-b.md": "---\nid: b\ntitle: B\npart: architecture\ndemo: nope\n---\n",  # unknown demo
        "03-c.md": "---\ntitle: C\npart: architecture\n---\n",  # no id
        "04-d.md": "---\nid: a\ntitle: D\npart: architecture\n---\n",  # duplicate id
        "05-e.md": "---\nid: e\ntitle: E\npart: training\n---\n",  # wrong part for its folder
        "06-f.md": "---\nid: f\ntitle: F\npart: architecture\nauthor: x\n---\n",  # unknown key
        "07-g.md": "# no front matter\n",
    }
    for i, (fname, text) in enumerate(cases.items()):
        root = tmp_path / f"case{i}"
        (root / "architecture").mkdir(parents=True)
        (root / "architecture" / "01-a.md").write_text(good)
        (root / "architecture" / fname).write_text(text)
        with pytest.raises(lessons_api.LessonError):
            lessons_api.load_lessons(root)


# --------------------------------------------------------------------------------------------------------------
# facts

def test_reference_model_facts(models):
    f = models["r1-1.5b"][2]
    assert f["total_parameters"] == 1_777_088_000
    assert f["lora_r8_qkvo"] == 2_179_072 and f"{f['lora_r8_qkvo_pct']:.2f}" == "0.12"
    assert f["lora_r8_all"] == 9_232_384 and f"{f['lora_r8_all_pct']:.2f}" == "0.52"
    assert f["lora_r16_all"] == 2 * 9_232_384 and f["lora_r1_qkvo"] * 8 == f["lora_r8_qkvo"]
    assert f["params_embedding"] == f["params_lm_head"] == f["embed_params"] == 233_373_696
    assert f["attn_params_per_layer"] == 5_507_072 and f["mlp_params_per_layer"] == 41_287_680
    assert f["norm_params_per_layer"] == 3_072 and f["params_norm"] == 28 * 3_072 + 1_536
    assert f["params_attention"] == 28 * 5_507_072 and f["params_mlp"] == 28 * 41_287_680
    assert f["kv_cache_bytes_per_token_bf16"] == 28_672 and f["kv_cache_per_token_human"] == "28 KiB"
    assert f["gqa_group_size"] == 6 and f["gqa_saving_factor"] == 6
    assert (f["last_layer"], f["middle_layer"], f["last_head"], f["group0_last_head"]) == (27, 14, 11, 5)
    assert f["total_if_tied"] == 1_543_714_304 and f["non_embedding_parameters"] == 1_310_340_608
    assert f["memory_bytes_bf16"] == 3_554_176_000
    assert f["attention_bias_desc"] == "q, k, v"
    assert f"{f['embedding_share_pct']:.2f}" == "13.13"
    assert f["q_weight_last"] == "model.layers.27.self_attn.q_proj.weight"
    assert f["attn_node_middle"] == "model.layers.14.self_attn" and f["layer_node_last"] == "model.layers.27"
    assert f["lm_head_weight"] == "lm_head.weight" and f["final_norm_weight"] == "model.norm.weight"


def test_part3_facts(models):
    f = models["r1-1.5b"][2]
    assert f["kv_cache_32k_mib"] == 28_672 * 32_768 / 2**20 == 896 and f["kv_block16_human"] == "448 KiB"
    assert f["kv_cache_32k_ratio_to_weights"] == pytest.approx(28_672 * 32_768 / 3_554_176_000)
    assert f["lens_rows"] == 29 and f["experts_desc"].startswith("no experts")
    moe = lessons_api.lesson_facts({"num_experts": 8, "num_experts_per_token": 2}, [])
    assert moe["experts_desc"] == "8 experts per MoE layer, 2 active per token" and moe["kv_block16_human"] is None


def test_summary_values_take_precedence_over_derived(models):
    summary, tree, derived = models["tiny-qwen2"]
    richer = dict(summary, kv_cache_bytes_per_token={"bf16": 1, "fp32": 2},
                  parameters_by_component={"embedding": 10, "attention": 0, "mlp": 0, "norm": 0, "lm_head": 10,
                                           "other": 0},
                  attention_bias={"q": False, "k": False, "v": False, "o": True})
    f = lessons_api.lesson_facts(richer, tree)
    assert f["kv_cache_bytes_per_token_bf16"] == 1 and f["params_embedding"] == 10
    assert f["attention_bias_desc"] == "o"
    assert f["lora_r8_all"] == derived["lora_r8_all"]  # LoRA counts always come from the tree's shapes


def test_facts_without_summary_or_tree():
    f = lessons_api.lesson_facts({}, [])
    assert f["total_parameters"] is None and f["lora_r8_qkvo"] is None and f["q_weight_first"] is None
    rendered = lessons_api.render_lesson("{total_parameters:,} / {lora_r8_qkvo_pct:.2f}% / {architecture}", f, strict=True)
    assert rendered == "n/a / n/a% / n/a"


# --------------------------------------------------------------------------------------------------------------
# rendering and links, every lesson on every model

@pytest.mark.parametrize("which", MODELS)
def test_every_lesson_renders_and_every_link_resolves(models, lessons, which):
    summary, tree, facts = models[which]
    names = {node["name"] for node in tree}
    ids = {x.id for x in lessons}
    kinds = set()
    for lesson in lessons:
        text = lessons_api.render_lesson(lesson, facts, strict=True)
        unknown = sorted({p for p in lessons_api.placeholders(lesson.raw) if facts.get(p) is None})
        assert unknown == [], f"{lesson.path}: facts unknown for {which}: {unknown}"
        links = lessons_api.lesson_links(text)
        assert links, f"{lesson.path}: no llm: links"
        for target in links:
            link = lessons_api.parse_link(target)
            kinds.add(link.kind)
            error = lessons_api.resolve_link(link, names, facts, lesson_ids=ids)
            assert error is None, f"{lesson.path}: {target}: {error} ({which})"
            if link.kind == "lesson":
                assert link.lesson != lesson.id
    assert kinds == {"tensor", "node", "view", "attention", "lesson", "spectrum"}


def test_links_agree_with_markdown_it_and_views_used(models, lessons):
    from markdown_it import MarkdownIt

    facts = models["r1-1.5b"][2]
    md = MarkdownIt("gfm-like")
    views = set()
    for lesson in lessons:
        text = lessons_api.render_lesson(lesson, facts, strict=True)
        hrefs = []
        for token in md.parse(text):
            for child in token.children or []:
                if child.type == "link_open" and str(child.attrs.get("href", "")).startswith("llm:"):
                    hrefs.append(child.attrs["href"])
        assert hrefs == lessons_api.lesson_links(text), lesson.path
        views |= {lessons_api.parse_link(t).view for t in hrefs if t.startswith("llm:view/")}
    assert views >= {"summary", "cross-layer", "tokens", "lens"}


def test_lessons_parse_in_textual_markdown_widget(models, lessons):
    import asyncio

    from textual.app import App, ComposeResult
    from textual.widgets import Markdown

    facts = models["tiny-qwen2"][2]
    texts = [lessons_api.render_lesson(lesson, facts, strict=True) for lesson in lessons]

    class Pane(App):
        def compose(self) -> ComposeResult:
            yield Markdown()

    async def run() -> None:
        app = Pane()
        async with app.run_test(size=(100, 40)) as pilot:
            widget = app.query_one(Markdown)
            for text in texts:
                await widget.update(text)
                assert widget.children
            await pilot.pause()

    asyncio.run(run())


@pytest.mark.parametrize("model_type", ["gpt2", "phi3"])
def test_other_layouts_render_and_resolve_from_the_tree_alone(lessons, model_type):
    """GPT-2 (fused c_attn, no gate) and Phi-3 (fused qkv_proj and gate_up_proj): links still resolve."""
    from transformers import AutoConfig

    cfg = AutoConfig.for_model(model_type, hidden_size=64, n_embd=64, intermediate_size=128, num_hidden_layers=2,
                               n_layer=2, num_attention_heads=4, n_head=4, num_key_value_heads=2, vocab_size=300,
                               pad_token_id=0)
    _, tree = _meta_tree(cfg)
    facts = lessons_api.lesson_facts({"num_attention_heads": 4}, tree)  # no summary beyond the head count
    assert facts["num_layers"] == 2 and facts["vocab_size"] == 300 and facts["hidden_size"] == 64
    names = {node["name"] for node in tree}
    for lesson in lessons:
        text = lessons_api.render_lesson(lesson, facts, strict=True)
        for target in lessons_api.lesson_links(text):
            assert lessons_api.resolve_link(lessons_api.parse_link(target), names, facts) is None, (lesson.path, target)


@pytest.mark.parametrize("which", ["demo", "moe-demo", "tiny-llama-folder"])
def test_every_link_resolves_on_real_model_folders(lessons, which, tiny_models):
    """The engine's own summary and tree of the shipped demo models (dense and MoE) and of a saved tiny Llama."""
    from internals.demo_path import demo_path
    from internals.model import open_model

    folder = {"demo": None, "moe-demo": str(demo_path("moe"))}.get(which) or str(tiny_models("llama"))
    opened = open_model(None if which == "demo" else folder)
    summary, tree = opened.summary(), opened.tree()
    facts = lessons_api.lesson_facts(summary, tree)
    names = {node["name"] for node in tree}
    for lesson in lessons:
        text = lessons_api.render_lesson(lesson, facts, strict=True)
        for target in lessons_api.lesson_links(text):
            assert lessons_api.resolve_link(lessons_api.parse_link(target), names, facts) is None, (lesson.path, target, which)


def test_engine_summary_and_tree_of_the_reference_config(lessons):
    """Lessons render and resolve against the engine's real summary and tree of the 1.5B config."""
    from internals.model import open_model

    opened = open_model(str(REF_CONFIG))
    summary, tree = opened.summary(), opened.tree()
    facts = lessons_api.lesson_facts(summary, tree)
    assert (facts["lora_r8_qkvo"], facts["lora_r8_all"]) == (2_179_072, 9_232_384)
    names = {node["name"] for node in tree}
    for lesson in lessons:
        text = lessons_api.render_lesson(lesson, facts, strict=True)
        for target in lessons_api.lesson_links(text):
            assert lessons_api.resolve_link(lessons_api.parse_link(target), names, facts) is None, (lesson.path, target)


# --------------------------------------------------------------------------------------------------------------
# render_lesson details

def test_render_placeholders_strict_and_lenient():
    facts = {"n": 1234567, "x": 0.123456, "s": "abc", "none": None}
    assert lessons_api.render_lesson("{n:,} {x:.2f} {s} {none:,}", facts, strict=True) == "1,234,567 0.12 abc n/a"
    assert lessons_api.render_lesson("code: {{'a': 1}} and {{n}}", facts, strict=True) == "code: {'a': 1} and {n}"
    with pytest.raises(lessons_api.LessonError, match="unknown placeholder {missing}"):
        lessons_api.render_lesson("x {missing} y", facts, strict=True)
    with pytest.raises(lessons_api.LessonError, match="cannot format"):
        lessons_api.render_lesson("{s:,}", facts, strict=True)
    with pytest.raises(lessons_api.LessonError, match="plain fact name"):
        lessons_api.render_lesson("{s.upper}", facts, strict=True)
    with pytest.raises(lessons_api.LessonError, match="literal braces"):
        lessons_api.render_lesson("a { b", facts, strict=True)
    with pytest.warns(lessons_api.LessonWarning, match="missing"):
        assert lessons_api.render_lesson("x {missing} y", facts, strict=False) == "x ? y"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lessons_api.render_lesson("{n}", facts, strict=False) == "1234567"


def test_render_strict_from_environment(monkeypatch):
    monkeypatch.setenv("LLM_INTERNALS_STRICT_LESSONS", "1")
    with pytest.raises(lessons_api.LessonError):
        lessons_api.render_lesson("{missing}", {})
    monkeypatch.delenv("LLM_INTERNALS_STRICT_LESSONS")
    with pytest.warns(lessons_api.LessonWarning):
        assert lessons_api.render_lesson("{missing}", {}) == "?"


# --------------------------------------------------------------------------------------------------------------
# links

def test_parse_link_kinds():
    assert lessons_api.parse_link("llm:tensor/model.layers.0.mlp.down_proj.weight") == lessons_api.Link(
        kind="tensor", name="model.layers.0.mlp.down_proj.weight")
    assert lessons_api.parse_link("llm:node/model.layers.0.self_attn") == lessons_api.Link(
        kind="node", name="model.layers.0.self_attn"
    )
    assert lessons_api.parse_link("llm:node/") == lessons_api.Link(kind="node", name="")
    assert lessons_api.parse_link("llm:view/cross-layer") == lessons_api.Link(kind="view", view="cross-layer")
    assert lessons_api.parse_link("llm:lesson/gqa") == lessons_api.Link(kind="lesson", lesson="gqa")
    link = lessons_api.parse_link("llm:attention?layer=3&head=11&prompt=def%20f%28x%29%3A%0A%20%20return%20x%20%2B%201")
    assert link == lessons_api.Link(kind="attention", layer=3, head=11, prompt="def f(x):\n  return x + 1")
    assert lessons_api.parse_link("llm:attention?head=0&layer=1") == lessons_api.Link(kind="attention", layer=1, head=0)
    assert lessons_api.parse_link("llm:spectrum/model.layers.0.self_attn.q_proj.weight") == lessons_api.Link(
        kind="spectrum", name="model.layers.0.self_attn.q_proj.weight")
    assert lessons_api.parse_link("llm:spectrum/") == lessons_api.Link(kind="spectrum", name="")  # the whole model


@pytest.mark.parametrize("target", [
    "tensor/x", "http://example.com", "llm:tensor/", "llm:tensor/a b", "llm:view/weights", "llm:views/summary",
    "llm:attention", "llm:attention?layer=1", "llm:attention?layer=-1&head=0", "llm:attention?layer=a&head=0",
    "llm:attention?layer=1&head=0&layer=2", "llm:attention?layer=1&head=0&foo=1", "llm:lesson/Bad_Id",
    "llm:lesson/", "llm:unknown/x",
])
def test_parse_link_rejects(target):
    with pytest.raises(lessons_api.LinkError):
        lessons_api.parse_link(target)


def test_resolve_link_errors(models):
    _, tree, facts = models["tiny-llama"]
    names = {node["name"] for node in tree}
    ids = {"gqa"}
    ok = ["llm:tensor/model.layers.1.mlp.down_proj.weight", "llm:node/model.layers.0", "llm:node/",
          "llm:view/lens", "llm:attention?layer=1&head=3&prompt=x", "llm:lesson/gqa",
          "llm:spectrum/model.layers.1.mlp.down_proj.weight", "llm:spectrum/"]
    for target in ok:
        assert lessons_api.resolve_link(lessons_api.parse_link(target), names, facts, lesson_ids=ids) is None, target
    bad = {
        "llm:tensor/model.layers.2.mlp.down_proj.weight": "no parameter",
        "llm:node/model.layers.9": "no module",
        "llm:attention?layer=2&head=0": "layer 2 is out of range",
        "llm:attention?layer=0&head=4": "head 4 is out of range",
        "llm:lesson/nope": "no lesson",
        "llm:spectrum/model.layers.2.mlp.down_proj.weight": "no parameter",
    }
    for target, message in bad.items():
        error = lessons_api.resolve_link(lessons_api.parse_link(target), names, facts, lesson_ids=ids)
        assert error and message in error, (target, error)
    assert "no lesson" in lessons_api.resolve_link(lessons_api.Link(kind="lesson", lesson="nope"), names, facts)


def test_lesson_links_forms():
    md = ("[a](llm:view/lens) [b](llm:lesson/gqa \"title\") <llm:view/tokens> `[c](llm:view/summary)`\n\n"
          "```\n[d](llm:view/summary)\n```\n[e]: llm:node/model\n[f](https://example.com)\n")
    assert lessons_api.lesson_links(md) == ["llm:view/lens", "llm:lesson/gqa", "llm:view/tokens", "llm:node/model"]


# --------------------------------------------------------------------------------------------------------------
# lessons/ is plain Python

def test_lessons_package_imports_neither_torch_nor_textual(models, tmp_path):
    summary, tree, facts = models["tiny-llama"]
    data = tmp_path / "model.json"
    data.write_text(json.dumps({"summary": summary, "tree": tree}))
    code = (
        "import json, sys\n"
        "import lessons, lessons.catalog, lessons.facts, lessons.exercises, lessons.progress\n"
        f"d = json.load(open({str(data)!r}))\n"
        "f = lessons.lesson_facts(d['summary'], d['tree'])\n"
        "for x in lessons.load_lessons(): lessons.render_lesson(x, f, strict=True)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'textual', 'transformers', 'numpy'))\n"
        "print(json.dumps([bad, f['lora_r8_all']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    bad, lora = json.loads(out.stdout.strip().splitlines()[-1])
    assert bad == [] and lora == facts["lora_r8_all"]
