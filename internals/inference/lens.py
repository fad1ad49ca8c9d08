"""The residual stream, read layer by layer: logit lens, residual norms and activation statistics.

The residual stream is captured with hooks on the decoder blocks rather than from `output_hidden_states`,
because transformers replaces the last entry of `hidden_states` with the final-normed state: the hooks give
the true residual after every layer (pre-norm), which is what norms and the lens must start from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from internals.errors import UserError
from internals.inference.errors import translate_oom
from internals.inference.model_parts import (
    attention_module,
    decoder_layers,
    final_norm,
    first_tensor,
    hook_hidden_states,
    lm_head,
    output_tensor,
    prompt_tensor,
    text_config,
    vocab_size,
)
from internals.inference.offload import loaded_once
from internals.inference.result_types import LensBest, LensReadout, TokenTracks
from internals.inference.tokens import token_label

if TYPE_CHECKING:
    from internals.worker.contract import ActivationStat


def logit_lens(loaded: Any, prompt_ids: Sequence[int], top_k: int = 5) -> dict[str, Any]:
    """What each layer's residual stream would predict if it were the last: softmax(lm_head(final_norm(h))).

    Returns num_layers, top_k, num_tokens and `layers`: one entry per decoder layer (after layer 0, ..., after
    the last), each {"layer", "top_ids" [T][k], "top_probs" [T][k], "top_labels" [T][k]}. The last entry is
    the model's own output distribution (its real logits, so any final soft-capping is included); the others
    apply the final norm and the LM head to the residual stream after that layer.
    """
    model = loaded.model
    ids = prompt_tensor(model, prompt_ids)
    if not 1 <= top_k <= vocab_size(model):
        raise UserError(f"top-k must be between 1 and the vocabulary size {vocab_size(model)} (got {top_k})")
    labels: dict[int, str] = {}
    with translate_oom(), torch.no_grad():
        residuals, logits = residual_stream(model, ids, with_logits=True)
        layers = []
        with lens_readout(model) as readout:  # an offloaded head crosses to the device once, not once per layer
            for index, hidden in enumerate(residuals[1:]):
                last = index == len(residuals) - 2
                layer_logits = logits if last and logits is not None else readout(hidden)
                layers.append(_top_entry(loaded.tokenizer, index, layer_logits, top_k, labels))
                del layer_logits
    return dict(num_layers=len(layers), top_k=top_k, num_tokens=int(ids.shape[1]), layers=layers)


def lens_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Logits [T, vocab] that the LM head gives for a residual stream [T, hidden] after the final norm."""
    with lens_readout(model) as readout:
        return readout(hidden)


@contextmanager
def lens_readout(model: nn.Module) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """The lens readout, hidden [T, hidden] -> logits [T, vocab] in float32 (final norm, LM head, the final
    soft-cap where the model has one), for many calls: offloaded norm and head weights are loaded once."""
    norm = final_norm(model)
    cap = getattr(text_config(model), "final_logit_softcapping", None)
    with loaded_once(lm_head(model)) as head, (loaded_once(norm) if norm is not None else nullcontext()) as normed:

        def readout(hidden: torch.Tensor) -> torch.Tensor:
            logits = head(normed(hidden) if normed is not None else hidden).float()
            return torch.tanh(logits / cap) * cap if cap else logits

        yield readout


def residual_norms(loaded: Any, prompt_ids: Sequence[int]) -> np.ndarray:
    """L2 norm of the residual stream, np.float32 [layers + 1, T]: row 0 the embeddings, row i after layer i-1's
    block (before the final norm)."""
    ids = prompt_tensor(loaded.model, prompt_ids)
    with translate_oom(), torch.no_grad():
        residuals, _ = residual_stream(loaded.model, ids, with_logits=False)
        norms = torch.stack([h.float().norm(dim=-1).cpu() for h in residuals])
    return norms.numpy().astype(np.float32)


def residual_stream(model: nn.Module, ids: torch.Tensor, with_logits: bool) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Run the model on ids [1, T]; return the residual stream [T, hidden] before layer 0 and after every layer
    (layers + 1 tensors, pre-final-norm) and, when asked, the model's logits [T, vocab] in float32."""
    layers = decoder_layers(model)
    residuals: list[torch.Tensor | None] = [None] * (len(layers) + 1)

    def keep_input(module: nn.Module, args: tuple, kwargs: dict) -> None:
        residuals[0] = hook_hidden_states(args, kwargs)[0].detach()

    def keep_output(position: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            residuals[position] = output_tensor(output)[0].detach()
        return hook

    handles = [layers[0].register_forward_pre_hook(keep_input, with_kwargs=True)]
    handles += [layer.register_forward_hook(keep_output(i + 1)) for i, layer in enumerate(layers)]
    try:
        if with_logits:
            logits = model(input_ids=ids, use_cache=False).logits[0].float()
        else:
            getattr(model, "base_model", model)(input_ids=ids, use_cache=False)
            logits = None
    finally:
        for handle in handles:
            handle.remove()
    if any(r is None for r in residuals):
        raise RuntimeError("a decoder layer did not run: cannot read the residual stream")
    return residuals, logits  # type: ignore[return-value]


def _top_entry(tokenizer: Any, layer: int, logits: torch.Tensor, k: int, labels: dict[int, str]) -> dict[str, Any]:
    probs = torch.softmax(logits.float(), dim=-1)
    top = torch.topk(probs, k, dim=-1)
    top_ids = top.indices.cpu().tolist()
    for row in top_ids:
        for token_id in row:
            if token_id not in labels:
                labels[token_id] = token_label(tokenizer, token_id)
    return dict(layer=layer, top_ids=top_ids, top_probs=top.values.cpu().tolist(),
                top_labels=[[labels[i] for i in row] for row in top_ids])


def lens_token_tracks(loaded: Any, prompt_ids: Sequence[int], token_ids: Sequence[int],
                      position: int = -1) -> TokenTracks:
    """The logit lens for chosen tokens at one position: their rank and probability at every readout, twice per
    layer (after the attention block: the layer's input plus what its attention adds; after the whole layer),
    and the best readout of each. Readouts apply the final norm and the LM head, as `logit_lens` does."""
    from internals.inference.capture import capture

    model = loaded.model
    ids = prompt_tensor(model, prompt_ids)
    count = int(ids.shape[1])
    index = position + count if position < 0 else position
    if not 0 <= index < count:
        raise UserError(f"position {position} is outside the prompt of {count} tokens")
    chosen = [int(t) for t in token_ids]
    if not chosen:
        raise UserError("choose at least one token to follow through the layers")
    vocab = vocab_size(model)
    bad = next((t for t in chosen if not 0 <= t < vocab), None)
    if bad is not None:
        raise UserError(f"token id {bad} is outside the vocabulary of {vocab}")
    with translate_oom(), torch.no_grad():
        run = capture(model, ids, ("embedding", "residual", "attention"))
        readouts: list[LensReadout] = []
        states = []
        for layer in range(len(run.residual)):
            before = run.got("embedding") if layer == 0 else run.residual[layer - 1]
            states.append(before[index] + run.attention[layer][index])
            readouts.append(LensReadout(layer=layer, stage="attention"))
            states.append(run.residual[layer][index])
            readouts.append(LensReadout(layer=layer, stage="layer"))
        logits = lens_logits(model, torch.stack(states))  # [readouts, vocab]
        picked = logits[:, chosen]
        ranks = (logits[:, None, :] > picked[:, :, None]).sum(dim=-1) + 1
        probs = torch.softmax(logits, dim=-1)[:, chosen]
    probs_np = probs.cpu().numpy().astype(np.float32)
    labels = [token_label(loaded.tokenizer, t) if loaded.tokenizer is not None else f"<id {t}>" for t in chosen]
    best = []
    for column, token in enumerate(chosen):
        row = int(np.argmax(probs_np[:, column]))
        best.append(LensBest(token_id=token, label=labels[column], layer=readouts[row]["layer"],
                             stage=readouts[row]["stage"], prob=float(probs_np[row, column]),
                             rank=int(ranks[row, column])))
    return TokenTracks(token_ids=chosen, labels=labels, position=index, readouts=readouts,
                       ranks=ranks.cpu().numpy().astype(np.int64), probs=probs_np, best=best)


# --- activation statistics -----------------------------------------------------------------------------

@dataclass
class _Running:
    """Per-call moments of one module's outputs (a module may run several times in one forward pass).

    Kept as device tensors and combined at the end (Chan's formula), so the hooks never wait for the GPU and
    never make a float64 copy of a big output such as the LM head's [T, vocab] logits.
    """

    kind: str
    cls: str
    shape: list[int]
    parts: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]  # (count, mean, variance, max |x|)

    def add(self, x: torch.Tensor) -> None:
        values = x.detach().float()
        variance, mean = torch.var_mean(values, correction=0)
        self.parts.append((values.numel(), mean, variance, values.abs().max()))
        self.shape = list(x.shape)

    def combined(self) -> tuple[float, float, float]:
        count, mean, m2 = 0, 0.0, 0.0
        for n, part_mean, part_var, _ in self.parts:
            pm, pv = float(part_mean), float(part_var)
            delta = pm - mean
            total = count + n
            mean += delta * n / total
            m2 += pv * n + delta * delta * count * n / total
            count = total
        return mean, (m2 / count) ** 0.5, max(float(part[3]) for part in self.parts)


def activation_stats(loaded: Any, prompt_ids: Sequence[int]) -> list[ActivationStat]:
    """Statistics of the output of every Linear, norm, attention and MLP module for a prompt, in the order the
    modules first ran.

    Each item: {"name" (in-memory module name, as in the tree), "class", "kind" ("linear" | "norm" |
    "attention" | "mlp" | "experts" | "router"), "shape" (of the last output, batch included), "mean", "std"
    (population), "max_abs", "calls"}. Only tensor outputs count (the first tensor of a tuple output).
    """
    model = loaded.model
    ids = prompt_tensor(model, prompt_ids)
    attention_ids = {id(attention_module(block)) for block in decoder_layers(model)}
    running: dict[str, _Running] = {}
    handles = []
    for name, module in model.named_modules():
        kind = module_kind(name, module, attention_ids)
        if kind is None:
            continue
        handles.append(module.register_forward_hook(_stats_hook(name, kind, running)))
    try:
        with translate_oom(), torch.no_grad():
            model(input_ids=ids, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return [_finish(name, stats) for name, stats in running.items()]


def module_kind(name: str, module: nn.Module, attention_ids: set[int]) -> str | None:
    """Which statistics group a module belongs to (None: not reported)."""
    cls = type(module).__name__
    lowered = cls.lower()
    if id(module) in attention_ids:
        return "attention"
    if isinstance(module, nn.Linear) or cls == "Conv1D":
        return "linear"
    if "norm" in lowered and not isinstance(module, (nn.ModuleList, nn.ModuleDict)):
        return "norm"
    if "experts" in lowered:
        return "experts"
    if "router" in lowered or "topk" in lowered:
        return "router"
    if "mlp" in lowered or "moe" in lowered or name.rsplit(".", 1)[-1] in ("mlp", "feed_forward", "block_sparse_moe"):
        return "mlp"
    return None


def _stats_hook(name: str, kind: str, running: dict[str, _Running]):
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        x = first_tensor(output)
        if x is None or not x.is_floating_point() or x.numel() == 0:
            return
        if name not in running:
            running[name] = _Running(kind, type(module).__name__, list(x.shape), [])
        running[name].add(x)
    return hook


def _finish(name: str, stats: _Running) -> ActivationStat:
    mean, std, max_abs = stats.combined()
    return {"name": name, "class": stats.cls, "kind": stats.kind, "shape": stats.shape, "mean": mean,
            "std": std, "max_abs": max_abs, "calls": len(stats.parts)}
