"""Singular values of a 2-D weight change, and the ranks they imply.

- Adapter (ΔW = s·B·A, B: out x r, A: r x in): exact from the r x r core. B = Q_B R_B and Aᵀ = Q_A R_A (QR),
  so ΔW = Q_B (s R_B R_Aᵀ) Q_Aᵀ and the singular values of ΔW are those of the small s·R_B·R_Aᵀ.
- Full models: the Gram matrix of ΔW on its smaller side (ΔWᵀΔW or ΔWΔWᵀ), summed in float64 over blocks of
  rows or columns (memory: the Gram matrix and a block, never ΔW whole), then a float64 `eigvalsh`:
  σ_i = sqrt(λ_i). Small matrices are multiplied in float64 (every σ above ~1e-7·σ_max); large ones (the
  1.5B model's embedding: 151936 x 1536) block by block in float32, added to the float64 sum, which keeps
  every σ above ~1e-3·σ_max: far more than the energy shares below need (each lost σ holds < 1e-6 of it).

stable rank = ‖ΔW‖_F² / ‖ΔW‖_2²; effective rank at p% = the smallest k whose top-k σ² hold p% of Σσ².
A zero ΔW has rank 0 everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from internals.diff.matching import TensorPair
from internals.diff.weights import CHUNK_ELEMENTS, RankInfo, col_blocks, row_blocks
from internals.weights import WeightStore

MAX_SINGULAR_VALUES = 64
#: Gram matrices of more multiply-adds than this (rows x cols x the smaller side) are formed in float32 blocks.
FLOAT32_GRAM_FLOPS = 1 << 31
#: Values per block of the float32 Gram products (large blocks: the product runs near the machine's peak).
FLOAT32_CHUNK_ELEMENTS = 1 << 23


def rank_info(singular_values: torch.Tensor) -> RankInfo:
    """Stable rank and effective ranks (90%, 99% of the energy) of a set of singular values."""
    s = torch.sort(singular_values.to(torch.float64).clamp(min=0), descending=True).values
    energy = s * s
    total = float(energy.sum())
    if total <= 0 or not len(s):
        return RankInfo(singular_values=[0.0] * min(len(s), MAX_SINGULAR_VALUES) if len(s) else [],
                        stable_rank=0.0, effective_rank_90=0, effective_rank_99=0)
    share = torch.cumsum(energy, 0) / total

    def effective(p: float) -> int:
        # smallest k with share[k-1] >= p (tolerate rounding of the last partial sum)
        return int(torch.searchsorted(share, torch.tensor(p - 1e-12, dtype=torch.float64))) + 1

    return RankInfo(singular_values=[float(v) for v in s[:MAX_SINGULAR_VALUES]],
                    stable_rank=total / float(energy[0]), effective_rank_90=effective(0.90),
                    effective_rank_99=effective(0.99))


def lora_singular_values(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """Exact singular values of scale·B·A from the r x r core (QR of B and Aᵀ)."""
    _, rb = torch.linalg.qr(b.to(torch.float64))
    _, ra = torch.linalg.qr(a.to(torch.float64).T)
    return torch.linalg.svdvals(scale * rb @ ra.T)


def gram_singular_values(pair: TensorPair, base: WeightStore, tuned: WeightStore | None,
                         check: Callable[[], None] | None = None, chunk_elements: int | None = None,
                         float32: bool | None = None) -> torch.Tensor:
    """Singular values of ΔW (any source) from its Gram matrix on the smaller side, summed in float64.

    float32 (default: for matrices above `FLOAT32_GRAM_FLOPS`): each block's Gram product in float32
    (`FLOAT32_CHUNK_ELEMENTS` values a block, twice the speed of float64 and far fewer conversions), added
    to the float64 sum; the eigen-solve stays float64. Its rounding (~1e-7 of ‖ΔW‖₂² per entry) only
    blurs singular values below ~1e-3·σ_max, which hold under 1e-6 of the energy each; float64 throughout
    keeps every singular value above ~1e-7·σ_max."""
    rows, cols = pair.shape[0], int(torch.tensor(pair.shape[1:]).prod())
    small = min(rows, cols)
    if float32 is None:
        float32 = rows * cols * small > FLOAT32_GRAM_FLOPS
    dtype = torch.float32 if float32 else torch.float64
    if chunk_elements is None:
        chunk_elements = FLOAT32_CHUNK_ELEMENTS if float32 else CHUNK_ELEMENTS
    gram = torch.zeros((small, small), dtype=torch.float64)
    part = torch.empty((small, small), dtype=dtype)
    if cols <= rows:
        for _, d in row_blocks(pair, base, tuned, chunk_elements, dtype):
            if check:
                check()
            gram += torch.mm(d.T, d, out=part)
    else:
        for d in col_blocks(pair, base, tuned, chunk_elements, dtype):
            if check:
                check()
            gram += torch.mm(d, d.T, out=part)
    if check:
        check()
    return torch.linalg.eigvalsh(gram).clamp(min=0).sqrt()


def tensor_rank(pair: TensorPair, base: WeightStore, tuned: WeightStore | None,
                check: Callable[[], None] | None = None) -> RankInfo | None:
    """Rank figures of the change of a 2-D tensor (None for other tensors)."""
    if len(pair.shape) != 2:
        return None
    if pair.lora is not None and pair.tuned is None:
        assert tuned is not None
        s = lora_singular_values(tuned.tensor(pair.lora.a_name), tuned.tensor(pair.lora.b_name), pair.lora.scale)
    else:
        s = gram_singular_values(pair, base, tuned, check)
    return rank_info(s)
