"""Status operations: is the worker alive, what does it hold, load the model now."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from internals.worker.contract import GpuMemory, NoParams, Pong, Status
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
    gpus = gpu_memory(loaded) if loaded is not None else []
    if gpus:
        result["gpus"] = gpus
        result["gpu_allocated_bytes"] = sum(g["allocated_bytes"] for g in gpus)
        result["gpu_free_bytes"] = sum(g["free_bytes"] for g in gpus)
        result["gpu_total_bytes"] = sum(g["total_bytes"] for g in gpus)
    return result


def model_cuda_devices(loaded: Any) -> list[str]:
    """The CUDA devices the loaded model really has weights on: the values of accelerate's `hf_device_map`
    (ints and "cuda:N"; "cpu" and "disk" left out), else the model's one device."""
    device_map = getattr(getattr(loaded, "model", None), "hf_device_map", None) or {}
    found: list[str] = []
    for where in device_map.values() if isinstance(device_map, dict) else ():
        name = f"cuda:{where}" if isinstance(where, int) else str(where)
        if name == "cuda":
            name = "cuda:0"
        if name.startswith("cuda") and name not in found:
            found.append(name)
    if not device_map and str(loaded.device).startswith("cuda"):
        name = str(loaded.device)
        found.append(name if ":" in name else "cuda:0")
    return sorted(found, key=lambda n: int(n.split(":")[1]))


def gpu_memory(loaded: Any) -> list[GpuMemory]:
    """Memory of each CUDA device of the model (`torch.cuda.memory_allocated(d)`, `mem_get_info(d)`)."""
    devices = model_cuda_devices(loaded)
    if not devices:
        return []
    import torch

    out: list[GpuMemory] = []
    for name in devices:
        device = torch.device(name)
        free, total = torch.cuda.mem_get_info(device)
        out.append({"device": name, "allocated_bytes": int(torch.cuda.memory_allocated(device)),
                    "free_bytes": int(free), "total_bytes": int(total)})
    return out


@operation("load", request=NoParams, result=Status, needs_model=True, group="load")
def load(ctx: OpContext, req: NoParams) -> Status:
    """Load the model now (with progress) and answer the status."""
    return status(ctx, req)
