"""Activation patching: a clean and a corrupted prompt of the same length (and an optional answer token);
each cell of a grid is the share of the clean answer's logit difference restored when that one activation of
the corrupted run is replaced by the clean run's (0: the corrupted run, 1: the clean run).

`g` switches the grid (residual stream, attention output, MLP output: layers × positions; heads: layers ×
heads). The run reports progress between batches of patched runs; Escape (or a new request) cancels it in
the worker too (`DataSource.cancel`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Input, ProgressBar, Static

from tui.components.heatmap import Heatmap
from tui.css import widget_css
from tui.views.base import RemoteView

DEFAULT_CLEAN = "def f(x): return x"
DEFAULT_CORRUPT = "def g(x): return x"
GRIDS = ("residual", "attention", "mlp", "heads")
GROUP = "patch"  # the fetch group here and the worker's cancellation group of `patch`


class PatchingView(RemoteView):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "grid(1)", "Grid", id="patching.grid"),
        Binding("escape", "cancel", "Cancel", id="patching.cancel"),
    ]
    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clean, self.corrupt, self.target = DEFAULT_CLEAN, DEFAULT_CORRUPT, ""
        self.grid = "residual"
        self.running = False
        self.loaded = False
        self.editing = False  # given a prompt to corrupt (`use_prompt`): wait for Enter instead of running

    def compose(self):
        with Horizontal(id="patching-prompts"):
            yield Input(value=self.clean, placeholder="clean prompt", id="patching-clean")
            yield Input(value=self.corrupt, placeholder="corrupted prompt (same number of tokens)", id="patching-corrupt")
            yield Input(value=self.target, placeholder="target token (optional)", id="patching-target")
        yield Static("", classes="view-message")
        bar = ProgressBar(total=1.0, show_eta=False, id="patching-progress")
        bar.display = False  # shown while a run goes
        yield bar
        yield Static("", id="patching-info")
        yield Static("", id="patching-cell")
        yield Heatmap(title="patching", ramp="diverging", vmin=-1.0, vmax=1.0, row_axis="layer", col_axis="position", max_scale=8,
                      id="patching-grid")
        yield Heatmap(
            title="patching heads",
            ramp="diverging",
            vmin=-1.0,
            vmax=1.0,
            row_axis="layer",
            col_axis="head",
            max_scale=8,
            id="patching-heads",
        )

    def heatmap(self) -> Heatmap:
        """The heatmap of the current grid (heads have their own: layers × heads)."""
        return self.query_one("#patching-heads" if self.grid == "heads" else "#patching-grid", Heatmap)

    def focus_target(self) -> Widget:
        return self.query_one("#patching-corrupt", Input) if self.editing else self.heatmap()

    def activate(self) -> None:
        if not self.loaded and not self.running and not self.editing:
            self.run_patching()

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        self.clean = self.query_one("#patching-clean", Input).value
        self.corrupt = self.query_one("#patching-corrupt", Input).value
        self.target = self.query_one("#patching-target", Input).value
        self.run_patching()

    def use_prompt(self, clean: str) -> None:
        """Take `clean` as the clean prompt (and, until edited, as the corrupted one): the corrupted prompt
        box gets the focus, to change a token or two."""
        self.clean = clean
        self.query_one("#patching-clean", Input).value = clean
        self.query_one("#patching-corrupt", Input).value = clean
        self.editing = True
        self.set_message("edit the corrupted prompt (same number of tokens), then Enter")

    def run_patching(self) -> None:
        """Start (or restart: the newer request cancels the older) the patching of the current prompts."""
        clean, corrupt, target = self.clean, self.corrupt, self.target or None
        self.running, self.editing = True, False
        bar = self.query_one("#patching-progress", ProgressBar)
        bar.update(progress=0.0)
        bar.display = True
        self.fetch(GROUP, lambda source: source.patch(clean, corrupt, target=target, on_progress=self.progress),
                   self._show, loading="patching: clean and corrupted runs…")

    def progress_text(self, fraction: float, message: str) -> str:
        self.query_one("#patching-progress", ProgressBar).update(progress=fraction)
        return f"patching: {message} ({100 * fraction:.0f}%) — Escape cancels"

    def action_cancel(self) -> None:
        """Drop the running request here and stop it in the worker."""
        if not self.running:
            return
        self.running = False
        self._serials[GROUP] = self._serials.get(GROUP, 0) + 1  # its result, if it comes, is dropped
        self.workers.cancel_group(self, f"{self.id}-{GROUP}")
        source = self.data_source
        self.run_worker(lambda: source.cancel(GROUP), thread=True, group=f"{self.id}-cancel", exit_on_error=False)
        self.query_one("#patching-progress", ProgressBar).display = False
        self.set_message("patching cancelled — Enter in a prompt runs it again")

    @on(RemoteView.FetchFailed)
    def _failed(self, message: RemoteView.FetchFailed) -> None:
        if message.group == GROUP and self._serials.get(GROUP) == message.serial:
            self.running = False
            self.query_one("#patching-progress", ProgressBar).display = False

    def _show(self, data: dict[str, Any]) -> None:
        self.data = data
        self.running = False
        self.loaded = True
        self.query_one("#patching-progress", ProgressBar).display = False
        self.draw_selected(data)
        if self.display:  # a result that arrives while another view is shown must not take the focus
            self.heatmap().focus()

    def action_grid(self, step: int) -> None:
        available = [g for g in GRIDS if self.data and self.data.get(g) is not None] or list(GRIDS)
        index = available.index(self.grid) if self.grid in available else -1
        self.grid = available[(index + step) % len(available)]
        self.redraw()

    def column_labels(self) -> list[str]:
        if self.grid == "heads":
            return [f"h{h}" for h in range(np.asarray(self.data["heads"]).shape[1])]
        return [a if a == b else f"{a}→{b}" for a, b in zip(self.data["clean_tokens"], self.data["corrupt_tokens"])]

    def draw_selected(self, data: dict[str, Any]) -> None:
        """The selected grid (`self.grid`), when the answer has it."""
        if data.get(self.grid) is None:
            return
        grid = np.asarray(data[self.grid], dtype=np.float32)
        what = {"residual": "residual stream", "attention": "attention output", "mlp": "MLP output",
                "heads": "head outputs"}[self.grid]
        heatmap = self.heatmap()
        focused = self.screen.focused in (self.query_one("#patching-grid"), self.query_one("#patching-heads"))
        self.query_one("#patching-grid").display = self.grid != "heads"
        self.query_one("#patching-heads").display = self.grid == "heads"
        heatmap.set_matrix(grid, row_labels=[f"L{i}" for i in range(grid.shape[0])], col_labels=self.column_labels(),
                           vmin=-1.0, vmax=1.0, title=f"patched {what} (g: next grid)")
        scale = "" if data["normalized"] else "  (clean = corrupted: raw changes)"
        self.query_one("#patching-info", Static).update(
            f"{what}: target {data['target']!r} vs {data['corrupt_top']!r}  ·  logit diff clean "
            f"{data['clean_logit_diff']:.3f}, corrupted {data['corrupt_logit_diff']:.3f}{scale}  ·  g grid  Esc cancel")
        if focused:
            heatmap.focus()

    @on(Heatmap.CursorMoved, "#patching-grid, #patching-heads")
    def _cursor(self, event: Heatmap.CursorMoved) -> None:
        if not self.data or event.masked:
            return
        labels = self.column_labels()
        where = f"head {event.col}" if self.grid == "heads" else f"position {event.col} {labels[event.col]!r}"
        self.query_one("#patching-cell", Static).update(
            f"{self.grid}, layer {event.row}, {where}: restores {event.value:.3f} of the clean answer")

    def export_data(self) -> Any:
        return {"clean": self.clean, "corrupt": self.corrupt, "target": self.target or None, "grid": self.grid,
                "result": self.data}
