"""What every view shares: a data source, fetching from it in a thread worker, drawing loading/error states.

A view gets its `DataSource` at construction (`data_source=`) or later through the `data_source`
attribute; it never reads `self.app`. Results come back as messages posted from the thread worker
(`post_message` is thread-safe) and are applied by handlers on the UI thread; a crashed worker is reported
to the app with a bubbling `WorkerFailed`, progress with a bubbling `Progress`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from textual import on
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Static
from textual.worker import get_current_worker

from tui.css import widget_css
from tui.data_source import DataSource, NoDataSource
from tui.messages import Progress, WorkerFailed


def numbers_and_histogram(view: str, numbers: str, histogram: str) -> Widget:
    """The top of a view of one tensor's numbers (the tensor view, the diff view): side by side in `#<view>-top`,
    the numbers (`#<view>-<numbers>`) and a histogram titled `histogram` (`#<view>-hist`)."""
    from textual.containers import Horizontal

    from tui.components.histogram import Histogram

    return Horizontal(Static("", id=f"{view}-{numbers}"), Histogram(title=histogram, id=f"{view}-hist"), id=f"{view}-top")


def layer_bindings(view: str) -> list[Binding]:
    """`,` / `.`: the previous / next layer (`action_layer(step)`), ids `<view>.layer_prev` / `<view>.layer_next`:
    the same keys in every view that steps through layers."""
    return [Binding("comma", "layer(-1)", "Layer -", id=f"{view}.layer_prev"),
            Binding("full_stop", "layer(1)", "Layer +", id=f"{view}.layer_next")]


class RemoteView(Vertical):
    """A view whose data comes from the worker. `fetch()` runs a request off the UI thread; the newest
    request of a group wins (Textual cancels the older worker, the model worker cancels the older request,
    and a result that arrives after a newer request started is dropped)."""

    DEFAULT_CSS = widget_css(__file__)

    class Fetched(Message, bubble=False):
        """A request of group `group` (number `serial`) returned `result`; `done` draws it."""

        def __init__(self, group: str, serial: int, done: Callable[[Any], None], result: Any) -> None:
            super().__init__()
            self.group, self.serial, self.done, self.result = group, serial, done, result

    class FetchFailed(Message, bubble=False):
        """A request failed with `error`; `crashed` when the worker process died."""

        def __init__(self, group: str, serial: int, error: BaseException, crashed: bool) -> None:
            super().__init__()
            self.group, self.serial, self.error, self.crashed = group, serial, error, crashed

    def __init__(self, data_source: DataSource | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data_source: DataSource = data_source if data_source is not None else NoDataSource()
        self.data: Any = None
        self._serials: dict[str, int] = {}
        self._waiting: dict[str, float] = {}  # group -> when its oldest request not drawn yet started

    def waiting_for(self) -> float:
        """Seconds since the oldest request of this view that is not drawn yet started (0.0: none). The app holds
        back its background work (importing and mounting the other views) while the view on screen waits."""
        return time.monotonic() - min(self._waiting.values()) if self._waiting else 0.0

    def message_widget(self) -> Static:
        return self.query_one(".view-message", Static)

    def set_message(self, text: str, error: bool = False) -> None:
        msg = self.message_widget()
        msg.update(text)
        msg.set_class(error, "error")
        msg.display = bool(text)

    def fetch(self, group: str, request: Callable[[DataSource], Any], done: Callable[[Any], None],
              loading: str = "loading…") -> None:
        """Run `request(data_source)` in a thread worker; `done(result)` draws the result on the UI thread."""
        self.set_message(loading)
        serial = self._serials[group] = self._serials.get(group, 0) + 1
        self._waiting.setdefault(group, time.monotonic())
        source = self.data_source
        self.run_worker(lambda: self._run(group, serial, lambda: request(source), done), thread=True,
                        exclusive=True, group=f"{self.id}-{group}", exit_on_error=False)

    def _run(self, group: str, serial: int, request: Callable[[], Any], done: Callable[[Any], None]) -> None:
        from internals.worker.client import Cancelled, WorkerCrashed

        worker = get_current_worker()
        try:
            result = request()
        except Cancelled:
            return
        except Exception as exc:  # noqa: BLE001 - every failure is drawn in the view
            self.post_message(self.FetchFailed(group, serial, exc, isinstance(exc, WorkerCrashed)))
            return
        if not worker.is_cancelled:
            self.post_message(self.Fetched(group, serial, done, result))

    @on(Fetched)
    def _fetched(self, message: Fetched) -> None:
        if self._serials.get(message.group) != message.serial:
            return  # a newer request of the group is under way
        self.set_message("")
        try:
            message.done(message.result)
        finally:
            self._waiting.pop(message.group, None)

    @on(FetchFailed)
    def _fetch_failed(self, message: FetchFailed) -> None:
        if self._serials.get(message.group) == message.serial:
            self._waiting.pop(message.group, None)
        if message.crashed:
            self.set_message(f"{message.error} — press r to restart the worker", True)
            self.post_message(WorkerFailed(message.error))
        elif self._serials.get(message.group) == message.serial:
            self.set_message(f"{message.error}", True)

    def progress(self, fraction: float, message: str) -> None:
        """Progress of a request (e.g. the model loading on first use), from a thread worker: shown here
        and, as the `Progress` message bubbles up, in the status bar."""
        self.post_message(Progress(fraction, message))

    def progress_text(self, fraction: float, message: str) -> str:
        """How this view words a progress report."""
        return f"{message} {100 * fraction:.0f}%"

    @on(Progress)
    def _show_progress(self, event: Progress) -> None:
        self.set_message(self.progress_text(event.fraction, event.message))

    def redraw(self) -> None:
        """Draw the part of the answer the view's keys select (a layer, a head, a grid) again, after a key changed
        it or the view was resized; nothing before the first answer."""
        if self.data:
            self.draw_selected(self.data)

    def draw_selected(self, data: Any) -> None:
        """Draw the part of `data` the view's keys select (the views that have such keys)."""
        raise NotImplementedError

    def export_data(self) -> Any:
        """The data behind the view (what Export writes as JSON)."""
        return self.data


class PromptView(RemoteView):
    """A view of one request on the prompt typed in its box (`PROMPT_ID`): asked the first time the view is
    shown, again on Enter in the box (the newer request cancels the older) and drawn by `show`.

    A view says what to ask (`make_request`, called on the UI thread so the request holds the values of the
    moment) and how to draw the answer; `loaded` says an answer was drawn (`needs_request` decides whether
    showing the view asks again)."""

    PROMPT_ID: ClassVar[str] = ""  # the id of the prompt box
    DEFAULT_PROMPT: ClassVar[str] = ""
    PROMPT_PLACEHOLDER: ClassVar[str] = "prompt (Enter runs it)"
    GROUP: ClassVar[str] = "prompt"  # the fetch group
    LOADING: ClassVar[str] = "running the model on the prompt…"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prompt: str = self.DEFAULT_PROMPT
        self.loaded = False

    def prompt_input(self) -> Input:
        """The prompt box (newlines shown as ⏎), for `compose`."""
        return Input(value=self.prompt.replace("\n", "⏎"), placeholder=self.PROMPT_PLACEHOLDER, id=self.PROMPT_ID)

    def set_prompt(self, prompt: str) -> None:
        """Put `prompt` in the box (without asking)."""
        self.prompt = prompt
        self.query_one(f"#{self.PROMPT_ID}", Input).value = prompt.replace("\n", "⏎")

    def needs_request(self) -> bool:
        """Whether showing the view asks (default: until an answer was drawn)."""
        return not self.loaded

    def activate(self) -> None:
        if self.needs_request():
            self.request()

    def take_input(self, event: Input.Submitted) -> bool:
        """Read the boxes after Enter in `event.input`; False when that box is not one that asks."""
        if event.input.id != self.PROMPT_ID:
            return False
        self.prompt = event.value.replace("⏎", "\n")
        return True

    @on(Input.Submitted)
    def _prompt_submitted(self, event: Input.Submitted) -> None:
        if self.take_input(event):
            self.request()
            self.submitted()

    def submitted(self) -> None:
        """After Enter asked again (e.g. focus the main widget)."""

    def make_request(self) -> Callable[[DataSource], Any]:
        """The request for the current prompt (and settings): a call of the data source."""
        raise NotImplementedError

    def loading_text(self) -> str:
        return self.LOADING

    def request(self) -> None:
        """Ask for the current prompt (a newer request cancels this one)."""
        self.fetch(self.GROUP, self.make_request(), self._received, loading=self.loading_text())

    def _received(self, data: Any) -> None:
        self.data = data
        self.loaded = True
        self.show(data)

    def show(self, data: Any) -> None:
        """Draw an answer (already in `self.data`)."""
        raise NotImplementedError

    def focus_if_shown(self, widget: Widget | None = None) -> None:
        """Focus `widget` (default: the focus target) unless another view is shown: a result that arrives
        then must not take the focus."""
        if self.display:
            (widget or self.focus_target()).focus()

    def focus_target(self) -> Widget:
        return self
