"""Demo `teacher-sft`: sequence-level distillation, the way DeepSeek-R1-Distill was made, in miniature.

The TEACHER is the open model. It generates completions (sampled, seeded) of short prompts cut from Python
standard-library text. The STUDENT is a 1-layer copy of the teacher's config (for a teacher over 50M parameters
also a smaller head dimension, as in the `distill` demo), randomly initialised. The student never sees the
teacher's logits: it is fine-tuned on the teacher's *texts* with plain next-token cross-entropy on the completion
tokens, the prompt masked out (SFT on teacher samples; Kim and Rush 2016; DeepSeek-R1 paper, arXiv:2501.12948,
§2.4). Contrast with `distill`, which matches the teacher's distributions (logit distillation).

Streams {"series": "loss", "x": step, "y": student's loss on a training batch of teacher samples} every step and
{"series": "heldout_loss", ...} on held-out teacher samples (other prompts) every `eval_every`. Result keys:
teacher {role, parameters, layers, hidden_size}, student {role, parameters, layers, hidden_size}, samples
{train, heldout, prompt_tokens, gen_tokens, temperature, examples [{prompt, completion}]}, teacher_heldout_loss
(the teacher's own loss on its held-out samples: the floor a perfect imitator approaches), loss [[step, value]],
heldout_loss [[step, value]], initial_heldout_loss, final_heldout_loss, steps, batch, lr, notes, saved {path, kind "student", command} (the trained student, in `save_to`; default under the cache), elapsed_s, stopped.
"""

from __future__ import annotations

from typing import Any

import torch

from internals.errors import UserError
from lessons.demos import _common as C
from lessons.demos._context import DemoContext
from lessons.demos.distill import BIG_TEACHER, student_config

TEACHER_ROLE = "teacher: the open model; it generates the training texts"
STUDENT_ROLE = ("student: a 1-layer copy of the teacher's config, randomly initialised, fine-tuned on the teacher's "
                "texts (no logits)")


def run(opened: Any, params: dict[str, Any], ctx: DemoContext) -> dict[str, Any]:
    n_train, n_heldout = int(params["samples"]), max(2, int(params["samples"]) // 4)
    p_len, g_len = int(params["prompt_tokens"]), int(params["gen_tokens"])
    temperature, seed = float(params["temperature"]), int(params["seed"])
    steps, batch = int(params["steps"]), int(params["batch"])
    if n_train < 1 or p_len < 1 or g_len < 1:
        raise UserError("samples, prompt_tokens and gen_tokens must be at least 1")
    if temperature <= 0:
        raise UserError("temperature must be positive: the teacher samples its completions")
    loaded = C.load_model(opened, ctx, 0.0, 0.15)
    teacher, tok = loaded.model, loaded.tokenizer
    device = C.model_device(teacher)
    teacher_params = C.count_parameters(teacher)
    same_width = teacher_params <= BIG_TEACHER  # a true 1-layer copy; big teachers get the distill demo's cap
    cfg, notes = student_config(teacher.config, teacher_params, layers=1,
                                hidden=C.config_dims(teacher.config)["hidden"] if same_width else 0)
    student = C.new_model(cfg, seed).to(device).train()

    ctx.progress(0.18, "cutting prompts from the text")
    train_texts, heldout_texts, _ = C.demo_texts(opened, int(params["max_chars"]))
    train_ids = C.token_stream(tok, train_texts, None)
    heldout_ids = C.token_stream(tok, heldout_texts, None)
    stop, pad = C.eos_ids(tok, teacher), C.pad_id(tok)
    ctx.progress(0.2, f"the teacher writes {n_train + n_heldout} completions")
    train_prompts = C.fixed_windows(train_ids, n_train, p_len)
    heldout_prompts = C.fixed_windows(heldout_ids, n_heldout, p_len)
    train_seq, train_mask = C.sample_batch(teacher, train_prompts, g_len, temperature, seed, stop, pad)
    held_seq, held_mask = C.sample_batch(teacher, heldout_prompts, g_len, temperature, seed + 1, stop, pad)
    train_seq, train_mask = train_seq.to(device), train_mask.to(device)
    held_seq, held_mask = held_seq.to(device), held_mask.to(device)
    with torch.no_grad():
        teacher_heldout = float(sft_loss(teacher, held_seq, held_mask))
    examples = [{"prompt": C.decode(tok, train_seq[i, :p_len].tolist()),
                 "completion": C.decode(tok, [int(t) for t, m in zip(train_seq[i, p_len:].tolist(),
                                                                     train_mask[i, p_len:].tolist()) if m])}
                for i in range(min(3, n_train))]

    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=float(params["lr"]), betas=(0.9, 0.95), weight_decay=0.0)
    eval_every = max(1, int(params["eval_every"]))
    losses: list[list[float]] = []
    heldout: list[list[float]] = []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            student.eval()
            with torch.no_grad():
                heldout.append([step, float(sft_loss(student, held_seq, held_mask))])
            student.train()
            ctx.point("heldout_loss", step, heldout[-1][1])
        if step == steps or ctx.stop_requested():
            break
        rows = torch.randint(0, n_train, (min(batch, n_train),), generator=gen).to(device)
        loss = sft_loss(student, train_seq[rows], train_mask[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        losses.append([step, float(loss.detach())])
        ctx.point("loss", step, losses[-1][1])
        ctx.progress(0.3 + 0.7 * (step + 1) / max(1, steps), f"step {step + 1}/{steps}: loss {losses[-1][1]:.3f}")

    from lessons.demos.saving import save_model

    ctx.progress(0.98, "saving the student")
    saved = save_model(student.eval(), params, "teacher-sft", opened, student=True)
    t_dims, s_dims = C.config_dims(teacher.config), C.config_dims(cfg)
    return {
        "teacher": {"role": TEACHER_ROLE, "parameters": teacher_params, "layers": t_dims["layers"],
                    "hidden_size": t_dims["hidden"]},
        "student": {"role": STUDENT_ROLE, "parameters": C.count_parameters(student), "layers": s_dims["layers"],
                    "hidden_size": s_dims["hidden"]},
        "samples": {"train": n_train, "heldout": n_heldout, "prompt_tokens": p_len, "gen_tokens": g_len,
                    "temperature": temperature, "examples": examples},
        "teacher_heldout_loss": teacher_heldout,
        "loss": losses, "heldout_loss": heldout,
        "initial_heldout_loss": heldout[0][1], "final_heldout_loss": heldout[-1][1],
        "steps": len(losses), "batch": batch, "lr": float(params["lr"]), "notes": notes,
        "saved": saved, "elapsed_s": ctx.elapsed(), "stopped": ctx.stopped,
    }


def sft_loss(model: torch.nn.Module, ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the completion tokens only (the prompt's positions are masked out, as in SFT)."""
    mask = completion_mask[:, 1:].float()
    logp = C.token_logprobs(model, ids)
    return -(logp * mask).sum() / mask.sum().clamp(min=1)
