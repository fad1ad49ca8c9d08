"""Power-law fit of the tail of an empirical spectral density (ESD), and a one-line reading of its α.

The method is Clauset, Shalizi and Newman (2009) as WeightWatcher 0.7 applies it by default (its "ww"
power-law package, `analyze(fit='PL')`): for every candidate x_min among the sorted eigenvalues (all but
the largest), the continuous maximum-likelihood exponent α = 1 + n / Σ log(λ_i / x_min) over the n
eigenvalues ≥ x_min, and the Kolmogorov–Smirnov distance D between the fitted CDF 1 − (λ/x_min)^(1−α) and
the empirical CDF of the tail; the x_min with the smallest D wins. Eigenvalues ≤ `EVALS_THRESH` are left
out first, as WeightWatcher does. α̂ = α·log10(λ_max) weighs α by the scale of the layer (WeightWatcher's
`alpha_weighted`).

Deliberate difference: with fewer than `MIN_FIT_EVALS` eigenvalues there is no fit (None). WeightWatcher
switches to a different, bias-corrected small-sample objective there; a "tail" of under 20 values says
little either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypedDict

import numpy as np

EVALS_THRESH = 1e-5  # WeightWatcher's EVALS_THRESH on CPU: eigenvalues at or below it are not fitted
MIN_FIT_EVALS = 20  # WeightWatcher's SMALL_N_CUTOFF: below it we report no fit
KS_POOR_FIT = 0.1  # KS distance above which α is read as "not a power law"
ALPHA_HEALTHY = (2.0, 6.0)  # WeightWatcher's OVER_TRAINED_THRESH / UNDER_TRAINED_THRESH


class PowerLawFit(TypedDict):
    alpha: float
    xmin: float
    ks_distance: float
    alpha_hat: float  # alpha * log10(lambda_max)
    num_tail: int  # eigenvalues >= xmin


def fit_power_law(eigenvalues: np.ndarray, check: Callable[[], None] | None = None) -> PowerLawFit | None:
    """Fit the ESD's tail; None when fewer than `MIN_FIT_EVALS` eigenvalues are above `EVALS_THRESH`."""
    data = np.sort(np.asarray(eigenvalues, dtype=np.float64))
    data = data[data > EVALS_THRESH]
    size = len(data)
    if size < MIN_FIT_EVALS:
        return None
    log_data = np.log(data)
    alphas = np.zeros(size - 1)
    ds = np.ones(size - 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in range(size - 1):
            if check is not None and i % 512 == 0:
                check()
            n = float(size - i)
            alpha = 1 + n / (np.sum(log_data[i:]) - n * log_data[i])
            alphas[i] = alpha
            if alpha > 1 and math.isfinite(alpha):
                ds[i] = np.max(np.abs(1 - (data[i:] / data[i]) ** (-alpha + 1) - np.arange(n) / n))
    best = int(np.argmin(ds))
    alpha = float(alphas[best])
    lambda_max = float(data[-1])
    return PowerLawFit(alpha=alpha, xmin=float(data[best]), ks_distance=float(ds[best]),
                       alpha_hat=alpha * math.log10(lambda_max), num_tail=size - best)


def alpha_reading(fit: PowerLawFit | None) -> str:
    """One line on what this α may mean and what it does not (for the spectrum view and the tree badge)."""
    if fit is None:
        return f"no power-law fit: fewer than {MIN_FIT_EVALS} eigenvalues, too few for a tail"
    a, d = fit["alpha"], fit["ks_distance"]
    lo, hi = ALPHA_HEALTHY
    if d > KS_POOR_FIT:
        return (f"α={a:.2f} but a poor fit (KS D={d:.2f} > {KS_POOR_FIT}): the tail is not a power law, "
                "so α says little here")
    if a < lo:
        return (f"α={a:.2f} < {lo:g}: a very heavy tail, which WeightWatcher reads as possibly over-trained; "
                "a few huge outlier directions do this too; a hint, not a verdict")
    if a > hi:
        return (f"α={a:.2f} > {hi:g}: a light tail close to a random (Marchenko–Pastur) matrix, which "
                "WeightWatcher reads as under-trained; small or freshly initialized matrices look like this too")
    return (f"α={a:.2f} in [{lo:g}, {hi:g}]: heavy-tailed like most well-trained layers (WeightWatcher's "
            "heuristic); correlates with quality across layers, does not measure it for this one")
