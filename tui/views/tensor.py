"""A tensor: exact statistics, the histogram (bins from the engine), and a heatmap of a 2-D weight; and, in a
second tab (key s), the spectrum of a weight matrix: its ESD on log-log axes with the power-law fit and the
Marchenko–Pastur edge, the numbers read from it, and what its α may and may not mean.

A mixture-of-experts parameter fused at load time from many stored tensors opens like any other: its
statistics and histogram are aggregated exactly over the stored tensors (`expert_stats`), with a table and
small multiples of each expert's norm, std and kurtosis, and, asked for once the statistics are drawn (and
computed in the worker with progress; Escape stops it), each expert's spectrum in brief (`expert_spectra`: α,
KS distance D, stable rank, spikes). The spectrum tab of a stacked (3-D) parameter shows one expert's matrix
at a time and says which; `,` and `.` step through them. A router (gate) weight also shows its router panel.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from rich.table import Table
from textual import on
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from tui.components.esd_plot import EsdPlot
from tui.components.heatmap import Heatmap
from tui.components.heatmap_grid import SmallMultiples
from tui.components.histogram import Histogram
from tui.css import widget_css
from tui.expert_layout import is_fused_experts
from tui.keymap import key_shown
from tui.messages import Progress
from tui.views.base import RemoteView, numbers_and_histogram
from tui.views.router_panel import RouterPanel


def stats_table(s: dict[str, Any]) -> Table:
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.6g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(justify="right")
    rows = [("numel", s["numel"]), ("mean", s["mean"]), ("std", s["std"]), ("min", s["min"]), ("max", s["max"]),
            ("mean |x|", s["abs_mean"]), ("RMS", s["rms"]), ("L2 norm", s["l2_norm"]), ("kurtosis", s["kurtosis"]),
            ("zeros", s["zeros"]), ("NaN", s["nan"]), ("Inf", s["inf"])]
    rows += [(k, v) for k, v in (s.get("quantiles") or {}).items()]
    for key, value in rows:
        table.add_row(key, f(value))
    return table


def spectrum_table(s: dict[str, Any]) -> Table:
    """The numbers read from a spectrum (see docs/spectrum.md for each)."""
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    fit = s.get("powerlaw") or {}
    table = Table(show_header=False, box=None, padding=(0, 1))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(justify="right")
    rows = [("σ_max", s["spectral_norm"]), ("‖W‖_F", s["frobenius_norm"]), ("stable rank", s["stable_rank"]),
            ("effective rank", s["effective_rank"]), ("α", fit.get("alpha")), ("x_min", fit.get("xmin")),
            ("KS D", fit.get("ks_distance")), ("α̂ (weighted)", fit.get("alpha_hat")),
            ("spikes / m", f"{s['num_spikes']} / {s['m']}"), ("MP edge", s["mp_bulk_edge"]),
            ("shape", "×".join(map(str, s["shape"])))]
    for key, value in rows:
        table.add_row(key, f(value))
    return table


def spectrum_target(node: dict[str, Any], expert: int = 0) -> str | None:
    """What to ask the worker's `spectrum` for this tree node (expert `expert` of a stacked one): None when it
    is not a weight matrix or a stack of expert matrices."""
    stored = node.get("stored") or []
    shape = node.get("shape") or []
    if len(shape) == 3 and is_fused_experts(node):
        return f"{node['name']}[{expert}]"  # the expert's stored tensors, stacked as transformers fuses them
    if len(shape) not in (2, 3) or (node.get("converted") and len(stored) != 1):
        return None
    name = node.get("tied_to") or node["name"]
    if len(shape) == 3:
        return f"{stored[0] if stored else name}[{expert}]"  # a stored stack of experts: one slice
    return name


def experts_in(node: dict[str, Any] | None) -> int:
    """How many expert matrices a tree node stacks (0 for a single matrix or a vector)."""
    shape = (node or {}).get("shape") or []
    return int(shape[0]) if len(shape) == 3 else 0


class TensorView(RemoteView):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "toggle_spectrum", "Spectrum", id="tensor.spectrum"),
        Binding("comma", "expert(-1)", "Expert -", id="tensor.expert_prev"),
        Binding("full_stop", "expert(1)", "Expert +", id="tensor.expert_next"),
    ]
    DEFAULT_CSS = widget_css(__file__)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.node: dict[str, Any] | None = None
        self.clip = False
        self.preview: dict[str, Any] | None = None
        self.spectrum: dict[str, Any] | None = None
        self._spectrum_for: str | None = None  # the matrix whose spectrum was asked for
        self.expert = 0  # the expert (slice) of a stacked parameter the spectrum tab shows
        self.expert_spectra: dict[str, Any] | None = None  # each expert's spectrum in brief (fused experts)
        self._expert_stats: list[dict[str, Any]] = []
        self._expert_spectra_running = False

    def compose(self):
        yield Static("", classes="view-message")
        yield Static("", id="tensor-title")
        with TabbedContent(id="tensor-tabs", initial="tab-stats"):
            with TabPane("statistics", id="tab-stats"):
                yield numbers_and_histogram("tensor", "stats", "histogram")
                yield Heatmap(title="weight matrix (mean |x| per block)", ramp="sequential", id="tensor-heatmap",
                              row_axis="row", col_axis="col", show_row_labels=False)
                with Horizontal(id="tensor-experts"):
                    yield Static("", id="tensor-expert-table")
                    yield SmallMultiples(ramp="sequential", vmin=0.0, vmax=1.0, id="tensor-expert-plots")
                yield RouterPanel(id="tensor-router")
            with TabPane("spectrum", id="tab-spectrum"):
                yield Static("", id="spectrum-slice")
                with Horizontal(id="spectrum-top"):
                    yield Static("", id="spectrum-numbers")
                    yield EsdPlot(id="spectrum-esd")
                yield Static("", id="spectrum-reading")

    # --- the spectrum tab ----------------------------------------------------------------------------
    @property
    def tab(self) -> str:
        return "spectrum" if self.query_one(TabbedContent).active == "tab-spectrum" else "statistics"

    def show_tab(self, tab: str) -> None:
        """Show the `statistics` or `spectrum` tab (the spectrum is asked for when first shown)."""
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-spectrum" if tab == "spectrum" else "tab-stats"
        if self.app.focused is None or not self.app.focused.display or tab == "spectrum":
            tabs.query_one(Tabs).focus()  # keys keep reaching the view (s, ←/→ between the tabs)
        if tab == "spectrum":
            self._request_spectrum()
        self.refresh_bindings()

    def action_toggle_spectrum(self) -> None:
        self.show_tab("statistics" if self.tab == "spectrum" else "spectrum")

    def focus_target(self) -> Tabs | None:
        """Where the app puts the focus on showing this view: the tabs while the spectrum of a stacked parameter
        is shown (so that `,` `.` reach the view), else nowhere (the focus stays in the tree)."""
        if self.tab == "spectrum" and experts_in(self.node) > 1:
            return self.query_one(TabbedContent).query_one(Tabs)
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`,` and `.` step through the experts only in the spectrum tab of a stacked parameter."""
        if action == "expert":
            return self.tab == "spectrum" and experts_in(self.node) > 1
        return True

    def action_expert(self, step: int) -> None:
        """The spectrum of the previous/next expert (slice) of a stacked parameter, wrapping around."""
        count = experts_in(self.node)
        if self.tab != "spectrum" or count < 2:
            return
        self.show_expert((self.expert + step) % count)

    def show_expert(self, expert: int) -> None:
        """Show expert `expert`'s matrix in the spectrum tab (of a stacked parameter)."""
        self.expert = expert
        self._request_spectrum()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "tab-spectrum":
            self._request_spectrum()
        self.refresh_bindings()

    def _slice_line(self) -> str:
        count = experts_in(self.node)
        if not count:
            return ""
        return (f"[b]expert {self.expert}[/b] of {count} (experts 0–{count - 1}): the matrix of one slice of this "
                f"stacked parameter  ·  [b]{_literal(key_shown(self, 'tensor.expert_prev'))}[/b] "
                f"[b]{_literal(key_shown(self, 'tensor.expert_next'))}[/b] previous / next expert")

    def _request_spectrum(self) -> None:
        node = self.node
        if node is None:
            return
        target = spectrum_target(node, self.expert)
        if self._spectrum_for == (target or node["name"]):
            return
        self._spectrum_for = target or node["name"]
        slice_line = self.query_one("#spectrum-slice", Static)
        slice_line.update(self._slice_line())
        slice_line.display = bool(experts_in(node))
        self.spectrum = None
        self.query_one("#spectrum-esd", EsdPlot).set_spectrum(None)
        self.query_one("#spectrum-numbers", Static).update("")
        if target is None:
            self.query_one("#spectrum-reading", Static).update(
                "no spectrum: this is not one stored weight matrix (a vector, or built at load time from "
                "several stored tensors)")
            return
        self.query_one("#spectrum-reading", Static).update("")
        self.fetch("spectrum", lambda source: source.spectrum(target, on_progress=self._spectrum_progress),
                   self._show_spectrum,
                   loading="computing the singular values (cached after the first time)…")

    def _spectrum_progress(self, fraction: float, message: str) -> None:
        self.post_message(Progress(fraction, message, status=False))  # a computation, not the model loading

    def progress_text(self, fraction: float, message: str) -> str:
        bar = "█" * int(20 * fraction) + "░" * (20 - int(20 * fraction))
        return f"computing the singular values… {bar} {100 * fraction:.0f}%  {message}"

    def _show_spectrum(self, spectrum: dict[str, Any]) -> None:
        self.spectrum = spectrum
        self.query_one("#spectrum-numbers", Static).update(spectrum_table(spectrum))
        self.query_one("#spectrum-esd", EsdPlot).set_spectrum(spectrum)
        self.query_one("#spectrum-reading", Static).update(f"[b]reading α:[/b] {spectrum['alpha_reading']}")

    def show(self, node: dict[str, Any]) -> None:
        self.node = node
        self.preview = None
        name = node["name"]
        shape = "×".join(map(str, node["shape"]))
        stored = node.get("stored") or []
        where = ""
        if node.get("tied_to"):
            where = f"  (tied: the same tensor as {node['tied_to']})"
        elif node.get("converted"):
            where = f"  (built at load time from {len(stored)} stored tensors, e.g. {stored[0] if stored else '?'})"
        self.query_one("#tensor-title", Static).update(f"[b]{name}[/b]  [{shape}]  {node.get('dtype') or ''}{where}")
        heatmap = self.query_one("#tensor-heatmap", Heatmap)
        readable = not node.get("converted") or len(stored) == 1  # fused at load time: no single stored matrix
        heatmap.display = len(node["shape"]) >= 2 and readable
        self.query_one("#tensor-experts").display = is_fused_experts(node)
        router = self.query_one("#tensor-router", RouterPanel)
        router.display = node.get("component") == "router" and len(node["shape"]) == 2 and readable
        self._spectrum_for = None
        self.expert = 0
        self.expert_spectra, self._expert_stats = None, []
        self._stop_expert_spectra()
        self.refresh_bindings()
        self._request_stats()
        if self.tab == "spectrum":
            self._request_spectrum()
        if router.display:
            self.fetch("router", lambda source: source.router_summary(name), router.show,
                       loading="reading the router weight…")
        if heatmap.display:
            self.fetch("preview", lambda source: source.matrix_preview(name, rows=48, cols=160), self._show_preview,
                       loading="loading statistics…")

    def _request_stats(self) -> None:
        node = self.node
        if node is None:
            return
        if is_fused_experts(node):
            fused = node["name"]
            self.fetch("stats", lambda source: source.expert_stats(fused, bins=64, on_progress=self.progress),
                       self._show_stats, loading=f"exact statistics over {len(node['stored'])} stored tensors…")
            return
        if node.get("converted") and len(node.get("stored") or []) != 1:
            self.set_message(
                "this parameter is built at load time from several stored tensors: "
                "open them from `llm-internals stats` (their statistics are per stored tensor)"
            )
            self.query_one("#tensor-stats", Static).update("")
            return
        name = node["tied_to"] or node["name"]
        clip = self.clip
        self.fetch("stats", lambda source: source.tensor_stats(name, bins=64, clip=clip), self._show_stats,
                   loading="computing exact statistics…")

    def _show_stats(self, stats: dict[str, Any]) -> None:
        self.data = stats
        self.query_one("#tensor-stats", Static).update(stats_table(stats))
        hist = stats["histogram"]
        rng = stats.get("histogram_range")
        sub = f"clipped to [p1, p99] = [{rng[0]:.4g}, {rng[1]:.4g}]" if rng else f"{stats['numel']:,} values, exact"
        if stats.get("experts") is not None:
            sub = f"{stats['numel']:,} values of {len(stats['stored'])} stored tensors, exact"
            self._expert_stats = stats["experts"]
            self._show_experts()
            if self.expert_spectra is None:
                self._request_expert_spectra()
        self.query_one("#tensor-hist", Histogram).set_bins(hist["edges"], hist["counts"], title=stats["name"], subtitle=sub,
                                                         clip_outliers=bool(rng))

    def _show_experts(self) -> None:
        """The per-expert table, and one small multiple per statistic (each scaled to its own range); each
        expert's spectrum (α, D, stable rank, spikes) joins them once computed."""
        experts = self._expert_stats
        spectra = (self.expert_spectra or {}).get("experts")
        self.query_one("#tensor-expert-table", Static).update(expert_table(experts, spectra))
        rows = [(key, label, [e[key] for e in experts]) for key, label in EXPERT_METRICS]
        if spectra and len(spectra) == len(experts):
            rows.append(("alpha", "α", [s["alpha"] for s in spectra]))
        tiles, titles = [], []
        for _, label, column in rows:
            values = np.array([np.nan if v is None else v for v in column], dtype=np.float64)
            if np.isnan(values).all():
                continue
            low, high = np.nanmin(values), np.nanmax(values)
            tiles.append(((values - low) / (high - low) if high > low else np.full_like(values, 0.5))[None, :])
            titles.append(f"{label} {low:.3g}–{high:.3g}")
        self.query_one("#tensor-expert-plots", SmallMultiples).set_matrices(tiles, titles=titles)

    # --- each expert's spectrum (fused expert parameters), after the statistics ------------------------
    def _request_expert_spectra(self) -> None:
        node = self.node
        if node is None or not is_fused_experts(node) or experts_in(node) == 0:
            return
        name = node["name"]
        self._expert_spectra_running = True
        self.fetch("expert_spectra",
                   lambda source: source.expert_spectra(name, on_progress=self._expert_spectra_progress),
                   self._show_expert_spectra, loading="each expert's spectrum (cached after the first time)…")

    def _expert_spectra_progress(self, fraction: float, message: str) -> None:
        self.post_message(Progress(fraction, f"each expert's spectrum (Esc stops): {message}", status=False))

    def _show_expert_spectra(self, spectra: dict[str, Any]) -> None:
        self._expert_spectra_running = False
        self.expert_spectra = spectra
        self._show_experts()

    def _stop_expert_spectra(self) -> bool:
        """Stop the experts' spectra being computed (the worker cancels the request; what is done stays cached)."""
        if not self._expert_spectra_running:
            return False
        self._expert_spectra_running = False
        self.workers.cancel_group(self, f"{self.id}-expert_spectra")
        self._serials["expert_spectra"] = self._serials.get("expert_spectra", 0) + 1  # drop a late answer
        source = self.data_source
        self.run_worker(lambda: source.cancel("expert_spectra"), thread=True, group=f"{self.id}-cancel",
                        exit_on_error=False)
        return True

    def key_escape(self) -> None:
        if self._stop_expert_spectra():
            self.set_message("each expert's spectrum: stopped (what was computed is cached; open the tensor again "
                             "to finish)")

    def _show_preview(self, preview: dict[str, Any]) -> None:
        self.preview = preview
        shape = preview["shape"]
        self.query_one("#tensor-heatmap", Heatmap).set_matrix(
            preview["values"],
            title=f"{'×'.join(map(str, shape))} as {preview['values'].shape[0]}×{preview['values'].shape[1]} blocks, mean |x|",
        )

    @on(Histogram.ClipToggled)
    def _clip(self, event: Histogram.ClipToggled) -> None:
        if self.node is not None and is_fused_experts(self.node):
            event.histogram.clip_outliers = False
            self.set_message("clipping is per stored tensor: open one expert's tensor (e in the tree: stored layout)")
            return
        self.clip = event.clip
        self._request_stats()

    def export_data(self) -> Any:
        router = self.query_one("#tensor-router", RouterPanel)
        return {"stats": self.data, "matrix_preview": self.preview,
                "router": router.summary if router.display else None, "spectrum": self.spectrum, "tab": self.tab,
                "expert": self.expert if experts_in(self.node) else None, "expert_spectra": self.expert_spectra}


#: The per-expert statistics drawn as small multiples: (key of `ExpertStats`, label).
EXPERT_METRICS = (("l2_norm", "norm"), ("std", "std"), ("kurtosis", "kurtosis"))


#: Each expert's spectrum in the per-expert table: (key of `SpectrumBrief`, column).
EXPERT_SPECTRUM_COLUMNS = (("alpha", "α"), ("ks_distance", "D"), ("stable_rank", "st.rank"), ("num_spikes", "spikes"))


def expert_table(experts: list[dict[str, Any]], spectra: list[dict[str, Any]] | None = None) -> Table:
    """Each expert's statistics and, once computed (`spectra[e]`: its `SpectrumBrief`), its spectrum in brief;
    "…" while it is being computed. A flagged spectrum (α outside [2, 6] or D > 0.1) is marked with !."""
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    table = Table(box=None, padding=(0, 1), title="per expert", title_justify="left")
    for column in ("expert", "norm", "std", "kurtosis", "min", "max", *(c for _, c in EXPERT_SPECTRUM_COLUMNS)):
        table.add_column(column, justify="right", no_wrap=True)
    for i, e in enumerate(experts):
        brief = spectra[i] if spectra is not None and i < len(spectra) else None
        spectral = ["…"] * len(EXPERT_SPECTRUM_COLUMNS) if brief is None else \
            [f(brief[k]) for k, _ in EXPERT_SPECTRUM_COLUMNS]
        if brief is not None and brief["flagged"]:
            spectral[0] = f"[yellow]{spectral[0]}![/]"
        table.add_row(str(e["expert"]), *(f(e[k]) for k in ("l2_norm", "std", "kurtosis", "min", "max")), *spectral)
    if spectra and any(b["flagged"] for b in spectra):
        table.caption, table.caption_justify = "α! : α outside [2, 6] or a poor fit (D > 0.1); s: the spectrum", "left"
    return table


def _literal(text: str) -> str:
    """`text` shown as it is inside Textual markup (a key such as `[` would open a tag)."""
    return text.replace("[", "\\[")
