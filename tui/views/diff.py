"""Diff against the base (`llm-internals TUNED --base BASE`): what training changed in one tensor, and in behaviour.

A parameter: ‖ΔW‖, relative change, cosine, max |ΔW| and the histogram of ΔW (operation `diff_tensor`); on
request (k, or "diff: rank of this tensor") the singular values of ΔW with its stable and effective ranks
(`diff_rank`). A module: the exact aggregate of its tensors from the whole-model summary. A prompt (p, or
"diff: behaviour on a prompt"): KL(tuned ‖ base) per position over the tokens and the cosine of the two
residual streams as a layers × positions heatmap (`diff_behaviour`, with progress; Escape or a new prompt
cancels). Every figure comes from the worker; the view only draws.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.table import Table
from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from tui.components.heatmap import Heatmap
from tui.components.histogram import Histogram
from tui.css import widget_css
from tui.views.base import RemoteView, numbers_and_histogram

BARS = " ▁▂▃▄▅▆▇█"


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


def diff_table(d: dict[str, Any]) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(justify="right")
    rel = d.get("rel_change")
    for key, value in (("‖ΔW‖", d.get("delta_norm")), ("‖W base‖", d.get("base_norm")),
                       ("rel change", rel), ("rel change %", None if rel is None else 100 * rel),
                       ("cosine", d.get("cosine")), ("max |ΔW|", d.get("max_abs_change")), ("tensors", d.get("tensors"))):
        if key == "tensors" and value is None or key in ("cosine", "max |ΔW|") and key not in d and value is None:
            continue
        table.add_row(key, fmt(value))
    return table


def curve(values: list[float], width: int = 64) -> str:
    """A one-line bar curve of non-negative values (largest = full bar)."""
    top = max(values) if values else 0.0
    return "".join(BARS[min(8, int(round(8 * v / top)))] if top > 0 else BARS[0] for v in values[:width])


def rank_text(r: dict[str, Any]) -> Text:
    s = r["singular_values"]
    text = Text()
    text.append("singular values of ΔW", style="bold")
    text.append(f"  ({len(s)} largest; σ1 = {s[0]:.4g})\n" if s else "\n")
    text.append(curve(s) + "\n", style="green")
    text.append(f"stable rank {r['stable_rank']:.3g}   effective rank 90% {r['effective_rank_90']}   "
                f"99% {r['effective_rank_99']}")
    return text


def kl_text(b: dict[str, Any]) -> Text:
    """KL per position, one bar per token (largest KL = full bar), the worst positions named."""
    kl = b["kl"]
    text = Text()
    text.append("KL(tuned ‖ base) per position (nats)\n", style="bold")
    top = max(kl) if kl else 0.0
    for i, (tok, v) in enumerate(zip(b["tokens"], kl)):
        bar = "█" * (int(round(30 * v / top)) if top > 0 else 0)
        text.append(f"{i:>3} {tok!r:<14.14} ", style="dim")
        text.append(f"{bar:<30} ", style="magenta")
        text.append(f"{v:.4g}\n")
    if b.get("rose"):
        text.append("next token rose: ", style="bold")
        text.append(", ".join(f"{c['token']!r} {c['delta_logprob']:+.2f}" for c in b["rose"][:5]) + "\n", style="green")
        text.append("next token fell: ", style="bold")
        text.append(", ".join(f"{c['token']!r} {c['delta_logprob']:+.2f}" for c in b["fell"][:5]), style="red")
    return text


def module_aggregate(summary: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    """Exact relative change of the tensors under `prefix` (Frobenius norms add in squares)."""
    items = [t for t in summary["tensors"] if not prefix or t["name"].startswith(prefix + ".")]
    if not items:
        return None
    base = math.sqrt(math.fsum(t["base_norm"] ** 2 for t in items))
    delta = math.sqrt(math.fsum(t["delta_norm"] ** 2 for t in items))
    return {"tensors": len(items), "base_norm": base, "delta_norm": delta,
            "rel_change": delta / base if base > 0 else (0.0 if delta == 0 else None)}


class DiffView(RemoteView):
    DEFAULT_CSS = widget_css(__file__)
    BINDINGS = [
        Binding("k", "rank", "Rank of ΔW", id="diff.rank"),
        Binding("p", "prompt", "Behaviour", id="diff.prompt"),
        Binding("escape", "cancel", "Cancel", show=False, id="diff.cancel"),
    ]
    can_focus = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node: dict[str, Any] | None = None
        self.summary: dict[str, Any] | None = None
        self.rank: dict[str, Any] | None = None
        self.behaviour: dict[str, Any] | None = None

    def compose(self):
        yield Static("", classes="view-message")
        yield Static("select a tensor or module in the tree; p: behaviour on a prompt", id="diff-title")
        yield numbers_and_histogram("diff", "numbers", "ΔW histogram")
        yield Static("", id="diff-rank")
        yield Input(placeholder="prompt for the behaviour diff (Enter runs, Escape cancels)", id="diff-prompt")
        with Horizontal(id="diff-behaviour"):
            yield Static("", id="diff-kl")
            yield Heatmap(title="residual cosine (layers × positions)", ramp="sequential", id="diff-cosine",
                          row_axis="layer", col_axis="position", vmin=None, vmax=1.0)

    def on_mount(self) -> None:
        self.query_one("#diff-behaviour").display = False
        self.query_one("#diff-rank", Static).display = False

    def focus_target(self):
        return self

    def set_summary(self, summary: dict[str, Any]) -> None:
        """The whole-model diff (`diff_summary`), for module aggregates."""
        self.summary = summary

    def show(self, node: dict[str, Any]) -> None:
        self.node, self.rank = node, None
        self.query_one("#diff-rank", Static).display = False
        name = node["name"]
        title = self.query_one("#diff-title", Static)
        hist = self.query_one("#diff-hist", Histogram)
        if node["kind"] == "parameter":
            title.update(f"[b]{name}[/b]  change against the base  (k: singular values of ΔW)")
            hist.display = True
            self.fetch("tensor", lambda source: source.diff_tensor(name), self._show_tensor,
                       loading="comparing with the base…")
            return
        hist.display = False
        title.update(f"[b]{name or 'model'}[/b]  change of all its tensors against the base")
        agg = module_aggregate(self.summary, name) if self.summary else None
        self.data = agg
        self.query_one("#diff-numbers", Static).update(diff_table(agg) if agg else "no compared tensor here")

    def _show_tensor(self, d: dict[str, Any]) -> None:
        self.data = d
        self.query_one("#diff-numbers", Static).update(diff_table(d))
        h = d["histogram"]
        self.query_one("#diff-hist", Histogram).set_bins(h["edges"], h["counts"], title=f"ΔW of {d['name']}",
                                                         subtitle="exact, every value")

    def action_rank(self) -> None:
        node = self.node
        if node is None or node["kind"] != "parameter" or len(node.get("shape") or []) != 2:
            self.set_message("the rank needs a 2-D tensor: select a weight matrix first", True)
            return
        name = node["name"]
        self.fetch("rank", lambda source: source.diff_rank(name), self._show_rank,
                   loading="singular values of ΔW…")

    def _show_rank(self, r: dict[str, Any]) -> None:
        self.rank = r
        widget = self.query_one("#diff-rank", Static)
        widget.update(rank_text(r))
        widget.display = True

    def action_prompt(self) -> None:
        box = self.query_one("#diff-prompt", Input)
        box.focus()

    @on(Input.Submitted, "#diff-prompt")
    def _run_prompt(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = event.value
        if not prompt.strip():
            return
        self.run_behaviour(prompt)
        self.focus()

    def run_behaviour(self, prompt: str) -> None:
        self.fetch("behaviour", lambda source: source.diff_behaviour(prompt, on_progress=self.progress),
                   self._show_behaviour, loading="running both models…")

    def action_cancel(self) -> None:
        """Escape: drop the running behaviour diff (its result, if it still comes, is not drawn)."""
        self._serials["behaviour"] = self._serials.get("behaviour", 0) + 1
        self.workers.cancel_group(self, f"{self.id}-behaviour")
        self.set_message("cancelled")

    def _show_behaviour(self, b: dict[str, Any]) -> None:
        self.behaviour = b
        self.query_one("#diff-behaviour").display = True
        self.query_one("#diff-kl", Static).update(kl_text(b))
        cos = np.asarray(b["residual_cosine"], dtype=np.float32)
        self.query_one("#diff-cosine", Heatmap).set_matrix(
            cos, row_labels=["emb"] + [str(i) for i in range(cos.shape[0] - 1)],
            col_labels=[str(t) for t in b["tokens"]], title=f"residual cosine, min {float(cos.min()):.4f}")

    def export_data(self) -> Any:
        return {"tensor": self.data, "rank": self.rank, "behaviour": self.behaviour}
