"""The worker's demo registry: runnable demos that a package outside the engine registers (the lessons do).

The engine never imports the lessons: the composition root (`llm_internals.py`) imports `lessons.demos`,
which registers each demo here with `register(name, fn, metadata)`; the worker's `run_demo` operation runs
what is registered. A demo function is called as `fn(opened, params, emit=..., progress=..., should_stop=...)`
with an `OpenedModel`, the caller's parameters (the demo checks and completes them), a callable streaming
`contract.DemoPoint`s, a progress callable and a stop flag; it returns its result dict (`contract.DemoResult`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from internals.errors import UserError

DemoFunction = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class RegisteredDemo:
    name: str
    run: DemoFunction
    metadata: dict[str, Any] = field(default_factory=dict)


_DEMOS: dict[str, RegisteredDemo] = {}
_LOCK = threading.Lock()


def register(name: str, fn: DemoFunction, metadata: dict[str, Any] | None = None) -> None:
    """Make demo `name` runnable by the worker (registering the same name again replaces it)."""
    if not name or not callable(fn):
        raise ValueError("a demo needs a name and a callable")
    with _LOCK:
        _DEMOS[name] = RegisteredDemo(name, fn, dict(metadata or {}))


def unregister(name: str) -> None:
    with _LOCK:
        _DEMOS.pop(name, None)


def registered() -> dict[str, RegisteredDemo]:
    """The registered demos by name."""
    with _LOCK:
        return dict(_DEMOS)


def get_demo(name: str) -> RegisteredDemo:
    """The demo `name`, or a `UserError` listing the known ones."""
    demos = registered()
    if name in demos:
        return demos[name]
    if not demos:
        raise UserError(f"unknown demo {name!r}: no demos are registered in this worker (start it with llm-internals)")
    raise UserError(f"unknown demo {name!r}; known demos: {', '.join(demos)}")
