"""`DemoContext`: how a running demo talks to its caller (live points, progress, cancellation). Torch-free."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any


class DemoContext:
    """Wraps the worker's callbacks. `stop_requested()` polls should_stop and remembers a True answer.

    Every progress report marks a step boundary: there the demo gives the worker's compute lock to the
    requests waiting for it (`yield_lock`), so a student's attention map is answered during a training run.
    `runtime` holds the worker's device, dtype and max_memory (None each when not set)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 yield_lock: Callable[[], Any] | None = None,
                 runtime: dict[str, Any] | None = None) -> None:
        self._emit = emit
        self._progress = progress
        self._should_stop = should_stop
        self._yield_lock = yield_lock
        self.runtime: dict[str, Any] = {"device": None, "dtype": None, "max_memory": None, **(runtime or {})}
        self.stopped = False
        self.started = time.perf_counter()

    def point(self, series: str, x: float, y: float) -> None:
        """Stream one live-plot point: {"series": series, "x": x, "y": y} (non-finite y is not sent)."""
        if self._emit is None or y is None or not math.isfinite(float(y)):
            return
        self._emit({"series": series, "x": x if isinstance(x, int) else float(x), "y": float(y)})

    def progress(self, fraction: float, message: str = "") -> None:
        if self._progress is not None:
            self._progress(max(0.0, min(1.0, float(fraction))), message)
        self.between_steps()

    def between_steps(self) -> None:
        """Let the worker's other requests use the device now (called at every progress report)."""
        if self._yield_lock is not None:
            self._yield_lock()

    def stop_requested(self) -> bool:
        if not self.stopped and self._should_stop is not None and self._should_stop():
            self.stopped = True
        return self.stopped

    def elapsed(self) -> float:
        return round(time.perf_counter() - self.started, 3)

    def sub(self, start: float, end: float) -> Callable[[float, str], None]:
        """A progress callback mapping [0, 1] onto [start, end] of this demo's bar."""
        return lambda fraction, message="": self.progress(start + (end - start) * float(fraction), message)
