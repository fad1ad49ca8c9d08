"""Facts: the live numbers and names that lessons quote, derived from the open model.

`lesson_facts(summary, tree)` takes the engine's summary object and its tree nodes (formats in
docs/contracts.md) and returns one flat dict. Lessons use its keys as `{name}` / `{name:fmt}`
placeholders (see `lessons.catalog.render_lesson`).

Plain Python only: no torch, no textual. Missing summary keys are derived from the tree where that is
possible; a fact that cannot be known for the open model is None (rendered as "n/a").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["lesson_facts", "LORA_RANKS", "QKVO", "ALL_LINEAR", "POSITIONS", "QLORA_CONSTANT_BITS"]

#: Ranks for which `lora_r{r}_qkvo`, `lora_r{r}_all` (and `_pct`) facts are provided.
LORA_RANKS = (1, 4, 8, 16, 32, 64)
#: Components LoRA targets in "q, k, v, o" (a fused qkv projection counts as q, k and v).
QKVO = ("q", "k", "v", "o", "qkv")
#: Components of "all linear projections" of a layer (the seven of a Llama/Qwen2 layer).
ALL_LINEAR = QKVO + ("gate", "up", "down", "gate_up")
#: Extra bits per 4-bit weight for the quantization constants of NF4 with double quantization:
#: 8/64 + 32/(64·256) (QLoRA, Dettmers et al. 2023, §3 "Double Quantization").
QLORA_CONSTANT_BITS = 8 / 64 + 32 / (64 * 256)
#: Layer positions for which per-layer name facts exist: `q_weight_first`, `mlp_node_last`, ...
POSITIONS = ("first", "middle", "last")

# Summary keys copied as they are (scalars).
_SCALAR_KEYS = (
    "path", "source_kind", "layout", "architecture", "model_type", "num_layers", "hidden_size",
    "num_attention_heads", "num_key_value_heads", "gqa_group_size", "head_dim", "intermediate_size",
    "vocab_size", "max_position_embeddings", "activation", "mlp_kind", "num_experts", "num_experts_per_token",
    "stored_dtype", "tie_word_embeddings", "embeddings_shared", "total_parameters",
)
_GROUPS = ("embedding", "attention", "mlp", "norm", "lm_head", "other")
_BYTES = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0, "int4": 0.5}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "uint8": 1,
                "float8_e4m3fn": 1, "float8_e5m2": 1}

# Fallback classification when a tree node carries no "component" (the engine normally sets it).
_RULES = [
    (r"(^|\.)lm_head(\.|$)|embed_out", "lm_head"),
    (r"embed|(^|\.)wte(\.|$)|word_embeddings|tok_embeddings", "embedding"),
    (r"norm|(^|\.)ln_|layernorm", "norm"),
    (r"(c_attn|qkv_proj|query_key_value|wqkv)(\.|$)", "qkv"),
    (r"(q_proj|(\.|^)query|(\.|^)wq)(\.|$)", "q"),
    (r"(k_proj|(\.|^)key|(\.|^)wk)(\.|$)", "k"),
    (r"(v_proj|(\.|^)value|(\.|^)wv)(\.|$)", "v"),
    (r"(o_proj|out_proj|(\.|^)wo|attn\.c_proj|attention\.dense)(\.|$)", "o"),
    (r"gate_up_proj(\.|$)", "gate_up"),
    (r"(gate_proj|(\.|^)w1)(\.|$)", "gate"),
    (r"(up_proj|(\.|^)w3|c_fc|fc1)(\.|$)", "up"),
    (r"(down_proj|(\.|^)w2|mlp\.c_proj|fc2)(\.|$)", "down"),
]
_RULES_RE = [(re.compile(p), c) for p, c in _RULES]
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)")
_GROUP_OF = {"q": "attention", "k": "attention", "v": "attention", "o": "attention", "qkv": "attention",
             "gate": "mlp", "up": "mlp", "down": "mlp", "gate_up": "mlp", "experts": "mlp", "router": "mlp",
             "norm": "norm", "embedding": "embedding", "lm_head": "lm_head"}


def _component(node: dict) -> str:
    comp = node.get("component")
    if comp:
        return comp
    name = node.get("name") or ""
    for rx, c in _RULES_RE:
        if rx.search(name):
            return c
    return "other"


def _layer(node: dict) -> int | None:
    if node.get("layer") is not None:
        return int(node["layer"])
    m = _LAYER_RE.search(node.get("name") or "")
    return int(m.group(1)) if m else None


def _int(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return 100.0 * part / whole


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def _human_count(n: float | None) -> str | None:
    """1777088000 -> "1.78B", 1787520 -> "1.79M", 106816 -> "107K"."""
    if n is None:
        return None
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:g}"


def _human_bytes(n: float | None) -> str | None:
    """Binary units: 28672 -> "28 KiB", 3554176000 -> "3.31 GiB"."""
    if n is None:
        return None
    for div, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:g} bytes"


def _lora_count(params: Iterable[dict], rank: int, components: tuple[str, ...]) -> int:
    """LoRA on a weight of shape [out, in] adds A (r × in) and B (out × r): r·(in + out) parameters."""
    total = 0
    for p in params:
        shape = p.get("shape") or []
        if len(shape) == 2 and p["_comp"] in components and p["_layer"] is not None:
            total += rank * (int(shape[0]) + int(shape[1]))
    return total


def _grandparent(name: str | None, parent_of: dict[str, str | None]) -> str | None:
    """The module two levels up from a parameter (q_proj.weight -> self_attn), from the tree or the name."""
    if not name:
        return None
    parent = parent_of.get(name)
    if parent:
        grand = parent_of.get(parent)
        return grand or None
    return name.rsplit(".", 2)[0] if name.count(".") >= 2 else None


def lesson_facts(summary: dict | None, tree: list[dict] | None) -> dict[str, object]:
    """All values the lessons may quote, as a flat dict (see the module docstring)."""
    summary = dict(summary or {})
    tree = list(tree or [])
    f: dict[str, Any] = {k: summary.get(k) for k in _SCALAR_KEYS}

    # --- parameters from the tree (unique: a tied alias is not counted twice) -----------------------------
    all_params = []
    for node in tree:
        if node.get("kind") != "parameter":
            continue
        all_params.append(dict(node, _comp=_component(node), _layer=_layer(node)))
    unique = [p for p in all_params if not p.get("tied_to")]

    def numel(p: dict) -> int:
        if p.get("numel") is not None:
            return int(p["numel"])
        return math.prod(int(s) for s in (p.get("shape") or []))

    tree_total = sum(numel(p) for p in unique) if unique else None
    if f["total_parameters"] is None:
        f["total_parameters"] = tree_total
    total = _int(f["total_parameters"])

    embed = next((p for p in unique if p["_comp"] == "embedding" and len(p.get("shape") or []) == 2), None)
    head = next((p for p in all_params if p["_comp"] == "lm_head" and len(p.get("shape") or []) == 2), None)
    tree_layers = sorted({p["_layer"] for p in all_params if p["_layer"] is not None})

    # --- config-like scalars, with fallbacks from the tree ------------------------------------------------
    if f["num_layers"] is None and tree_layers:
        f["num_layers"] = tree_layers[-1] + 1
    if f["vocab_size"] is None and embed:
        f["vocab_size"] = int(embed["shape"][0])
    if f["hidden_size"] is None and embed:
        f["hidden_size"] = int(embed["shape"][1])
    L = _int(f["num_layers"])
    d = _int(f["hidden_size"])
    V = _int(f["vocab_size"])
    H = _int(f["num_attention_heads"])
    if f["head_dim"] is None and d and H:
        f["head_dim"] = d // H
    dh = _int(f["head_dim"])
    if f["num_key_value_heads"] is None:
        k0 = next((p for p in unique if p["_comp"] == "k" and len(p.get("shape") or []) == 2), None)
        f["num_key_value_heads"] = (int(k0["shape"][0]) // dh) if (k0 and dh) else H
    KV = _int(f["num_key_value_heads"])
    if f["gqa_group_size"] is None and H and KV:
        f["gqa_group_size"] = H // KV
    g = _int(f["gqa_group_size"])
    dff = _int(f["intermediate_size"])
    if f["tie_word_embeddings"] is None and head is not None:
        f["tie_word_embeddings"] = bool(head.get("tied_to"))
    tied = bool(f["tie_word_embeddings"]) or bool(f["embeddings_shared"])

    # --- nested summary values, flattened --------------------------------------------------------------------
    norm = summary.get("norm") or {}
    f["norm_kind"] = norm.get("kind")
    f["norm_eps"] = norm.get("eps")
    rope = summary.get("rope")
    theta = rope.get("theta") if isinstance(rope, dict) else None
    f["rope_theta"] = theta if isinstance(theta, (int, float)) and not isinstance(theta, bool) else None
    scaling = rope.get("scaling") if isinstance(rope, dict) else None
    if isinstance(scaling, dict):
        kind = scaling.get("rope_type") or scaling.get("type") or "scaled"
        factor = scaling.get("factor")
        f["rope_scaling"] = f"{kind}, factor {factor:g}" if isinstance(factor, (int, float)) else str(kind)
    else:
        f["rope_scaling"] = scaling if scaling else "none"
    theta = f["rope_theta"]
    if theta is not None:
        f["rope_desc"] = f"rotary position embeddings (RoPE) with base θ = {theta:,g}"
    else:
        f["rope_desc"] = "no rotary position embeddings (RoPE) reported for this model"
    bias = summary.get("attention_bias") or {}
    for k in "qkvo":
        f[f"attention_bias_{k}"] = bias.get(k)
    with_bias = [k for k in "qkvo" if bias.get(k)]
    if not bias:
        qkv_bias = sorted({p["_comp"] for p in unique if p["_comp"] in ("q", "k", "v", "o")
                           and p["name"].endswith("bias") and p["_layer"] == (tree_layers[0] if tree_layers else 0)})
        with_bias = [k for k in "qkvo" if k in qkv_bias]
    f["attention_bias_desc"] = ", ".join(with_bias) if with_bias else "none"

    # --- parameter breakdown -----------------------------------------------------------------------------------
    by = dict(summary.get("parameters_by_component") or {})
    if not by and unique:
        by = {grp: 0 for grp in _GROUPS}
        for p in unique:
            by[_GROUP_OF.get(p["_comp"], "other")] += numel(p)
    for grp in _GROUPS:
        f[f"params_{grp}"] = by.get(grp)
        f[f"params_{grp}_pct"] = _pct(by.get(grp), total)
    f["embedding_share_pct"] = f["params_embedding_pct"]
    emb_rows = (V * d) if (V and d) else (numel(embed) if embed else None)
    f["embed_params"] = emb_rows
    f["embed_params_pct"] = _pct(emb_rows, total)
    f["embed_bytes_bf16"] = emb_rows * 2 if emb_rows else None
    emb_and_head = (by.get("embedding") or 0) + (by.get("lm_head") or 0) if by else None
    f["embedding_and_head_pct"] = _pct(emb_and_head, total)
    f["non_embedding_parameters"] = (total - emb_and_head) if (total is not None and emb_and_head is not None) else None
    f["total_if_tied"] = (total - (by.get("lm_head") or 0)) if (total is not None and by) else None
    f["total_if_untied"] = (total + emb_rows) if (total is not None and emb_rows and tied) else total
    f["total_parameters_b"] = total / 1e9 if total is not None else None
    f["total_parameters_m"] = total / 1e6 if total is not None else None

    # --- per layer ---------------------------------------------------------------------------------------------------
    layers = summary.get("layers") or []
    first = layers[0] if layers else None
    lay0 = tree_layers[0] if tree_layers else 0
    in0 = [p for p in unique if p["_layer"] == lay0]
    f["params_per_layer"] = first["parameters"] if first else (sum(numel(p) for p in in0) if in0 else None)
    f["attn_params_per_layer"] = first["attention"] if first else (
        sum(numel(p) for p in in0 if _GROUP_OF.get(p["_comp"]) == "attention") if in0 else None)
    f["mlp_params_per_layer"] = first["mlp"] if first else (
        sum(numel(p) for p in in0 if _GROUP_OF.get(p["_comp"]) == "mlp") if in0 else None)
    f["norm_params_per_layer"] = first["norm"] if first else (
        sum(numel(p) for p in in0 if p["_comp"] == "norm") if in0 else None)
    f["mlp_share_of_layer_pct"] = _pct(f["mlp_params_per_layer"], f["params_per_layer"])
    f["attn_share_of_layer_pct"] = _pct(f["attn_params_per_layer"], f["params_per_layer"])
    if layers:
        f["params_all_layers"] = sum(int(x["parameters"]) for x in layers)
    else:
        f["params_all_layers"] = sum(numel(p) for p in unique if p["_layer"] is not None) if unique else None
    f["params_all_layers_pct"] = _pct(f["params_all_layers"], total)

    # --- layer and head indices ----------------------------------------------------------------------------------
    f["first_layer"] = 0
    f["last_layer"] = L - 1 if L else None
    f["middle_layer"] = L // 2 if L else None
    f["last_head"] = H - 1 if H else None
    f["last_kv_head"] = KV - 1 if KV else None
    f["group0_last_head"] = g - 1 if g else None  # the last query head that shares KV head 0
    f["residual_writes"] = 2 * L if L else None

    # --- attention and GQA ---------------------------------------------------------------------------------------------
    f["q_out_features"] = H * dh if (H and dh) else None
    f["kv_out_features"] = KV * dh if (KV and dh) else None
    f["attn_scale"] = 1 / math.sqrt(dh) if dh else None
    f["sqrt_head_dim"] = math.sqrt(dh) if dh else None
    f["gqa_saving_factor"] = _div(H, KV)
    f["gqa_kind"] = (None if not (H and KV) else "multi-head attention (MHA)" if H == KV
                     else "multi-query attention (MQA)" if KV == 1 else "grouped-query attention (GQA)")
    kvb = summary.get("kv_cache_bytes_per_token") or {}
    per_elem = 2 * L * KV * dh if (L and KV and dh) else None
    f["kv_cache_bytes_per_token_bf16"] = kvb.get("bf16") if kvb.get("bf16") is not None else (
        per_elem * 2 if per_elem else None)
    f["kv_cache_bytes_per_token_fp32"] = kvb.get("fp32") if kvb.get("fp32") is not None else (
        per_elem * 4 if per_elem else None)
    kv16 = f["kv_cache_bytes_per_token_bf16"]
    f["kv_cache_kib_per_token_bf16"] = kv16 / 1024 if kv16 else None
    f["kv_cache_bytes_per_token_bf16_mha"] = kv16 * H // KV if (kv16 and H and KV) else None
    f["kv_cache_kib_per_token_bf16_mha"] = _div(f["kv_cache_bytes_per_token_bf16_mha"], 1024)
    f["kv_cache_mib_4k_bf16"] = kv16 * 4096 / 2**20 if kv16 else None
    # max_position_embeddings is a config value, not a tested context: DeepSeek-R1-Distill-Qwen-1.5B says 131,072,
    # its base Qwen2.5-Math-1.5B has 4,096 (RoPE θ 10,000, no rope_scaling added), and DeepSeek evaluated
    # generations of up to 32,768 tokens (arXiv:2501.12948 §3, "Evaluation Setup").
    # Lessons quote the 32k figure as the realistic one.
    maxpos = _int(f["max_position_embeddings"])
    f["kv_cache_gib_max_context_bf16"] = kv16 * maxpos / 2**30 if (kv16 and maxpos) else None
    f["kv_cache_gib_max_context_bf16_mha"] = (f["kv_cache_bytes_per_token_bf16_mha"] * maxpos / 2**30
                                               if (f["kv_cache_bytes_per_token_bf16_mha"] and maxpos) else None)
    # DeepSeek-R1 (arXiv:2501.12948, §3 "Evaluation Setup") sampled generations of up to 32,768 tokens
    f["kv_cache_32k_human"] = _human_bytes(kv16 * 32768 if kv16 else None)
    f["kv_cache_32k_mha_human"] = _human_bytes(
        f["kv_cache_bytes_per_token_bf16_mha"] * 32768 if f["kv_cache_bytes_per_token_bf16_mha"] else None)
    f["kv_params_saved_per_layer"] = 2 * d * (H - KV) * dh if (d and H and KV and dh) else None

    # --- RoPE ---------------------------------------------------------------------------------------------------------
    f["rope_pairs"] = dh // 2 if dh else None
    if theta is not None and dh:
        # pair i rotates by angle p·θ^(−2i/d_head): wavelength 2π·θ^(2i/d_head), longest at i = d_head/2 − 1
        f["rope_min_wavelength"] = 2 * math.pi
        f["rope_max_wavelength"] = 2 * math.pi * float(theta) ** ((dh - 2) / dh)
    else:
        f["rope_min_wavelength"] = f["rope_max_wavelength"] = None

    # --- MLP, norms, residual stream -------------------------------------------------------------------------------
    f["mlp_expansion"] = _div(dff, d)
    f["mlp_swiglu_params_formula"] = 3 * d * dff if (d and dff) else None
    f["inv_sqrt_hidden"] = 1 / math.sqrt(d) if d else None
    f["inv_sqrt_intermediate"] = 1 / math.sqrt(dff) if dff else None
    f["residual_bytes_per_token_bf16"] = 2 * d if d else None

    # --- embeddings, vocabulary, LM head ----------------------------------------------------------------------------
    pow2 = 1
    if V:
        while V % (pow2 * 2) == 0 and pow2 < 4096:
            pow2 *= 2
    f["vocab_pow2_divisor"] = pow2 if V else None
    f["uniform_loss"] = math.log(V) if V else None
    f["uniform_loss_bits"] = math.log2(V) if V else None
    f["tie_desc"] = ("tied (the LM head reuses the embedding matrix)" if tied
                     else "untied (the LM head is a separate matrix)")
    f["lm_head_params"] = by.get("lm_head") if by else None

    # --- memory and compute -------------------------------------------------------------------------------------------
    mem = summary.get("memory_bytes") or {}
    for k, b in _BYTES.items():
        v = mem.get(k)
        if v is None and total is not None:
            v = int(math.ceil(total * b))
        f[f"memory_bytes_{k}"] = v
        f[f"memory_gb_{k}"] = v / 1e9 if v is not None else None
        f[f"memory_gib_{k}"] = v / 2**30 if v is not None else None
    f["bytes_per_param_stored"] = _DTYPE_BYTES.get(str(f["stored_dtype"]))
    # full fine-tuning with AdamW in mixed precision: bf16 weights (2) + bf16 grads (2) + fp32 master (4) + m, v (8)
    f["full_ft_adam_gb"] = total * 16 / 1e9 if total is not None else None
    f["rlhf_four_models_gb_bf16"] = 4 * f["memory_gb_bf16"] if f["memory_gb_bf16"] is not None else None
    # Kaplan et al. 2020 (§2.1, Table 1): N counts the non-embedding parameters; training costs
    # C ≈ 6·N + 6·n_layer·n_ctx·d_attn per token, the second term being the attention scores (d_attn = n_h·d_head)
    nonemb = f["non_embedding_parameters"]
    d_attn = H * dh if (H and dh) else None
    f["d_attn"] = d_attn
    f["train_flops_per_token"] = 6 * nonemb if nonemb is not None else None
    f["train_flops_per_token_total_n"] = 6 * total if total is not None else None
    for label, ctx_len in (("4k", 4096), ("32k", 32768)):
        attn = 6 * L * ctx_len * d_attn if (L and d_attn) else None
        f[f"attn_train_flops_{label}"] = attn
        f[f"attn_train_flops_{label}_pct"] = _pct(attn, (6 * nonemb + attn) if (attn and nonemb) else None)
    # context length at which the attention term equals 6·N
    f["attn_flops_equal_ctx"] = round(nonemb / (L * d_attn)) if (nonemb and L and d_attn) else None
    f["infer_flops_per_token"] = 2 * nonemb if nonemb is not None else None
    f["chinchilla_tokens"] = 20 * total if total is not None else None
    f["chinchilla_tokens_b"] = 20 * total / 1e9 if total is not None else None
    f["chinchilla_flops"] = 6 * total * 20 * total if total is not None else None
    f["flops_18t_tokens"] = 6 * total * 18e12 if total is not None else None

    # --- QLoRA base memory ------------------------------------------------------------------------------------------
    # bitsandbytes (via transformers' BitsAndBytesConfig) replaces only nn.Linear layers with Linear4bit: the
    # 2-D projection weights inside the layers. Embedding, LM head (kept out by llm_int8_skip_modules' default),
    # norms and biases stay 16-bit. NF4 with blocks of 64 and double quantization stores
    # 8/64 + 32/(64·256) ≈ 0.127 extra bits per quantized weight (Dettmers et al. 2023, §3 "Double Quantization").
    linear = sum(numel(p) for p in unique if p["_layer"] is not None and len(p.get("shape") or []) == 2
                 and p["_comp"] in ALL_LINEAR) if unique else None
    f["qlora_constants_bits"] = QLORA_CONSTANT_BITS
    f["qlora_linear_params"] = linear
    f["qlora_linear_pct"] = _pct(linear, total)
    kept = (total - linear) if (total is not None and linear is not None) else None
    f["qlora_kept_16bit_params"] = kept
    f["qlora_kept_16bit_pct"] = _pct(kept, total)
    qbytes = (linear * (4 + QLORA_CONSTANT_BITS) / 8 + kept * 2) if (linear is not None and kept is not None) else None
    f["qlora_base_bytes"] = int(qbytes) if qbytes is not None else None
    f["qlora_base_gib"] = qbytes / 2**30 if qbytes is not None else None
    f["qlora_base_human"] = _human_bytes(qbytes)

    # --- parameter-efficient fine-tuning ----------------------------------------------------------------------------
    for r in LORA_RANKS:
        for key, comps in (("qkvo", QKVO), ("all", ALL_LINEAR)):
            n = _lora_count(unique, r, comps) if unique else None
            f[f"lora_r{r}_{key}"] = n
            f[f"lora_r{r}_{key}_pct"] = _pct(n, total)
    f["lora_r8_qkvo_per_layer"] = (f["lora_r8_qkvo"] // L) if (f["lora_r8_qkvo"] is not None and L) else None
    f["lora_r8_all_per_layer"] = (f["lora_r8_all"] // L) if (f["lora_r8_all"] is not None and L) else None
    f["lora_r8_q_first"] = 8 * (f["q_out_features"] + d) if (f["q_out_features"] and d) else None
    f["lora_r16_all_peft_total"] = (total + f["lora_r16_all"]) if (total is not None and f["lora_r16_all"] is not None) else None
    f["lora_r16_all_peft_pct"] = _pct(f["lora_r16_all"], f["lora_r16_all_peft_total"])
    f["prompt_tuning_20_params"] = 20 * d if d else None
    f["prefix_tuning_20_params"] = 20 * L * 2 * KV * dh if (L and KV and dh) else None
    f["ia3_params"] = L * (2 * KV * dh + dff) if (L and KV and dh and dff) else None
    f["ia3_params_pct"] = _pct(f["ia3_params"], total)
    f["adapter_64_params"] = L * 2 * (2 * d * 64 + 64 + d) if (L and d) else None
    f["adapter_64_params_pct"] = _pct(f["adapter_64_params"], total)

    # --- tensor and module names, for links (always names that exist in this tree, or None) ------------------------
    f["embed_weight"] = embed["name"] if embed else None
    f["lm_head_weight"] = head["name"] if head else f["embed_weight"]
    final_norm = next((p for p in unique if p["_comp"] == "norm" and p["_layer"] is None
                       and p["name"].endswith("weight")), None)
    f["final_norm_weight"] = final_norm["name"] if final_norm else None
    modules = [n for n in tree if n.get("kind") == "module" and n.get("name")]
    parent_of = {n["name"]: n.get("parent") for n in tree if n.get("name") is not None}
    names_by_layer: dict[int, list[dict]] = {}
    for p in unique:
        if p["_layer"] is not None:
            names_by_layer.setdefault(p["_layer"], []).append(p)
    positions = {"first": 0, "middle": f["middle_layer"], "last": f["last_layer"]}
    fallback = {"q": ("qkv",), "k": ("qkv",), "v": ("qkv",), "gate": ("gate_up", "experts", "up"),
                "up": ("gate_up", "experts"), "down": ("experts",)}
    for pos, idx in positions.items():
        ps = names_by_layer.get(idx, []) if idx is not None else []
        weights = [p for p in ps if len(p.get("shape") or []) >= 2]
        for comp in ("q", "k", "v", "o", "gate", "up", "down"):
            hit = next((p for p in weights if p["_comp"] == comp), None)
            for alt in fallback.get(comp, ()):
                hit = hit or next((p for p in weights if p["_comp"] == alt), None)
            f[f"{comp}_weight_{pos}"] = hit["name"] if hit else None
        norms = [p for p in ps if p["_comp"] == "norm" and p["name"].endswith("weight")]
        attn_norm = next((p for p in norms if re.search(r"input_layernorm|ln_1|attention_norm|attn_norm", p["name"])),
                         norms[0] if norms else None)
        mlp_norm = next((p for p in norms if re.search(r"post_attention_layernorm|ln_2|ffn_norm|mlp_norm", p["name"])),
                        norms[1] if len(norms) > 1 else None)
        f[f"attn_norm_weight_{pos}"] = attn_norm["name"] if attn_norm else None
        f[f"mlp_norm_weight_{pos}"] = mlp_norm["name"] if mlp_norm else None
        # module nodes: the layer, its attention block and its MLP block
        layer_node = None
        if idx is not None:
            mods = [m for m in modules if _layer(m) == idx]
            layer_node = min(mods, key=lambda m: len(m["name"]))["name"] if mods else None
            if layer_node is None and ps:
                m = re.match(rf"^(.*?(?:^|\.)(?:layers|h|blocks|layer)\.{idx})(?:\.|$)", ps[0]["name"])
                layer_node = m.group(1) if m else None
        f[f"layer_node_{pos}"] = layer_node
        f[f"attn_node_{pos}"] = _grandparent(f[f"q_weight_{pos}"], parent_of) or layer_node
        f[f"mlp_node_{pos}"] = _grandparent(f[f"down_weight_{pos}"], parent_of) or layer_node
    f["tree_parameters"] = tree_total

    # --- human-readable sizes (strings), so that prose reads well for 100K and 100B parameters alike --------------
    for key in ("total_parameters", "non_embedding_parameters", "total_if_tied", "params_per_layer", "embed_params",
                "chinchilla_tokens", "lora_r8_qkvo", "lora_r8_all"):
        f[f"{key}_human"] = _human_count(f[key])
    for k in _BYTES:
        f[f"memory_{k}_human"] = _human_bytes(f[f"memory_bytes_{k}"])
    f["full_ft_adam_human"] = _human_bytes(total * 16 if total is not None else None)
    f["rlhf_four_models_human"] = _human_bytes(4 * f["memory_bytes_bf16"] if f["memory_bytes_bf16"] else None)
    f["kv_cache_per_token_human"] = _human_bytes(kv16)
    f["kv_cache_per_token_mha_human"] = _human_bytes(f["kv_cache_bytes_per_token_bf16_mha"])
    f["kv_cache_4k_human"] = _human_bytes(kv16 * 4096 if kv16 else None)
    f["kv_cache_max_context_human"] = _human_bytes(kv16 * maxpos if (kv16 and maxpos) else None)
    f["kv_cache_max_context_mha_human"] = _human_bytes(
        f["kv_cache_bytes_per_token_bf16_mha"] * maxpos if (f["kv_cache_bytes_per_token_bf16_mha"] and maxpos) else None)
    f["embed_bytes_bf16_human"] = _human_bytes(f["embed_bytes_bf16"])

    # --- inference, reasoning and mixture of experts (Part 3) ------------------------------------------------------
    # vLLM's PagedAttention stores the cache in blocks of 16 tokens by default (Kwon et al. 2023, §4; vLLM's
    # --block-size default)
    f["kv_block16_human"] = _human_bytes(kv16 * 16 if kv16 else None)
    f["kv_cache_32k_mib"] = kv16 * 32768 / 2**20 if kv16 else None
    f["kv_cache_32k_ratio_to_weights"] = _div(kv16 * 32768 if kv16 else None, f["memory_bytes_bf16"])
    f["lens_rows"] = L + 1 if L else None  # the embedding output and the output of each layer
    experts = _int(f["num_experts"])
    active = _int(f["num_experts_per_token"])
    f["experts_desc"] = (f"{experts} experts per MoE layer, {active if active else '?'} active per token" if experts
                         else "no experts: every layer has one dense MLP (num_experts is null)")
    return f
