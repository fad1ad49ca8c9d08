"""The sidebar: the real module tree of the model, with shapes and parameter counts on each node."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from internals.cli.render import human_count


def node_label(node: dict[str, Any]) -> Text:
    short = node["name"].rsplit(".", 1)[-1] if node["name"] else ""
    label = Text(short)
    if node["kind"] == "module":
        if node.get("class") and node["class"] != "?":
            label.append(f" {node['class']}", style="dim")
        label.append(f" {human_count(node['numel'], 1)}", style="cyan")
    else:
        shape = "×".join(str(d) for d in node["shape"] or [])
        label.append(f" [{shape}]", style="green")
        label.append(f" {human_count(node['numel'], 1)}", style="cyan")
        if node.get("tied_to"):
            label.append(" tied", style="magenta")
        if node.get("converted"):
            label.append(" converted", style="yellow")
    return label


def badge(rel: float | None) -> Text:
    """A small coloured relative change: grey when unchanged, green / yellow / red as it grows."""
    if rel is None:
        return Text(" Δ?", style="red")
    if rel == 0:
        return Text(" =", style="dim")
    style = "green" if rel < 0.01 else "yellow" if rel < 0.1 else "bold red"
    pct = 100 * rel
    return Text(f" Δ{pct:.2g}%" if pct < 10 else f" Δ{pct:.0f}%", style=style)


class ModelTree(Tree[str]):
    """Tree of modules and parameters; Enter or click opens a node (posts `NodePicked`)."""

    class NodePicked(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("model", data="", **kwargs)
        self._by_name: dict[str, TreeNode[str]] = {}
        self._order: list[str] = []
        self._search_pos = -1
        self._node_info: dict[str, dict[str, Any]] = {}
        self._badges: dict[str, float | None] = {}

    def set_badges(self, badges: dict[str, float | None]) -> None:
        """With a base open: each node's relative change (tree name -> value) after its label."""
        self._badges = badges
        for name, tree_node in self._by_name.items():
            info = self._node_info.get(name)
            if info is not None:
                tree_node.set_label(self._label(info))

    def _label(self, node: dict[str, Any]) -> Text:
        label = node_label(node)
        if node["name"] in self._badges:
            label.append_text(badge(self._badges[node["name"]]))
        return label

    def populate(self, nodes: list[dict[str, Any]], summary: dict[str, Any], note: str = "") -> None:
        """Draw `nodes`; when replacing a tree (provisional → exact), keep what was expanded and the cursor.
        `note` is said on the root's label (e.g. which layout the experts are drawn in)."""
        expanded = [name for name, node in self._by_name.items() if node.is_expanded and name]
        cursor = self.cursor_node.data if self.cursor_node is not None and self._by_name else None
        self.clear()
        self._by_name = {"": self.root}
        self._order = []
        root_info = nodes[0]
        label = Text(summary.get("architecture") or "model", style="bold")
        label.append(f" {human_count(root_info['numel'], 1)} params", style="cyan")
        if note:
            label.append(f"  {note}", style="yellow")
        self.root.set_label(label)
        self.root.data = ""
        for node in nodes[1:]:
            parent = self._by_name.get(node["parent"] or "", self.root)
            is_leaf = node["kind"] == "parameter"
            self._node_info[node["name"]] = node
            label = self._label(node)
            child = parent.add_leaf(label, data=node["name"]) if is_leaf else parent.add(label, data=node["name"])
            self._by_name[node["name"]] = child
            self._order.append(node["name"])
        self.root.expand()
        for name in ("model", "transformer", "model.layers", "transformer.h", *expanded):
            if name in self._by_name:
                self._by_name[name].expand()
        if cursor and cursor in self._by_name:
            self.call_after_refresh(self.move_cursor, self._by_name[cursor])

    def on_tree_node_selected(self, event: Tree.NodeSelected[str]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(self.NodePicked(event.node.data))

    def select_name(self, name: str) -> None:
        node = self._by_name.get(name)
        if node is None:
            return
        parent = node.parent
        while parent is not None:
            parent.expand()
            parent = parent.parent
        self.call_after_refresh(self._move_to, node)

    def _move_to(self, node: TreeNode[str]) -> None:
        self.move_cursor(node)
        self.scroll_to_node(node)

    def find_next(self, text: str, restart: bool = False) -> str | None:
        """The next node whose name contains `text` (case-insensitive); moves the cursor to it."""
        needle = text.lower().strip()
        if not needle or not self._order:
            return None
        start = -1 if restart else self._search_pos
        n = len(self._order)
        for step in range(1, n + 1):
            i = (start + step) % n
            if needle in self._order[i].lower():
                self._search_pos = i
                self.select_name(self._order[i])
                return self._order[i]
        return None
