"""Messages views post and the app handles: the only way a view asks the explorer to act.

Why: a view never calls into the app (`self.app.open_node(...)`); it posts one of these and bubbles it up,
so it can be mounted alone in a test app that records them. Thread workers post too (`post_message` is
thread-safe), instead of scheduling closures with `call_from_thread`: the handler, on the UI thread, owns
the state it changes.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class OpenNode(Message):
    """Open a module or parameter of the model tree (`name` as in the tree; "" is the model root)."""

    def __init__(self, name: str, select_in_tree: bool = True) -> None:
        super().__init__()
        self.name = name
        self.select_in_tree = select_in_tree


class FollowLink(Message):
    """Move the explorer to an `llm:` link target (`llm:tensor/NAME`, `llm:view/attention`, ...)."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target


class Progress(Message):
    """Progress of a request (e.g. the model loading on first use). A flood collapses to the newest one.

    `status`: also draw it in the status bar (model loading); False for progress only the view shows.
    """

    def __init__(self, fraction: float, message: str, status: bool = True) -> None:
        super().__init__()
        self.fraction = fraction
        self.message = message
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Progress) and message.status == self.status


class WorkerFailed(Message):
    """A request failed because the worker crashed (or another error the app shows)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class SpectraComputed(Message):
    """The whole model's spectra came back (`spectra`: `matrices` briefs with `flagged` and `alpha_reading`):
    the app badges the tree's matrices whose α is outside [2, 6] or whose fit is poor."""

    def __init__(self, spectra: dict[str, Any]) -> None:
        super().__init__()
        self.spectra = spectra


class CloseLessons(Message):
    """The lessons pane asks to be hidden (Esc)."""


class ModelInfoLoaded(Message):
    """The worker (or the cache) gave the model card and tree; `exact` when it is the worker's answer."""

    def __init__(self, summary: dict[str, Any], nodes: list[dict[str, Any]], exact: bool = True) -> None:
        super().__init__()
        self.summary = summary
        self.nodes = nodes
        self.exact = exact


class ModelInfoFailed(Message):
    """The worker could not read the model."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class StatusPolled(Message):
    """The worker's status (memory, device, loaded) from a poll."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusPolled)


class WorkerRestarted(Message):
    """`restart()` returned: a new worker is up."""


__all__ = ["CloseLessons", "FollowLink", "ModelInfoFailed", "ModelInfoLoaded", "OpenNode", "Progress",
           "SpectraComputed", "StatusPolled", "WorkerFailed", "WorkerRestarted"]
