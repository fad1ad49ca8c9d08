"""Next-token predictions and streamed generation.

Generation is a hand-written loop over the KV cache instead of `model.generate`, because the worker must hand
each token to the UI as soon as it exists and stop between two tokens when the user cancels; the loop is the
same greedy / temperature sampling that `generate` does, one token per forward pass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from internals.errors import UserError
from internals.inference.errors import translate_oom
from internals.inference.model_parts import max_positions, prompt_tensor, vocab_size
from internals.inference.tokens import IncrementalDecoder, token_label

if TYPE_CHECKING:
    from internals.worker.contract import NextTokens


def next_token_topk(loaded: Any, prompt_ids: Sequence[int], k: int = 10) -> NextTokens:
    """The model's k most likely next tokens after the prompt: ids, probs (softmax of the last logits) and
    pieces (a readable label per token)."""
    model = loaded.model
    ids = prompt_tensor(model, prompt_ids)
    if not 1 <= k <= vocab_size(model):
        raise UserError(f"k must be between 1 and the vocabulary size {vocab_size(model)} (got {k})")
    with translate_oom(), torch.no_grad():
        logits = _last_logits(model, ids)
        top = torch.topk(torch.softmax(logits, dim=-1), k)
    top_ids = top.indices.cpu().tolist()
    return {"ids": top_ids, "probs": top.values.cpu().tolist(),
            "pieces": [token_label(loaded.tokenizer, i) for i in top_ids]}


def generate_stream(loaded: Any, prompt_ids: Sequence[int], max_new_tokens: int, temperature: float = 0.0,
                    seed: int = 0, should_stop: Callable[[], bool] = lambda: False) -> Iterator[dict[str, Any]]:
    """Yield generated tokens one by one: {"token_id", "piece", "text", "eos"}.

    piece: the token's readable label (as in the token view); text: what it adds to the generated text ("" while
    a multi-byte character is incomplete; the texts join to the decoded output); eos: the token is an
    end-of-sequence token (it is yielded, then the stream ends). temperature 0 is greedy decoding (the tokens of
    `model.generate(do_sample=False)`); otherwise softmax(logits / temperature) is sampled with a torch.Generator
    seeded with `seed`, so a request is reproducible. should_stop() is checked before every step.
    """
    model = loaded.model
    ids = prompt_tensor(model, prompt_ids)
    if max_new_tokens < 0:
        raise UserError(f"max_new_tokens must be 0 or more (got {max_new_tokens})")
    if temperature < 0:
        raise UserError(f"temperature must be 0 (greedy) or positive (got {temperature})")
    limit = max_positions(model)
    if limit is not None:
        max_new_tokens = min(max_new_tokens, limit - ids.shape[1])
    eos = eos_ids(loaded)
    sampler = _Sampler(temperature, seed)
    decoder = IncrementalDecoder(loaded.tokenizer)
    cache = _new_cache(model)
    step_input = ids
    for produced in range(max_new_tokens):
        if should_stop():
            return
        with translate_oom(), torch.no_grad():
            logits = _step(model, step_input, cache)
            token = sampler.choose(logits)
        text = decoder.push(token)
        is_eos = token in eos
        if is_eos or produced == max_new_tokens - 1:
            text += decoder.flush()
        yield dict(token_id=token, piece=token_label(loaded.tokenizer, token), text=text, eos=is_eos)
        if is_eos:
            return
        step_input = torch.tensor([[token]], dtype=torch.long, device=ids.device)


def eos_ids(loaded: Any) -> set[int]:
    """Every id that ends generation: the tokenizer's EOS and the model's (generation) config EOS ids."""
    found: set[int] = set()
    sources = [getattr(loaded.tokenizer, "eos_token_id", None),
               getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None),
               getattr(loaded.model.config, "eos_token_id", None)]
    for value in sources:
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, (list, tuple)):
            found.update(int(v) for v in value if isinstance(v, int))
    return found


def _last_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """float32 logits [vocab] for the position after the prompt."""
    return _forward_last(model, input_ids=ids, use_cache=False)


def _step(model: nn.Module, step_input: torch.Tensor, cache) -> torch.Tensor:
    """One forward pass over the new ids, appending to the cache (positions follow from the cache's length)."""
    return _forward_last(model, input_ids=step_input, use_cache=True, **{_cache_keyword(model): cache})


def _forward_last(model: nn.Module, **kwargs) -> torch.Tensor:
    """float32 logits of the last position; only that position goes through the LM head when the model
    supports `logits_to_keep` (a [T, vocab] matrix for a long prompt is the biggest tensor of the pass)."""
    try:
        out = model(logits_to_keep=1, **kwargs)
    except TypeError as exc:
        if "logits_to_keep" not in str(exc):
            raise
        out = model(**kwargs)
    return out.logits[0, -1].float()


def _new_cache(model: nn.Module):
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)  # type: ignore[arg-type]  # torch types dynamic attributes as Tensor | Module
    except TypeError:
        return DynamicCache()


def _cache_keyword(model: nn.Module) -> str:
    """transformers 5 renamed `past_key_values` to `cache` (the old name is deprecated): use what forward takes."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class _Sampler:
    """Greedy at temperature 0, else seeded sampling; the generator lives on the logits' device (the LM head's,
    which with accelerate's device map need not be the input device)."""

    def __init__(self, temperature: float, seed: int) -> None:
        self.temperature = temperature
        self.seed = seed
        self._generator: torch.Generator | None = None

    def choose(self, logits: torch.Tensor) -> int:
        if self.temperature == 0:
            return int(torch.argmax(logits))
        if self._generator is None:
            self._generator = torch.Generator(device=logits.device)
            self._generator.manual_seed(self.seed)
        probs = torch.softmax(logits / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._generator))
