"""The model's card and tree: read from the worker in a thread worker, drawn by the handlers here.

A cached or provisional tree (`initial_info`) is drawn first; the worker's exact answer replaces it, keeping
the tree as the user left it, and redraws the open node.
"""

from __future__ import annotations

from typing import Any

from textual import work

from tui.messages import ModelInfoFailed, ModelInfoLoaded


class ModelInfoMixin:
    """Part of `ExplorerApp`: `summary`, `nodes` and `node_by_name`, and what they are drawn in."""

    summary: dict[str, Any] | None
    nodes: list[dict[str, Any]]
    node_by_name: dict[str, dict[str, Any]]

    @work(thread=True, exclusive=True, group="model-info", exit_on_error=False)
    def load_model_info(self) -> None:
        try:
            summary = self.client.summary()
            nodes = self.client.tree()
        except Exception as exc:  # noqa: BLE001 - shown, not raised
            self.post_message(ModelInfoFailed(exc))
            return
        self.post_message(ModelInfoLoaded(summary, nodes, exact=True))

    def on_model_info_failed(self, message: ModelInfoFailed) -> None:
        if self._mounting - self._mounted_views():
            self.set_timer(0.05, lambda: self.post_message(ModelInfoFailed(message.error)))
            return  # exiting while a view mounts would fail its mount
        from internals.errors import ModelRefused

        if self.info_provisional and isinstance(message.error, ModelRefused):
            # The worker refused the model (unknown architecture, damaged file...): the same one error line
            # and exit status 2 as when it is refused before the screen opens.
            self.startup_error = str(message.error)
            self.exit(return_code=2)
            return
        self.worker_failed(message.error)

    def on_model_info_loaded(self, message: ModelInfoLoaded) -> None:
        self.model_info_loaded(message.summary, message.nodes, message.exact)

    def model_info_loaded(self, summary: dict[str, Any], nodes: list[dict[str, Any]], exact: bool = False) -> None:
        if exact and self.info_provisional:
            self.info_provisional = False
            self.status_bar.set_state("starting")
            self.poll_status()
        if summary == self.summary and nodes == self.nodes:
            return  # the worker confirmed what the cache showed: keep the tree as the user left it
        replacing = bool(self.nodes)
        self.summary = summary
        self.nodes = nodes
        self.draw_tree()  # node_by_name and the sidebar, in the experts layout chosen (tui.expert_layout)
        self.summary_view.show(summary)
        self.status_bar.set_model(f"{summary.get('architecture') or 'model'} · {self.model_label}")
        for view_id in self.MODEL_VIEWS:
            view = self.view(view_id, mount=False)
            if view is not None:  # else it is given the model before it mounts
                view.set_model(summary, nodes)
        if not replacing:
            self.model_tree.focus()
        elif self.current_view in ("tensor", "module") and self.history:
            # redraw the open node from the exact tree (module classes, tied and converted parameters)
            name = self.history[-1]
            if name in self.node_by_name:
                self.open_node(name, record=False)
            else:
                self.show_view("summary")
