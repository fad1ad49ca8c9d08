"""Demo `grpo`: one group on a task whose answer is checked exactly, its advantages, and GRPO updates.

1. The task (VERIFIABLE, as R1-Zero's accuracy reward): `task="copy"` shows `text` twice and then the first word
   of a third copy; the answer is the rest of `text`. `task="add"` shows a few sums "a + b = c" and asks one
   more. The reward is 1.0 when the completion's text starts with the answer exactly, else 0.0: a program
   checks it, no heuristic, no reward model.
2. Sample G completions (softmax(logits / temperature), a torch.Generator seeded with `seed`; a completion ends
   at EOS or after as many tokens as the answer has, plus 2).
3. Advantages A_i = (r_i - mean r) / std r, std the unbiased group std as in trl; if std is 0 (every answer right
   or every answer wrong) all advantages are 0 and only the KL term (if any) moves the policy.
4. `updates` plain gradient steps (SGD, learning rate lr) on the GRPO objective of DeepSeekMath (Shao et al.
   2024, eq. 3), with the KL penalty to a frozen reference (the model before the first update) when beta > 0:
       J = (1/G) sum_i (1/|o_i|) sum_t [ min(rho_it A_i, clip(rho_it, 1-eps, 1+eps) A_i) - beta D_it ],
       rho_it = pi(o_it | ...) / pi_old(o_it | ...),  D_it = pi_ref/pi - log(pi_ref/pi) - 1  (>= 0)
   As in trl, beta = 0 loads no reference model. At the first step rho = 1 and D = 0.
5. The log-probability (sum over the completion's tokens) of each completion before and after.

Streams {"series": "advantage" | "logprob_before" | "logprob_after" | "logprob_change", "x": completion index,
"y": value}, {"series": "objective", "x": update, "y": J} and {"series": "kl", "x": update, "y": mean D}.
Result keys: prompt, answer, task, group, temperature, beta, reward_rule, completions [{index, text, tokens, reward,
correct, advantage, logprob_before, logprob_after, change, moved_with_advantage}], rewards {mean, std},
accuracy, advantages_mean, std_zero, updates, lr, clip, objective [per update], kl [per update],
clip_fraction [per update], reference_loaded, agreement (share of completions with a non-zero advantage whose
log-probability moved in the advantage's sign), weighted_change (sum A_i * change_i), resampled
{mean_reward_before, mean_reward_after} (a fresh group with the same seed before and after), notes, elapsed_s,
stopped.
"""

from __future__ import annotations

from typing import Any

import torch

from internals.errors import UserError
from lessons.demos import _common as C
from lessons.demos._context import DemoContext

REWARD_RULE = "reward = 1 if the completion's text starts with the expected answer exactly, else 0"
TASKS = ("copy", "add")


def make_task(task: str, text: str, seed: int) -> tuple[str, str]:
    """(prompt, answer) of a task whose answer a program can check."""
    if task == "copy":
        words = text.split()
        if len(words) < 2:
            raise UserError("the copy task needs a text of at least two words")
        line = " ".join(words)
        return f"{line}\n{line}\n{words[0]}", " " + " ".join(words[1:])
    if task == "add":
        import random

        rng = random.Random(seed)
        pairs = [(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(4)]
        shots = "".join(f"{a} + {b} = {a + b}\n" for a, b in pairs[:3])
        a, b = pairs[3]
        return f"{shots}{a} + {b} =", f" {a + b}"
    raise UserError(f"unknown GRPO task {task!r}; tasks: {', '.join(TASKS)}")


def reward(completion: str, answer: str) -> float:
    """1.0 if the completion starts with the answer exactly (the verifiable reward), else 0.0."""
    return 1.0 if completion.startswith(answer) else 0.0


def advantages(rewards: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(r - mean) / std (unbiased std, as trl); all zeros when the std is 0 (or there is one completion)."""
    if rewards.numel() < 2:
        return torch.zeros_like(rewards), True
    std = rewards.std()
    if float(std) < 1e-8:
        return torch.zeros_like(rewards), True
    return (rewards - rewards.mean()) / std, False


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    group = int(params["group"])
    temperature, seed = float(params["temperature"]), int(params["seed"])
    lr, eps, updates = float(params["lr"]), float(params["clip"]), max(1, int(params["updates"]))
    beta = float(params["beta"])
    if group < 2:
        raise UserError(f"a GRPO group needs at least 2 completions (got group={group})")
    if temperature <= 0:
        raise UserError("temperature must be positive: GRPO samples its completions")
    if beta < 0:
        raise UserError(f"beta (the KL coefficient) must be >= 0 (got {beta})")
    prompt, answer = make_task(str(params["task"]), str(params["text"]), seed)
    loaded = C.load_model(opened, ctx, 0.0, 0.15, trains="full", reference=beta > 0)
    model, tok = loaded.model, loaded.tokenizer
    prompt_ids = C.encode(tok, prompt) or [C.pad_id(tok)]
    n_new = len(C.encode(tok, answer)) + 2
    stop = C.eos_ids(tok, model)
    notes: list[str] = []
    reference = None
    if beta > 0:
        import copy

        reference = copy.deepcopy(model).eval()  # the frozen reference: the policy before any update
    else:
        notes.append("beta = 0: no reference model is loaded and there is no KL term (trl's default)")

    ctx.progress(0.2, f"sampling {group} completions")
    ids, completion_mask = sample_group(model, prompt_ids, group, n_new, temperature, seed, stop, C.pad_id(tok))
    texts = [_text(tok, ids[i, len(prompt_ids):], completion_mask[i, len(prompt_ids):], stop) for i in range(group)]
    rewards = torch.tensor([reward(t, answer) for t in texts], dtype=torch.float64)
    adv, std_zero = advantages(rewards)
    if std_zero:
        notes.append("every completion got the same reward: all advantages are 0, so only the KL term can move "
                     "the policy")
    for i in range(group):
        ctx.point("advantage", i, float(adv[i]))
    fresh_before = _fresh_group_reward(model, tok, prompt_ids, answer, group, n_new, temperature, seed + 1, stop)
    attention = (torch.arange(ids.shape[1]) < (len(prompt_ids) + completion_mask[:, len(prompt_ids):].sum(1, keepdim=True))).long()
    device = C.model_device(model)
    ids, completion_mask, attention = ids.to(device), completion_mask.to(device), attention.to(device)
    token_mask = completion_mask[:, 1:].float()
    lengths = token_mask.sum(1).clamp(min=1)
    with torch.no_grad():
        old = C.token_logprobs(model, ids, attention)
        ref = C.token_logprobs(reference, ids, attention) if reference is not None else None
    before = (old * token_mask).sum(1)
    adv_t = adv.to(torch.float32).to(device)

    params_list = list(model.parameters())
    for p in params_list:
        p.requires_grad_(True)
    objective, kl_values, clip_fraction = [], [], []
    for update in range(updates):
        if ctx.stop_requested():
            break
        new = C.token_logprobs(model, ids, attention)
        ratio = torch.exp(new - old)
        unclipped = ratio * adv_t[:, None]
        clipped = torch.clamp(ratio, 1 - eps, 1 + eps) * adv_t[:, None]
        per_token = torch.minimum(unclipped, clipped)
        if ref is not None:
            kl = kl_estimate(new, ref)
            per_token = per_token - beta * kl
            kl_values.append(float((kl.detach() * token_mask).sum() / token_mask.sum().clamp(min=1)))
            ctx.point("kl", update, kl_values[-1])
        j = ((per_token * token_mask).sum(1) / lengths).mean()
        model.zero_grad(set_to_none=True)
        (-j).backward()
        with torch.no_grad():
            for p in params_list:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-lr)
        objective.append(float(j.detach()))
        was_clipped = ((ratio < 1 - eps) | (ratio > 1 + eps)).float()
        clip_fraction.append(float((was_clipped * token_mask).sum() / token_mask.sum().clamp(min=1)))
        ctx.point("objective", update, objective[-1])
        ctx.progress(0.3 + 0.5 * (update + 1) / updates, f"update {update + 1}/{updates}")
    for p in params_list:
        p.requires_grad_(False)
        p.grad = None
    with torch.no_grad():
        after = (C.token_logprobs(model, ids, attention) * token_mask).sum(1)
    change = after - before

    completions = []
    agree = considered = 0
    for i in range(group):
        a, d = float(adv[i]), float(change[i])
        moved = None if a == 0 else (d > 0) == (a > 0)
        if moved is not None:
            considered += 1
            agree += int(moved)
        completions.append({"index": i, "text": texts[i], "tokens": int(lengths[i]), "reward": float(rewards[i]),
                            "correct": bool(rewards[i] > 0), "advantage": a, "logprob_before": float(before[i]),
                            "logprob_after": float(after[i]), "change": d, "moved_with_advantage": moved})
        ctx.point("logprob_before", i, float(before[i]))
        ctx.point("logprob_after", i, float(after[i]))
        ctx.point("logprob_change", i, d)

    resampled = None
    if not ctx.stop_requested():
        ctx.progress(0.85, "a fresh group from the updated model")
        resampled = {"seed": seed + 1, "mean_reward_before": fresh_before,
                     "mean_reward_after": _fresh_group_reward(model, tok, prompt_ids, answer, group, n_new,
                                                              temperature, seed + 1, stop)}
    ctx.progress(1.0, "done")
    return {
        "prompt": prompt, "answer": answer, "task": str(params["task"]), "group": group, "temperature": temperature,
        "beta": beta, "reward_rule": REWARD_RULE, "completions": completions,
        "rewards": {"mean": float(rewards.mean()), "std": float(rewards.std())}, "accuracy": float(rewards.mean()),
        "advantages_mean": float(adv.mean()), "std_zero": std_zero,
        "updates": len(objective), "lr": lr, "clip": eps, "objective": objective, "kl": kl_values,
        "clip_fraction": clip_fraction, "reference_loaded": reference is not None,
        "agreement": agree / considered if considered else None,
        "weighted_change": float((adv.to(change.dtype).to(change.device) * change).sum()),
        "resampled": resampled, "notes": notes, "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimator of DeepSeekMath (eq. 4) and trl: pi_ref/pi - log(pi_ref/pi) - 1, always >= 0."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def sample_group(model: torch.nn.Module, prompt_ids: list[int], group: int, n_new: int, temperature: float,
                 seed: int, stop: set[int], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[G, P + n_new] token ids (prompt, then samples, padded after EOS) and the completion mask (1 on sampled
    tokens, the EOS included)."""
    prompts = torch.tensor([prompt_ids] * group, dtype=torch.long)
    return C.sample_batch(model, prompts, n_new, temperature, seed, stop, pad)


def _fresh_group_reward(model: torch.nn.Module, tok: Any, prompt_ids: list[int], answer: str, group: int,
                        n_new: int, temperature: float, seed: int, stop: set[int]) -> float:
    ids, mask = sample_group(model, prompt_ids, group, n_new, temperature, seed, stop, C.pad_id(tok))
    p = len(prompt_ids)
    return sum(reward(_text(tok, ids[i, p:], mask[i, p:], stop), answer) for i in range(group)) / group


def _text(tok: Any, ids: torch.Tensor, mask: torch.Tensor, stop: set[int]) -> str:
    kept = [int(t) for t, m in zip(ids.tolist(), mask.tolist()) if m and int(t) not in stop]
    return C.decode(tok, kept)
