"""Spectra of the weights: singular values, stable rank and heavy-tailed fits for every matrix.

For each weight matrix W (N×M, N ≥ M after orienting; a 3-D stacked-experts tensor gives one per slice):
the eigenvalues λ of WᵀW (σ², unnormalized, as WeightWatcher reports them), spectral and Frobenius norms,
stable rank ‖W‖_F²/‖W‖_2², entropy effective rank (Roy and Vetterli 2007), the power-law fit of the ESD's
tail (see `powerlaw`), and the Marchenko–Pastur bulk edge with the spikes beyond it (see
`marchenko_pastur`). Weights only: tensors are read from the checkpoint's memory maps, no model is built.
Results are cached on disk by file identity (see `cache`). `docs/spectrum.md` explains the conventions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TypedDict

import numpy as np

from internals.cache_paths import file_identity
from internals.spectrum import cache
from internals.spectrum.esd import MatrixRef, esd_histogram, matrices_of, matrix_eigenvalues, parse_ref
from internals.spectrum.marchenko_pastur import bulk_edge, count_spikes, spike_threshold
from internals.spectrum.powerlaw import KS_POOR_FIT, PowerLawFit, alpha_reading, fit_power_law
from internals.weights import WeightStore

TOP_EIGENVALUES = 32
HISTOGRAM_BINS = 48

__all__ = [
    "KS_POOR_FIT",
    "MatrixRef",
    "PowerLawFit",
    "TensorSpectrum",
    "alpha_reading",
    "compute_spectrum",
    "iter_spectra",
    "matrices_of",
    "spectrum_of",
]


class EsdHistogram(TypedDict):
    log10_edges: list[float]
    counts: list[int]


class TensorSpectrum(TypedDict):
    name: str  # stored name, "stored[e]" for slice e of a 3-D tensor, "parameter[e]" for expert e of a fused one
    stored_name: str  # the stored tensor (the first one, for a slice of a fused parameter)
    slice: int | None  # the slice (expert) of a 3-D tensor or fused parameter
    stored: list[str]  # the stored tensors the matrix is read from, stacked along rows in this order: one, or
    # several for an expert's slice of a parameter fused at load time (Mixtral: w1 over w3 for gate_up_proj[e])
    shape: list[int]  # of the matrix (the slice for a 3-D tensor)
    n: int  # larger dimension
    m: int  # smaller dimension = number of eigenvalues
    spectral_norm: float  # σ_max
    frobenius_norm: float
    stable_rank: float  # ‖W‖_F² / ‖W‖_2²
    effective_rank: float  # exp(entropy of σ_i / Σσ_j)
    eigenvalues_top: list[float]  # largest λ = σ², descending, at most 32
    esd_histogram: EsdHistogram
    powerlaw: PowerLawFit | None
    mp_bulk_edge: float  # σ²·N·(1 + √(M/N))² with σ² the entries' variance
    mp_spike_threshold: float  # the edge plus its finite-size (Tracy–Widom) fluctuation margin
    num_spikes: int  # eigenvalues above mp_spike_threshold
    alpha_reading: str  # one line: what this α may and may not mean


def effective_rank(eigenvalues: np.ndarray) -> float:
    """Roy and Vetterli (2007): exp of the Shannon entropy of the singular values normalized to sum 1."""
    sv = np.sqrt(np.clip(eigenvalues, 0.0, None))
    total = sv.sum()
    if total <= 0:
        return 0.0
    p = sv[sv > 0] / total
    return float(math.exp(-np.sum(p * np.log(p))))


def compute_spectrum(store: WeightStore, ref: MatrixRef, check: Callable[[], None] | None = None,
                     progress: Callable[[float], None] | None = None) -> TensorSpectrum:
    """The spectrum of one matrix, computed now (no cache)."""
    moments = matrix_eigenvalues(store, ref, check=check, progress=progress)
    evals = moments["eigenvalues"]
    n, m = max(moments["n"], moments["m"]), min(moments["n"], moments["m"])
    lam_max = float(evals[-1])
    frob_sq = float(evals.sum())
    fit = fit_power_law(evals, check=check)
    variance = moments["variance"]
    return _identified(ref, TensorSpectrum(
        name=ref.stored_matrix, stored_name=ref.stored, slice=ref.index, stored=list(ref.parts),
        shape=[moments["n"], moments["m"]], n=n, m=m,
        spectral_norm=math.sqrt(lam_max), frobenius_norm=math.sqrt(frob_sq),
        stable_rank=frob_sq / lam_max if lam_max > 0 else 0.0, effective_rank=effective_rank(evals),
        eigenvalues_top=[float(x) for x in evals[::-1][:TOP_EIGENVALUES]],
        esd_histogram=EsdHistogram(**esd_histogram(evals, HISTOGRAM_BINS)),  # type: ignore[typeddict-item]
        powerlaw=fit, mp_bulk_edge=bulk_edge(variance, n, m), mp_spike_threshold=spike_threshold(variance, n, m),
        num_spikes=count_spikes(evals, variance, n, m), alpha_reading=alpha_reading(fit),
    ))


def _identified(ref: MatrixRef, spectrum: TensorSpectrum) -> TensorSpectrum:
    """`spectrum` named as `ref` (a fused parameter's slice shares the cache entry of the stored matrix it is)."""
    out = TensorSpectrum(**spectrum)  # type: ignore[typeddict-item]
    out["name"], out["stored_name"], out["stored"] = ref.name, ref.stored, list(ref.parts)
    out["slice"] = ref.index if ref.of is None else ref.of[1]
    return out


def _cache_key(store: WeightStore, ref: MatrixRef) -> str:
    """The stored matrix, and the identity of any other file a stacked part lives in (the cache file is the
    first part's)."""
    files = {store.entry(s).file for s in ref.stacked} - {store.entry(ref.stored).file}
    return ref.stored_matrix + "".join(sorted(f"|{file_identity(f)}" for f in files))


def _spectrum(store: WeightStore, ref: MatrixRef, check, progress, save: bool) -> TensorSpectrum:
    key = _cache_key(store, ref)
    cached = cache.lookup(store, ref.stored, key)
    if cached is not None:
        return _identified(ref, cached)  # type: ignore[arg-type]
    result = compute_spectrum(store, replace(ref, of=None), check=check, progress=progress)  # as the stored matrix
    cache.remember(store, ref.stored, key, dict(result), save=save)
    return _identified(ref, result)


def spectrum_of(store: WeightStore, stored_name: str | MatrixRef, check: Callable[[], None] | None = None,
                progress: Callable[[float, str], None] | None = None) -> TensorSpectrum:
    """The spectrum of one matrix (`stored` or `stored[e]` for a slice of a 3-D tensor, or a `MatrixRef`),
    cached by file. `progress(fraction, name)` is called at least every second or so while it is computed."""
    ref = stored_name if isinstance(stored_name, MatrixRef) else parse_ref(store, stored_name)
    inner = None if progress is None else (lambda frac: progress(frac, ref.name))
    return _spectrum(store, ref, check, inner, save=True)


def _refs(store: WeightStore, names: Sequence[str | MatrixRef]) -> list[MatrixRef]:
    refs: list[MatrixRef] = []
    for name in names:
        if isinstance(name, MatrixRef):
            refs.append(name)
        elif name in store and len(store.entry(name).shape) == 3:
            refs.extend(matrices_of(store, [name], explicit=True))
        else:
            refs.append(parse_ref(store, name))
    return refs


def iter_spectra(store: WeightStore, names: Sequence[str | MatrixRef],
                 progress: Callable[[float, str], None] | None = None,
                 check: Callable[[], None] | None = None) -> Iterator[TensorSpectrum]:
    """Spectra of `names` (stored names; a 3-D tensor expands to its slices; `stored[e]` for one slice; or
    `MatrixRef`s, e.g. the experts of a fused parameter), in order. `progress(fraction, name)` is called at
    least every second or so; `check()` may raise to cancel."""
    refs = _refs(store, names)
    total = len(refs)
    try:
        for i, ref in enumerate(refs):
            inner = None
            if progress is not None:
                progress(i / total, ref.name)

                def inner(frac: float, i: int = i, name: str = ref.name) -> None:
                    progress((i + frac) / total, name)
            yield _spectrum(store, ref, check, inner, save=False)
    finally:
        cache.flush(store)
    if progress is not None:
        progress(1.0, "")
