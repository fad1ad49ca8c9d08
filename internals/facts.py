"""Architecture facts of a model: read from its config, checked against its tensors.

`summarize()` produces the `summary --json` object (the contract in docs/contracts.md). Counts always come
from the real parameter shapes (meta model or stored tensors), never from formulas over the config, so they
hold for any architecture; the config supplies the names (heads, activation, RoPE, ...).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from internals.safetensors_file import DTYPE_NAMES
from internals.structure import GROUPS, ModelStructure
from internals.weights import WeightStore

_BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}


def _cfg(config, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def text_config(config):
    """The language-model part of a config (multimodal configs nest it)."""
    if config is None:
        return None
    getter = getattr(config, "get_text_config", None)
    try:
        return getter() if getter else config
    except Exception:  # noqa: BLE001
        return config


def rope_facts(config) -> dict[str, Any] | None:
    params = getattr(config, "rope_parameters", None)
    theta = _cfg(config, "rope_theta")
    scaling = getattr(config, "rope_scaling", None)
    if isinstance(params, dict):
        theta = params.get("rope_theta", theta)
        rope_type = params.get("rope_type", "default")
        extra = {k: v for k, v in params.items() if k not in ("rope_theta", "rope_type")}
        scaling = None if rope_type == "default" and not extra else {"rope_type": rope_type, **extra}
    if theta is None and scaling is None:
        return None
    return {"theta": float(theta) if theta is not None else None, "scaling": scaling}


def summarize(structure: ModelStructure, store: WeightStore | None, *, path: str, source_kind: str,
              check_shared: bool = True) -> dict[str, Any]:
    """The `summary --json` object; `check_shared=False` skips comparing the embedding and head bytes."""
    config = text_config(structure.config)
    unique = structure.unique_params
    total = sum(p.numel for p in unique)
    by_group = {g: 0 for g in GROUPS}
    for p in unique:
        by_group[p.group] += p.numel

    num_layers = int(_cfg(config, "num_hidden_layers", "n_layer", "num_layers", default=structure.num_layers) or 0)
    layers = []
    for i in range(max(num_layers, structure.num_layers)):
        in_layer = [p for p in unique if p.layer == i]
        layers.append({
            "index": i,
            "parameters": sum(p.numel for p in in_layer),
            "attention": sum(p.numel for p in in_layer if p.group == "attention"),
            "mlp": sum(p.numel for p in in_layer if p.group == "mlp"),
            "norm": sum(p.numel for p in in_layer if p.group == "norm"),
        })

    hidden = _cfg(config, "hidden_size", "n_embd", "d_model")
    heads = _cfg(config, "num_attention_heads", "n_head")
    kv_heads = _cfg(config, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=heads)
    head_dim = _cfg(config, "head_dim")
    if head_dim is None and hidden and heads:
        head_dim = hidden // heads
    if head_dim is None:
        head_dim = _head_dim_from_tensors(structure, heads)
    if kv_heads is None and head_dim:
        k = next((p for p in unique if p.component == "k" and p.name.endswith("weight") and len(p.shape) == 2), None)
        kv_heads = k.shape[0] // head_dim if k else None
    activation = _cfg(config, "hidden_act", "activation_function", "hidden_activation")
    components = {p.component for p in unique}
    gated = (
        bool(components & {"gate", "gate_up"})
        or _cfg(config, "num_local_experts", "num_experts") is not None
        and "experts" in components
    )
    mlp_kind = "dense"
    if gated:
        act = str(activation or "").lower()
        mlp_kind = "SwiGLU" if act in ("silu", "swish", "swiglu") else "GeGLU" if act.startswith("gelu") else "gated"

    stored_dtype = _stored_dtype(store, config)
    kv_bytes = None
    if num_layers and kv_heads and head_dim:
        per_elem = 2 * num_layers * int(kv_heads) * int(head_dim)
        kv_bytes = {"fp32": per_elem * 4, "bf16": per_elem * 2}

    return {
        "path": path,
        "source_kind": source_kind,
        "layout": structure.layout,
        "architecture": structure.architecture,
        "model_type": _cfg(config, "model_type"),
        "num_layers": num_layers or structure.num_layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "gqa_group_size": (heads // kv_heads) if heads and kv_heads else None,
        "head_dim": head_dim,
        "intermediate_size": _cfg(config, "intermediate_size", "n_inner", "ffn_dim")
        or (4 * hidden if hidden and _cfg(config, "model_type") == "gpt2" else None),
        "vocab_size": _cfg(config, "vocab_size"),
        "max_position_embeddings": _cfg(config, "max_position_embeddings", "n_positions", "max_seq_len"),
        "activation": activation,
        "mlp_kind": mlp_kind,
        "norm": _norm_facts(structure, config),
        "rope": rope_facts(config) if config is not None else None,
        "attention_bias": _bias_facts(structure),
        "num_experts": _cfg(config, "num_local_experts", "num_experts", "n_routed_experts"),
        "num_experts_per_token": _cfg(config, "num_experts_per_tok", "moe_topk", "num_experts_per_token"),
        "stored_dtype": stored_dtype,
        "tie_word_embeddings": bool(_cfg(structure.config, "tie_word_embeddings", default=False))
        if structure.config is not None
        else None,
        "embeddings_shared": embeddings_shared(structure, store) if check_shared else None,
        "total_parameters": total,
        "parameters_by_component": by_group,
        "layers": layers,
        "memory_bytes": {k: int(math.ceil(total * v)) for k, v in _BYTES_PER_PARAM.items()},
        "kv_cache_bytes_per_token": kv_bytes,
        "unmapped_stored_tensors": len(structure.unmapped_stored),
        "missing_parameters": len(structure.missing) if store is not None else None,
    }


def _head_dim_from_tensors(structure: ModelStructure, heads) -> int | None:
    q = next((p for p in structure.unique_params if p.component == "q" and len(p.shape) == 2), None)
    return q.shape[0] // heads if q and heads else None


def _stored_dtype(store: WeightStore | None, config) -> str | None:
    if store is not None and len(store):
        counts: Counter[str] = Counter()
        for e in store:
            counts[e.dtype] += e.numel
        return DTYPE_NAMES.get(counts.most_common(1)[0][0])
    dtype = _cfg(config, "dtype", "torch_dtype") if config is not None else None
    return str(dtype).replace("torch.", "") if dtype is not None else None


def _norm_facts(structure: ModelStructure, config) -> dict[str, Any] | None:
    classes = Counter(m.cls for m in structure.modules if "norm" in m.cls.lower())
    if classes:
        cls = classes.most_common(1)[0][0]
        kind = "RMSNorm" if "rms" in cls.lower() else "LayerNorm" if "layernorm" in cls.lower() else cls
    elif any(p.component == "norm" for p in structure.unique_params):
        kind = "unknown"
    else:
        return None
    eps = _cfg(config, "rms_norm_eps", "layer_norm_epsilon", "layer_norm_eps", "norm_eps") if config is not None else None
    return {"kind": kind, "eps": eps}


def _bias_facts(structure: ModelStructure) -> dict[str, bool] | None:
    layer0 = [p for p in structure.unique_params if p.layer == 0]
    if not layer0:
        return None
    out = {}
    for comp in ("q", "k", "v", "o"):
        parts = [p for p in layer0 if p.component in (comp, "qkv")]
        if not parts:
            out[comp] = False
            continue
        out[comp] = any(p.name.endswith("bias") for p in parts)
    return out


def embeddings_shared(structure: ModelStructure, store: WeightStore | None) -> bool | None:
    """Whether the LM head reads the same values as the input embedding, judged from the stored tensors.

    True when the head has no tensor of its own and is tied in memory, or when both are stored with
    identical bytes; False when the head has its own, different values; None without weights."""
    if store is None or not len(store):
        return None
    heads = [p for p in structure.params.values() if p.component == "lm_head" and p.name.endswith("weight")]
    embeds = [p for p in structure.params.values() if p.component == "embedding" and p.tied_to is None and len(p.shape) == 2]
    if not heads or not embeds:
        return None
    head, embed = heads[0], embeds[0]
    if head.tied_to is not None and not head.stored:
        return True
    if head.stored and embed.stored and head.direct and embed.direct:
        if store.same_bytes(head.direct, embed.direct):
            return True  # both names point at the same stored bytes: nothing to compare
        return bytes_equal(store.raw(head.direct), store.raw(embed.direct))
    return head.tied_to is not None


def bytes_equal(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 20) -> bool:
    """Whether two byte buffers are equal, compared chunk by chunk so that a difference near the start
    costs one chunk, not a read of both tensors (untied embeddings and heads differ at once)."""
    if a.shape != b.shape:
        return False
    for lo in range(0, a.size, chunk):
        if not np.array_equal(a[lo:lo + chunk], b[lo:lo + chunk]):
            return False
    return True
