"""The status bar: model, device, dtype, worker state and memory."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import Static

from tui.css import widget_css


def _gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


class StatusBar(Static):
    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.model = ""
        self.state = "starting"
        self.status: dict[str, Any] = {}
        self.detail = ""

    def set_model(self, model: str) -> None:
        self.model = model
        self._draw()

    def set_state(self, state: str, detail: str = "") -> None:
        self.state, self.detail = state, detail
        self._draw()

    def set_status(self, status: dict[str, Any]) -> None:
        self.status = status
        loaded = bool(status.get("loaded"))
        if (
            self.state in ("starting", "crashed")
            or self.state.startswith("ready")
            or (self.state.startswith("loading") and loaded)
        ):
            self.state, self.detail = ("ready" if loaded else "ready (model not loaded yet)"), ""
        self._draw()

    def set_crashed(self, message: str) -> None:
        self.set_state("crashed", message)

    def _draw(self) -> None:
        s = self.status
        text = Text()
        text.append(self.model or "model", style="bold")
        if s:
            text.append(f"  device {s.get('device')}  dtype {s.get('dtype')}")
            mem = f"  worker RSS {_gib(s.get('rss_bytes'))}"
            if s.get("gpu_allocated_bytes") is not None:
                mem += f"  GPU {_gib(s.get('gpu_allocated_bytes'))}/{_gib(s.get('gpu_total_bytes'))}"
            text.append(mem, style="dim")
        style = "bold red" if self.state == "crashed" else "green" if self.state.startswith("ready") else "yellow"
        text.append(f"  worker: {self.state}", style=style)
        if self.state == "crashed":
            text.append(f" ({self.detail}) — press r to restart, ctrl+l for its log", style="red")
        elif self.detail:
            text.append(f" {self.detail}", style="dim")
        self.update(text)
