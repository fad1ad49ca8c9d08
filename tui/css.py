"""Widget styles live in `.tcss` files next to their module (`heatmap.py` → `heatmap.tcss`).

Why read them into `DEFAULT_CSS` instead of listing them in the app's `CSS_PATH`: a widget keeps its own
styles wherever it is mounted (a test app, another explorer), at the priority Textual gives default CSS,
so an app's `CSS_PATH` (`app.tcss`, `screens.tcss`) still overrides them.
"""

from __future__ import annotations

from pathlib import Path


def widget_css(module_file: str) -> str:
    """The text of the `.tcss` file beside the module `module_file` (pass `__file__`)."""
    return Path(module_file).with_suffix(".tcss").read_text(encoding="utf-8")


def component_classes(prefix: str, *parts: str) -> set[str]:
    """A widget's `COMPONENT_CLASSES`: `prefix--part` for each part (the `.tcss` files style them by that name)."""
    return {f"{prefix}--{part}" for part in parts}
