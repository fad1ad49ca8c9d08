"""Demo `dpo`: the DPO loss by hand from the model's own log-probabilities, and the same value from trl.

Reference: the open model, frozen. Policy: a copy, trained for `steps` DPO steps (Adam) on the preference pairs
below, so the loss starts at ln 2 (policy = reference: every log-ratio is 0) and falls. For each pair
(x, y_w, y_l), with sequence log-probabilities summed over the completion tokens (EOS appended, as trl does):

    loss = -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))])
    implicit rewards: r_w = beta * (log pi(y_w|x) - log ref(y_w|x)), r_l likewise

averaged over the pairs. At the end the same batch goes through trl's own code: a real `trl.DPOTrainer` (trl
1.16 has no standalone `dpo_loss`; the loss lives in `DPOTrainer._compute_loss`, reached through the public
`compute_loss`), with trl's `DataCollatorForPreference` building the batch from the same token ids.

Streams {"series": "loss" | "reward_chosen" | "reward_rejected" | "margin", "x": step, "y": value}. Result keys:
  beta, pairs [{prompt, chosen, rejected, prompt_tokens, chosen_tokens, rejected_tokens}],
  steps, lr, history [{step, loss, reward_chosen, reward_rejected, margin}],
  final {loss, per_pair [{policy_chosen, policy_rejected, ref_chosen, ref_rejected, reward_chosen,
         reward_rejected, margin, loss}], reward_accuracy},
  initial_loss, ln2,
  trl {available, version, loss, difference, agree (|hand - trl| <= 1e-5), same_batch, rewards_chosen,
       rewards_rejected, code_path, message}, elapsed_s, stopped.
"""

from __future__ import annotations

import copy
import math
import tempfile
import warnings
from typing import Any

import torch
import torch.nn.functional as F

from lessons.demos import _common as C
from lessons.demos._context import DemoContext
from lessons.demos.registry import TRAIN_EXTRA_HINT

PAIRS = [
    {"prompt": "def add(a, b):\n    return", "chosen": " a + b\n", "rejected": " a - b\n"},
    {"prompt": "for i in range(", "chosen": "10):\n", "rejected": "10]:\n"},
]
TOLERANCE = 1e-5


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    beta, steps, lr = float(params["beta"]), int(params["steps"]), float(params["lr"])
    loaded = C.load_model(opened, ctx, 0.0, 0.15, trains="full", reference=True)
    reference, tok = loaded.model, loaded.tokenizer
    examples = tokenize_pairs(tok, PAIRS)
    batch = collate(examples, C.pad_id(tok), C.model_device(reference))
    with torch.no_grad():
        ref_logps = sequence_logps(reference, batch)

    torch.manual_seed(int(params["seed"]))
    policy = copy.deepcopy(reference)
    trainable = [p for p in policy.parameters()]
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(trainable, lr=lr)
    history: list[dict[str, float]] = []
    for step in range(steps + 1):
        logps = sequence_logps(policy, batch)
        terms = dpo_terms(logps, ref_logps, beta)
        row = {"step": step, "loss": float(terms["loss"].detach()),
               "reward_chosen": float(terms["reward_chosen"].mean()),
               "reward_rejected": float(terms["reward_rejected"].mean()),
               "margin": float((terms["reward_chosen"] - terms["reward_rejected"]).mean())}
        history.append(row)
        for series in ("loss", "reward_chosen", "reward_rejected", "margin"):
            ctx.point(series, step, row[series])
        if step == steps or ctx.stop_requested():
            break
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        ctx.progress(0.15 + 0.6 * (step + 1) / max(1, steps), f"DPO step {step + 1}/{steps}: loss {row['loss']:.4f}")
    for p in trainable:
        p.requires_grad_(False)
    policy.eval()

    with torch.no_grad():
        logps = sequence_logps(policy, batch)
        final = dpo_terms(logps, ref_logps, beta)
    per_pair = []
    n = len(examples)
    for i in range(n):
        per_pair.append({
            "policy_chosen": float(logps[i]), "policy_rejected": float(logps[n + i]),
            "ref_chosen": float(ref_logps[i]), "ref_rejected": float(ref_logps[n + i]),
            "reward_chosen": float(final["reward_chosen"][i]), "reward_rejected": float(final["reward_rejected"][i]),
            "margin": float(final["reward_chosen"][i] - final["reward_rejected"][i]),
            "loss": float(final["per_pair"][i]),
        })
    hand_loss = float(final["loss"])
    ctx.progress(0.8, "the same loss with trl")
    trl_result = trl_loss(policy, reference, tok, examples, batch, beta, hand_loss) if not ctx.stopped else \
        {"available": None, "message": "stopped before the trl comparison"}
    ctx.progress(1.0, "done")
    return {
        "beta": beta,
        "pairs": [{**PAIRS[i], "prompt_tokens": examples[i]["prompt_ids"], "chosen_tokens": examples[i]["chosen_ids"],
                   "rejected_tokens": examples[i]["rejected_ids"]} for i in range(n)],
        "steps": len(history) - 1, "lr": lr, "history": history,
        "initial_loss": history[0]["loss"], "ln2": math.log(2.0),
        "final": {"loss": hand_loss, "per_pair": per_pair,
                  "reward_accuracy": float((final["reward_chosen"] > final["reward_rejected"]).float().mean())},
        "trl": trl_result,
        "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def tokenize_pairs(tok: Any, pairs: list[dict[str, str]]) -> list[dict[str, list[int]]]:
    """Token ids the way trl's DPOTrainer makes them: the prompt is the common prefix of tokenize(prompt) and
    tokenize(prompt + completion); EOS is appended to each completion."""
    eos = [tok.eos_token_id] if isinstance(tok.eos_token_id, int) else []
    out = []
    for pair in pairs:
        prompt_ids = C.encode(tok, pair["prompt"])
        chosen_full = C.encode(tok, pair["prompt"] + pair["chosen"]) + eos
        rejected_full = C.encode(tok, pair["prompt"] + pair["rejected"]) + eos
        keep = min(_common_prefix(prompt_ids, chosen_full), _common_prefix(prompt_ids, rejected_full))
        out.append({"prompt_ids": prompt_ids[:keep], "chosen_ids": chosen_full[keep:],
                    "rejected_ids": rejected_full[keep:]})
    return out


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def collate(examples: list[dict[str, list[int]]], pad: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Rows [chosen..., rejected...], right-padded: input_ids, attention_mask, completion_mask (trl's layout)."""
    rows = [e["prompt_ids"] + e["chosen_ids"] for e in examples] + [e["prompt_ids"] + e["rejected_ids"] for e in examples]
    masks = [[0] * len(e["prompt_ids"]) + [1] * len(e["chosen_ids"]) for e in examples] + \
            [[0] * len(e["prompt_ids"]) + [1] * len(e["rejected_ids"]) for e in examples]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    completion = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, mask) in enumerate(zip(rows, masks)):
        ids[i, : len(row)] = torch.tensor(row)
        attention[i, : len(row)] = 1
        completion[i, : len(row)] = torch.tensor(mask)
    return {"input_ids": ids.to(device), "attention_mask": attention.to(device), "completion_mask": completion.to(device)}


def sequence_logps(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over completion tokens of log p(token | everything before it), one value per row."""
    per_token = C.token_logprobs(model, batch["input_ids"], batch["attention_mask"])
    return (per_token * batch["completion_mask"][:, 1:]).sum(dim=1)


def dpo_terms(logps: torch.Tensor, ref_logps: torch.Tensor, beta: float) -> dict[str, torch.Tensor]:
    chosen, rejected = logps.chunk(2)
    ref_chosen, ref_rejected = ref_logps.chunk(2)
    chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
    per_pair = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    return {"loss": per_pair.mean(), "per_pair": per_pair.detach(),
            "reward_chosen": beta * chosen_ratio.detach(), "reward_rejected": beta * rejected_ratio.detach()}


def trl_loss(policy: torch.nn.Module, reference: torch.nn.Module, tok: Any, examples: list[dict[str, list[int]]],
             batch: dict[str, torch.Tensor], beta: float, hand_loss: float) -> dict[str, Any]:
    """The loss of `batch` through trl's DPOTrainer.compute_loss (policy and reference as given, float32)."""
    try:
        import trl
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer
    except ImportError:
        return {"available": False, "message": f"trl is not installed, so only the hand computation is shown: "
                                               f"{TRAIN_EXTRA_HINT}"}
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    # Copies: the trainer patches the models' forward (a fused LM head) and moves them to its device.
    policy, reference = copy.deepcopy(policy), copy.deepcopy(reference)
    on_cpu = C.model_device(policy).type == "cpu"
    with tempfile.TemporaryDirectory(prefix="llm-internals-dpo-") as out, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = DPOConfig(output_dir=out, beta=beta, loss_type=["sigmoid"], bf16=False, fp16=False, use_cpu=on_cpu,
                         gradient_checkpointing=False, report_to="none", save_strategy="no",
                         per_device_train_batch_size=len(examples), disable_tqdm=True, max_length=None,
                         precompute_ref_log_probs=False, **_no_aux_loss(DPOConfig))
        dataset = Dataset.from_list([dict(p) for p in PAIRS])
        trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=dataset,
                             processing_class=tok)
        trl_batch = trainer.data_collator(examples)
        same = all(torch.equal(trl_batch[k].cpu(), batch[k].cpu()) for k in ("input_ids", "attention_mask", "completion_mask"))
        trl_batch = {k: v.to(C.model_device(policy)) for k, v in trl_batch.items()}
        trainer.model.eval()
        with torch.no_grad():
            value = float(trainer.compute_loss(trainer.model, trl_batch))
        metrics = getattr(trainer, "_metrics", {}).get("eval", {})
    difference = abs(value - hand_loss)
    return {"available": True, "version": trl.__version__, "loss": value, "difference": difference,
            "agree": difference <= TOLERANCE, "same_batch": same,
            "rewards_chosen": _last(metrics.get("rewards/chosen")), "rewards_rejected": _last(metrics.get("rewards/rejected")),
            "code_path": "trl.DPOTrainer(model=policy, ref_model=reference, loss_type=['sigmoid']).compute_loss on "
                         "the batch from trl's DataCollatorForPreference (trl 1.16 has no standalone dpo_loss)",
            "message": f"hand {hand_loss:.8f} vs trl {value:.8f}: difference {difference:.2e}"}


def _no_aux_loss(config_class: Any) -> dict[str, Any]:
    """Mixture-of-experts models: trl adds the router load-balancing loss to the DPO loss unless its coefficient
    is 0; the comparison is about the DPO term."""
    fields = getattr(config_class, "__dataclass_fields__", {})
    return {"router_aux_loss_coef": 0.0} if "router_aux_loss_coef" in fields else {}


def _last(values: Any) -> float | None:
    return float(values[-1]) if values else None
