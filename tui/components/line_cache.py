"""Cached rendered lines for the Line-API widgets (heatmap, small multiples, logit-lens grid, token strip).

Why one mixin: each of these widgets kept a `{line: Strip}` cache, filled it in `render_line` and emptied it
when the theme or focus changed (the old colours are baked into cached segments), and the two half-block
widgets also rebuilt their `HalfBlockStyles` then. That was written once per widget; here it is written once.
A widget renders through `_cached_line` and says in `_invalidate` what to drop when its data or size changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.style import Style
from textual import events
from textual.strip import Strip

from tui.components.theme import HalfBlockStyles, Ramp


class LineCache:
    """Mixin (before `Widget` in the bases): a cache of rendered lines, dropped on a style change."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lines: dict[int, Strip] = {}
        super().__init__(*args, **kwargs)

    def _cached_line(self, key: int, render: Callable[[int], Strip]) -> Strip:
        """The cached line `key`, rendered with `render(key)` the first time."""
        strip = self._lines.get(key)
        if strip is None:
            strip = render(key)
            self._lines[key] = strip
        return strip

    def _style_changed(self) -> None:
        """Drop what has the old colours baked in (subclasses add their own caches)."""
        self._lines.clear()

    def _invalidate(self) -> None:
        """Drop the cached lines and whatever layout depends on the data or size, and redraw."""
        raise NotImplementedError

    def on_resize(self, event: events.Resize) -> None:
        """The layout depends on the size: invalidate it."""
        self._invalidate()

    def notify_style_update(self) -> None:
        """Theme/focus changed: cached lines (and styles) have the old colours baked in."""
        super().notify_style_update()  # type: ignore[misc]
        self._style_changed()


class HalfBlockLines(LineCache):
    """A `LineCache` whose lines are half-block pixels coloured by `self._ramp` over the widget's style."""

    _ramp: Ramp
    _half_blocks: HalfBlockStyles | None = None
    rich_style: Style

    def _style_changed(self) -> None:
        super()._style_changed()
        self._half_blocks = None

    @property
    def _styles(self) -> HalfBlockStyles:
        """Half-block styles on top of the widget's own style (rebuilt after a style change)."""
        if self._half_blocks is None:
            self._half_blocks = HalfBlockStyles(self._ramp, self.rich_style)
        return self._half_blocks


__all__ = ["HalfBlockLines", "LineCache"]
