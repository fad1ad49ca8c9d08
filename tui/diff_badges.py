"""With `--base`: the whole-model diff fetched once after the tree is up, drawn as a badge on every tree node
(a parameter's relative change; a module's exact aggregate of its tensors) and handed to the diff view."""

from __future__ import annotations

import math
from typing import Any

from tui.messages import Progress


def diff_badges(summary: dict[str, Any]) -> dict[str, float | None]:
    """Relative change by tree name: each tensor's own, each module's sqrt(Σ‖ΔW‖²)/sqrt(Σ‖W‖²) of its tensors."""
    delta2: dict[str, list[float]] = {}
    base2: dict[str, list[float]] = {}
    badges: dict[str, float | None] = {}
    for t in summary["tensors"]:
        badges[t["name"]] = t["rel_change"]
        parts = t["name"].split(".")
        for i in range(len(parts)):  # "" (the model) and every enclosing module
            prefix = ".".join(parts[:i])
            delta2.setdefault(prefix, []).append(t["delta_norm"] ** 2)
            base2.setdefault(prefix, []).append(t["base_norm"] ** 2)
    for prefix in delta2:
        d, b = math.sqrt(math.fsum(delta2[prefix])), math.sqrt(math.fsum(base2[prefix]))
        badges[prefix] = d / b if b > 0 else (0.0 if d == 0 else None)
    return badges


class DiffBadgesMixin:
    """Part of `ExplorerApp`: fetch `diff_summary` (progress in the status bar) when a base is open."""

    compare_base: str | None = None
    diff_summary: dict[str, Any] | None = None

    def load_diff_summary(self) -> None:
        if self.compare_base:
            self.run_worker(self._fetch_diff_summary, thread=True, exit_on_error=False, group="diff-summary")

    def _fetch_diff_summary(self) -> None:
        try:
            result = self.client.diff_summary(on_progress=lambda f, m: self.post_message(Progress(f, f"diff {m}")))
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.call_from_thread(self.notify, f"diff against the base failed: {exc}", severity="error")
            return
        self.call_from_thread(self.diff_summary_loaded, result)

    def diff_summary_loaded(self, summary: dict[str, Any]) -> None:
        self.diff_summary = summary
        self.model_tree.set_badges(diff_badges(summary))
        view = self.view("diff", mount=False)
        if view is not None:
            view.set_summary(summary)

    def diff_action(self, action: str) -> None:
        """The palette's "diff: ..." entries: show the diff view, then run its action (rank, prompt)."""
        self.show_view("diff")
        view = self.view("diff", mount=False)
        if view is None:
            self.set_timer(0.05, lambda: self.diff_action(action))
            return
        getattr(view, f"action_{action}")()
