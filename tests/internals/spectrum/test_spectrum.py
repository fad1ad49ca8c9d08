"""The spectrum engine on matrices with known answers: random matrices (Marchenko–Pastur), planted spikes,
exact identities against numpy's SVD, stacked experts, the power-law fit against the `powerlaw` package,
the cache, cancellation and progress."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from internals import spectrum as spectrum_mod
from internals.errors import UserError
from internals.spectrum import cache, iter_spectra, spectrum_of
from internals.spectrum.marchenko_pastur import bulk_edge, tracy_widom_scale
from internals.spectrum.powerlaw import KS_POOR_FIT, alpha_reading, fit_power_law
from internals.weights import WeightStore
from tests_helpers import CancelAfter, Cancelled

pytestmark = pytest.mark.usefixtures("fresh_spectrum_cache")


def _store(tmp_path, tensors: dict[str, torch.Tensor], name: str = "m.safetensors") -> WeightStore:
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return WeightStore([path])


def _svd_evals(w: torch.Tensor) -> np.ndarray:
    return np.sort(np.linalg.svd(w.double().numpy(), compute_uv=False) ** 2)


def _planted(n: int, m: int, k: int, sigma: float = 0.02, seed: int = 0) -> torch.Tensor:
    """Gaussian n×m noise plus k rank-one signals well above the BBP threshold σ(nm)^{1/4}."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, m, generator=g, dtype=torch.float64) * sigma
    u, _ = torch.linalg.qr(torch.randn(n, max(k, 1), generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(m, max(k, 1), generator=g, dtype=torch.float64))
    for i in range(k):
        w += 4.0 * (i + 1) * sigma * (n * m) ** 0.25 * torch.outer(u[:, i], v[:, i])
    return w.float()


def test_random_gaussian_spectrum_fills_the_mp_bulk_without_spikes(tmp_path):
    n, m, sigma = 900, 300, 0.02
    store = _store(tmp_path, {"w": _planted(n, m, 0, sigma)})
    s = spectrum_of(store, "w")
    evals = _svd_evals(store.tensor("w"))
    edge, tw = bulk_edge(sigma**2, n, m), tracy_widom_scale(sigma**2, n, m)
    assert math.isclose(s["mp_bulk_edge"], edge, rel_tol=0.01)  # variance estimated from the entries
    assert abs(evals[-1] - edge) < 4 * tw  # largest eigenvalue at the edge, within its finite-size fluctuation
    lower = sigma**2 * n * (1 - math.sqrt(m / n)) ** 2
    assert abs(evals[0] - lower) < 4 * tw
    assert s["num_spikes"] == 0
    assert s["powerlaw"] is not None


@pytest.mark.parametrize("k", [1, 3, 5])
def test_planted_rank_k_spikes_are_counted_exactly(tmp_path, k):
    store = _store(tmp_path, {"w": _planted(700, 350, k, seed=k)})
    s = spectrum_of(store, "w")
    assert s["num_spikes"] == k
    assert s["eigenvalues_top"][k - 1] > s["mp_spike_threshold"] > s["eigenvalues_top"][k]


def test_norms_and_ranks_are_the_svd_identities(tmp_path):
    w = _planted(200, 90, 2, seed=7)
    store = _store(tmp_path, {"wide": w.T.contiguous(), "bf16": w.to(torch.bfloat16)})
    s = spectrum_of(store, "wide")
    sv = np.linalg.svd(w.double().numpy(), compute_uv=False)
    assert s["shape"] == [90, 200] and (s["n"], s["m"]) == (200, 90)
    assert math.isclose(s["spectral_norm"], sv[0], rel_tol=1e-9)
    assert math.isclose(s["frobenius_norm"], float(np.linalg.norm(w.double().numpy())), rel_tol=1e-9)
    assert math.isclose(s["stable_rank"], float((sv**2).sum() / sv[0] ** 2), rel_tol=1e-9)
    p = sv / sv.sum()
    assert math.isclose(s["effective_rank"], float(np.exp(-(p * np.log(p)).sum())), rel_tol=1e-9)
    np.testing.assert_allclose(s["eigenvalues_top"], (sv**2)[:32], rtol=1e-9)
    assert len(s["eigenvalues_top"]) == 32 and s["eigenvalues_top"] == sorted(s["eigenvalues_top"], reverse=True)
    hist = s["esd_histogram"]
    assert sum(hist["counts"]) == 90 and len(hist["log10_edges"]) == len(hist["counts"]) + 1
    b = spectrum_of(store, "bf16")  # read as stored: bf16 values, computed in float64
    np.testing.assert_allclose(b["eigenvalues_top"], _svd_evals(w.to(torch.bfloat16))[::-1][:32], rtol=1e-9)


def test_stacked_experts_give_one_spectrum_per_slice(tmp_path):
    g = torch.Generator().manual_seed(3)
    experts = torch.randn(3, 40, 30, generator=g)
    store = _store(tmp_path, {"experts.w": experts, "norm": torch.ones(30)})
    got = list(iter_spectra(store, ["experts.w"]))
    assert [s["name"] for s in got] == ["experts.w[0]", "experts.w[1]", "experts.w[2]"]
    for e, s in enumerate(got):
        assert s["stored_name"] == "experts.w" and s["slice"] == e
        np.testing.assert_allclose(s["eigenvalues_top"], _svd_evals(experts[e])[::-1][:32], rtol=1e-9)
    assert spectrum_of(store, "experts.w[1]")["eigenvalues_top"] == got[1]["eigenvalues_top"]
    for bad, words in (("experts.w", "slice"), ("experts.w[3]", "out of range"), ("norm", "matrix"),
                       ("nothing", "no stored tensor")):
        with pytest.raises(UserError, match=words):
            spectrum_of(store, bad)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_power_law_fit_matches_the_powerlaw_package_on_a_pareto_sample():
    powerlaw = pytest.importorskip("powerlaw")
    rng = np.random.default_rng(0)
    bulk = rng.uniform(0.01, 1.0, 600)
    tail = (1 - rng.uniform(size=400)) ** (-1 / (3.0 - 1))  # Pareto, α = 3, x_min = 1
    data = np.concatenate([bulk, tail])
    fit = fit_power_law(data)
    ref = powerlaw.Fit(data, verbose=False)
    # Same method (Clauset et al.), but the powerlaw package's KS distance uses another empirical-CDF
    # convention, so its x_min lands a few eigenvalues away: agreement within 5%, and with the truth. The
    # exact (2%) agreement is with WeightWatcher's default fit: test_against_weightwatcher.py.
    assert abs(fit["alpha"] - 3.0) < 0.15 and abs(fit["xmin"] - 1.0) < 0.1
    assert math.isclose(fit["alpha"], ref.power_law.alpha, rel_tol=0.05)
    assert math.isclose(fit["xmin"], ref.power_law.xmin, rel_tol=0.05)
    assert fit["num_tail"] == int(np.count_nonzero(data >= fit["xmin"]))
    assert math.isclose(fit["alpha_hat"], fit["alpha"] * math.log10(data.max()), rel_tol=1e-12)
    assert fit_power_law(data[:19]) is None


def test_alpha_reading_covers_each_case():
    base = {"xmin": 1.0, "alpha_hat": 1.0, "num_tail": 50}
    assert "in [2, 6]" in alpha_reading({**base, "alpha": 3.0, "ks_distance": 0.05})
    assert "over-trained" in alpha_reading({**base, "alpha": 1.5, "ks_distance": 0.05})
    assert "under-trained" in alpha_reading({**base, "alpha": 8.0, "ks_distance": 0.05})
    assert "poor fit" in alpha_reading({**base, "alpha": 3.0, "ks_distance": KS_POOR_FIT + 0.01})
    assert "no power-law fit" in alpha_reading(None)
    for text in (alpha_reading(None), alpha_reading({**base, "alpha": 3.0, "ks_distance": 0.05})):
        assert "\n" not in text


def test_cache_serves_spectra_without_computing_and_notices_a_changed_file(tmp_path, monkeypatch):
    store = _store(tmp_path, {"a": _planted(120, 60, 1), "b": _planted(80, 64, 0, seed=2)})
    first = list(iter_spectra(store, ["a", "b"]))
    cache.clear_memory()  # as a new process would: from the file on disk

    def no_compute(*args, **kwargs):
        raise AssertionError("computed instead of read from the cache")

    monkeypatch.setattr(spectrum_mod, "compute_spectrum", no_compute)
    assert list(iter_spectra(store, ["a", "b"])) == first
    path = tmp_path / "m.safetensors"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the checkpoint changed
    with pytest.raises(AssertionError, match="computed"):
        spectrum_of(store, "a")
    cache.use_cache(False)
    monkeypatch.undo()
    assert spectrum_of(store, "a") == first[0]


def test_check_cancels_and_progress_reaches_one(tmp_path, monkeypatch):
    from internals.spectrum import esd

    store = _store(tmp_path, {"a": _planted(400, 100, 0), "b": _planted(300, 100, 0, seed=1)})
    monkeypatch.setattr(esd, "BLOCK_FLOPS", 100 * 100 * 10)  # many blocks per matrix
    monkeypatch.setattr(esd, "MIN_BLOCK", 1)

    check = CancelAfter(5)
    with pytest.raises(Cancelled):
        list(iter_spectra(store, ["a", "b"], check=check))
    assert cache.lookup(store, "a", "a") is None  # nothing half-done was kept
    seen: list[tuple[float, str]] = []
    out = list(iter_spectra(store, ["a", "b"], progress=lambda f, msg: seen.append((f, msg))))
    fractions = [f for f, _ in seen]
    assert len(out) == 2 and fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] == 0.0
    assert {"a", "b"} <= {msg for _, msg in seen}


def test_progress_keeps_beating_through_a_slow_eigen_solve_and_cancellation_follows_it(tmp_path, monkeypatch):
    """While the eigen-solve runs, a heartbeat thread keeps progress coming (≤ HEARTBEAT_SECONDS apart); a
    cancellation asked during the solve is honoured as soon as it ends."""
    import time

    from internals.spectrum import esd

    store = _store(tmp_path, {"a": _planted(300, 100, 2)})
    real = torch.linalg.eigvalsh
    solving = []

    def slow(g):
        solving.append(time.monotonic())
        time.sleep(1.6)
        return real(g)

    monkeypatch.setattr(torch.linalg, "eigvalsh", slow)
    stamps: list[float] = []
    moments = esd.matrix_eigenvalues(store, esd.MatrixRef("a"), progress=lambda f: stamps.append(time.monotonic()))
    gaps = np.diff(stamps)
    assert len(stamps) >= 4 and gaps.max() <= esd.HEARTBEAT_SECONDS + 0.3, gaps
    np.testing.assert_allclose(moments["eigenvalues"], _svd_evals(store.tensor("a")), rtol=1e-9, atol=1e-9)

    class Stop(Exception):
        pass

    def check():
        if solving and len(solving) == 2:  # the second run's solve has started: cancel
            raise Stop

    with pytest.raises(Stop):
        esd.matrix_eigenvalues(store, esd.MatrixRef("a"), check=check, progress=lambda f: None)
    assert len(solving) == 2 and time.monotonic() - solving[1] < 1.6 + 0.5  # right after the solve
