"""The activations-and-causes operations through an in-process client on the demo model: each result is the
engine's on the same tokens; token strings resolve to one token or fail naming their tokens; patching stops
between batches when cancelled, and the `cancel` operation cancels the running request of its group."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from internals.errors import BadRequest, Cancelled, UserError
from internals.worker.client import InProcessClient

CLEAN, CORRUPT = "def f(x): return x", "def g(x): return x"


@pytest.fixture(scope="module")
def client():
    from internals.demo_path import demo_model_path
    from internals.model import open_model
    from internals.worker.service import ModelService

    c = InProcessClient(ModelService(open_model(str(demo_model_path()))))
    yield c
    c.close()


def _ids(client, text):
    return client.tokenize(text)["ids"]


def _same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key], key


def test_activations_is_the_engines_and_the_attention_sinks_agree(client):
    from internals.inference.activations import residual_activations

    result = client.activations(CLEAN)
    loaded = client.service.loaded()
    reference = residual_activations(loaded, _ids(client, CLEAN))
    np.testing.assert_array_equal(result["residual_norm"], reference["residual_norm"])
    np.testing.assert_array_equal(result["sink_share"], reference["sink_share"])
    assert result["massive"] == reference["massive"] and result["massive_channels"] == reference["massive_channels"]
    for layer in range(result["sink_share"].shape[0]):  # the attention op's sink shares: the same quantity
        np.testing.assert_allclose(client.attention(CLEAN, layer)["sink_share"], result["sink_share"][layer], atol=1e-6)


def test_patch_is_the_engines_with_the_target_resolved(client):
    from internals.inference.patching import activation_patching

    loaded = client.service.loaded()
    target = " x"
    target_id = loaded.tokenizer(target, add_special_tokens=False)["input_ids"]
    assert len(target_id) == 1
    fractions = []
    result = client.patch(CLEAN, CORRUPT, target=target, on_progress=lambda f, m: fractions.append(f))
    reference = activation_patching(loaded, _ids(client, CLEAN), _ids(client, CORRUPT), target_id=target_id[0])
    _same(result, reference)
    assert result["target_id"] == target_id[0] and fractions[-1] == 1.0 and fractions == sorted(fractions)
    only = client.patch(CLEAN, CORRUPT, grids=["heads"])
    assert only["residual"] is None and only["heads"].shape == reference["heads"].shape


def test_attribute_and_lens_tracks_are_the_engines(client):
    from internals.inference.attribution import direct_logit_attribution
    from internals.inference.lens import lens_token_tracks

    loaded = client.service.loaded()
    assert client.attribute(CLEAN) == direct_logit_attribution(loaded, _ids(client, CLEAN))
    tokens = [" x", "("]
    ids = [loaded.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in tokens]
    _same(client.lens_tracks(CLEAN, tokens), lens_token_tracks(loaded, _ids(client, CLEAN), ids))


def test_a_target_that_is_not_one_token_names_its_tokens(client):
    with pytest.raises(BadRequest, match=r"exactly one token.*\['hel', 'lo', ' w', 'or', 'ld'\]"):
        client.attribute(CLEAN, target="hello world")
    with pytest.raises(BadRequest, match="exactly one token"):
        client.patch(CLEAN, CORRUPT, target="")
    with pytest.raises(BadRequest, match="tracked token"):
        client.lens_tracks(CLEAN, ["hello world"])
    with pytest.raises(UserError, match=r"same number of tokens.*'def', ' g', '\(x', ',', ' y'"):
        client.patch(CLEAN, "def g(x, y): return x")


def test_the_cancel_operation_stops_a_running_patch_between_batches(client):
    """The patch request's first progress frame after its first batch blocks until a `cancel` of the same
    client and group has arrived; the next batch's check then raises `Cancelled`."""
    service = client.service
    frames: list[tuple[dict, object]] = []
    first_batch, go_on = threading.Event(), threading.Event()

    def send(header, body):
        frames.append((header, body))
        if header["kind"] == "progress" and body["message"].startswith("patched runs 2-"):
            first_batch.set()
            go_on.wait(10)

    params = {"clean": CLEAN, "corrupt": CORRUPT, "batch_size": 1}
    run = threading.Thread(target=service.handle, args=({"id": 1, "method": "patch", "group": "patch", "client": 7},
                                                        params, send))
    run.start()
    assert first_batch.wait(30)
    answers = []
    service.handle({"id": 2, "method": "cancel", "group": "patch", "client": 7}, {}, lambda h, b: answers.append((h, b)))
    go_on.set()
    run.join(30)
    assert answers == [({"id": 2, "kind": "response"}, {"done": True})]
    header, body = frames[-1]
    assert header["kind"] == "error" and body["type"] == "Cancelled"
    patched = [b["message"] for h, b in frames if h["kind"] == "progress" and b["message"].startswith("patched")]
    assert len(patched) == 2  # the batch after the cancel never ran
    assert Cancelled.__name__ == body["type"]
