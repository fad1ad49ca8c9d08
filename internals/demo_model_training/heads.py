"""Measurements on a causal LM: previous-token and induction scores per (layer, head), held-out loss and the
unigram entropy of a text (all in nats).

Scores, as used in the notes and the model card:
- previous-token score of (layer, head): on ordinary text, the mean over positions i >= 1 of the attention
  weight from position i to position i - 1;
- induction score: on `n_seqs` sequences of `seq_len` random tokens repeated twice, the mean over the
  positions i of the second copy of the attention from i to i - seq_len + 1 (the token that followed the
  earlier occurrence of the current token).

Attention weights need eager attention; `attentions()` switches the model to it for the call.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypedDict

import torch
import torch.nn.functional as F
from typing_extensions import Unpack

INDUCTION_SEED = 1234
INDUCTION_N_SEQS = 8
INDUCTION_SEQ_LEN = 40


@contextmanager
def eager_attention(model) -> Iterator[None]:
    """Temporarily use eager attention (needed for output_attentions=True)."""
    previous = model.config._attn_implementation
    if previous != "eager":
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if previous != "eager":
            model.set_attn_implementation(previous)


@torch.no_grad()
def attentions(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Attention weights, shape [layers, batch, heads, seq, seq]."""
    with eager_attention(model):
        out = model(input_ids=input_ids, output_attentions=True, use_cache=False)
    return torch.stack([a.float() for a in out.attentions])


def special_ids(tokenizer) -> set[int]:
    return set(tokenizer.all_special_ids)


def text_windows(token_ids: Sequence[int], window: int, max_windows: int | None = None) -> torch.Tensor:
    """Consecutive non-overlapping windows of `window` tokens (the remainder is dropped)."""
    n = len(token_ids) // window
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"need at least {window} tokens, got {len(token_ids)}")
    return torch.tensor(list(token_ids[: n * window]), dtype=torch.long).view(n, window)


def previous_token_scores(model, input_ids: torch.Tensor) -> torch.Tensor:
    """[layers, heads]: mean attention from each position i >= 1 to i - 1, over a batch of ordinary text."""
    att = attentions(model, input_ids)  # L, B, H, T, T
    diag = torch.diagonal(att, offset=-1, dim1=-2, dim2=-1)  # L, B, H, T-1: att[..., i, i-1]
    return diag.mean(dim=(1, 3))


def random_repeated_tokens(
    tokenizer,
    n_seqs: int = INDUCTION_N_SEQS,
    seq_len: int = INDUCTION_SEQ_LEN,
    seed: int = INDUCTION_SEED,
    token_ids: Sequence[int] | None = None,
) -> torch.Tensor:
    """[n_seqs, 2 * seq_len]: uniform random tokens (all non-special ones, or `token_ids`), each row the same
    sequence twice."""
    if token_ids is None:
        specials = special_ids(tokenizer)
        token_ids = [i for i in range(len(tokenizer)) if i not in specials]
    allowed = torch.tensor(list(token_ids), dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    first = allowed[torch.randint(0, len(allowed), (n_seqs, seq_len), generator=gen)]
    return torch.cat([first, first], dim=1)


class RepeatedTokens(TypedDict, total=False):
    """The rest of `random_repeated_tokens`' options, which `induction_scores` passes on."""

    n_seqs: int
    seed: int
    token_ids: Sequence[int] | None


def induction_scores(model, tokenizer, seq_len: int = INDUCTION_SEQ_LEN, **batch: Unpack[RepeatedTokens]) -> torch.Tensor:
    """[layers, heads]: mean attention from position i of the second copy to i - seq_len + 1, over
    `random_repeated_tokens(tokenizer, seq_len=seq_len, **batch)`."""
    ids = random_repeated_tokens(tokenizer, seq_len=seq_len, **batch)
    att = attentions(model, ids)  # L, B, H, 2S, 2S
    diag = torch.diagonal(att, offset=-(seq_len - 1), dim1=-2, dim2=-1)  # att[..., i, i-S+1], i = S-1 .. 2S-1
    return diag[..., 1:].mean(dim=(1, 3))  # keep i = S .. 2S-1 (the second copy)


def top_heads(scores: torch.Tensor, threshold: float) -> list[tuple[int, int, float]]:
    """(layer, head, score) with score >= threshold, best first."""
    out = [
        (layer, head, float(scores[layer, head]))
        for layer in range(scores.shape[0])
        for head in range(scores.shape[1])
        if float(scores[layer, head]) >= threshold
    ]
    return sorted(out, key=lambda t: -t[2])


def unigram_entropy(token_ids: Sequence[int]) -> float:
    """Entropy, in nats per token, of the empirical unigram distribution of `token_ids` (the loss of the
    best context-free predictor fitted to this very text)."""
    counts = Counter(token_ids)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values())


@torch.no_grad()
def mean_loss(model, windows: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats per predicted token) over a [n, T] batch of windows."""
    total, count = 0.0, 0
    for start in range(0, windows.shape[0], batch_size):
        ids = windows[start : start + batch_size]
        logits = model(input_ids=ids, use_cache=False).logits.float()
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
        total += float(loss)
        count += ids[:, 1:].numel()
    return total / count


def text_loss(model, tokenizer, text: str, window: int = 128) -> tuple[float, int]:
    """(mean next-token loss, tokens) of `text`, cut into non-overlapping windows of `window` tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = text_windows(ids, window)
    return mean_loss(model, windows), windows.numel()


def text_token_ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@torch.no_grad()
def greedy_continuation(model, tokenizer, prompt: str, max_new_tokens: int = 24) -> str:
    ids = torch.tensor([text_token_ids(tokenizer, prompt)], dtype=torch.long)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.decode(out[0, ids.shape[1] :].tolist())
