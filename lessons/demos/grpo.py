"""Demo `grpo`: one group, its rewards and advantages, and a GRPO policy-gradient step.

1. Sample G completions of the prompt (softmax(logits / temperature), a torch.Generator seeded with `seed`;
   a completion ends at EOS or after max_new_tokens).
2. Reward rule (REWARD_RULE): 1 if the completion contains "self", +1 if it contains ")", + the share of its
   characters that are ASCII letters or spaces (so rewards almost never tie).
3. Advantages A_i = (r_i - mean r) / std r, std the unbiased group std as in trl; if std is 0 (every reward
   equal) all advantages are 0 and the step changes nothing.
4. `updates` plain gradient steps (SGD, learning rate lr) on the clipped GRPO objective, no KL term (beta = 0,
   and the policy is the reference at the first step anyway):
       J = (1/G) sum_i (1/|o_i|) sum_t min(rho_it A_i, clip(rho_it, 1-eps, 1+eps) A_i),
       rho_it = pi(o_it | ...) / pi_old(o_it | ...)
   At the first step rho = 1, so the gradient is (1/G) sum_i (A_i/|o_i|) grad log pi(o_i): completions with
   positive advantage become more likely, negative less.
5. The log-probability (sum over the completion's tokens) of each completion before and after.

Streams {"series": "advantage" | "logprob_before" | "logprob_after" | "logprob_change", "x": completion index,
"y": value} and {"series": "objective", "x": update, "y": J}. Result keys: prompt, group, temperature,
reward_rule, completions [{index, text, tokens, reward, advantage, logprob_before, logprob_after, change,
moved_with_advantage}], rewards {mean, std}, advantages_mean, std_zero, updates, lr, clip, objective [per update],
clip_fraction [per update], agreement (share of completions with a non-zero advantage whose log-probability
moved in the advantage's sign), weighted_change (sum A_i * change_i), resampled {mean_reward_before,
mean_reward_after} (a fresh group with the same seed before and after), notes, elapsed_s, stopped.
"""

from __future__ import annotations

from typing import Any

import torch

from internals.errors import UserError
from lessons.demos import _common as C
from lessons.demos._context import DemoContext

REWARD_RULE = ('reward = 1 if the completion contains "self" + 1 if it contains ")" '
               '+ the share of its characters that are ASCII letters or spaces')


def reward(text: str) -> float:
    letters = sum(1 for ch in text if ch == " " or ("a" <= ch.lower() <= "z"))
    return float("self" in text) + float(")" in text) + (letters / len(text) if text else 0.0)


def advantages(rewards: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(r - mean) / std (unbiased std, as trl); all zeros when the std is 0 (or there is one completion)."""
    if rewards.numel() < 2:
        return torch.zeros_like(rewards), True
    std = rewards.std()
    if float(std) < 1e-8:
        return torch.zeros_like(rewards), True
    return (rewards - rewards.mean()) / std, False


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    group, n_new = int(params["group"]), int(params["max_new_tokens"])
    temperature, seed = float(params["temperature"]), int(params["seed"])
    lr, eps, updates = float(params["lr"]), float(params["clip"]), max(1, int(params["updates"]))
    if group < 2:
        raise UserError(f"a GRPO group needs at least 2 completions (got group={group})")
    if temperature <= 0:
        raise UserError("temperature must be positive: GRPO samples its completions")
    loaded = C.load_model(opened, ctx, 0.0, 0.15)
    model, tok = loaded.model, loaded.tokenizer
    prompt = str(params["prompt"])
    prompt_ids = C.encode(tok, prompt) or [C.pad_id(tok)]
    stop = C.eos_ids(tok, model)
    notes: list[str] = []

    ctx.progress(0.2, f"sampling {group} completions")
    ids, completion_mask = sample_group(model, prompt_ids, group, n_new, temperature, seed, stop, C.pad_id(tok))
    texts = [_text(tok, ids[i, len(prompt_ids):], completion_mask[i, len(prompt_ids):], stop) for i in range(group)]
    rewards = torch.tensor([reward(t) for t in texts], dtype=torch.float64)
    adv, std_zero = advantages(rewards)
    if std_zero:
        notes.append("every completion got the same reward: all advantages are 0, so the update changes nothing")
    for i in range(group):
        ctx.point("advantage", i, float(adv[i]))
    fresh_before = _fresh_group_reward(model, tok, prompt_ids, group, n_new, temperature, seed + 1, stop)
    attention = (torch.arange(ids.shape[1]) < (len(prompt_ids) + completion_mask[:, len(prompt_ids):].sum(1, keepdim=True))).long()
    device = C.model_device(model)
    ids, completion_mask, attention = ids.to(device), completion_mask.to(device), attention.to(device)
    token_mask = completion_mask[:, 1:].float()
    lengths = token_mask.sum(1).clamp(min=1)
    with torch.no_grad():
        old = C.token_logprobs(model, ids, attention)
    before = (old * token_mask).sum(1)
    adv_t = adv.to(torch.float32).to(device)

    params_list = list(model.parameters())
    for p in params_list:
        p.requires_grad_(True)
    objective, clip_fraction = [], []
    for update in range(updates):
        if ctx.stop_requested():
            break
        new = C.token_logprobs(model, ids, attention)
        ratio = torch.exp(new - old)
        unclipped = ratio * adv_t[:, None]
        clipped = torch.clamp(ratio, 1 - eps, 1 + eps) * adv_t[:, None]
        per_seq = (torch.minimum(unclipped, clipped) * token_mask).sum(1) / lengths
        j = per_seq.mean()
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
                            "advantage": a, "logprob_before": float(before[i]), "logprob_after": float(after[i]),
                            "change": d, "moved_with_advantage": moved})
        ctx.point("logprob_before", i, float(before[i]))
        ctx.point("logprob_after", i, float(after[i]))
        ctx.point("logprob_change", i, d)

    resampled = None
    if not ctx.stop_requested():
        ctx.progress(0.85, "a fresh group from the updated model")
        resampled = {"seed": seed + 1, "mean_reward_before": fresh_before,
                     "mean_reward_after": _fresh_group_reward(model, tok, prompt_ids, group, n_new, temperature,
                                                              seed + 1, stop)}
    ctx.progress(1.0, "done")
    return {
        "prompt": prompt, "group": group, "temperature": temperature, "reward_rule": REWARD_RULE,
        "completions": completions, "rewards": {"mean": float(rewards.mean()), "std": float(rewards.std())},
        "advantages_mean": float(adv.mean()), "std_zero": std_zero,
        "updates": len(objective), "lr": lr, "clip": eps, "objective": objective, "clip_fraction": clip_fraction,
        "agreement": agree / considered if considered else None,
        "weighted_change": float((adv.to(change.dtype).to(change.device) * change).sum()),
        "resampled": resampled, "notes": notes, "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


@torch.no_grad()
def sample_group(model: torch.nn.Module, prompt_ids: list[int], group: int, n_new: int, temperature: float,
                 seed: int, stop: set[int], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[G, P + n_new] token ids (prompt, then samples, padded after EOS) and the completion mask (1 on sampled
    tokens, the EOS included)."""
    device = C.model_device(model)
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor([prompt_ids] * group, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    done = torch.zeros(group, dtype=torch.bool)
    for _ in range(n_new):
        logits = model(input_ids=ids).logits[:, -1].float().cpu()
        probs = torch.softmax(logits / temperature, dim=-1)
        token = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        token = torch.where(done, torch.full_like(token, pad), token)
        ids = torch.cat([ids, token[:, None].to(device)], dim=1)
        mask = torch.cat([mask, (~done).long()[:, None].to(device)], dim=1)
        done |= torch.tensor([int(t) in stop for t in token])
        if bool(done.all()):
            break
    return ids.cpu(), mask.cpu()


def _fresh_group_reward(model: torch.nn.Module, tok: Any, prompt_ids: list[int], group: int, n_new: int,
                        temperature: float, seed: int, stop: set[int]) -> float:
    ids, mask = sample_group(model, prompt_ids, group, n_new, temperature, seed, stop, C.pad_id(tok))
    p = len(prompt_ids)
    return sum(reward(_text(tok, ids[i, p:], mask[i, p:], stop)) for i in range(group)) / group


def _text(tok: Any, ids: torch.Tensor, mask: torch.Tensor, stop: set[int]) -> str:
    kept = [int(t) for t, m in zip(ids.tolist(), mask.tolist()) if m and int(t) not in stop]
    return C.decode(tok, kept)
