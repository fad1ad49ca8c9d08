"""The worker as the status bar shows it: polling its status, progress, failures, restart and its log."""

from __future__ import annotations

from collections.abc import Callable

from textual import work

from tui.app_base import ExplorerBase
from tui.messages import Progress, StatusPolled, WorkerFailed, WorkerRestarted


class WorkerStatusMixin(ExplorerBase):
    """Part of `ExplorerApp`: everything about the worker process itself (not about the model)."""

    @work(thread=True, exclusive=True, group="status", exit_on_error=False)
    def poll_status(self) -> None:
        try:
            status = self.client.status()
        except Exception as exc:  # noqa: BLE001
            self.post_message(WorkerFailed(exc))
            return
        self.post_message(StatusPolled(status))

    def on_status_polled(self, message: StatusPolled) -> None:
        self.status_bar.set_status(message.status)

    def on_progress(self, message: Progress) -> None:
        if message.status:
            self.show_progress(message.fraction, message.message)

    def show_progress(self, fraction: float, message: str) -> None:
        """Loading progress reported by a request: drawn in the status bar until the next status poll."""
        bar = self.status_bar
        if fraction >= 1.0:
            bar.set_state("ready", message)
        else:
            bar.set_state(f"loading {100 * fraction:.0f}%", message)

    def on_worker_failed(self, message: WorkerFailed) -> None:
        self.worker_failed(message.error)

    def worker_failed(self, exc: BaseException) -> None:
        from internals.worker.client import WorkerCrashed

        if isinstance(exc, WorkerCrashed):
            self.status_bar.set_crashed(str(exc))
        else:
            self.notify(str(exc), severity="error", timeout=6)

    def action_worker_log(self) -> None:
        path = getattr(self.client, "log_path", None)
        if not path:
            self.notify("this explorer's model runs in a shared worker or in this process: its log is where it was started",
                        severity="warning")
            return
        from tui.screens import LogScreen

        self.push_screen(LogScreen(path))

    def action_restart_worker(self) -> None:
        restart = getattr(self.client, "restart", None)
        if restart is None:
            self.notify("this explorer is attached to a shared worker: restart it where it runs", severity="warning")
            return
        self.status_bar.set_state("starting")
        self._restart(restart)

    @work(thread=True, exclusive=True, group="restart", exit_on_error=False)
    def _restart(self, restart: Callable[[], None]) -> None:
        try:
            restart()
        except Exception as exc:  # noqa: BLE001
            self.post_message(WorkerFailed(exc))
            return
        self.post_message(WorkerRestarted())

    def on_worker_restarted(self, message: WorkerRestarted) -> None:
        self.notify("worker restarted")
        self.poll_status()
