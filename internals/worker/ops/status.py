"""Status operations: is the worker alive, what does it hold, load the model now."""

from __future__ import annotations

import os
import sys
import time

from internals.worker.contract import NoParams, Pong, Status
from internals.worker.operations import OpContext, operation


@operation("ping", request=NoParams, result=Pong)
def ping(ctx: OpContext, req: NoParams) -> Pong:
    """Answered once the model is open (the socket exists before)."""
    return {"pong": True, "pid": os.getpid()}


@operation("status", request=NoParams, result=Status)
def status(ctx: OpContext, req: NoParams) -> Status:
    """The model, the device and dtype it runs on (or will), the worker's memory, and how far its start got
    (torch imported; the exact tree built)."""
    import psutil

    service = ctx.service
    loaded = service.loaded_model
    result: Status = {
        "model": service.source.display_name, "pid": os.getpid(), "loaded": loaded is not None,
        "device": str(loaded.device) if loaded else (service.options.device or "auto"),
        "dtype": str(loaded.dtype).replace("torch.", "") if loaded else (service.options.dtype or "auto"),
        "rss_bytes": psutil.Process().memory_info().rss, "uptime_s": time.time() - service.started,
        "torch_imported": "torch" in sys.modules,
        "exact_tree": service.background is None or service.background.ready,
    }
    if service.background is not None and service.background.torch_at_first_answer is not None:
        result["torch_imported_at_first_answer"] = service.background.torch_at_first_answer
    if loaded is not None and str(loaded.device).startswith("cuda"):
        import torch

        result["gpu_allocated_bytes"] = int(torch.cuda.memory_allocated())
        result["gpu_total_bytes"] = int(torch.cuda.get_device_properties(0).total_memory)
    return result


@operation("load", request=NoParams, result=Status, needs_model=True, group="load")
def load(ctx: OpContext, req: NoParams) -> Status:
    """Load the model now (with progress) and answer the status."""
    return status(ctx, req)
