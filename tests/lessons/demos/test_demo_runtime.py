"""The demos honour the worker's --device/--dtype/--max-memory (their own copy of the model is loaded with
them, not as a second float32 copy on cuda:0), refuse with a clear message when their estimated memory does
not fit in the device's free memory, and give their memory back when they end."""

from __future__ import annotations

import pytest
import torch

from internals.errors import UserError
from internals.model import open_model
from lessons.demos import _common as C
from lessons.demos._context import DemoContext


@pytest.fixture(scope="module")
def tiny_llama(tiny_models):
    return open_model(str(tiny_models("llama")))


def test_the_demo_copy_is_loaded_with_the_worker_s_dtype_and_device(tiny_llama):
    loaded = C.load_model(tiny_llama, DemoContext(runtime={"device": "cpu", "dtype": "bfloat16"}))
    assert loaded.model.dtype == torch.bfloat16 and C.model_device(loaded.model).type == "cpu"
    default = C.load_model(tiny_llama, DemoContext())
    assert default.model.dtype == torch.float32  # no --dtype: the demos train in float32


def test_the_estimate_counts_weights_gradients_adam_and_the_reference():
    n = 1_000_000
    assert C.training_bytes(n, "float32") == 4 * n
    assert C.training_bytes(n, "bfloat16", "full") == 2 * n * 4
    assert C.training_bytes(n, "float32", "full", reference=True) == 4 * n * 5
    assert C.training_bytes(n, "float32", "adapters") == 4 * n


def test_a_demo_that_does_not_fit_is_refused_before_loading(tiny_llama, monkeypatch):
    from lessons.demos.registry import run_demo

    n_params = C.meta_parameter_count(tiny_llama.config)
    need = C.training_bytes(n_params, "float32", "full", reference=True)
    asked = []
    monkeypatch.setattr(C, "free_memory", lambda device: asked.append(device) or need - 1)
    monkeypatch.setattr("internals.inference.loading.load_for_inference",
                        lambda *a, **k: pytest.fail("loaded although it cannot fit"))
    with pytest.raises(UserError) as err:
        run_demo("dpo", tiny_llama, {"quick": True}, runtime={"device": "cuda:1", "dtype": "float32"})
    message = str(err.value)
    assert asked == ["cuda:1"] and "cuda:1" in message and "reference copy" in message
    assert "--dtype bfloat16" in message and "Adam" in message
    monkeypatch.setattr(C, "free_memory", lambda device: need)  # just enough: no refusal from the check
    C.check_memory(tiny_llama, "cuda:1", "float32", "full", reference=True)


def test_the_worker_releases_the_demo_s_memory_when_it_ends(tiny_llama, monkeypatch):
    from internals.worker.client import InProcessClient
    from internals.worker.demos import register, unregister
    from internals.worker.service import ModelService, RuntimeOptions

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    seen = {}

    def demo(opened, params, emit=None, progress=None, should_stop=None, runtime=None):
        seen.update(runtime)
        raise UserError("the demo failed")  # memory is released on failure too

    register("test-release", demo)
    client = InProcessClient(ModelService(tiny_llama, RuntimeOptions(device="cuda:1", dtype="bfloat16",
                                                                     max_memory="0:10GiB")))
    try:
        with pytest.raises(UserError):
            list(client.run_demo("test-release"))
    finally:
        unregister("test-release")
        client.close()
    assert calls == ["empty_cache"]
    assert seen == {"device": "cuda:1", "dtype": "bfloat16", "max_memory": "0:10GiB"}
