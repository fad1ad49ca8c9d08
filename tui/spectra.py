"""The spectra in the explorer: badges on the tree (α outside [2, 6] or a poor fit) with the help line of the
highlighted one, the spectrum tab of a tensor ("view: spectrum", `llm:spectrum/NAME`), and the whole model's
spectra in the cross-layer view ("spectrum: whole model", `llm:spectrum/`)."""

from __future__ import annotations

from textual.widgets import Static, Tree

from tui.app_base import ExplorerBase
from tui.messages import SpectraComputed


class SpectraMixin(ExplorerBase):
    """Part of `ExplorerApp`."""

    def on_spectra_computed(self, message: SpectraComputed) -> None:
        message.stop()
        self.model_tree.set_spectra(message.spectra.get("matrices") or [])
        flagged = len(self.model_tree.badges)
        self.notify(f"spectra of every matrix: {flagged} parameter(s) flagged in the tree (α outside [2, 6] or a poor fit)")
        self._show_reading(self.model_tree.cursor_node.data if self.model_tree.cursor_node else None)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.control is self.model_tree:
            self._show_reading(event.node.data)

    def _show_reading(self, name: str | None) -> None:
        for help_line in self.query("#tree-help").results(Static):
            reading = self.model_tree.reading_of(name)
            help_line.update(reading or "")
            help_line.display = bool(reading)

    def open_spectrum(self, name: str | None = None) -> None:
        """The spectrum tab of parameter `name` (default: the open tensor, else the tree's cursor)."""
        if self._once_mounted("tensor", self.open_spectrum, name):
            return
        from tui.views.tensor import TensorView

        tensor = self.mounted("tensor", TensorView)
        if name is None:
            cursor = self.model_tree.cursor_node
            name = tensor.node["name"] if tensor.node is not None and self.current_view == "tensor" else (
                cursor.data if cursor is not None else None)
        node = self.node_by_name.get(name or "")
        if node is None or node["kind"] != "parameter":
            self.notify("pick a weight matrix in the tree first (e.g. a q_proj), then ask for its spectrum",
                        severity="warning")
            return
        self.open_node(node["name"], select_in_tree=True)
        tensor.show_tab("spectrum")

    def action_spectrum(self) -> None:
        """Key s: the spectrum tab of the open tensor or the tree's cursor; again: back to its statistics."""
        tensor = self.view("tensor", mount=False) if self.current_view == "tensor" else None
        if tensor is not None:
            from tui.views.tensor import TensorView

            if isinstance(tensor, TensorView) and tensor.tab == "spectrum":
                tensor.show_tab("statistics")
                return
        self.open_spectrum()

    def show_model_spectra(self) -> None:
        """α of every weight across layers (the whole-model spectra: a progress line, then tree badges)."""
        if self._once_mounted("cross-layer", self.show_model_spectra):
            return
        self.show_view("cross-layer")
        from tui.views.cross_layer import CrossLayerView

        self.mounted("cross-layer", CrossLayerView).show_metric("alpha")


__all__ = ["SpectraMixin"]
