"""Demo `lora`: a peft LoRA adapter on the open model, its parameter counts, A and B, a short fine-tune, and the
merged update of one module.

Streams {"series": "loss", "x": step, "y": loss}. Result keys:
  r, alpha, scaling, targets, target_modules [names],
  counts {trainable, total, frozen, base_parameters, trainable_percent, formula, formula_matches_peft,
          frozen_matches_base}   (trainable/total: peft's own get_nb_trainable_parameters();
                                  formula: sum over target modules of r*(in+out)),
  per_module [{name, in_features, out_features, lora_parameters}],
  module {name, weight_shape, A_shape, B_shape, B_zero_at_init, A_init, B_after, B_nonzero_after},
  identical_at_init, max_logit_diff_at_init, training {sentences, steps, lr, initial_loss, final_loss, loss},
  completion {prompt, before, after, changed},
  delta_w {module, shape, rank, relative_norm, max_abs_diff_vs_peft, stats, histogram {edges, counts}},
  saved {path, kind "adapter", command}: the adapter (peft save_pretrained) in `save_to` (default: the cache's
  demos/lora), and `llm-internals <saved> --base <open model>`, which shows what it changed,
  elapsed_s, stopped.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from internals.errors import UserError
from internals.structure import classify, layer_of
from lessons.demos import _common as C
from lessons.demos._context import DemoContext

#: The tiny fine-tuning set: a few short functions, repeated every step.
SENTENCES = [
    "def greet(name):\n    return 'Hello, ' + name + '!'\n",
    "def square(x):\n    return x * x\n",
    "def is_even(n):\n    return n % 2 == 0\n",
]
ATTENTION = {"q", "k", "v", "o", "qkv"}
ALL_LINEAR = ATTENTION | {"gate", "up", "down", "gate_up"}


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    from peft import LoraConfig, get_peft_model

    r, alpha = int(params["r"]), int(params["alpha"])
    if r < 1:
        raise UserError(f"the LoRA rank r must be at least 1 (got {r})")
    mode = str(params["targets"]).lower()
    if mode not in ("attention", "all"):
        raise UserError(f"targets must be 'attention' (q, k, v, o) or 'all' (every linear projection), not {mode!r}")
    loaded = C.load_model(opened, ctx, 0.0, 0.15, trains="adapters")
    model, tok = loaded.model, loaded.tokenizer
    device = C.model_device(model)
    targets = find_targets(model, ATTENTION if mode == "attention" else ALL_LINEAR)
    if not targets:
        raise UserError(f"{type(model).__name__} has no linear {'attention' if mode == 'attention' else ''} "
                        "projections that LoRA can target")
    base_total = C.count_parameters(model)
    chosen = _chosen_module(params, targets, opened.structure.num_layers)

    prompt, n_new = str(params["prompt"]), int(params["max_new_tokens"])
    ctx.progress(0.2, "greedy completion before fine-tuning")
    before = C.completion(model, tok, prompt, n_new)
    batch, labels = _batch(tok, device)
    with torch.no_grad():
        base_logits = model(input_ids=batch).logits

    conv1d = any(t["conv1d"] for t in targets)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=[t["name"] for t in targets], lora_dropout=0.0,
                        bias="none", fan_in_fan_out=conv1d)
    torch.manual_seed(int(params["seed"]))
    with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*is_gradient_checkpointing.*")
        peft_model = get_peft_model(model, config)
    trainable, total = peft_model.get_nb_trainable_parameters()
    formula = sum(r * (t["in"] + t["out"]) for t in targets)
    layer = peft_model.base_model.model.get_submodule(chosen)
    a_weight, b_weight = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    b_zero = int(torch.count_nonzero(b_weight)) == 0
    a_init = C.moments(a_weight)
    with torch.no_grad():
        wrapped_logits = peft_model(input_ids=batch).logits
    init_diff = float((wrapped_logits - base_logits).abs().max())

    lr, steps = float(params["lr"]), int(params["steps"])
    losses = C.finetune(ctx, peft_model, [p for p in peft_model.parameters() if p.requires_grad], batch, labels,
                        lr=lr, steps=steps, series="loss", progress=(0.25, 0.6), show_loss=True)

    ctx.progress(0.9, "greedy completion after fine-tuning")
    after = C.completion(peft_model, tok, prompt, n_new)
    delta = _delta(layer, alpha / r, int(params["bins"]), chosen)
    from lessons.demos.saving import save_adapter

    ctx.progress(0.95, "saving the adapter")
    saved = save_adapter(peft_model, params, "lora", opened)
    return {
        "r": r, "alpha": alpha, "scaling": alpha / r, "targets": mode, "target_modules": [t["name"] for t in targets],
        "counts": {"trainable": int(trainable), "total": int(total), "frozen": int(total - trainable),
                   "base_parameters": base_total, "trainable_percent": 100.0 * trainable / total,
                   "formula": formula, "formula_matches_peft": formula == trainable,
                   "frozen_matches_base": int(total - trainable) == base_total},
        "per_module": [{"name": t["name"], "in_features": t["in"], "out_features": t["out"],
                        "lora_parameters": r * (t["in"] + t["out"])} for t in targets],
        "module": {"name": chosen, "weight_shape": list(layer.base_layer.weight.shape),
                   "A_shape": list(a_weight.shape), "B_shape": list(b_weight.shape), "B_zero_at_init": b_zero,
                   "A_init": a_init, "B_after": C.moments(b_weight),
                   "B_nonzero_after": int(torch.count_nonzero(b_weight))},
        "identical_at_init": init_diff == 0.0, "max_logit_diff_at_init": init_diff,
        "steps": len(losses),
        "training": {"sentences": SENTENCES, "steps": len(losses), "lr": lr,
                     "initial_loss": losses[0][1] if losses else None,
                     "final_loss": losses[-1][1] if losses else None, "loss": losses},
        "completion": {"prompt": prompt, "before": before["completion"], "after": after["completion"],
                       "changed": before["token_ids"] != after["token_ids"]},
        "delta_w": delta,
        "saved": saved,
        "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def find_targets(model: torch.nn.Module, components: set[str]) -> list[dict[str, Any]]:
    """Linear (or GPT-2 Conv1D) modules whose component (by name) is in `components`, with in/out sizes."""
    out = []
    for name, module in model.named_modules():
        if not name or classify(name + ".weight") not in components:
            continue
        if isinstance(module, torch.nn.Linear):
            out.append({"name": name, "in": module.in_features, "out": module.out_features, "conv1d": False})
        elif type(module).__name__ == "Conv1D" and getattr(module, "weight", None) is not None:
            fan_in, fan_out = module.weight.shape  # Conv1D stores [in, out]
            out.append({"name": name, "in": int(fan_in), "out": int(fan_out), "conv1d": True})
    return out


def _chosen_module(params: dict[str, Any], targets: list[dict[str, Any]], layers: int) -> str:
    names = [t["name"] for t in targets]
    wanted = str(params["module"]).strip()
    if wanted:
        if wanted.endswith(".weight"):
            wanted = wanted[: -len(".weight")]
        if wanted not in names:
            raise UserError(f"{wanted!r} is not a LoRA target here; targets include {names[0]}")
        return wanted
    mid = layers // 2 if layers else None
    return next((n for n in names if layer_of(n) == mid), names[0])


def _batch(tok: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    eos = next(iter(sorted(C.eos_ids(tok))), None)
    rows = [C.encode(tok, s) + ([eos] if eos is not None else []) for s in SENTENCES]
    width = max(len(r) for r in rows)
    pad = C.pad_id(tok)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, : len(row)] = torch.tensor(row)
    return ids.to(device), labels.to(device)


@torch.no_grad()
def _delta(layer: Any, scaling: float, bins: int, name: str) -> dict[str, Any]:
    a = layer.lora_A["default"].weight.float()
    b = layer.lora_B["default"].weight.float()
    delta = scaling * (b @ a)  # [out, in]
    theirs = layer.get_delta_weight("default").float()
    if theirs.shape != delta.shape:
        theirs = theirs.T  # fan_in_fan_out (Conv1D): peft returns the stored layout
    base = layer.base_layer.weight.float()
    base = base if base.shape == delta.shape else base.T
    hist = C.histograms([delta], bins)
    return {"module": name, "shape": list(delta.shape), "rank": int(torch.linalg.matrix_rank(delta)),
            "relative_norm": float(delta.norm() / base.norm()) if float(base.norm()) else None,
            "max_abs_diff_vs_peft": float((delta - theirs).abs().max()), "stats": C.moments(delta),
            "histogram": {"edges": hist["edges"], "counts": hist["counts"][0]}}
