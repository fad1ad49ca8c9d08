"""The whole model's spectra at a glance: one brief per matrix (for the tree's badges) and α, stable rank and
spikes per component and layer (for the cross-layer view), from `iter_spectra` (cached on disk).

Why briefs and not the full spectra: the explorer needs a few numbers per matrix for the whole model; the
histogram and the top eigenvalues of one matrix are asked for when it is opened (`spectrum_of`). A cell of the
cross-layer table that holds several matrices (stacked or per-expert tensors, a parameter fused at load time)
shows their mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from internals.spectrum import KS_POOR_FIT, TensorSpectrum, iter_spectra, matrices_of
from internals.spectrum.powerlaw import ALPHA_HEALTHY

#: The cross-layer metrics of `ModelSpectra.metrics`, in the order the explorer cycles them.
SPECTRAL_METRICS = ("alpha", "stable_rank", "spikes")


class SpectrumBrief(TypedDict):
    """A matrix's spectrum in a few numbers; `flagged` when α is outside [2, 6] or the fit is poor (D > 0.1)."""

    name: str  # the matrix: stored name, or "stored[e]" for a slice
    stored_name: str
    alpha: float | None
    ks_distance: float | None
    stable_rank: float
    num_spikes: int
    m: int
    flagged: bool
    alpha_reading: str


class ModelSpectra(TypedDict):
    """Every matrix's brief, and `metrics[metric][component][layer]` (alpha, stable_rank, spikes; null where
    the layer has no such matrix) with `names[component][layer]` the parameter each cell opens, as `CrossLayer`."""

    matrices: list[SpectrumBrief]
    num_layers: int
    components: list[str]
    metrics: dict[str, dict[str, list[float | None]]]
    names: dict[str, list[str | None]]


class ExpertSpectra(TypedDict):
    """The spectrum of each expert's matrix of a stacked expert parameter, in brief (`experts[e]` is expert e:
    α, KS distance D, stable rank, spikes, `flagged`), as `spectrum` gives each `name[e]` in full
    (`internals.experts.spectra`)."""

    name: str  # the parameter
    experts: list[SpectrumBrief]


def is_flagged(spectrum: TensorSpectrum) -> bool:
    """α outside WeightWatcher's [2, 6], or a power-law fit too poor to read (KS distance above `KS_POOR_FIT`)."""
    fit = spectrum["powerlaw"]
    if fit is None:
        return False
    lo, hi = ALPHA_HEALTHY
    return fit["ks_distance"] > KS_POOR_FIT or not lo <= fit["alpha"] <= hi


def brief(spectrum: TensorSpectrum) -> SpectrumBrief:
    fit = spectrum["powerlaw"]
    return SpectrumBrief(name=spectrum["name"], stored_name=spectrum["stored_name"],
                         alpha=None if fit is None else fit["alpha"],
                         ks_distance=None if fit is None else fit["ks_distance"],
                         stable_rank=spectrum["stable_rank"], num_spikes=spectrum["num_spikes"], m=spectrum["m"],
                         flagged=is_flagged(spectrum), alpha_reading=spectrum["alpha_reading"])


def _metric(b: SpectrumBrief, metric: str) -> float | None:
    return {"alpha": b["alpha"], "stable_rank": b["stable_rank"], "spikes": float(b["num_spikes"])}[metric]


def model_spectra(opened: Any, progress: Callable[[float, str], None] | None = None,
                  check: Callable[[], None] | None = None) -> ModelSpectra:
    """Briefs of every floating-point matrix of `opened` (an `OpenedModel` with weights), in stored order, and
    the per-layer table of its decoder layers' components (the parameters the cross-layer view draws)."""
    from internals.structure import LAYER_COMPONENTS
    from internals.weights import require_weights

    store = require_weights(opened.store, "spectra")
    refs = matrices_of(store, store.names())
    briefs = [brief(s) for s in iter_spectra(store, [r.name for r in refs], progress=progress, check=check)]
    by_stored: dict[str, list[SpectrumBrief]] = {}
    for b in briefs:
        by_stored.setdefault(b["stored_name"], []).append(b)
    num_layers = opened.summary()["num_layers"] or 0
    params = [p for p in opened.structure.unique_params
              if p.layer is not None and p.component in LAYER_COMPONENTS and p.component != "norm"
              and any(s in by_stored for s in p.stored)]
    comps = [c for c in LAYER_COMPONENTS if any(p.component == c for p in params)]
    cells: dict[str, list[list[SpectrumBrief]]] = {c: [[] for _ in range(num_layers)] for c in comps}
    names: dict[str, list[str | None]] = {c: [None] * num_layers for c in comps}
    for p in params:
        if p.layer >= num_layers:
            continue
        cells[p.component][p.layer].extend(b for s in p.stored for b in by_stored.get(s, []))
        if names[p.component][p.layer] is None:
            names[p.component][p.layer] = p.name
    metrics: dict[str, dict[str, list[float | None]]] = {m: {} for m in SPECTRAL_METRICS}
    for metric in SPECTRAL_METRICS:
        for c in comps:
            row: list[float | None] = []
            for cell in cells[c]:
                values = [v for v in (_metric(b, metric) for b in cell) if v is not None]
                row.append(sum(values) / len(values) if values else None)
            metrics[metric][c] = row
    return ModelSpectra(matrices=briefs, num_layers=num_layers, components=comps, metrics=metrics, names=names)
