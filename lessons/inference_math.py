"""Small, torch-free formulas of the inference lessons: temperature softmax, the top-k and top-p (nucleus) sets,
pass@k and majority voting, and symmetric absmax integer quantization.

Shared by the exercises (`lessons.exercises`) and the demos; the tests check each against another implementation
(torch, transformers' logits processors, brute-force enumeration).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

__all__ = ["softmax_t", "top_k_ids", "top_p_ids", "pass_at_k", "majority_vote", "absmax_quantize"]


def softmax_t(logits: Sequence[float], temperature: float = 1.0) -> list[float]:
    """softmax(logits / T); T must be > 0 (T → 0 is greedy, T = 1 the model's own distribution)."""
    if temperature <= 0:
        raise ValueError("temperature must be positive (0 means greedy: take the argmax)")
    scaled = [float(x) / temperature for x in logits]
    top = max(scaled)
    exps = [math.exp(x - top) for x in scaled]
    total = sum(exps)
    return [e / total for e in exps]


def _order(probs: Sequence[float]) -> list[int]:
    """Indices by decreasing probability; ties keep the lower index first."""
    return sorted(range(len(probs)), key=lambda i: (-probs[i], i))


def top_k_ids(probs: Sequence[float], k: int) -> list[int]:
    """The k most likely indices (top-k sampling keeps these and renormalises)."""
    return _order(probs)[:max(1, int(k))]


def top_p_ids(probs: Sequence[float], p: float) -> list[int]:
    """The nucleus of Holtzman et al. (2020, §3.1): the smallest set of most likely indices whose probabilities sum
    to at least p (the most likely index is always kept)."""
    kept, mass = [], 0.0
    for i in _order(probs):
        kept.append(i)
        mass += probs[i]
        if mass >= p - 1e-12:
            break
    return kept


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 − C(n−c, k) / C(n, k) (Chen et al. 2021, §2.1).
    For k = 1 it is c / n, the pass@1 that DeepSeek-R1 reports (averaged over problems)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError("need 0 <= c <= n and 1 <= k <= n")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_vote(answers: Sequence[Hashable]) -> Hashable:
    """The most frequent answer (ties go to the one seen first): self-consistency / cons@k."""
    counts = Counter(answers)
    best = max(counts.values())
    return next(a for a in answers if counts[a] == best)


def absmax_quantize(values: Sequence[float], bits: int = 8) -> tuple[list[int], float]:
    """Symmetric absmax quantization to signed `bits`-bit integers: scale = max|x| / (2^(bits−1) − 1),
    q = round(x / scale) (round half to even, as torch). Returns (q, scale); x ≈ q · scale."""
    qmax = 2 ** (bits - 1) - 1
    amax = max(abs(float(v)) for v in values)
    scale = amax / qmax if amax > 0 else 1.0
    return [max(-qmax, min(qmax, round(float(v) / scale))) for v in values], scale
