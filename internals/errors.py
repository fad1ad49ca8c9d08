"""Errors that a user can act on, typed so that they cross the worker socket as themselves.

Every failure caused by input (a path, a model id, a prompt) is raised as a `UserError`; the command line
prints it as one `error: ...` line and exits with status 2. Anything else is a bug and keeps its traceback.

Each error class has a wire `kind` (its class name unless it says otherwise). The worker sends an error as
`{"type": kind, "message": ...}` (`to_wire`); the client raises the same class again (`from_wire`), so both
sides of the socket catch `OutOfMemory`, `BadRequest`, `Cancelled`... and nobody parses message prefixes.
Torch-free: the explorer imports this module.
"""

from __future__ import annotations

from typing import Any, ClassVar

_BY_KIND: dict[str, type[BaseException]] = {}


class UserError(Exception):
    """Bad input: the message says what was wrong and what to do about it (one line)."""

    exit_code = 2
    kind: ClassVar[str] = "UserError"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = cls.__name__
        _BY_KIND.setdefault(cls.kind, cls)

    def __init__(self, message: str) -> None:
        super().__init__(message.strip().splitlines()[0] if message.strip() else "unknown error")


_BY_KIND["UserError"] = UserError


class ModelSourceError(UserError):
    """MODEL could not be resolved or read (missing path, not cached, corrupt safetensors...)."""


class WeightsRequiredError(UserError):
    """The operation needs tensor values but the source has none (a bare config.json)."""


class BadRequest(UserError):
    """A worker request whose parameters are missing, unknown or of the wrong type."""


class UnknownOperation(BadRequest):
    """A worker request for an operation the worker does not have."""


class OutOfMemory(UserError):
    """The accelerator (or the CPU allocator) ran out of memory during a forward pass or while loading."""


class Busy(UserError):
    """The worker refused a request because one connection already has too many in flight (wait for answers)."""


class AnswerTooLarge(UserError):
    """The answer would not fit in one frame the client can read (ask for fewer tokens or a shorter prompt)."""


class DeviceFailed(UserError):
    """The accelerator failed in a way that leaves its context unusable (a CUDA error, a device-side assert):
    the worker answers this, then exits, so that the explorer restarts it (`r`)."""


class InternalError(UserError):
    """A bug in the worker while answering one request (the worker logged the traceback and keeps serving)."""


class Cancelled(Exception):
    """A newer request of the same group replaced this one (not a user error: nothing to report)."""

    kind: ClassVar[str] = "Cancelled"

    def __init__(self, message: str = "cancelled by a newer request") -> None:
        super().__init__(message)


_BY_KIND["Cancelled"] = Cancelled


class WorkerCrashed(Exception):
    """The worker process died or the connection broke; `restart()` (managed workers) starts a new one."""

    kind: ClassVar[str] = "WorkerCrashed"


class ModelRefused(WorkerCrashed):
    """The worker stopped because it could not open the model (the message is its one-line reason)."""

    kind: ClassVar[str] = "ModelRefused"


def to_wire(exc: BaseException) -> dict[str, str]:
    """The body of an `error` frame for a typed error."""
    return {"type": getattr(exc, "kind", type(exc).__name__), "message": str(exc)}


def from_wire(body: Any) -> BaseException:
    """The error an `error` frame describes, as the same class when this side knows it (else a `UserError`
    whose `kind` is the wire type, e.g. an error class of a package this process has not imported)."""
    body = body if isinstance(body, dict) else {}
    kind = str(body.get("type") or "InternalError")
    message = str(body.get("message") or "the worker failed")
    cls = _BY_KIND.get(kind)
    if cls is not None:
        try:
            return cls(message)
        except TypeError:
            pass
    exc = UserError(message)
    exc.kind = kind  # type: ignore[misc]
    return exc


def wire_kinds() -> dict[str, type[BaseException]]:
    """Every error kind this process knows (documented in docs/protocol.md)."""
    return dict(_BY_KIND)
