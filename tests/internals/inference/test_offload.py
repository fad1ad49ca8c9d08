"""An offloaded LM head crosses to the execution device once per lens, not once per layer (issue 18, item 9)."""

from __future__ import annotations

import numpy as np
import pytest

from internals.inference.lens import logit_lens
from internals.inference.loading import load_for_inference
from internals.inference.model_parts import lm_head
from internals.inference.offload import is_offloaded
from internals.sources import resolve_source

PROMPT = [1, 5, 9, 2, 7, 3]


@pytest.fixture(scope="module")
def offloaded_and_resident(tiny_models):
    source = resolve_source(str(tiny_models("qwen2")))
    offloaded = load_for_inference(source, max_memory="cpu=20KB", dtype="float32")
    resident = load_for_inference(source, device="cpu", dtype="float32")
    yield offloaded, resident
    offloaded.close()
    resident.close()


def test_lens_loads_an_offloaded_head_once(offloaded_and_resident):
    offloaded, resident = offloaded_and_resident
    head = lm_head(offloaded.model)
    assert is_offloaded(head), "the fixture must put the LM head on accelerate's offload path"
    assert not is_offloaded(lm_head(resident.model))
    hook = head._hf_hook
    loads = []
    original = hook.pre_forward

    def counting(module, *args, **kwargs):
        loads.append(1)
        return original(module, *args, **kwargs)

    hook.pre_forward = counting
    try:
        lens = logit_lens(offloaded, PROMPT, top_k=5)
    finally:
        hook.pre_forward = original
    assert lens["num_layers"] >= 3  # so that a load per layer would show
    # one load for the model's own forward (the last layer's readout), one for every other layer's readout
    assert len(loads) == 2, f"the head was loaded {len(loads)} times for {lens['num_layers']} layers"
    assert not any(p.device.type != "meta" for p in head.parameters()), "the head's weights were not released"


def test_offloaded_lens_equals_the_resident_one(offloaded_and_resident):
    offloaded, resident = offloaded_and_resident
    a, b = logit_lens(offloaded, PROMPT, top_k=5), logit_lens(resident, PROMPT, top_k=5)
    for x, y in zip(a["layers"], b["layers"], strict=True):
        assert x["top_ids"] == y["top_ids"]
        np.testing.assert_allclose(x["top_probs"], y["top_probs"], atol=1e-6)
