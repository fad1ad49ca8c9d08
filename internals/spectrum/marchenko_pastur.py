"""The Marchenko–Pastur bulk edge of a matrix's eigenvalues, and the spikes beyond it.

An N×M matrix (N ≥ M) of independent entries of variance σ² has the eigenvalues of WᵀW inside
[σ²N(1 − √(M/N))², σ²N(1 + √(M/N))²] as N, M grow (Marchenko and Pastur 1967). Eigenvalues far above the
upper edge ("spikes") are directions the matrix holds that an unstructured matrix of the same shape and
scale would not. At finite size the largest eigenvalue of a random matrix fluctuates around the edge on the
Tracy–Widom scale σ²(√N + √M)(1/√N + 1/√M)^{1/3} (Johnstone 2001); a spike is counted only above the edge
plus `SPIKE_MARGIN_TW` of those units, so a random matrix shows none and a planted spike still counts.
"""

from __future__ import annotations

import math

import numpy as np

SPIKE_MARGIN_TW = 4.0  # Tracy–Widom scale units above the edge (TW1 exceeds 4 with probability ~1e-4)


def bulk_edge(variance: float, n: int, m: int) -> float:
    """Upper edge σ²·N·(1 + √(M/N))² of the MP law for an n×m matrix (either orientation)."""
    big, small = max(n, m), min(n, m)
    return float(variance * big * (1.0 + math.sqrt(small / big)) ** 2)


def tracy_widom_scale(variance: float, n: int, m: int) -> float:
    """Scale of the finite-size fluctuation of the largest eigenvalue of a random n×m matrix around the edge."""
    rn, rm = math.sqrt(max(n, 1)), math.sqrt(max(m, 1))
    return float(variance * (rn + rm) * (1.0 / rn + 1.0 / rm) ** (1.0 / 3.0))


def spike_threshold(variance: float, n: int, m: int) -> float:
    return bulk_edge(variance, n, m) + SPIKE_MARGIN_TW * tracy_widom_scale(variance, n, m)


def count_spikes(eigenvalues: np.ndarray, variance: float, n: int, m: int) -> int:
    """Eigenvalues beyond the MP edge and its finite-size fluctuation."""
    return int(np.count_nonzero(np.asarray(eigenvalues) > spike_threshold(variance, n, m)))
