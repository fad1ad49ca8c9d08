"""Moving around the model: opening nodes, switching views, back/forward history and tree search."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Input

from tui.messages import OpenNode
from tui.model_tree import ModelTree


class NavigationMixin:
    """Part of `ExplorerApp`: `history`/`future` of opened nodes, the open view, the search box."""

    history: list[str]
    future: list[str]

    def on_model_tree_node_picked(self, event: ModelTree.NodePicked) -> None:
        self.open_node(event.name, record=True)

    def on_open_node(self, message: OpenNode) -> None:
        message.stop()
        self.open_node(message.name, select_in_tree=message.select_in_tree)

    def open_node(self, name: str, record: bool = True, select_in_tree: bool = False) -> None:
        node = self.node_by_name.get(name)
        if node is None:
            self.notify(f"no node named {name}", severity="warning")
            return
        if record and (not self.history or self.history[-1] != name):
            self.history.append(name)
            self.future.clear()
        if select_in_tree:
            self.query_one(ModelTree).select_name(name)
        if self.current_view == "diff":  # the diff view follows the tree (models compared with --base)
            diff = self.view("diff", mount=False)
            if diff is not None:
                diff.show(node)
                return
        view_id = "summary" if name == "" else "tensor" if node["kind"] == "parameter" else "module"
        if view_id != "summary" and self._once_mounted(view_id, self.open_node, name, False, select_in_tree):
            return
        if view_id == "tensor":
            self.view("tensor").show(node)
        elif view_id == "module":
            children = [n for n in self.shown_nodes if n["parent"] == name]
            self.view("module").show(node, children, self.summary or {})
        self.show_view(view_id)

    def show_view(self, view: str) -> None:
        if view != "summary" and self._once_mounted(view, self.show_view, view):
            return
        if view == "diff":
            self._sync_diff_view()
        self.current_view = view  # the watcher switches the content switcher
        target = self.query_one(f"#{view}")
        activate = getattr(target, "activate", None)
        if activate:
            activate()
        self.call_after_refresh(self._settle_focus, target)

    def _sync_diff_view(self) -> None:
        """Entering the diff view: give it the whole-model diff and the node last opened."""
        diff = self.view("diff", mount=False)
        if diff is None:
            return
        if getattr(self, "diff_summary", None) is not None and diff.summary is None:
            diff.set_summary(self.diff_summary)
        name = self.history[-1] if self.history else ""
        if diff.node is None or diff.node["name"] != name:
            node = self.node_by_name.get(name)
            if node is not None:
                diff.show(node)

    def _settle_focus(self, view: Widget) -> None:
        """Focus the view's own key target (attention heatmap, token strip, lens grid, cross-layer plot), else
        keep it in the sidebar: never leave it in a prompt box, where the view keys 1-5 would be typed."""
        focus_target = getattr(view, "focus_target", None)
        widget = focus_target() if focus_target else None
        if widget is not None:
            widget.focus()
            return
        focused = self.focused
        sidebar = self.query_one("#sidebar")
        lessons = self.query("#lessons") if self.lessons_visible else []
        keep = focused is not None and (sidebar in focused.ancestors_with_self
                                        or any(pane in focused.ancestors_with_self for pane in lessons))
        if not keep and self.sidebar_visible:
            self.query_one(ModelTree).focus()

    def action_view(self, view: str) -> None:
        self.show_view(view)

    def patch_this_prompt(self) -> None:
        """Open the patching view with the shown view's prompt (attention, lens, activations, attribution) as
        its clean prompt, the corrupted prompt box focused to edit."""
        if self._once_mounted("patching", self.patch_this_prompt):
            return
        shown = self.query_one(f"#{self.current_view}")
        prompt = getattr(shown, "prompt", None)
        if isinstance(prompt, str) and prompt:
            self.view("patching").use_prompt(prompt)
        self.show_view("patching")

    def action_back(self) -> None:
        if len(self.history) > 1:
            self.future.append(self.history.pop())
            self.open_node(self.history[-1], record=False, select_in_tree=True)

    def action_forward(self) -> None:
        if self.future:
            name = self.future.pop()
            self.history.append(name)
            self.open_node(name, record=False, select_in_tree=True)

    # --- search -------------------------------------------------------------------------------------
    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.display = True
        search.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "search":
            return
        name = self.query_one(ModelTree).find_next(event.value)
        if name is None:
            self.notify(f"nothing matches {event.value!r}", severity="warning")
        else:
            self.open_node(name)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "search" and event.value:
            self.query_one(ModelTree).find_next(event.value, restart=True)

    def key_escape(self) -> None:
        search = self.query_one("#search", Input)
        if search.display:
            search.display = False
            self.query_one(ModelTree).focus()
