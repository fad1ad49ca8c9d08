"""The MoE operations through an in-process client on the shipped MoE demo: the same answers as the engine."""

from __future__ import annotations

import numpy as np
import pytest

from internals.demo_path import demo_path
from internals.errors import UserError
from internals.experts.weights import expert_parameters, fused_parameter_stats, router_parameters, router_summary
from internals.inference.routing import expert_routing
from internals.model import open_model
from internals.worker.client import InProcessClient
from internals.worker.service import ModelService

PROMPT = "def add(a, b):\n    return a + b"


@pytest.fixture(scope="module")
def client():
    c = InProcessClient(ModelService(open_model(str(demo_path("moe")))))
    yield c
    c.close()


@pytest.fixture(scope="module")
def opened():
    return open_model(str(demo_path("moe")))


def test_expert_stats_equal_the_engine_and_the_experts_add_up(client, opened):
    name = expert_parameters(opened)[0]
    progress: list[float] = []
    got = client.expert_stats(name, bins=32, on_progress=lambda f, m: progress.append(f))
    want = fused_parameter_stats(opened, name, bins=32)
    assert got["name"] == name and got["stored"] == want["stored"] and got["numel"] == want["numel"]
    for key in ("mean", "std", "rms", "l2_norm", "kurtosis", "min", "max"):
        assert got[key] == pytest.approx(want[key], rel=1e-12)
    assert list(got["histogram"]["counts"]) == list(want["histogram"]["counts"])
    assert [e["expert"] for e in got["experts"]] == [0, 1, 2, 3]
    # the experts partition the parameter: their squared norms sum to the whole one's
    assert sum(e["l2_norm"] ** 2 for e in got["experts"]) == pytest.approx(got["l2_norm"] ** 2, rel=1e-9)
    assert progress and progress[-1] == 1.0


def test_expert_spectra_and_one_experts_spectrum_equal_the_engine(client, opened):
    from internals.experts.spectra import expert_matrix, expert_spectra
    from internals.spectrum import spectrum_of

    name = expert_parameters(opened)[2]  # layer 1's gate_up_proj
    progress: list[float] = []
    got = client.expert_spectra(name, on_progress=lambda f, m: progress.append(f))
    assert got == expert_spectra(opened, name) and len(got["experts"]) == 4
    assert progress and progress[-1] == 1.0
    one = client.spectrum(f"{name}[3]")  # the spectrum tab's request for expert 3
    assert one == spectrum_of(opened.store, expert_matrix(opened, f"{name}[3]"))
    assert one["alpha_reading"] == got["experts"][3]["alpha_reading"] and one["slice"] == 3
    with pytest.raises(UserError, match=r"ask for one, e.g. .*\[0\]"):
        client.spectrum(name)
    with pytest.raises(UserError, match="out of range"):
        client.spectrum(f"{name}[4]")
    with pytest.raises(UserError, match="not a stack of expert matrices"):
        client.expert_spectra(router_parameters(opened)[0])


def test_router_summary_equals_the_engine(client, opened):
    name = router_parameters(opened)[1]
    got = client.router_summary(name)
    want = router_summary(opened, name)
    assert got["layer"] == 1 and got["num_experts"] == 4
    np.testing.assert_allclose(got["row_norms"], want["row_norms"], rtol=1e-12)
    np.testing.assert_allclose(got["cosine"], want["cosine"], rtol=1e-12)


def test_routing_equals_the_engine_on_the_same_tokens(client):
    got = client.experts(PROMPT)
    loaded = client.service.loaded()
    ids = client.tokenize(PROMPT)["ids"]
    want = expert_routing(loaded, ids)
    assert got["token_ids"] == ids and got["tokens"] == want["tokens"]
    assert (got["num_experts"], got["top_k"]) == (4, 2)
    assert [entry["layer"] for entry in got["layers"]] == [0, 1, 2]
    for g, w in zip(got["layers"], want["layers"]):
        assert g["experts"] == w["experts"] and g["load"] == w["load"] and g["unused"] == w["unused"]
        np.testing.assert_allclose(g["weights"], w["weights"], rtol=1e-6)
        assert sum(g["load"]) == len(ids) * 2


def test_a_stored_tensor_is_not_a_fused_parameter(client, opened):
    router = router_parameters(opened)[0]
    with pytest.raises(UserError, match="one tensor"):
        client.expert_stats(router)
