"""Demo `one-head`: one token through one attention head, in numbers, read from the real model.

Hooks on the chosen layer's own attention module capture what it receives (the normalised hidden states and the
rotary cos/sin the model passes in) and what its output projection receives (every head's weighted values,
concatenated). From the captured input, with the module's own q_proj, k_proj, v_proj and the modeling file's own
`apply_rotary_pos_emb`, the demo computes for one query position t and one head h:

    q_t = RoPE(W_q x_t + b_q)[h],  k_j = RoPE(W_k x_j + b_k)[h // group],  v_j = (W_v x_j + b_v)[h // group]
    s_j = q_t · k_j · scaling  (j ≤ t: causal),  w = softmax(s),  out = Σ_j w_j v_j

and checks `out` against the head's slice of what o_proj received, and `w` against the weights the module
returned (eager attention): both must agree to 1e-5.

Streams {"series": "query", "x": dim, "y": q_t[dim]} for the first `dims` dimensions, then per key position j
{"series": "score", "x": j, "y": s_j} and {"series": "weight", "x": j, "y": w_j}.
Result keys: prompt, tokens [labels], layer, head, kv_head, position, token, head_dim, scaling, query_first,
keys [{position, token, score, weight, key_first}], output_first, argmax_position, max_abs_diff_output,
max_abs_diff_weights, matches, elapsed_s, stopped.
"""

from __future__ import annotations

import sys
from typing import Any

import torch

from internals.errors import UserError
from internals.inference.attention import eager_attention
from internals.inference.model_parts import attention_module, decoder_layers, resolve_layer, text_config
from internals.inference.tokens import token_label
from lessons.demos import _common as C
from lessons.demos._context import DemoContext

TOLERANCE = 1e-5


def _projections(attn: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    names = ("q_proj", "k_proj", "v_proj", "o_proj")
    found = [getattr(attn, n, None) for n in names]
    if not all(isinstance(m, torch.nn.Module) for m in found):
        raise UserError(f"{type(attn).__name__} has no separate q_proj, k_proj, v_proj and o_proj: this demo needs a "
                        "Llama/Qwen-style attention module")
    return tuple(found)  # type: ignore[return-value]


@torch.no_grad()
def head_numbers(loaded: Any, ids: list[int], layer: int, head: int, position: int = -1) -> dict[str, Any]:
    """The numbers of one head for one query position (see the module docstring), as tensors and floats."""
    model = loaded.model
    index = resolve_layer(model, layer)
    attn = attention_module(decoder_layers(model)[index])
    q_proj, k_proj, v_proj, o_proj = _projections(attn)
    cfg = text_config(model)
    heads = int(cfg.num_attention_heads)
    kv_heads = int(getattr(cfg, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(attn, "head_dim", None) or cfg.hidden_size // heads)
    if not 0 <= head < heads:
        raise UserError(f"head {head} is out of range: the model has heads 0..{heads - 1}")
    t = position + len(ids) if position < 0 else position
    if not 0 <= t < len(ids):
        raise UserError(f"position {position} is out of range: the prompt has {len(ids)} tokens")

    seen: dict[str, Any] = {}

    def before_attention(module, args, kwargs):
        seen["hidden"] = kwargs.get("hidden_states", args[0] if args else None)
        seen["rope"] = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)

    def after_attention(module, args, kwargs, output):
        seen["weights"] = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None

    def before_o_proj(module, args):
        seen["heads_out"] = args[0]

    handles = [attn.register_forward_pre_hook(before_attention, with_kwargs=True),
               attn.register_forward_hook(after_attention, with_kwargs=True),
               o_proj.register_forward_pre_hook(before_o_proj)]
    device = C.model_device(model)
    try:
        with eager_attention(model):
            model(input_ids=torch.tensor([ids], device=device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    x = seen["hidden"][0].float()  # [T, d]
    kv = head // (heads // kv_heads)
    q = q_proj(x).view(len(ids), heads, head_dim)[:, head]  # [T, dh]
    k = k_proj(x).view(len(ids), kv_heads, head_dim)[:, kv]
    v = v_proj(x).view(len(ids), kv_heads, head_dim)[:, kv]
    q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
    if isinstance(q_norm, torch.nn.Module) and isinstance(k_norm, torch.nn.Module):  # Qwen3-style per-head norms before RoPE
        q, k = q_norm(q), k_norm(k)
    rope = seen.get("rope")
    if rope is not None:
        rotate = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        cos, sin = rope
        q, k = rotate(q[None, None], k[None, None], cos, sin)
        q, k = q[0, 0], k[0, 0]
    scaling = float(getattr(attn, "scaling", head_dim ** -0.5))
    scores = (k[: t + 1] @ q[t]) * scaling  # [t+1]
    weights = torch.softmax(scores.double(), dim=-1).to(scores.dtype)
    out = weights @ v[: t + 1]
    model_out = seen["heads_out"][0, t, head * head_dim:(head + 1) * head_dim].float()
    module_weights = seen.get("weights")
    diff_w = (float((module_weights[0, head, t, : t + 1].float() - weights).abs().max())
              if isinstance(module_weights, torch.Tensor) else None)
    return dict(layer=index, head=head, kv_head=kv, position=t, head_dim=head_dim, scaling=scaling, query=q[t],
                keys=k[: t + 1], values=v[: t + 1], scores=scores, weights=weights, output=out, model_output=model_out,
                max_abs_diff_output=float((out - model_out).abs().max()), max_abs_diff_weights=diff_w)


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    loaded = C.load_model(opened, ctx, 0.0, 0.5)
    prompt = str(params["prompt"])
    ids = C.encode(loaded.tokenizer, prompt)
    if len(ids) < 2:
        raise UserError("the prompt needs at least two tokens")
    ctx.progress(0.6, "running the model with hooks on one attention module")
    n = head_numbers(loaded, ids, int(params["layer"]), int(params["head"]), int(params["position"]))
    dims = max(1, int(params["dims"]))
    labels = [token_label(loaded.tokenizer, i) for i in ids]
    for i, value in enumerate(n["query"][:dims].tolist()):
        ctx.point("query", i, value)
    keys = []
    for j in range(n["position"] + 1):
        score, weight = float(n["scores"][j]), float(n["weights"][j])
        ctx.point("score", j, score)
        ctx.point("weight", j, weight)
        keys.append({"position": j, "token": labels[j], "score": score, "weight": weight,
                     "key_first": n["keys"][j, :dims].tolist()})
    diff_w = n["max_abs_diff_weights"]
    matches = n["max_abs_diff_output"] <= TOLERANCE and (diff_w is None or diff_w <= TOLERANCE)
    ctx.progress(1.0, "done")
    return {"prompt": prompt, "tokens": labels, "layer": n["layer"], "head": n["head"], "kv_head": n["kv_head"],
            "position": n["position"], "token": labels[n["position"]], "head_dim": n["head_dim"],
            "scaling": n["scaling"], "query_first": n["query"][:dims].tolist(), "keys": keys,
            "output_first": n["output"][:dims].tolist(), "argmax_position": int(n["weights"].argmax()),
            "max_abs_diff_output": n["max_abs_diff_output"], "max_abs_diff_weights": diff_w, "matches": matches,
            "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped}
