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
from internals.structure import ModelStructure, structure_from_names
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
