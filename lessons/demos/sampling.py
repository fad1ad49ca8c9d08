"""Demo `sampling`: the open model's next-token distribution at several temperatures, and what top-k and top-p
keep of it.

One forward pass on `prompt`; logits z of the last position. For each temperature T: p_T = softmax(z / T), its
entropy (nats), the top-k set and the top-p nucleus (the smallest set of most likely tokens with mass >= p,
Holtzman et al. 2020 §3.1) with its size and mass.

Streams, for each temperature, {"series": "T=<T>", "x": rank, "y": probability} over the `top` tokens most likely
at T = 1 (rank 0 is the argmax, which does not depend on T).
Result keys: prompt, temperatures, tokens [{id, label, logit, probs: {T: p}}] (the `top` most likely),
per_temperature [{temperature, entropy, max_prob, top_k_ids, top_k_mass, top_p_ids, top_p_size, top_p_mass}],
top_k, top_p, vocab_size, elapsed_s, stopped.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from internals.errors import UserError
from internals.inference.tokens import token_label
from lessons.demos import _common as C
from lessons.demos._context import DemoContext
from lessons.inference_math import top_k_ids, top_p_ids


def parse_temperatures(text: str) -> list[float]:
    try:
        values = [float(x) for x in str(text).replace(";", ",").split(",") if x.strip()]
    except ValueError:
        raise UserError(f"temperatures must be comma-separated numbers, e.g. 0.5,1.0,2.0 (got {text!r})") from None
    if not values or any(not math.isfinite(t) or t <= 0 for t in values):
        raise UserError("temperatures must be positive numbers (T = 0 is greedy decoding: the argmax)")
    return values


@torch.no_grad()
def next_token_logits(loaded: Any, ids: list[int]) -> torch.Tensor:
    """The last position's logits (float32, CPU) of one forward pass."""
    model = loaded.model
    return model(input_ids=torch.tensor([ids], device=C.model_device(model))).logits[0, -1].float().cpu()


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    temperatures = parse_temperatures(params["temperatures"])
    top, k, p = max(1, int(params["top"])), max(1, int(params["top_k"])), float(params["top_p"])
    if not 0 < p <= 1:
        raise UserError(f"top_p must be in (0, 1] (got {p})")
    loaded = C.load_model(opened, ctx, 0.0, 0.6)
    prompt = str(params["prompt"])
    ids = C.encode(loaded.tokenizer, prompt)
    if not ids:
        raise UserError("the prompt is empty: give some text")
    ctx.progress(0.7, "one forward pass")
    logits = next_token_logits(loaded, ids)
    order = torch.argsort(logits, descending=True)[:top].tolist()
    tokens = [{"id": i, "label": token_label(loaded.tokenizer, i), "logit": float(logits[i]), "probs": {}}
              for i in order]
    per_t = []
    for temperature in temperatures:
        probs = torch.softmax(logits.double() / temperature, dim=-1)
        plist = probs.tolist()
        nz = probs[probs > 0]
        kept_k, kept_p = top_k_ids(plist, k), top_p_ids(plist, p)
        per_t.append({"temperature": temperature, "entropy": float(-(nz * nz.log()).sum()),
                      "max_prob": float(probs.max()), "top_k_ids": kept_k, "top_k_mass": sum(plist[i] for i in kept_k),
                      "top_p_ids": kept_p, "top_p_size": len(kept_p), "top_p_mass": sum(plist[i] for i in kept_p)})
        for rank, entry in enumerate(tokens):
            entry["probs"][f"{temperature:g}"] = plist[entry["id"]]
            ctx.point(f"T={temperature:g}", rank, plist[entry["id"]])
        if ctx.stop_requested():
            break
    ctx.progress(1.0, "done")
    return {"prompt": prompt, "temperatures": temperatures, "tokens": tokens, "per_temperature": per_t,
            "top_k": k, "top_p": p, "vocab_size": int(logits.numel()), "elapsed_s": ctx.elapsed(),
            "stopped": ctx.stopped}
