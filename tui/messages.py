"""Messages views post and the app handles: the only way a view asks the explorer to act.

Why: a view never calls into the app (`self.app.open_node(...)`); it posts one of these and bubbles it up,
so it can be mounted alone in a test app that records them. Thread workers post too (`post_message` is
thread-safe), instead of scheduling closures with `call_from_thread`: the handler, on the UI thread, owns
the state it changes. The messages with values are dataclasses (Textual initialises a dataclass message
in `__post_init__`); identity equality and Textual's repr are kept (`eq=False, repr=False`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass(eq=False, repr=False)
class OpenNode(Message):
    """Open a module or parameter of the model tree (`name` as in the tree; "" is the model root)."""

    name: str
    select_in_tree: bool = True


@dataclass(eq=False, repr=False)
class FollowLink(Message):
    """Move the explorer to an `llm:` link target (`llm:tensor/NAME`, `llm:view/attention`, ...)."""

    target: str


@dataclass(eq=False, repr=False)
class Progress(Message):
    """Progress of a request (e.g. the model loading on first use). A flood collapses to the newest one.

    `status`: also draw it in the status bar (model loading); False for progress only the view shows.
    """

    fraction: float
    message: str
    status: bool = True

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress) and message.status == self.status


@dataclass(eq=False, repr=False)
class WorkerFailed(Message):
    """A request failed because the worker crashed (or another error the app shows)."""

    error: BaseException


class SpectraComputed(Message):
    """The whole model's spectra came back (`spectra`: `matrices` briefs with `flagged` and `alpha_reading`):
    the app badges the tree's matrices whose α is outside [2, 6] or whose fit is poor."""

    def __init__(self, spectra: dict[str, Any]) -> None:
        super().__init__()
        self.spectra = spectra


class CloseLessons(Message):
    """The lessons pane asks to be hidden (Esc)."""


@dataclass(eq=False, repr=False)
class ModelInfoLoaded(Message):
    """The worker (or the cache) gave the model card and tree; `exact` when it is the worker's answer."""

    summary: dict[str, Any]
    nodes: list[dict[str, Any]]
    exact: bool = True


@dataclass(eq=False, repr=False)
class ModelInfoFailed(Message):
    """The worker could not read the model."""

    error: BaseException


@dataclass(eq=False, repr=False)
class StatusPolled(Message):
    """The worker's status (memory, device, loaded) from a poll."""

    status: dict[str, Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusPolled)


class WorkerRestarted(Message):
    """`restart()` returned: a new worker is up."""


__all__ = ["CloseLessons", "FollowLink", "ModelInfoFailed", "ModelInfoLoaded", "OpenNode", "Progress",
           "SpectraComputed", "StatusPolled", "WorkerFailed", "WorkerRestarted"]
