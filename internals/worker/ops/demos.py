"""The `run_demo` operation: runs a demo of the worker's demo registry (filled by the lessons)."""

from __future__ import annotations

from typing import cast

from internals.worker.contract import DemoPoint, DemoRequest, DemoResult
from internals.worker.demos import get_demo
from internals.worker.operations import OpContext, operation


@operation("run_demo", request=DemoRequest, result=DemoResult, compute_lock=True, group="demo", streams=True,
           item=DemoPoint)
def run_demo(ctx: OpContext, req: DemoRequest) -> DemoResult:
    """Run a registered demo on the open model, streaming its live points."""
    demo = get_demo(req.name)
    result = demo.run(ctx.opened, dict(req.params), emit=ctx.emit, progress=ctx.progress,
                      should_stop=lambda: ctx.cancelled)
    # a demo's own keys travel beside the three that DemoResult declares (see internals/worker/demos.py)
    return cast(DemoResult, result or {})
