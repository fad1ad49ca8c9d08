"""What a view may ask the model for: the part of `internals.worker.client.ExplorerClient` the explorer uses.

Why a protocol: a view receives its data source at construction (or through its `data_source` attribute)
instead of reaching up to `self.app.client`, so that it can be mounted alone in a test with a small fake
that returns recorded dicts, and reused in another app. `ExplorerClient` (socket or in-process) satisfies it
structurally; so does any class with these methods. The methods block (they run in thread workers) and
return the plain dicts of the wire protocol (`docs/protocol.md`); `on_progress(fraction, message)` is called
from the same thread while a request runs. Torch-free, like everything under `tui/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

#: `on_progress(fraction in [0, 1], message)`: called from the request's thread while it runs.
ProgressCallback = Callable[[float, str], None]


@runtime_checkable
class DataSource(Protocol):
    """The requests the explorer's views and the app make (names and results as `ExplorerClient`'s)."""

    def status(self) -> dict[str, Any]:
        """Worker state: `loaded`, `device`, `dtype`, `rss_bytes`, GPU memory."""
        ...

    def summary(self) -> dict[str, Any]:
        """The model card (architecture, parameter counts by component and layer, tying)."""
        ...

    def tree(self) -> list[dict[str, Any]]:
        """Every module and parameter: `name`, `parent`, `kind`, `shape`, `numel`, `class`, `tied_to`..."""
        ...

    def tensor_stats(self, name: str, bins: int = 64, clip: bool = False) -> dict[str, Any]:
        """Exact statistics and a histogram of one stored tensor."""
        ...

    def matrix_preview(self, name: str, rows: int = 64, cols: int = 128) -> dict[str, Any]:
        """A block-reduced |x| preview of a 2-D tensor: `shape`, `values` (2-D array)."""
        ...

    def cross_layer(self, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Statistics of every layer's weights: `components`, `metrics[metric][component]`, `names`."""
        ...

    def spectrum(self, name: str, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Singular values of one weight matrix: norms, ranks, `esd_histogram`, `powerlaw`, `mp_bulk_edge`,
        `num_spikes`, `alpha_reading` (a parameter, a stored name or `stored[e]`)."""
        ...

    def spectra(self, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Every matrix's spectrum in brief (`matrices`: α, D, stable rank, spikes, `flagged`) and
        `metrics[alpha|stable_rank|spikes][component][layer]` with `names`, as `cross_layer`."""
        ...

    def tokenize(self, text: str, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """`pieces`, `ids`, `labels`, `special` of a text."""
        ...

    def attention(self, prompt: str, layer: int, bins: int | None = None,
                  on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Attention weights of one layer on a prompt: `weights` (heads × q × k), `tokens`, KV grouping."""
        ...

    def lens(self, prompt: str, top_k: int = 5, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """The logit lens: `tokens` and, per layer, `top_tokens`/`top_probs` per position."""
        ...

    def neighbours(self, token_id: int, k: int = 10) -> dict[str, Any]:
        """Nearest input embeddings of a token: `ids`, `pieces`, `cosine`."""
        ...

    def chat_template(self, messages: list[dict[str, Any]] | None = None,
                      add_generation_prompt: bool = True) -> dict[str, Any]:
        """The chat template rendered for a conversation: `text`, `tokens` (id, piece, text, special, added), the
        tokenizer's and the config's BOS; raises a `UserError` when the model has no template."""
        ...

    def expert_stats(self, name: str, bins: int = 64, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Exact statistics and histogram of a fused expert parameter over its stored tensors, plus `experts`
        (per expert: `l2_norm`, `std`, `kurtosis`, ...)."""
        ...

    def expert_spectra(self, name: str, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Each expert's spectrum of a stacked expert parameter, in brief: `experts` (per expert: `alpha`,
        `ks_distance`, `stable_rank`, `num_spikes`, `m`, `flagged`); `spectrum("NAME[e]")` gives one in full."""
        ...

    def router_summary(self, name: str) -> dict[str, Any]:
        """A router weight: `row_norms` per expert and the `cosine` similarity matrix of the rows."""
        ...

    def experts(self, prompt: str, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Routing on a prompt: `tokens`, `num_experts`, `top_k`, per MoE layer `experts`/`weights` per token,
        `load`, `weight_share`, `unused`."""
        ...

    def activations(self, prompt: str, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """The residual stream: `residual_norm` (layers+1 × T), `massive`, `massive_channels`, `sink_share`."""
        ...

    def patch(self, clean: str, corrupt: str, target: str | None = None,
              on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Activation patching: `residual`, `attention`, `mlp` (layers × T) and `heads` (layers × heads)."""
        ...

    def attribute(self, prompt: str, target: str | None = None,
                  on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Direct logit attribution: `embedding`, `attention`/`mlp` per layer, `heads`, `bias`, `logit`."""
        ...

    def lens_tracks(self, prompt: str, tokens: list[str], on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """The logit lens for chosen tokens at the last position: `readouts`, `ranks`, `probs`, `best`."""
        ...

    def cancel(self, group: str) -> None:
        """Cancel this client's running request of `group` (e.g. "patch")."""
        ...

    def diff_summary(self, bins: int = 64, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """With `--base`: every tensor's change (`tensors`: name, rel_change, delta_norm, base_norm...), `aggregates`."""
        ...

    def diff_tensor(self, name: str, bins: int = 64) -> dict[str, Any]:
        """With `--base`: one tensor's change: norms, rel_change, cosine, max_abs_change, `histogram` of ΔW."""
        ...

    def diff_rank(self, name: str) -> dict[str, Any]:
        """With `--base`: `singular_values` of one 2-D change, `stable_rank`, `effective_rank_90/99`."""
        ...

    def diff_behaviour(self, prompt: str, top: int = 10, on_progress: ProgressCallback | None = None) -> dict[str, Any]:
        """With `--base`: `tokens`, `kl` per position, `rose`/`fell`, `residual_cosine` [layer][position]."""
        ...

    def run_demo(self, name: str, params: dict[str, Any] | None = None,
                 on_progress: ProgressCallback | None = None) -> Iterator[dict[str, Any]]:
        """A lesson demo: streamed points (`series`, `x`, `y`), then `{"result": ...}`."""
        ...


class NoDataSource:
    """The data source of a view that has not been given one: every request says so (shown in the view)."""

    def __getattr__(self, name: str) -> Any:
        def missing(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"this view has no data source (asked for {name})")

        return missing


__all__ = ["DataSource", "NoDataSource", "ProgressCallback"]
