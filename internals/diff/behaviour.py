"""How the change shows on a prompt: KL per position, the tokens that rose and fell, residual-stream cosines.

Both models read the same token ids (BASE's tokenizer; TUNED needs none of its own). For each position t the next-token distributions
give KL(tuned ‖ base) = Σ_v p_tuned(v) (log p_tuned(v) − log p_base(v)) (nats). "rose" / "fell" are the tokens
whose log-probability changed most at the LAST position (the next token after the prompt): Δ = log p_tuned −
log p_base. The residual streams are transformers' own `output_hidden_states=True` (the embeddings, then
after each layer; the model's last entry is after the final norm for most architectures): for each of these
and each position, the cosine between the two models' vectors.

Memory: models given as `ModelSource`s are loaded one after the other with `load_for_inference` (the first
one's outputs are kept on CPU, then it is dropped), so the peak is one model; models given already loaded
(`Loaded`) are used as they are. A LoRA adapter folder as TUNED is applied to BASE's loaded model with peft
(not merged) after BASE's pass, and removed again afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypedDict

import torch

from internals.errors import UserError
from internals.inference.loading import Loaded, load_for_inference
from internals.inference.model_parts import prompt_tensor
from internals.inference.tokens import token_label, tokenize
from internals.diff.types import BehaviourDiff, TokenChange
from internals.sources import ModelSource

Progress = Callable[[float, str], None]


class _Pass(TypedDict):
    logprobs: torch.Tensor  # [T, V] float32, CPU
    hidden: list[torch.Tensor]  # [T, H] float32, CPU


@torch.no_grad()
def _run(model: Any, ids: torch.Tensor) -> _Pass:
    out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
    return _Pass(logprobs=out.logits[0].float().log_softmax(-1).cpu(),
                 hidden=[h[0].float().cpu() for h in out.hidden_states])


def diff_behaviour(base: ModelSource | Loaded, tuned: ModelSource | Loaded | Path, prompt: str, *, top: int = 10,
                   device: str | None = None, dtype: str | None = None, max_memory: str | None = None,
                   trust_remote_code: bool = False, progress: Progress | None = None,
                   check: Callable[[], None] | None = None) -> BehaviourDiff:
    """Compare the two models' next-token distributions and residual streams on `prompt`.

    tuned: a second model (`ModelSource` or `Loaded`) or the folder (`Path`) of a LoRA adapter over BASE.
    """
    report = progress or (lambda f, m: None)
    owned: list[Loaded] = []

    def load(src: ModelSource | Loaded, lo: float, hi: float) -> Loaded:
        if isinstance(src, Loaded):
            return src
        loaded = load_for_inference(src, device=device, dtype=dtype, max_memory=max_memory,
                                    trust_remote_code=trust_remote_code,
                                    progress=lambda f, m: report(lo + (hi - lo) * f, m))
        owned.append(loaded)
        return loaded

    try:
        b = load(base, 0.0, 0.45)
        tok = tokenize(b.tokenizer, prompt)
        ids = prompt_tensor(b.model, tok["ids"])
        if check:
            check()
        base_pass = _run(b.model, ids)
        if isinstance(tuned, Path):
            from peft import PeftModel

            report(0.5, "applying the adapter")
            wrapped = PeftModel.from_pretrained(b.model, str(tuned), is_trainable=False)
            try:
                tuned_pass = _run(wrapped, ids)
            finally:
                wrapped.unload()  # restore BASE's own modules (nothing was merged)
        else:
            if b in owned and not isinstance(tuned, Loaded):
                b.close()  # one model at a time: BASE's outputs are on CPU already
                owned.remove(b)
            if isinstance(tuned, ModelSource) and tuned.tokenizer_dir is None:
                tuned = replace(tuned, tokenizer_dir=b.source.tokenizer_dir if b.source else None)  # BASE's ids are used
            t = load(tuned, 0.5, 0.95)
            if check:
                check()
            tuned_pass = _run(t.model, prompt_tensor(t.model, tok["ids"]))
    finally:
        for loaded in owned:
            loaded.close()
    result = compare_passes(base_pass, tuned_pass, top)
    for item in (*result["rose"], *result["fell"]):
        item["token"] = token_label(b.tokenizer, item["token_id"])
    result["tokens"] = tok["labels"]
    report(1.0, "done")
    return result


def compare_passes(base: _Pass, tuned: _Pass, top: int = 10) -> BehaviourDiff:
    """KL per position, top risers / fallers at the last position, residual cosines (token labels left empty)."""
    lb, lt = base["logprobs"].double(), tuned["logprobs"].double()
    if lb.shape != lt.shape:
        raise UserError(f"BASE predicts over {lb.shape[-1]} tokens but TUNED over {lt.shape[-1]}: "
                        "their vocabularies differ, so their next-token distributions cannot be compared")
    if len(base["hidden"]) != len(tuned["hidden"]):
        raise UserError("BASE and TUNED have a different number of layers: their residual streams cannot be compared")
    kl = (lt.exp() * (lt - lb)).sum(-1).clamp(min=0.0)
    delta = lt[-1] - lb[-1]
    k = min(top, delta.numel())
    rose = torch.topk(delta, k)
    fell = torch.topk(-delta, k)
    cos = [torch.nn.functional.cosine_similarity(hb.double(), ht.double(), dim=-1).tolist()
           for hb, ht in zip(base["hidden"], tuned["hidden"])]
    return {  # type: ignore[return-value]
        "tokens": [], "kl": kl.tolist(),
        "rose": [TokenChange(token="", token_id=int(i), delta_logprob=float(v)) for v, i in zip(rose.values, rose.indices)],
        "fell": [TokenChange(token="", token_id=int(i), delta_logprob=-float(v)) for v, i in zip(fell.values, fell.indices)],
        "residual_cosine": cos,
    }
