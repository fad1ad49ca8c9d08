"""The options every Textual widget constructor takes, declared once for the components.

Why: each component repeated `name`, `id`, `classes`, `disabled` in its signature and passed them on to
`Widget.__init__` one by one. A component now takes `**options: Unpack[WidgetOptions]` and passes
`**options` on: callers write the same keywords, and the type checker still checks them.
"""

from __future__ import annotations

from typing import TypedDict


class WidgetOptions(TypedDict, total=False):
    """Keyword arguments of `textual.widget.Widget.__init__` the components pass through unchanged."""

    name: str | None
    id: str | None
    classes: str | None
    disabled: bool





class ColourLimits(TypedDict, total=False):
    """The colour scale's limits a `set_*` update may pass (None or absent: keep the current one)."""

    vmin: float | None
    vmax: float | None


def assign_given(widget: object, **values: object) -> None:
    """`widget._<name> = value` for each value that is not None: the "keep unless given" of `set_*` updates."""
    for name, value in values.items():
        if value is not None:
            setattr(widget, f"_{name}", value)
__all__ = ["ColourLimits", "WidgetOptions", "assign_given"]
