"""What every view shares: fetching from the worker in a thread worker, and drawing loading/error states."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.containers import Vertical
from textual.widgets import Static
from textual.worker import get_current_worker


class RemoteView(Vertical):
    """A view whose data comes from the worker. `fetch()` runs a request off the UI thread; the newest
    request of a group wins (Textual cancels the older worker, the model worker cancels the older request)."""

    DEFAULT_CSS = """
    RemoteView { height: 1fr; width: 1fr; }
    RemoteView > .view-message { height: auto; color: $text-muted; padding: 0 1; }
    RemoteView > .view-message.error { color: $error; }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.data: Any = None

    def message_widget(self) -> Static:
        return self.query_one(".view-message", Static)

    def set_message(self, text: str, error: bool = False) -> None:
        msg = self.message_widget()
        msg.update(text)
        msg.set_class(error, "error")
        msg.display = bool(text)

    def fetch(self, group: str, request: Callable[[], Any], done: Callable[[Any], None], loading: str = "loading…") -> None:
        self.set_message(loading)
        self.run_worker(lambda: self._run(request, done), thread=True, exclusive=True, group=f"{self.id}-{group}",
                        exit_on_error=False)

    def _run(self, request: Callable[[], Any], done: Callable[[Any], None]) -> None:
        from internals.worker.client import Cancelled, WorkerCrashed

        worker = get_current_worker()
        try:
            result = request()
        except Cancelled:
            return
        except WorkerCrashed as exc:
            self.app.call_from_thread(self._failed, exc)
            return
        except Exception as exc:  # noqa: BLE001 - every failure is drawn in the view
            self.app.call_from_thread(self.set_message, f"{exc}", True)
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._done, done, result)

    def _done(self, done: Callable[[Any], None], result: Any) -> None:
        self.set_message("")
        done(result)

    def _failed(self, exc: BaseException) -> None:
        self.set_message(f"{exc} — press r to restart the worker", True)
        worker_failed = getattr(self.app, "worker_failed", None)
        if worker_failed:
            worker_failed(exc)

    def progress(self, fraction: float, message: str) -> None:
        """Progress of a request (e.g. the model loading on first use), from a thread worker: shown here
        and in the status bar."""
        self.app.call_from_thread(self._show_progress, fraction, message)

    def _show_progress(self, fraction: float, message: str) -> None:
        self.set_message(f"{message} {100 * fraction:.0f}%")
        show = getattr(self.app, "show_progress", None)
        if show:
            show(fraction, message)

    def export_data(self) -> Any:
        """The data behind the view (what Export writes as JSON)."""
        return self.data
