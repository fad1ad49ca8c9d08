"""Shared helpers for the component tests: a tiny host app and cell-level views of rendered strips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.message import Message
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widget import Widget


@pytest.fixture
def anyio_backend() -> str:
    """Pilot tests run on asyncio (Textual's loop)."""
    return "asyncio"


class HostApp(App[None]):
    """Hosts the widgets under test and records the messages they post (once each)."""

    CSS = "Screen { layout: vertical; }"

    def __init__(self, *widgets: Widget) -> None:
        super().__init__()
        self._widgets = widgets
        self.received: list[Message] = []
        self._seen: set[int] = set()

    def compose(self) -> ComposeResult:
        yield from self._widgets

    def hook(self, message: Message) -> None:
        """`run_test(message_hook=...)`: keep our components' messages, each once (they bubble)."""
        if type(message).__module__.startswith("tui.components") and id(message) not in self._seen:
            self._seen.add(id(message))
            self.received.append(message)

    def of_type(self, kind: type[Message]) -> list[Message]:
        """Received messages of exactly this type."""
        return [m for m in self.received if type(m) is kind]

    def run_host(self, size: tuple[int, int] = (120, 40)):  # noqa: ANN201 (an async context manager)
        """`async with app.run_host(size) as pilot:` — `run_test` with the message hook installed."""
        return self.run_test(size=size, message_hook=self.hook)

    @asynccontextmanager
    async def keys(self, widget: Widget, *keys: str, size: tuple[int, int] = (120, 40)) -> AsyncIterator[Pilot]:
        """`async with app.keys(widget, "down", "enter") as pilot:` — run the host, focus `widget`, press the
        keys and let the messages they post arrive (the start of every keyboard test)."""
        async with self.run_host(size) as pilot:
            widget.focus()
            await pilot.press(*keys)
            await pilot.pause()
            yield pilot


@pytest.fixture
def host() -> type[HostApp]:
    """The host app class: `HostApp(widget, ...)`."""
    return HostApp


def cells(strip: Strip) -> list[tuple[str, Style]]:
    """One `(character, style)` per terminal cell (wide characters take two cells)."""
    out: list[tuple[str, Style]] = []
    for segment in strip:
        style = segment.style or Style()
        for ch in segment.text:
            out.append((ch, style))
    return out


def lines(widget: Widget) -> list[str]:
    """Plain text of every line of a Line-API widget."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


@pytest.fixture(name="cells")
def cells_fixture():  # noqa: ANN201
    """`cells(strip)`: one `(character, style)` per cell."""
    return cells


@pytest.fixture(name="lines")
def lines_fixture():  # noqa: ANN201
    """`lines(widget)`: the plain text of every line."""
    return lines
