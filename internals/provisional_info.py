"""A provisional summary and tree from the safetensors headers alone, drawn while transformers builds the real one.

The exact tree needs transformers (seconds of imports and a meta-device build, in the worker). On a first
open, before anything is cached, the explorer instead reads the weight files' headers and config.json
(milliseconds, no torch) and draws the stored tensors as a tree at once, so the user can move around while
the worker starts. The worker's exact tree then replaces it (module classes, tied aliases, converted layouts).
The result says it is provisional, and the summary's `layout` says where it came from.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from internals.errors import UserError
from internals.facts import summarize
from internals.sources import ModelSource
from internals.structure import (
    ModelStructure,
    ModuleInfo,
    ParamInfo,
    group_of,
    structure_from_names,
)
from internals.tree import tree_nodes
from internals.weights import WeightStore

LAYOUT = "provisional: the stored tensors, read from the file headers while transformers builds the exact tree"


_RANKS: list[tuple[re.Pattern[str], int]] = [  # first match wins, per name segment
    (re.compile(r"norm|^ln"), 30),
    (re.compile(r"embed|^wte$|^wpe$"), 0),
    (re.compile(r"^(q_proj|query|wq|c_attn|qkv_proj)$"), 11),
    (re.compile(r"^(k_proj|key|wk)$"), 12),
    (re.compile(r"^(v_proj|value|wv)$"), 13),
    (re.compile(r"^(o_proj|out_proj|wo|dense)$"), 14),
    (re.compile(r"attn|attention"), 10),
    (re.compile(r"^(gate_proj|w1|gate|router)$"), 21),
    (re.compile(r"^(up_proj|w3|c_fc|fc1)$"), 22),
    (re.compile(r"^(down_proj|w2|fc2)$"), 23),
    (re.compile(r"mlp|ffn|feed_forward|moe|experts"), 20),
    (re.compile(r"^(lm_head|output)$"), 40),
    (re.compile(r"^weight$"), 0),
    (re.compile(r"^bias$"), 1),
]


def _display_key(name: str) -> list[tuple[int, list]]:
    """Sort key close to the order transformers registers modules in: embeddings, blocks (attention, then
    MLP, then norms), final norm, head; numbers in natural order."""
    key = []
    for part in name.split("."):
        rank = next((r for pattern, r in _RANKS if pattern.search(part)), 5)
        key.append((rank, [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", part) if t]))
    return key


def _in_display_order(structure: ModelStructure) -> ModelStructure:
    structure.modules.sort(key=lambda m: _display_key(m.name))
    structure.params = dict(sorted(structure.params.items(), key=lambda kv: _display_key(kv[0])))
    return structure


def transformers_knows(model_type: str) -> bool:
    """Whether the installed transformers ships `model_type`, judged without importing it (imports take seconds)."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or spec.origin is None:
        return False
    return (Path(spec.origin).parent / "models" / model_type.replace("-", "_")).is_dir()


def provisional_model_info(source: ModelSource, trust_remote_code: bool = False) -> dict[str, Any] | None:
    """{"summary", "tree", "provisional": True} from headers, or None when only the worker can tell.

    None for sources without safetensors weights (a bare config or a pickle checkpoint), for remote code, for
    a model_type this transformers does not ship and for architectures that do not look like causal LMs, so
    that those wait for the worker's exact answer or error.
    """
    if not source.weight_files:
        return None
    raw: dict[str, Any] = {}
    architectures: list = []
    if source.config_path is not None:
        try:
            raw = json.loads(Path(source.config_path).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict) or trust_remote_code or "auto_map" in raw:
            return None
        if not transformers_knows(str(raw.get("model_type", ""))):
            return None
        architectures = raw.get("architectures") or []
        if architectures and not any("CausalLM" in str(a) or "LMHead" in str(a) for a in architectures):
            return None  # probably not a causal LM: the worker says so before any screen opens
    try:
        store = WeightStore(source.weight_files)
    except UserError:
        return None  # the worker reports a damaged file as one error line
    try:
        structure = _in_display_order(structure_from_names(store))
        if raw:
            structure.config = SimpleNamespace(**raw)
            structure.architecture = architectures[0] if architectures else None
        summary = summarize(structure, store, path=str(source.path), source_kind=source.kind, check_shared=False)
        summary["layout"] = LAYOUT
        if summary.get("norm"):  # the norm's class (RMSNorm, LayerNorm) is known once transformers built it
            summary["norm"]["kind"] = "being read"
        summary["provisional"] = True
        return {"summary": summary, "tree": tree_nodes(structure, store), "provisional": True}
    finally:
        store.close()


# --------------------------------------------------------------------------------------------------
# the same answer as transformers, from the headers, where its loading rules change nothing

#: model_type -> (class name of its norms, full-match patterns of every parameter of the in-memory model,
#: with {i} for a layer index). A checkpoint whose stored names are exactly these (every layer complete,
#: nothing else) loads into transformers unchanged, so its tree needs no transformers import.
_LLAMA_LIKE = (
    "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
    "model.layers.{i}.input_layernorm.weight", "model.layers.{i}.post_attention_layernorm.weight",
    "model.layers.{i}.self_attn.q_proj.weight", "model.layers.{i}.self_attn.k_proj.weight",
    "model.layers.{i}.self_attn.v_proj.weight", "model.layers.{i}.self_attn.o_proj.weight",
    "model.layers.{i}.mlp.gate_proj.weight", "model.layers.{i}.mlp.up_proj.weight",
    "model.layers.{i}.mlp.down_proj.weight",
)
_QKV_BIAS = ("model.layers.{i}.self_attn.q_proj.bias", "model.layers.{i}.self_attn.k_proj.bias",
             "model.layers.{i}.self_attn.v_proj.bias")
HEADER_LAYOUTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # model_type: (norm class, required names, optional names); add a type only with a tiny config in
    # tests/conftest.py TINY_CONFIGS, so tests/internals/test_headers_tree.py checks it against transformers
    "llama": ("LlamaRMSNorm", _LLAMA_LIKE, _QKV_BIAS),
    "qwen2": ("Qwen2RMSNorm", _LLAMA_LIKE, _QKV_BIAS),
    "gpt2": ("LayerNorm", (
        "transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias",
        "lm_head.weight",
        "transformer.h.{i}.ln_1.weight", "transformer.h.{i}.ln_1.bias", "transformer.h.{i}.ln_2.weight",
        "transformer.h.{i}.ln_2.bias", "transformer.h.{i}.attn.c_attn.weight", "transformer.h.{i}.attn.c_attn.bias",
        "transformer.h.{i}.attn.c_proj.weight", "transformer.h.{i}.attn.c_proj.bias",
        "transformer.h.{i}.mlp.c_fc.weight", "transformer.h.{i}.mlp.c_fc.bias",
        "transformer.h.{i}.mlp.c_proj.weight", "transformer.h.{i}.mlp.c_proj.bias"), ()),
}
_TIED_HEAD = {"gpt2": ("lm_head.weight", "transformer.wte.weight")}
_DEFAULT_TIED_HEAD = ("lm_head.weight", "model.embed_tokens.weight")


def structure_from_headers(source: ModelSource, store: WeightStore, trust_remote_code: bool = False
                           ) -> ModelStructure | None:
    """The structure transformers would build, from config.json and the headers, or None when only
    transformers can tell (an unlisted model_type, remote code, a name or shape its loading rules would
    rename, fuse or complete: then `open_model` imports it).

    The answer is exact for what `summary` and `stats` report (names, shapes, layers, components, tied
    head, norm kind); module classes other than the norms stay unknown ("?"), so the explorer's tree
    keeps coming from transformers.
    """
    if source.config_path is None or trust_remote_code or not len(store):
        return None
    try:
        raw = json.loads(Path(source.config_path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or "auto_map" in raw:
        return None
    model_type = str(raw.get("model_type", ""))
    layout = HEADER_LAYOUTS.get(model_type)
    layers = raw.get("num_hidden_layers", raw.get("n_layer"))
    if layout is None or not isinstance(layers, int) or not transformers_knows(model_type):
        return None
    architectures = raw.get("architectures") or []
    if len(architectures) != 1 or not str(architectures[0]).endswith("ForCausalLM") and architectures[0] != "GPT2LMHeadModel":
        return None
    norm_cls, required, optional = layout
    def expand(names: tuple[str, ...]) -> set[str]:
        return {n.format(i=i) for n in names for i in (range(layers) if "{i}" in n else [0])}

    need, may = expand(required), expand(optional)
    head, embed = _TIED_HEAD.get(model_type, _DEFAULT_TIED_HEAD)
    stored = set(store.names())
    if not isinstance(raw.get("tie_word_embeddings"), bool):
        return None  # the default differs by model class: transformers knows it
    tied = raw["tie_word_embeddings"]
    if tied and head in stored:
        return None  # a stored head that transformers replaces by the embedding: its rules decide
    if tied:
        need.discard(head)
    if not need <= stored or not stored <= need | may:
        return None  # missing, extra or differently named tensors: transformers' rules decide
    if tied and store.entry(embed).shape != (raw.get("vocab_size"), raw.get("hidden_size", raw.get("n_embd"))):
        return None
    structure = structure_from_names(store)
    if tied:  # the head is an alias of the embedding in memory, as transformers ties it
        structure.params[head] = ParamInfo(head, structure.params[embed].shape, "lm_head",
                                           group_of(head, "lm_head"), None, tied_to=embed)
        structure.modules.append(ModuleInfo(head.rsplit(".", 1)[0], "?", ""))
    structure = _in_display_order(structure)
    for m in structure.modules:
        if "norm" in m.name.rsplit(".", 1)[-1] or m.name.rsplit(".", 1)[-1] in ("ln_1", "ln_2", "ln_f"):
            m.cls = norm_cls
    structure.config = SimpleNamespace(**raw)
    structure.architecture = architectures[0]
    structure.from_config = True
    return structure
