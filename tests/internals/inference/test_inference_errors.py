"""Out-of-memory errors become one typed, actionable UserError."""

from __future__ import annotations

import pytest
import torch

from internals.errors import UserError
from internals.inference.errors import OOM_MESSAGE, OutOfMemory, translate_oom


def test_cuda_oom_is_translated():
    with pytest.raises(OutOfMemory) as caught:
        with translate_oom():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    assert isinstance(caught.value, UserError)
    assert str(caught.value) == OOM_MESSAGE == "out of GPU memory: try a shorter prompt or --dtype bfloat16"
    assert isinstance(caught.value.__cause__, torch.cuda.OutOfMemoryError)


def test_runtime_error_mentioning_out_of_memory_is_translated():
    @translate_oom()
    def forward():
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: out of memory")

    with pytest.raises(OutOfMemory):
        forward()


def test_other_errors_pass_through():
    with pytest.raises(ValueError):
        with translate_oom():
            raise ValueError("shape mismatch")
    with pytest.raises(RuntimeError, match="shape"):
        with translate_oom():
            raise RuntimeError("shape mismatch")


def test_oom_inside_a_forward_pass_reaches_the_caller_typed(tiny_models):
    from inference_support import load_tiny

    from internals.inference.attention import attention_for_layer

    loaded = load_tiny(tiny_models, "llama")

    def allocate_too_much(module, args, output):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")

    handle = loaded.model.model.layers[0].mlp.register_forward_hook(allocate_too_much)
    try:
        with pytest.raises(OutOfMemory, match="try a shorter prompt"):
            attention_for_layer(loaded, [1, 2, 3], -1)
    finally:
        handle.remove()
    assert attention_for_layer(loaded, [1, 2, 3], -1)["layer"] == 1  # the model still works afterwards
