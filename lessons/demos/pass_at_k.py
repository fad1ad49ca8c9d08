"""Demo `pass-at-k`: k samples per checkable prompt, pass@1 versus majority vote.

Each prompt is the copy task of the `grpo` demo (a line shown twice, then the first word of a third copy; the
answer is the rest of the line, checked exactly by a program). For each prompt, `samples` completions are drawn
with temperature and top-p (DeepSeek-R1's evaluation used T = 0.6, top-p = 0.95 and k = 4..64 samples per
question, arXiv:2501.12948 §3 "Evaluation Setup"), each long enough for the answer plus 2 tokens. A completion's
answer is its first len(expected) characters; it is correct when they equal the expected answer (the reward of
the `grpo` demo: the completion starts with the answer).

- pass@1 of a prompt = c / k (c correct of k); the demo's pass@1 is the mean over prompts.
- pass@k (unbiased, Chen et al. 2021 §2.1) = 1 − C(k−c, k)/C(k, k): 1 if any sample is right.
- majority vote (cons@k): the most frequent answer (ties: first seen) is correct or not.

Streams {"series": "pass@1", "x": prompt index, "y": c/k} and {"series": "majority", "x": prompt index, "y": 0/1}.
Result keys: prompts [{prompt, answer, samples [{text, answer, correct}], correct, pass_at_1, pass_at_k, voted,
voted_correct}], samples, temperature, top_p, pass_at_1, pass_at_k, majority_accuracy, elapsed_s, stopped.
"""

from __future__ import annotations

from typing import Any

import torch

from internals.errors import UserError
from lessons.demos import _common as C
from lessons.demos._context import DemoContext
from lessons.demos.grpo import make_task, reward
from lessons.inference_math import majority_vote, pass_at_k


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the nucleus (smallest most-likely set with mass >= top_p) and renormalise; [N, V]."""
    sorted_p, order = torch.sort(probs, dim=-1, descending=True)
    before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass of the more likely tokens
    keep_sorted = before < top_p  # the first token is always kept
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = probs * keep
    return kept / kept.sum(dim=-1, keepdim=True)


@torch.no_grad()
def sample(model: torch.nn.Module, prompt_ids: list[int], count: int, new_tokens: int, temperature: float,
           top_p: float, gen: torch.Generator) -> list[list[int]]:
    """`count` sampled continuations of one prompt (full recompute each step: short texts only)."""
    device = C.model_device(model)
    ids = torch.tensor([prompt_ids] * count, device=device)
    for _ in range(new_tokens):
        logits = model(input_ids=ids).logits[:, -1].float().cpu()
        probs = top_p_filter(torch.softmax(logits / temperature, dim=-1), top_p)
        token = torch.multinomial(probs, 1, generator=gen)
        ids = torch.cat([ids, token.to(device)], dim=1)
    return [row[len(prompt_ids):] for row in ids.cpu().tolist()]


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    texts = [t.strip() for t in str(params["texts"]).split("|") if t.strip()]
    k, temperature, top_p = int(params["samples"]), float(params["temperature"]), float(params["top_p"])
    if not texts:
        raise UserError("texts: give at least one line to copy, several separated by '|'")
    if k < 1 or temperature <= 0 or not 0 < top_p <= 1:
        raise UserError("samples must be >= 1, temperature > 0 and top_p in (0, 1]")
    loaded = C.load_model(opened, ctx, 0.0, 0.3)
    tok = loaded.tokenizer
    gen = torch.Generator().manual_seed(int(params["seed"]))
    results = []
    for n, text in enumerate(texts):
        if ctx.stop_requested():
            break
        ctx.progress(0.3 + 0.7 * n / len(texts), f"sampling {k} completions of prompt {n + 1}")
        prompt, answer = make_task("copy", text, 0)
        budget = len(C.encode(tok, answer)) + 2
        outs = sample(loaded.model, C.encode(tok, prompt), k, budget, temperature, top_p, gen)
        samples = []
        for out in outs:
            completion = C.decode(tok, out)
            samples.append({"text": completion, "answer": completion[:len(answer)],
                            "correct": reward(completion, answer) == 1.0})
        c = sum(s["correct"] for s in samples)
        voted = majority_vote([s["answer"] for s in samples])
        voted_correct = reward(voted, answer) == 1.0
        results.append({"prompt": prompt, "answer": answer, "samples": samples, "correct": c,
                        "pass_at_1": c / k, "pass_at_k": pass_at_k(k, c, k), "voted": voted,
                        "voted_correct": voted_correct})
        ctx.point("pass@1", n, c / k)
        ctx.point("majority", n, 1.0 if voted_correct else 0.0)
    done = len(results) or 1
    ctx.progress(1.0, "done")
    return {"prompts": results, "samples": k, "temperature": temperature, "top_p": top_p,
            "pass_at_1": sum(r["pass_at_1"] for r in results) / done,
            "pass_at_k": sum(r["pass_at_k"] for r in results) / done,
            "majority_accuracy": sum(r["voted_correct"] for r in results) / done,
            "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped}
