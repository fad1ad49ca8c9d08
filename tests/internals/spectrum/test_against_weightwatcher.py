"""Our spectra against the field's reference, WeightWatcher 0.7 (`analyze()` with its defaults), layer by layer.

WeightWatcher loads the model as a torch nn.Module (transformers' AutoModelForCausalLM); we read the same
checkpoint's safetensors without building a model. Eigenvalues must agree to 1e-6 relative, and α, x_min
and the KS distance D of the default power-law fit within 2%, wherever WeightWatcher's fit is defined.

Deliberate differences, asserted below so that they cannot grow silently:
- WeightWatcher skips matrices with fewer than `min_evals=8` eigenvalues (e.g. a MoE router of 4 experts);
  we report them (with no power-law fit, see next point).
- Below 20 eigenvalues WeightWatcher switches to a bias-corrected small-sample fit; we report no fit.
- WeightWatcher sees only nn.Linear/Conv1D/Embedding modules: transformers keeps MoE experts fused in
  3-D parameters that it does not analyze. Those are checked against torch.linalg.svdvals instead.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

ww = pytest.importorskip("weightwatcher")

from internals.demo_path import demo_model_path  # noqa: E402
from internals.model import open_model  # noqa: E402
from internals.spectrum import iter_spectra, matrices_of  # noqa: E402
from internals.spectrum.esd import matrix_eigenvalues  # noqa: E402
from internals.spectrum.powerlaw import EVALS_THRESH, MIN_FIT_EVALS  # noqa: E402

logging.getLogger("weightwatcher").setLevel(logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::Warning")
WW_MIN_EVALS = 8  # weightwatcher.constants.DEFAULT_MIN_EVALS


def _close(a: float, b: float, rel: float = 0.02) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def _compare(folder) -> dict[str, int]:
    import torch
    from transformers import AutoModelForCausalLM

    assert ww.__version__.startswith("0.7"), ww.__version__
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    watcher = ww.WeightWatcher(model=hf)
    details = watcher.analyze()  # the defaults: power law fit by the "ww" package, no normalization
    opened = open_model(str(folder))
    store = opened.store
    refs = {r.name: r for r in matrices_of(store, store.names())}
    ours = {s["name"]: s for s in iter_spectra(store, list(refs))}
    seen: set[str] = set()
    counts = {"layers": 0, "fits": 0}
    for row in details.itertuples():
        stored = opened.stored_name_of(f"{row.longname}.weight")
        assert stored in ours, (row.longname, stored)
        seen.add(stored)
        mine = ours[stored]
        assert (mine["n"], mine["m"]) == (row.N, row.M), row.longname
        # eigenvalues: all of them, from the engine, against WeightWatcher's own ESD of this layer
        theirs = np.sort(np.asarray(watcher.get_ESD(layer=int(row.layer_id)), dtype=np.float64))
        evals = matrix_eigenvalues(store, refs[stored])["eigenvalues"]
        np.testing.assert_allclose(evals, theirs, rtol=1e-6, atol=1e-12 * theirs[-1], err_msg=row.longname)
        np.testing.assert_allclose(mine["eigenvalues_top"], theirs[::-1][:32], rtol=1e-6)
        assert _close(mine["eigenvalues_top"][0], row.lambda_max, 1e-6)  # lambda_max is σ_max², unnormalized
        assert _close(mine["spectral_norm"], row.sv_max, 1e-6)
        counts["layers"] += 1
        fit = mine["powerlaw"]
        if np.count_nonzero(theirs > EVALS_THRESH) < MIN_FIT_EVALS:
            assert fit is None, row.longname  # WW's small-sample fit: ours reports none (see docstring)
            continue
        assert row.status == "success" and fit is not None, row.longname
        for key, theirs_value in (("alpha", row.alpha), ("xmin", row.xmin), ("ks_distance", row.D),
                                  ("alpha_hat", row.alpha_weighted)):
            assert _close(fit[key], float(theirs_value)), (row.longname, key, fit[key], theirs_value)
        counts["fits"] += 1
    for name, spectrum in ours.items():  # what WW did not analyze must be a documented difference
        if spectrum["stored_name"] in seen:
            continue
        assert ".experts." in name or spectrum["m"] < WW_MIN_EVALS, f"WeightWatcher analyzed no layer for {name}"
    return counts


@pytest.mark.parametrize("kind", ["llama", "llama-long", "llama-tied", "qwen2", "gpt2", "mixtral"])
def test_tiny_models_match_weightwatcher(tiny_models, kind):
    counts = _compare(tiny_models(kind))
    assert counts["layers"] >= 8 and counts["fits"] >= 8, counts


def test_demo_model_matches_weightwatcher():
    counts = _compare(demo_model_path())
    assert counts == {"layers": 23, "fits": 23}


def test_stored_experts_match_the_fused_parameters_svdvals(tiny_models):
    """transformers keeps Mixtral's experts fused in memory (WW skips them); each stored expert matrix must
    give the squared singular values of its slice of the fused parameter."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = tiny_models("mixtral")
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    store = open_model(str(folder)).store
    experts = hf.model.layers[1].mlp.experts
    fused = {name: p.detach() for name, p in experts.named_parameters() if p.dim() == 3}
    assert fused, "expected fused 3-D expert parameters"
    checked = 0
    for name, param in fused.items():
        for e in range(param.shape[0]):
            want = np.sort(torch.linalg.svdvals(param[e].double()).numpy() ** 2)
            hits = [n for n in store.names() if f"layers.1.block_sparse_moe.experts.{e}." in n]
            got = [np.sort(matrix_eigenvalues(store, matrices_of(store, [n])[0])["eigenvalues"]) for n in hits]
            # gate_up_proj stacks w1 and w3: its spectrum is not one stored matrix's, down_proj is w2's
            if name == "down_proj":
                assert any(len(g) == len(want) and np.allclose(g, want, rtol=1e-6) for g in got), (name, e)
                checked += 1
    assert checked == param.shape[0]
