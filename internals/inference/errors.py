"""Errors of the inference functions, typed so that the worker can send them as one line to the UI.

Running out of accelerator memory is the one failure a user meets in normal use (a long prompt, a big model in
float32): it must reach the UI as a `UserError` with advice, never as a traceback, and the worker must survive it.
This module does not import torch, so the UI side can import the error classes cheaply.
"""

from __future__ import annotations

import gc
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from internals.errors import OutOfMemory

OOM_MESSAGE = "out of GPU memory: try a shorter prompt or --dtype bfloat16"
CPU_OOM_MESSAGE = "out of memory: try a shorter prompt or a smaller --dtype"

__all__ = ["CPU_OOM_MESSAGE", "OOM_MESSAGE", "OutOfMemory", "is_broken_device", "is_out_of_memory", "oom_message",
           "translate_oom", "with_dtype_hint"]

#: dtypes for which "--dtype bfloat16" is no advice: the weights are already 16 bits or fewer.
_SMALL_DTYPES = ("bfloat16", "float16", "half", "float8", "int8", "uint8", "int4", "uint4", "4bit", "8bit")


def oom_message(dtype: object = None) -> str:
    """The out-of-GPU-memory message for a model loaded in `dtype` (a torch dtype or its name; None when not
    known): it suggests --dtype bfloat16 only when that would halve the weights (float32 or wider)."""
    name = str(dtype or "").replace("torch.", "").lower()
    if name and any(small in name for small in _SMALL_DTYPES):
        return (f"out of GPU memory (the model is already {name}): try a shorter prompt, fewer tokens, or "
                "--max-memory to spread it over more devices")
    return OOM_MESSAGE


def with_dtype_hint(exc: OutOfMemory, dtype: object) -> OutOfMemory:
    """`exc` with the engine's generic GPU hint replaced by the one for the loaded dtype (same cause)."""
    if str(exc) != OOM_MESSAGE or oom_message(dtype) == OOM_MESSAGE:
        return exc
    better = OutOfMemory(oom_message(dtype))
    better.__cause__ = exc.__cause__
    return better


def is_broken_device(exc: BaseException) -> bool:
    """An accelerator failure after which the process's CUDA context is unusable (every later call fails):
    torch's `AcceleratorError`, or a RuntimeError saying "CUDA error" or "device-side assert". Out of
    memory is not one of them (the worker frees its cache and goes on)."""
    if is_out_of_memory(exc):
        return False
    if type(exc).__name__ == "AcceleratorError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("CUDA error" in text or "device-side assert" in text)


def is_out_of_memory(exc: BaseException) -> bool:
    """The one out-of-memory detector: torch's OOM errors (`torch.cuda.OutOfMemoryError`,
    `torch.OutOfMemoryError`), Python's `MemoryError`, and the plain RuntimeErrors that older torch versions
    and other backends raise with 'out of memory' in the message."""
    if type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


@contextmanager
def translate_oom(message: str = OOM_MESSAGE) -> Iterator[None]:
    """Re-raise an out-of-memory error as `OutOfMemory(message)` and free the cached accelerator memory.

    Usable as `with translate_oom(): ...` or as a decorator `@translate_oom()` (not on generator functions:
    there, wrap each step). The original error stays attached as `__cause__` for the worker's log.
    """
    try:
        yield
    except Exception as exc:
        if not is_out_of_memory(exc) or isinstance(exc, OutOfMemory):
            raise
        _release_cached_memory(exc)
        if isinstance(exc, MemoryError) and message == OOM_MESSAGE:
            message = CPU_OOM_MESSAGE
        raise OutOfMemory(message) from exc


def _release_cached_memory(exc: BaseException) -> None:
    """Give the failed request's memory back, so that the next (shorter) request can succeed.

    The traceback's frames hold the request's tensors; clearing their locals (line numbers stay for the log)
    is what lets `empty_cache` return the blocks.
    """
    traceback.clear_frames(exc.__traceback__)
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
