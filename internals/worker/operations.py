"""The registry of worker operations: what each one takes, returns and needs, declared once with `@operation`.

An operation is a plain function `fn(ctx: OpContext, request) -> result`, registered with its name, its
request dataclass and its result TypedDict (internals/worker/contract.py), and what the dispatcher must do
around it: load the model first (`needs_model`), run it under the compute lock (`compute_lock`: one forward
pass at a time on one device; `compute_lock="step"` for a long operation that takes the lock per step itself
with `ctx.step()`, so that other clients' requests run between its steps), which cancellation group clients use by default (`group`), and whether it
streams items before its result (`streams`, with the `item` type). `dispatch` checks a request's parameters
against the request type (a `BadRequest` names the bad one: never a traceback), then runs the one sequence
every forward operation shares: load (with progress) -> lock -> check cancellation -> run -> out-of-memory
translation. Adding an analysis is one request dataclass, one result TypedDict and one decorated function
(see docs/architecture.md, "How to add an operation").

Torch-free: the explorer's client reads the registry for default groups and request checks.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from internals.errors import BadRequest, Cancelled, UnknownOperation

log = logging.getLogger("llm_internals.worker")
Send = Callable[[dict, Any], None]
Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class Operation(Generic[Req, Res]):
    """One registered operation (see the module docstring for each field)."""

    name: str
    fn: Callable[[OpContext, Req], Res]
    request: type[Req]
    result: Any
    needs_model: bool = False
    compute_lock: bool | str = False
    group: str | None = None
    streams: bool = False
    item: Any = None
    doc: str = ""

    def parse(self, params: Any) -> Req:
        """The request dataclass for a request body, or `BadRequest` saying which parameter is wrong."""
        return parse_request(self.name, self.request, params)


OPERATIONS: dict[str, Operation] = {}


def operation(name: str, *, request: type, result: Any, needs_model: bool = False, compute_lock: bool | str = False,
              group: str | None = None, streams: bool = False, item: Any = None) -> Callable[[Callable], Callable]:
    """Register `fn(ctx, request) -> result` as the worker operation `name` (a name is registered once)."""
    if not dataclasses.is_dataclass(request):
        raise TypeError(f"operation {name}: request must be a dataclass (see internals/worker/contract.py)")
    if streams and item is None:
        raise TypeError(f"operation {name}: a streaming operation declares its item type")
    if compute_lock not in (True, False, "step"):
        raise TypeError(f"operation {name}: compute_lock is True, False or 'step'")

    def register(fn: Callable) -> Callable:
        if name in OPERATIONS and OPERATIONS[name].fn is not fn:
            raise ValueError(f"operation {name!r} is registered twice")
        OPERATIONS[name] = Operation(name, fn, request, result, needs_model, compute_lock, group, streams, item,
                                     (fn.__doc__ or "").strip().split("\n\n")[0])
        return fn

    return register


def registry() -> dict[str, Operation]:
    """Every operation, the built-in ones registered (importing `internals.worker.ops` registers them)."""
    import internals.worker.ops  # noqa: F401 - registers the built-in operations

    return OPERATIONS


def get_operation(name: str) -> Operation:
    op = registry().get(name)
    if op is None:
        raise UnknownOperation(f"unknown operation {name!r}; the worker has: {', '.join(sorted(OPERATIONS))}")
    return op


# --- what an operation may use ---------------------------------------------------------------------------


@dataclass
class OpContext:
    """Handed to every operation: the model (opened; loaded once on first need), progress, streaming and
    cancellation. `service` is the `ModelService` that owns the model (its options and state)."""

    rid: int
    send: Send
    service: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def check(self) -> None:
        """Raise `Cancelled` when a newer request of the same group replaced this one (call between steps)."""
        if self.cancel.is_set():
            raise Cancelled()

    @contextmanager
    def step(self) -> Iterator[None]:
        """One step of a `compute_lock="step"` operation: holds the compute lock (served in arrival order, so
        other clients' requests run between two steps) and checks cancellation once it has it."""
        with self.service.compute_lock:
            self.check()
            yield

    def yield_lock(self) -> None:
        """Between two steps of an operation that holds the compute lock for its whole run: let the requests
        waiting for it run now (a no-op when nobody waits)."""
        yielder = getattr(self.service.compute_lock, "yield_to_waiters", None)
        if yielder is not None:
            yielder()

    def progress(self, fraction: float, message: str = "") -> None:
        self.send({"id": self.rid, "kind": "progress"}, {"fraction": float(fraction), "message": message})

    def emit(self, item: Any) -> None:
        """Stream one item to the client (streaming operations); stops the operation once it is cancelled."""
        self.check()
        self.send({"id": self.rid, "kind": "item"}, item)

    @property
    def opened(self):
        """The `OpenedModel` (lazy weights: tree, statistics, tensors; never loads the model)."""
        return self.service.opened

    @property
    def model(self):
        """The loaded transformers model (`internals.inference.loading.Loaded`), loaded once with progress."""
        return self.service.loaded(self)

    def tokens(self, text: str):
        """`text` tokenized by the loaded model's tokenizer (`contract.Tokens`)."""
        from internals.inference.tokens import tokenize

        return tokenize(self.model.tokenizer, text)


def dispatch(op: Operation, ctx: OpContext, params: Any) -> Any:
    """Check the parameters, then run `op` with the sequence it declared; errors propagate typed."""
    from internals.errors import OutOfMemory
    from internals.inference.errors import translate_oom, with_dtype_hint

    request = op.parse(params)
    try:
        with translate_oom():
            if op.needs_model:
                ctx.model  # noqa: B018 - loads outside the compute lock (the load has its own lock and progress)
            if op.compute_lock is True:
                with ctx.service.compute_lock:
                    ctx.check()
                    result = op.fn(ctx, request)
            else:
                result = op.fn(ctx, request)
    except OutOfMemory as exc:  # the hint depends on the dtype the model was loaded in
        better = with_dtype_hint(exc, getattr(getattr(ctx.service, "loaded_model", None), "dtype", None))
        if better is exc:
            raise
        raise better from exc.__cause__
    ctx.check()
    return result


# --- request checking ------------------------------------------------------------------------------------


def parse_request(name: str, request: type[Req], params: Any) -> Req:
    if not isinstance(params, Mapping):
        raise BadRequest(f"{name}: the parameters must be an object, not {type(params).__name__}")
    hints = typing.get_type_hints(request)
    fields = {f.name: f for f in dataclasses.fields(request)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise BadRequest(f"{name} has no parameter {unknown[0]!r}; its parameters: {', '.join(fields) or 'none'}")
    for f in fields.values():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name not in params:
            if required:
                raise BadRequest(f"{name} needs the parameter {f.name!r} ({describe(hints[f.name])})")
            continue
        value = params[f.name]
        if not matches(value, hints[f.name]):
            raise BadRequest(f"{name}: {f.name} must be {describe(hints[f.name])}, not {type(value).__name__} "
                             f"{_short(value)}")
    return request(**params)


def matches(value: Any, hint: Any) -> bool:
    """Whether a decoded JSON value fits a type annotation (int is not bool; an int is a valid float)."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and (not args or all(matches(v, args[0]) for v in value))
    if origin is dict or hint is dict:
        args = typing.get_args(hint)
        return isinstance(value, dict) and all(isinstance(k, str) for k in value) and (
            len(args) < 2 or all(matches(v, args[1]) for v in value.values()))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
    """A readable type: 'int', 'str or null', 'list of int'."""
    if hint is type(None) or hint is None:
        return "null"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {describe(args[0])}" if args else "a list"
    if origin is dict or hint is dict:
        return "an object"
    if hint is Any:
        return "any value"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(hint, getattr(hint, "__name__", str(hint)))


def request_fields(op: Operation) -> list[tuple[str, str, Any]]:
    """(name, type, default) of each parameter of `op` (the default is `dataclasses.MISSING` when required)."""
    hints = typing.get_type_hints(op.request)
    out = []
    for f in dataclasses.fields(op.request):
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        out.append((f.name, describe(hints[f.name]), default))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
