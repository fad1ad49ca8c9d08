"""Each expert's spectrum: the expert's matrix is one slice of the stacked (3-D) expert parameter.

A parameter fused at load time from numbered stored experts (`experts.3.w1.weight`, `experts.3.w3.weight`, ...)
has, for expert e, the matrix transformers builds as `parameter[e]`: the expert's stored 2-D tensors stacked
along rows (transformers' converter: `MergeModulelist(dim=0)` then `Concatenate(dim=1)`, e.g. w1 over w3 for
`gate_up_proj`; the order of the row blocks does not change the singular values, the axis does, and it is
checked against the parameter's shape). Experts are grouped by their stored index as `fused_parameter_stats`
groups them. A parameter stored as one 3-D tensor has its slices. Either way
the spectrum engine (`internals.spectrum`) reads each matrix block by block and caches it by file identity;
nothing here re-implements the ESD.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from internals.errors import UserError
from internals.experts.weights import _by_expert, _param
from internals.spectrum import MatrixRef, iter_spectra
from internals.spectrum.esd import parse_ref
from internals.spectrum.model import ExpertSpectra, brief
from internals.weights import require_weights

_SLICE = re.compile(r"^(?P<param>.+)\[(?P<index>\d+)\]$")


def expert_matrices(opened, param_name: str) -> list[MatrixRef]:
    """One matrix per expert of a stacked expert parameter (`opened`: an `OpenedModel` with weights): the
    slices of a stored 3-D tensor, or each expert's stored tensors stacked along rows for a parameter fused
    at load time (checked against the parameter's shape). Anything else is a `UserError` that says why."""
    store = require_weights(opened.store, "spectra")
    info = _param(opened, param_name)
    if len(info.shape) != 3:
        raise UserError(f"{param_name} has shape {list(info.shape)}: not a stack of expert matrices")
    if len(info.stored) == 1:
        return [parse_ref(store, f"{info.stored[0]}[{e}]") for e in range(info.shape[0])]
    groups = _by_expert(list(info.stored))
    experts, rows, cols = info.shape
    refs: list[MatrixRef] = []
    for e, names in groups.items():
        shapes = [tuple(store.entry(n).shape) for n in names]
        if len(groups) != experts or e >= experts or any(len(s) != 2 or s[1] != cols for s in shapes) or \
                sum(s[0] for s in shapes) != rows:
            raise UserError(f"{param_name} [{experts}, {rows}, {cols}] is not its experts' stored tensors stacked "
                            f"along rows (expert {e}: {', '.join(names)} of shapes {[list(s) for s in shapes]}): "
                            "ask for the stored tensors' spectra one by one")
        refs.append(MatrixRef(names[0], stacked=tuple(names[1:]), of=(info.name, e)))
    return refs


def expert_matrix(opened, name: str) -> MatrixRef | None:
    """`parameter[e]` for a stacked expert parameter: expert e's matrix; None when `name` is not of that form."""
    match = _SLICE.match(name)
    if match is None or match["param"] not in opened.structure.params:
        return None
    refs = expert_matrices(opened, match["param"])
    index = int(match["index"])
    if index >= len(refs):
        raise UserError(f"{match['param']} has {len(refs)} experts: {index} is out of range")
    return refs[index]


def expert_spectra(opened, param_name: str, progress: Callable[[float, str], None] | None = None,
                   check: Callable[[], None] | None = None) -> ExpertSpectra:
    """Every expert's spectrum of a stacked expert parameter, in brief, with progress and cancellation
    (`iter_spectra`: cached on disk, so the spectrum tab's `name[e]` then answers at once)."""
    store = require_weights(opened.store, "spectra")
    refs = expert_matrices(opened, param_name)
    return ExpertSpectra(name=param_name,
                         experts=[brief(s) for s in iter_spectra(store, refs, progress=progress, check=check)])
