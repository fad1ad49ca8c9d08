"""Demo `distill`: logit distillation of the open model (teacher) into a smaller, randomly initialised student.

The student has the teacher's architecture, tokenizer and vocabulary, fewer layers (half, at least 1) and a
smaller hidden size (half the head dimension, same head counts), unless `student_layers` / `student_hidden`
say otherwise; for a teacher over 50M parameters it is capped at 2 layers and head dimension 16. It trains on
Python standard-library text with the loss T^2 * KL(p_T || q_T), averaged over token positions, where
p_T = softmax(teacher logits / T) and q_T = softmax(student logits / T).

Streams {"series": "kl", "x": step, "y": KL(p_T || q_T) of the training batch} every step and
{"series": "heldout_kl", "x": step, "y": KL(p || q) at T = 1 on a fixed held-out batch} every `eval_every`.
Result keys: temperature, teacher {parameters, layers, hidden_size}, student {parameters, layers, hidden_size,
heads, kv_heads, intermediate_size}, compression, steps, batch, seq_len, lr, kl [[step, value]],
heldout_kl [[step, value]], initial_kl, final_kl, initial_heldout_kl, final_heldout_kl,
top1_agreement {before, after} (share of held-out positions where the student's top token is the teacher's),
text {train, heldout}, notes, saved {path, kind "student", command} (the trained student, in `save_to`; default under the cache), elapsed_s, stopped.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from internals.errors import UserError
from lessons.demos import _common as C
from lessons.demos._context import DemoContext

BIG_TEACHER = 50_000_000


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    T = float(params["temperature"])
    if T <= 0:
        raise UserError(f"the distillation temperature must be positive (got {T})")
    loaded = C.load_model(opened, ctx, 0.0, 0.15)
    teacher, tok = loaded.model, loaded.tokenizer
    device = C.model_device(teacher)
    teacher_params = C.count_parameters(teacher)
    student_cfg, notes = student_config(teacher.config, teacher_params, int(params["student_layers"]),
                                        int(params["student_hidden"]))
    seed = int(params["seed"])
    student = C.new_model(student_cfg, seed).to(device).train()

    ctx.progress(0.18, "tokenizing the training text")
    eos = next(iter(sorted(C.eos_ids(tok, teacher))), None)
    train_texts, heldout_texts, sources = C.demo_texts(opened, int(params["max_chars"]))
    train_ids = C.token_stream(tok, train_texts, eos)
    heldout_ids = C.token_stream(tok, heldout_texts, eos)
    steps, batch, seq_len = int(params["steps"]), int(params["batch"]), int(params["seq_len"])
    eval_batch = C.fixed_windows(heldout_ids, max(4, batch), seq_len).to(device)
    with torch.no_grad():
        eval_teacher = teacher(input_ids=eval_batch).logits.float()
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=float(params["lr"]), betas=(0.9, 0.95), weight_decay=0.0)
    eval_every = max(1, int(params["eval_every"]))

    kl_curve: list[list[float]] = []
    heldout_curve: list[list[float]] = []
    agreement_before = _agreement(student, eval_batch, eval_teacher)
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            heldout_curve.append([step, _heldout_kl(student, eval_batch, eval_teacher)])
            ctx.point("heldout_kl", step, heldout_curve[-1][1])
        if step == steps or ctx.stop_requested():
            break
        x = C.random_windows(train_ids, batch, seq_len, gen).to(device)
        with torch.no_grad():
            teacher_logits = teacher(input_ids=x).logits.float()
        student_logits = student(input_ids=x).logits.float()
        kl = kl_divergence(teacher_logits, student_logits, T)
        loss = T * T * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        kl_curve.append([step, float(kl.detach())])
        ctx.point("kl", step, kl_curve[-1][1])
        ctx.progress(0.2 + 0.8 * (step + 1) / max(1, steps), f"step {step + 1}/{steps}: KL {kl_curve[-1][1]:.4f}")
    agreement_after = _agreement(student, eval_batch, eval_teacher)

    from lessons.demos.saving import save_model

    ctx.progress(0.98, "saving the student")
    saved = save_model(student.eval(), params, "distill", opened, student=True)
    t_dims, s_dims = C.config_dims(teacher.config), C.config_dims(student_cfg)
    student_params = C.count_parameters(student)
    return {
        "temperature": T,
        "teacher": {"parameters": teacher_params, "layers": t_dims["layers"], "hidden_size": t_dims["hidden"]},
        "student": {"parameters": student_params, "layers": s_dims["layers"], "hidden_size": s_dims["hidden"],
                    "heads": s_dims["heads"], "kv_heads": s_dims["kv_heads"],
                    "intermediate_size": s_dims["intermediate"]},
        "compression": teacher_params / student_params,
        "steps": len(kl_curve), "batch": batch, "seq_len": seq_len, "lr": float(params["lr"]),
        "kl": kl_curve, "heldout_kl": heldout_curve,
        "initial_kl": kl_curve[0][1] if kl_curve else None, "final_kl": kl_curve[-1][1] if kl_curve else None,
        "initial_heldout_kl": heldout_curve[0][1], "final_heldout_kl": heldout_curve[-1][1],
        "top1_agreement": {"before": agreement_before, "after": agreement_after},
        "text": sources, "notes": notes, "saved": saved, "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def kl_divergence(teacher_logits: torch.Tensor, student_logits: torch.Tensor, T: float) -> torch.Tensor:
    """KL(p_T || q_T) = sum_v p_T (log p_T - log q_T), averaged over token positions."""
    log_p = torch.log_softmax(teacher_logits / T, dim=-1)
    log_q = torch.log_softmax(student_logits / T, dim=-1)
    positions = log_p.numel() // log_p.shape[-1]
    return F.kl_div(log_q, log_p, log_target=True, reduction="sum") / positions


def student_config(config: Any, teacher_params: int, layers: int = 0, hidden: int = 0) -> tuple[Any, list[str]]:
    d = C.config_dims(config)
    big = teacher_params > BIG_TEACHER
    heads, kv = d["heads"], d["kv_heads"]
    if hidden:
        if hidden % heads or (hidden // heads) % 2:
            raise UserError(f"student_hidden must be a multiple of 2 x {heads} (the number of heads), got {hidden}")
        head_dim = hidden // heads
    else:
        head_dim = max(8, (d["head_dim"] // 2) // 2 * 2)
        if big:
            head_dim = 16
    if not layers:
        layers = min(2, max(1, d["layers"] // 2)) if big else max(1, d["layers"] // 2)
    inter = max(16, int(round(d["intermediate"] * (heads * head_dim) / d["hidden"])))
    cfg = C.resized_config(config, layers=layers, heads=heads, kv_heads=kv, head_dim=head_dim, intermediate=inter)
    notes = [f"student: {layers} layers (teacher {d['layers']}), hidden size {heads * head_dim} (teacher {d['hidden']}), "
             f"MLP {inter} (teacher {d['intermediate']}), same {d['vocab']:,}-token vocabulary, random init"]
    if big:
        notes.append(f"the teacher has more than {BIG_TEACHER:,} parameters: the student is capped at 2 layers and "
                     "head dimension 16 so the demo stays short")
    return cfg, notes


@torch.no_grad()
def _heldout_kl(student: torch.nn.Module, batch: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    student.eval()
    try:
        return float(kl_divergence(teacher_logits, student(input_ids=batch).logits.float(), 1.0))
    finally:
        student.train()


@torch.no_grad()
def _agreement(student: torch.nn.Module, batch: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    student.eval()
    try:
        s = student(input_ids=batch).logits.argmax(-1)
        return float((s == teacher_logits.argmax(-1)).float().mean())
    finally:
        student.train()
