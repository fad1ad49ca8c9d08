"""The `run_demo` operation: runs a demo of the worker's demo registry (filled by the lessons)."""

from __future__ import annotations

import gc
import inspect
import sys
from typing import Any

from internals.worker.contract import DemoPoint, DemoRequest, DemoResult
from internals.worker.demos import get_demo
from internals.worker.operations import OpContext, operation


@operation("run_demo", request=DemoRequest, result=DemoResult, compute_lock=True, group="demo", streams=True,
           item=DemoPoint)
def run_demo(ctx: OpContext, req: DemoRequest) -> DemoResult:
    """Run a registered demo on the open model, streaming its live points.

    A demo that accepts them also gets `yield_lock` (called between its steps: other clients' requests run
    there instead of waiting for the whole demo) and `runtime` (the worker's --device, --dtype and
    --max-memory, which its own copy of the model honours). Its memory is given back when it ends."""
    demo = get_demo(req.name)
    options = ctx.service.options
    extras = _accepted(demo.run, {
        "yield_lock": ctx.yield_lock,
        "runtime": {"device": options.device, "dtype": options.dtype, "max_memory": options.max_memory},
    })
    try:
        result = demo.run(ctx.opened, dict(req.params), emit=ctx.emit, progress=ctx.progress,
                          should_stop=lambda: ctx.cancelled, **extras)
    finally:
        release_memory()
    return result or {}


def release_memory() -> None:
    """Collect the demo's models and optimiser states and return the accelerator's cached blocks."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _accepted(fn: Any, extras: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `extras` that `fn` takes (older demo functions keep their signature)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return extras
    return {k: v for k, v in extras.items() if k in parameters}
