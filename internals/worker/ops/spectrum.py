"""Spectrum operations: one matrix's spectrum (on demand), and the whole model's (tree badges, cross-layer view).

Weights only: read from the checkpoint's memory maps, never loading the model; cached on disk by file
identity (`internals.spectrum.cache`), so a second request answers at once. Both report progress at least
every second or so (inside a big matrix's Gram accumulation and eigen-solve too) and stop on cancellation.
"""

from __future__ import annotations

from internals.errors import UserError
from internals.spectrum import TensorSpectrum, spectrum_of
from internals.spectrum.model import ModelSpectra, model_spectra
from internals.worker.contract import NoParams, SpectrumRequest
from internals.worker.operations import OpContext, operation


@operation("spectrum", request=SpectrumRequest, result=TensorSpectrum, group="spectrum")
def spectrum(ctx: OpContext, req: SpectrumRequest) -> TensorSpectrum:
    """Singular values of one weight matrix: norms, stable and effective rank, the ESD histogram, the power-law
    fit of its tail, the Marchenko–Pastur edge and the spikes beyond it (`spectrum --json` item)."""
    from internals.experts.spectra import expert_matrix
    from internals.spectrum.esd import names_stored
    from internals.weights import require_weights

    opened = ctx.opened
    store = require_weights(opened.store, "a spectrum")
    if names_stored(store, req.name):
        return spectrum_of(store, req.name, check=ctx.check, progress=ctx.progress)
    expert = expert_matrix(opened, req.name)  # "parameter[e]": expert e of a stacked expert parameter
    if expert is not None:
        return spectrum_of(store, expert, check=ctx.check, progress=ctx.progress)
    info = opened.structure.params.get(req.name)
    if info is not None and len(info.shape) == 3 and len(info.stored) > 1:
        raise UserError(f"{req.name} stacks {info.shape[0]} expert matrices: ask for one, e.g. {req.name}[0]")
    # a parameter name (in-memory layout), tied or renamed
    return spectrum_of(store, opened.stored_name_of(req.name), check=ctx.check, progress=ctx.progress)


@operation("spectra", request=NoParams, result=ModelSpectra, group="spectra")
def spectra(ctx: OpContext, req: NoParams) -> ModelSpectra:
    """Every weight matrix's spectrum in brief (α, D, stable rank, spikes, flagged) and α, stable rank and
    spikes per component and layer, with progress; cached on disk after the first time."""
    return model_spectra(ctx.opened, progress=ctx.progress, check=ctx.check)
