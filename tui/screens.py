"""Modal screens: key help, the worker's log, export path, overwrite confirmation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

HELP_INTRO = """Walk the model in the tree (arrows, Enter opens a node). Views: 1 model card, 2 cross-layer
statistics, 3 attention, 4 tokens and embedding neighbours, 5 logit lens. F2 opens the lessons.
Ctrl+P opens the command palette ("go: layer 3 q_proj", "view: attention", "lesson: LoRA")."""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def __init__(self, bindings: Sequence[Binding]) -> None:
        """`bindings`: the app's own (listed with their ids, which the keymap file remaps)."""
        super().__init__()
        self.bindings = list(bindings)

    def compose(self) -> ComposeResult:
        table = Table(show_header=True, expand=True)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("action")
        table.add_column("id (remappable)", style="dim")
        for binding in self.bindings:
            table.add_row(binding.key.replace("_", " "), binding.description, binding.id or "")
        extra = [
            ("arrows / h j k l", "move the cursor in heatmaps, plots and grids", ""),
            (", .", "previous / next layer (attention, lens, experts); expert (spectrum tab of stacked experts)", ""),
            ("- =", "previous / next head (attention)", ""),
            ("l / c", "histogram: log counts / clip outliers to [p1, p99]", ""),
            ("m", "cross-layer view: next statistic (std, RMS, kurtosis...)", ""),
            ("Enter", "open the selected node, point or head", ""),
            ("Esc", "close search / dialogs", ""),
        ]
        for row in extra:
            table.add_row(*row)
        with VerticalScroll():
            yield Static("[b]llm-internals keys[/b]\n")
            yield Static(HELP_INTRO + "\n")
            yield Static(table)


class LogScreen(ModalScreen[None]):
    """The end of the model worker's log file (its stdout and stderr), newest last."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close", id="log.close")]
    MAX_LINES = 400

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        from rich.text import Text

        try:
            lines = Path(self.path).read_text(errors="replace").splitlines()
        except OSError as exc:
            lines = [f"cannot read the log: {exc}"]
        shown = lines[-self.MAX_LINES:] or ["(empty: the worker has logged nothing yet)"]
        with VerticalScroll():
            yield Static(Text(f"worker log: {self.path} (last {len(shown)} of {len(lines)} lines; Esc closes)", style="bold"))
            yield Static(Text("\n".join(shown)), id="log-text")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).scroll_end(animate=False)


class ExportScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="export.cancel")]

    def __init__(self, default: str) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Export this view: path without extension (writes .svg and .json)")
            yield Input(value=self.default, id="export-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question + "  (y/n)")
            with Horizontal():
                yield Button("Overwrite", id="yes", variant="warning")
                yield Button("Cancel", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
