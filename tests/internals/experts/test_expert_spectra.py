"""Each expert's spectrum: the matrix of one slice of a stacked expert parameter, checked against independent
references: numpy's SVD of the expert's stored tensors read alone (safetensors, not the engine's store) and
stacked the way transformers fuses them, the slices of the parameter transformers itself builds at load time,
and the engine's own spectrum of a stored tensor that is one expert's whole matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from internals.demo_path import demo_path
from internals.errors import UserError
from internals.experts.spectra import expert_matrices, expert_matrix, expert_spectra
from internals.experts.weights import expert_parameters
from internals.model import open_model
from internals.spectrum import MatrixRef, cache, iter_spectra, spectrum_of
from internals.spectrum.model import brief
from internals.weights import WeightStore
from tests_helpers import CancelAfter, Cancelled

pytestmark = pytest.mark.usefixtures("fresh_spectrum_cache")


def _evals(w: np.ndarray) -> np.ndarray:
    """λ = σ² of W, descending (numpy's SVD in float64)."""
    return np.linalg.svd(w.astype(np.float64), compute_uv=False) ** 2


def _read_alone(folder, names: list[str]) -> np.ndarray:
    """The stored tensors read straight from the safetensors file and stacked along rows."""
    with safe_open(str(next(folder.glob("*.safetensors"))), "np") as fh:
        return np.concatenate([fh.get_tensor(n) for n in names], axis=0)


def test_each_expert_of_the_moe_demo_equals_its_stored_tensors_alone():
    folder = demo_path("moe")
    opened = open_model(str(folder))
    names = expert_parameters(opened)
    assert len(names) == 6  # 3 layers × (gate_up_proj, down_proj)
    for name in names[2:4]:  # layer 1's (every layer is built alike; the CLI and view tests see layer 0)
        progress: list[float] = []
        result = expert_spectra(opened, name, progress=lambda f, m, seen=progress: seen.append(f))
        assert result["name"] == name and len(result["experts"]) == 4 and progress[-1] == 1.0
        kind = name.rsplit(".", 1)[-1]
        for e, got in enumerate(result["experts"]):
            full = spectrum_of(opened.store, expert_matrix(opened, f"{name}[{e}]"))
            assert got == brief(full) and got["name"] == f"{name}[{e}]" and full["slice"] == e
            prefix = f"model.layers.{name.split('.')[2]}.block_sparse_moe.experts.{e}"
            stored = [f"{prefix}.w1.weight", f"{prefix}.w3.weight"] if kind == "gate_up_proj" else [f"{prefix}.w2.weight"]
            assert full["stored"] == stored and full["stored_name"] == stored[0]
            want = _evals(_read_alone(folder, stored))
            np.testing.assert_allclose(full["eigenvalues_top"], want[:32], rtol=1e-9)
            assert full["spectral_norm"] ** 2 == pytest.approx(want[0], rel=1e-9)
            assert full["frobenius_norm"] ** 2 == pytest.approx(want.sum(), rel=1e-9)
            assert full["stable_rank"] == pytest.approx(want.sum() / want[0], rel=1e-9)
            if kind == "down_proj":  # one stored tensor is the whole matrix: the same spectrum, name aside
                alone = spectrum_of(opened.store, stored[0])
                differ = {k for k in alone if alone[k] != full[k]}
                assert differ == {"name", "slice"} and full["shape"] == [144, 256]  # stored too: [w2]


@pytest.mark.parametrize("kind", ["mixtral", "qwen2_moe", "olmoe"])
def test_each_expert_is_the_slice_of_the_parameter_transformers_builds(tiny_models, kind):
    from transformers import AutoModelForCausalLM

    folder = tiny_models(kind, "float32")
    opened = open_model(str(folder))
    model = AutoModelForCausalLM.from_pretrained(folder)
    params = dict(model.named_parameters())
    for name in expert_parameters(opened):
        fused = params[name].detach().numpy()
        refs = expert_matrices(opened, name)
        assert len(refs) == fused.shape[0]
        for e, s in enumerate(iter_spectra(opened.store, list(refs))):
            assert s["name"] == f"{name}[{e}]" and s["shape"] == list(fused[e].shape)
            np.testing.assert_allclose(s["eigenvalues_top"], _evals(fused[e])[:32], rtol=1e-9)


def _store(tmp_path, tensors: dict[str, torch.Tensor]) -> WeightStore:
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return WeightStore([path])


@pytest.mark.parametrize("rows", [(100, 90), (10, 12)])  # tall (blocks of rows span the parts) and wide
def test_stacked_parts_are_one_matrix_read_block_by_block(tmp_path, monkeypatch, rows):
    from internals.spectrum import esd

    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(r, 40, generator=g) for r in rows)
    store = _store(tmp_path, {"a": a, "b": b.to(torch.bfloat16)})  # parts may differ in dtype
    monkeypatch.setattr(esd, "BLOCK_FLOPS", 1)  # blocks of MIN_BLOCK rows: some straddle the two parts
    monkeypatch.setattr(esd, "MIN_BLOCK", 7)
    ref = MatrixRef("a", stacked=("b",), of=("p", 2))
    s = spectrum_of(store, ref)
    whole = torch.cat([a.double(), b.to(torch.bfloat16).double()]).numpy()
    want = _evals(whole)
    np.testing.assert_allclose(s["eigenvalues_top"], want[:32], rtol=1e-9)
    assert s["shape"] == [sum(rows), 40] and (s["n"], s["m"]) == (max(sum(rows), 40), min(sum(rows), 40))
    assert (s["name"], s["slice"], s["stored"]) == ("p[2]", 2, ["a", "b"])
    assert s["mp_bulk_edge"] > 0 and s["stable_rank"] == pytest.approx(want.sum() / want[0], rel=1e-9)
    # cached under the stored matrices, named as asked: the same numbers for another name of the same matrix
    again = spectrum_of(store, MatrixRef("a", stacked=("b",), of=("q", 5)))
    assert (again["name"], again["slice"]) == ("q[5]", 5)
    assert {k: v for k, v in again.items() if k not in ("name", "slice")} == \
        {k: v for k, v in s.items() if k not in ("name", "slice")}
    assert cache.lookup(store, "a", "a+b")["name"] == "a+b"


def test_cancelled_between_experts_and_bad_requests(tiny_models, monkeypatch):
    from internals.spectrum import esd

    opened = open_model(str(tiny_models("mixtral", "float32")))
    name = "model.layers.1.mlp.experts.gate_up_proj"
    monkeypatch.setattr(esd, "BLOCK_FLOPS", 1)
    monkeypatch.setattr(esd, "MIN_BLOCK", 16)
    check = CancelAfter(12)
    with pytest.raises(Cancelled):
        expert_spectra(opened, name, check=check)
    assert check.calls == 12
    with pytest.raises(UserError, match="out of range"):
        expert_matrix(opened, f"{name}[4]")
    with pytest.raises(UserError, match="not a stack of expert matrices"):
        expert_matrices(opened, "model.layers.0.self_attn.q_proj.weight")
    assert expert_matrix(opened, "model.layers.0.self_attn.q_proj.weight") is None
