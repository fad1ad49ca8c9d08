"""Export: the open view as an SVG screenshot and its data as JSON, never overwriting without asking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tui.app_base import ExplorerBase


class ExportMixin(ExplorerBase):
    """Part of `ExplorerApp`: ctrl+s."""

    def action_export(self) -> None:
        from tui.screens import ExportScreen

        self.push_screen(ExportScreen(default=f"llm-internals-{self.current_view}"), self._export_to)

    def _export_to(self, stem: str | None) -> None:
        if not stem:
            return
        from tui.screens import ConfirmScreen

        base = Path(stem).expanduser()
        targets = [base.with_suffix(".svg"), base.with_suffix(".json")]
        existing = [str(t) for t in targets if t.exists()]
        if existing:
            self.push_screen(ConfirmScreen(f"{', '.join(existing)} exists. Overwrite?"),
                             lambda ok: self._write_export(base) if ok else self.notify("export cancelled"))
        else:
            self._write_export(base)

    def _write_export(self, base: Path) -> None:
        view = self.query_one(f"#{self.current_view}")
        data = getattr(view, "export_data", lambda: None)()
        try:
            base.parent.mkdir(parents=True, exist_ok=True)
            self.save_screenshot(filename=base.with_suffix(".svg").name, path=str(base.parent))
            with open(base.with_suffix(".json"), "w") as fh:
                json.dump({"view": self.current_view, "data": data}, fh, default=json_default)
        except OSError as exc:
            self.notify(f"export failed: {exc}", severity="error")
            return
        self.notify(f"saved {base.with_suffix('.svg')} and {base.with_suffix('.json')}")


def json_default(value: Any) -> Any:
    """numpy arrays and scalars as lists and numbers."""
    tolist = getattr(value, "tolist", None)
    if tolist:
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
